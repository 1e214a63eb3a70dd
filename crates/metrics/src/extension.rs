//! The load-balancer extension's series (HAProxy, nginx): configuration reloads and the
//! requests in flight it reads back per cluster.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug)]
pub struct ExtensionMetrics {
    reloads: Family<ReloadLabels, Counter>,
    in_flight: Family<ClusterLabels, Gauge>,
    last: Arc<Mutex<BTreeSet<ClusterLabels>>>,
}

impl ExtensionMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ExtensionMetrics {
        let metrics =
            ExtensionMetrics { reloads: Family::default(), in_flight: Family::default(), last: Default::default() };
        registry.register(
            "lb_extension_reloads",
            "Configurations rendered and reloaded into the proxy, by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "lb_extension_requests_in_flight",
            "Requests in flight per cluster, as read back from the proxy",
            metrics.in_flight.clone(),
        );
        metrics
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { result: result.into() }).inc();
    }

    /// Every cluster's requests in flight; clusters not named lose their series.
    pub fn in_flight<'a>(&self, clusters: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = BTreeSet::new();
        for (cluster, n) in clusters {
            let labels = ClusterLabels { cluster: cluster.into() };
            self.in_flight.get_or_create(&labels).set(n);
            now.insert(labels);
        }
        for gone in last.difference(&now) {
            self.in_flight.remove(gone);
        }
        *last = now;
    }
}
