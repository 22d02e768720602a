//! Single-flight: concurrent callers asking for the same key share one execution.
//!
//! None of the peers (Kyverno, policy-controller, Kubewarden) coalesce identical
//! in-flight verifications; this is why 500 pods sharing 5 images cost 5 fetches.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

/// Coalesces concurrent executions per key. Results are not kept once the execution
/// has finished (that is the caches' job).
pub struct SingleFlight<K, V: Clone> {
    calls: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K, V: Clone> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleFlight")
    }
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            calls: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `work` unless an execution for `key` is already under way, in which case its
    /// result is awaited instead. `work` is dropped unused when joining.
    pub async fn run<F>(&self, key: K, work: F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut calls = self.lock();
            match calls.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = work.boxed().shared();
                    calls.insert(key.clone(), flight.clone());
                    flight
                }
            }
        };
        let value = flight.clone().await;
        let mut calls = self.lock();
        if calls
            .get(&key)
            .is_some_and(|current| current.ptr_eq(&flight))
        {
            calls.remove(&key);
        }
        value
    }

    /// Executions under way.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Shared<BoxFuture<'static, V>>>> {
        // Only map insertions and removals happen under the lock: a panic elsewhere
        // cannot leave the map inconsistent.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_execution() {
        let flights: Arc<SingleFlight<&'static str, usize>> = Arc::default();
        let executions = Arc::new(AtomicUsize::new(0));
        let callers = (0..50).map(|_| {
            let flights = flights.clone();
            let executions = executions.clone();
            tokio::spawn(async move {
                flights
                    .run("image", async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        executions.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            })
        });
        for caller in futures::future::join_all(callers).await {
            assert_eq!(caller.unwrap(), 1);
        }
        assert_eq!(executions.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn distinct_keys_and_later_calls_execute_again() {
        let flights: SingleFlight<u32, u32> = SingleFlight::default();
        assert_eq!(flights.run(1, async { 10 }).await, 10);
        assert_eq!(flights.run(2, async { 20 }).await, 20);
        assert_eq!(flights.run(1, async { 11 }).await, 11);
    }
}
