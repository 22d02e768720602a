//! Running async work from synchronous code, also from inside a tokio runtime.

use std::future::Future;

/// Runs `fut` to completion on a fresh current-thread runtime owned by a separate thread,
/// so it works whether or not the caller is itself inside a tokio runtime. A panic inside
/// `fut` is re-raised in the caller with its original message.
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("imagegate-testkit: cannot build a tokio runtime")
                .block_on(fut)
        });
        match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
