//! A bound on one kind of work's registry requests beyond the client's own per-registry
//! limit: at most so many in flight and so many started per second. A background scan
//! sends its requests through a gate narrower than the registry's permits, so admission
//! always finds permits free and a scan spreads its requests over time instead of
//! bursting into a registry's rate limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Requests in flight and started per second, for the calls that carry it
/// ([`crate::CallOptions::gate`]); clones share the bound.
#[derive(Debug, Clone)]
pub struct RequestGate {
    permits: Arc<Semaphore>,
    /// Least time between two request starts (`None`: no rate bound).
    spacing: Option<Duration>,
    /// When the next request may start.
    next: Arc<Mutex<Instant>>,
}

impl RequestGate {
    /// At most `concurrency` requests in flight (at least 1) and at most `per_second`
    /// started per second (0: no rate bound).
    pub fn new(concurrency: usize, per_second: u32) -> RequestGate {
        RequestGate {
            permits: Arc::new(Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS))),
            spacing: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Waits for a place and for the request's turn under the rate; the place is held
    /// until the permit is dropped (the answer's body read). Its slot is taken before
    /// sleeping, so concurrent waiters are spaced, not released together.
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        if let Some(start) = self.take_slot(Instant::now()) {
            tokio::time::sleep_until(start).await;
        }
        permit
    }

    /// The start time of the next request at `now`, taken (`None`: no rate bound).
    fn take_slot(&self, now: Instant) -> Option<Instant> {
        let spacing = self.spacing?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + spacing;
        Some(start)
    }

    /// Places free at the moment (for tests and metrics).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_are_spaced_by_the_rate() {
        let gate = RequestGate::new(8, 10);
        let now = Instant::now();
        // Five requests asking at the same moment start 100 ms apart, the first at once.
        let starts: Vec<Duration> = (0..5)
            .filter_map(|_| gate.take_slot(now))
            .map(|start| start.duration_since(now))
            .collect();
        let expected: Vec<Duration> = (0..5).map(|i| Duration::from_millis(100 * i)).collect();
        assert_eq!(starts, expected);
        // A request after a quiet spell starts at once.
        let later = now + Duration::from_secs(10);
        assert_eq!(gate.take_slot(later), Some(later));
        assert_eq!(RequestGate::new(1, 0).take_slot(now), None);
    }

    #[tokio::test]
    async fn places_are_held_until_the_permit_is_dropped() {
        let gate = RequestGate::new(2, 0);
        let first = gate.enter().await;
        let second = gate.enter().await;
        assert_eq!(gate.available(), 0);
        drop(first);
        assert_eq!(gate.available(), 1);
        drop(second);
        assert_eq!(gate.available(), 2);
    }
}
