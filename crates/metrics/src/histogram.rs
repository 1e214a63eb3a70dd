//! A histogram whose observation is atomics only: the load balancer observes one per
//! request on every worker, and `prometheus-client`'s own takes a write lock for each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Latencies of requests and reconciles, in seconds: 1 ms to about 33 s, doubling.
pub const SECONDS: &[f64] =
    &[0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768];

/// Ages of events on the bus, in seconds: 1 ms to about 2 minutes.
pub const LAG_SECONDS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A histogram of fixed buckets; clones share the counts.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, and one past the last (`+Inf`); not cumulative.
    counts: Box<[AtomicU64]>,
    /// The sum of observations in nanounits (nanoseconds for seconds), so that it is
    /// one integer addition.
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram { inner: Arc::new(Inner { bounds, counts, sum_nanos: AtomicU64::new(0) }) }
    }

    /// For a family's constructor: latencies in seconds.
    pub fn seconds() -> AtomicHistogram {
        AtomicHistogram::new(SECONDS)
    }

    /// For a family's constructor: event ages in seconds.
    pub fn lag_seconds() -> AtomicHistogram {
        AtomicHistogram::new(LAG_SECONDS)
    }

    /// Counts one observation (negative ones as 0).
    pub fn observe(&self, value: f64) {
        let value = if value.is_finite() { value.max(0.0) } else { f64::MAX };
        let i = self.inner.bounds.partition_point(|&b| b < value);
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_nanos.fetch_add((value * 1e9).min(u64::MAX as f64) as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// (upper bound, count in that bucket alone), `+Inf` last.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let bounds = self.inner.bounds.iter().copied().chain(std::iter::once(f64::MAX));
        bounds.zip(self.inner.counts.iter().map(|c| c.load(Ordering::Relaxed))).collect()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_the_sum() {
        let h = AtomicHistogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.1, 0.5, 3.0, -1.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets(), vec![(0.1, 3), (1.0, 1), (f64::MAX, 1)]);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 3.65).abs() < 1e-6, "{}", h.sum());
    }
}
