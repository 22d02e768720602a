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
/// has finished (that is the caches' job), and an execution whose every caller went
/// away (deadline, client gone) is dropped with its entry: keys are chosen by
/// requests, so an abandoned entry must not outlive its callers.
pub struct SingleFlight<K, V: Clone> {
    calls: Mutex<HashMap<K, Call<V>>>,
}

/// One execution under way and how many callers await it.
struct Call<V: Clone> {
    flight: Shared<BoxFuture<'static, V>>,
    waiters: usize,
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

impl<K: Hash + Eq, V: Clone> SingleFlight<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Call<V>>> {
        // Only map insertions and removals happen under the lock: a panic elsewhere
        // cannot leave the map inconsistent.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A caller's registration: dropping it (finished or cancelled) leaves the execution,
/// and the last caller to leave removes the entry.
struct Waiter<'a, K: Hash + Eq, V: Clone> {
    flights: &'a SingleFlight<K, V>,
    key: K,
    flight: Shared<BoxFuture<'static, V>>,
}

impl<K: Hash + Eq, V: Clone> Drop for Waiter<'_, K, V> {
    fn drop(&mut self) {
        let mut calls = self.flights.lock();
        if let Some(call) = calls.get_mut(&self.key)
            && call.flight.ptr_eq(&self.flight)
        {
            call.waiters = call.waiters.saturating_sub(1);
            if call.waiters == 0 {
                calls.remove(&self.key);
            }
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
        let waiter = {
            let mut calls = self.lock();
            let call = calls.entry(key.clone()).or_insert_with(|| Call {
                flight: work.boxed().shared(),
                waiters: 0,
            });
            call.waiters += 1;
            Waiter {
                flights: self,
                key: key.clone(),
                flight: call.flight.clone(),
            }
        };
        let value = waiter.flight.clone().await;
        // Finished: later callers start afresh (the caches keep results), so the entry
        // goes now rather than with the last waiter.
        let mut calls = self.lock();
        if calls
            .get(&key)
            .is_some_and(|current| current.flight.ptr_eq(&waiter.flight))
        {
            calls.remove(&key);
        }
        drop(calls);
        drop(waiter);
        value
    }

    /// Executions under way.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.lock().len()
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

    #[tokio::test]
    async fn cancelled_callers_leave_no_entry() {
        // Issue 8 item 13: a caller cancelled by its deadline used to leave the shared
        // future in the map for ever.
        let flights: Arc<SingleFlight<u32, u32>> = Arc::default();
        let pending = || std::future::pending::<u32>();
        let first = tokio::time::timeout(Duration::from_millis(20), flights.run(1, pending()));
        let second = tokio::time::timeout(Duration::from_millis(40), flights.run(1, pending()));
        let (first, second) = tokio::join!(first, second);
        assert!(first.is_err() && second.is_err());
        assert_eq!(flights.in_flight(), 0);

        // One caller cancelled, one still waiting: the execution goes on for the other.
        // Released by the test, not by a timer: under load a timer could fire first.
        let release = Arc::new(tokio::sync::Notify::new());
        let waiting = {
            let (flights, release) = (flights.clone(), release.clone());
            tokio::spawn(async move {
                flights
                    .run(2, async move {
                        release.notified().await;
                        7
                    })
                    .await
            })
        };
        for _ in 0..1000 {
            if flights.in_flight() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(flights.in_flight(), 1);
        let cancelled =
            tokio::time::timeout(Duration::from_millis(5), flights.run(2, pending())).await;
        assert!(cancelled.is_err());
        assert_eq!(flights.in_flight(), 1);
        release.notify_one();
        assert_eq!(waiting.await.unwrap(), 7);
        assert_eq!(flights.in_flight(), 0);
    }
}
