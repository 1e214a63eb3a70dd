//! Counts and durations of a repeated step (a reconcile, an evaluation cycle), shared
//! between the loop that runs it and whoever reports on it (benchmarks, diagnostics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct DurationStats {
    count: AtomicU64,
    total_micros: AtomicU64,
    max_micros: AtomicU64,
}

impl DurationStats {
    pub fn record(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// Steps run so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their mean duration.
    pub fn mean(&self) -> Duration {
        let count = self.count().max(1);
        Duration::from_micros(self.total_micros.load(Ordering::Relaxed) / count)
    }

    /// The longest one.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_max() {
        let s = DurationStats::default();
        assert_eq!(s.mean(), Duration::ZERO);
        s.record(Duration::from_millis(10));
        s.record(Duration::from_millis(30));
        assert_eq!((s.count(), s.mean(), s.max()), (2, Duration::from_millis(20), Duration::from_millis(30)));
    }
}
