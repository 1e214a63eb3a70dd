//! The health service's series: statistics taken in, summaries sent out, faults found.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatLabels {
    /// `member` (an agent's load and memory) or `in-flight` (a load balancer's count).
    pub kind: String,
}

#[derive(Clone, Debug)]
pub struct HealthMetrics {
    stats: Family<StatLabels, Counter>,
    summaries: Counter,
    faults: Counter,
    clusters: Gauge,
}

impl HealthMetrics {
    pub(crate) fn register(registry: &mut Registry) -> HealthMetrics {
        let metrics = HealthMetrics {
            stats: Family::default(),
            summaries: Counter::default(),
            faults: Counter::default(),
            clusters: Gauge::default(),
        };
        registry.register("health_stats_received", "Health statistics taken in, by kind", metrics.stats.clone());
        registry.register(
            "health_summaries_published",
            "Cluster health summaries published (one per cluster and network partition per interval)",
            metrics.summaries.clone(),
        );
        registry.register(
            "health_member_faults",
            "Members declared faulty for sending no statistics",
            metrics.faults.clone(),
        );
        registry.register(
            "health_clusters",
            "Clusters (per network partition) with statistics in the window",
            metrics.clusters.clone(),
        );
        metrics
    }

    pub fn stat(&self, kind: &str) {
        self.stats.get_or_create(&StatLabels { kind: kind.into() }).inc();
    }
    pub fn summaries(&self, n: u64, clusters: i64) {
        self.summaries.inc_by(n);
        self.clusters.set(clusters);
    }
    pub fn fault(&self) {
        self.faults.inc();
    }
}
