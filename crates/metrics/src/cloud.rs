//! The cloud controller's series: members by status per cluster, desired sizes, and how
//! long reconciles take.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::histogram::AtomicHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct MemberLabels {
    pub cluster: String,
    pub application: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
    pub application: String,
}

/// One cluster's members of one status, as the controller counts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberCount {
    pub cluster: String,
    pub application: String,
    pub status: String,
    pub members: i64,
}

#[derive(Clone, Debug)]
pub struct CloudMetrics {
    members: Family<MemberLabels, Gauge>,
    desired: Family<ClusterLabels, Gauge>,
    reconcile: AtomicHistogram,
    /// The label sets set last, so that those gone are removed.
    last: Arc<Mutex<(BTreeSet<MemberLabels>, BTreeSet<ClusterLabels>)>>,
}

impl CloudMetrics {
    pub(crate) fn register(registry: &mut Registry) -> CloudMetrics {
        let metrics = CloudMetrics {
            members: Family::default(),
            desired: Family::default(),
            reconcile: AtomicHistogram::seconds(),
            last: Default::default(),
        };
        registry.register(
            "cluster_members",
            "Members of each cluster by status, as the cloud controller holds the topology",
            metrics.members.clone(),
        );
        registry.register(
            "cluster_desired_members",
            "The size each cluster converges to (the autoscaler's or an operator's, within min and max)",
            metrics.desired.clone(),
        );
        registry.register_with_unit(
            "controller_reconcile_duration",
            "How long each reconcile of the cloud controller took",
            Unit::Seconds,
            metrics.reconcile.clone(),
        );
        metrics
    }

    /// A reconcile took `seconds`.
    pub fn reconciled(&self, seconds: f64) {
        self.reconcile.observe(seconds);
    }

    /// Sets the member counts and desired sizes of every cluster the controller holds;
    /// series of clusters (or statuses) no longer counted are removed.
    pub fn set_clusters(&self, members: &[MemberCount], desired: &BTreeMap<(String, String), i64>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = BTreeSet::new();
        for m in members {
            let labels = MemberLabels {
                cluster: m.cluster.clone(),
                application: m.application.clone(),
                status: m.status.clone(),
            };
            self.members.get_or_create(&labels).set(m.members);
            now.insert(labels);
        }
        for gone in last.0.difference(&now) {
            self.members.remove(gone);
        }
        let mut now_desired = BTreeSet::new();
        for ((cluster, application), n) in desired {
            let labels = ClusterLabels { cluster: cluster.clone(), application: application.clone() };
            self.desired.get_or_create(&labels).set(*n);
            now_desired.insert(labels);
        }
        for gone in last.1.difference(&now_desired) {
            self.desired.remove(gone);
        }
        *last = (now, now_desired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_and_statuses_gone_lose_their_series() {
        let mut b = crate::Builder::default();
        let cloud = b.cloud();
        let scrape = b.finish();
        let count = |c: &str, s: &str, n| MemberCount {
            cluster: c.into(),
            application: "app".into(),
            status: s.into(),
            members: n,
        };
        let desired = BTreeMap::from([(("c1".to_string(), "app".to_string()), 2)]);
        cloud.set_clusters(&[count("c1", "Active", 2), count("c1", "Starting", 1), count("c2", "Active", 1)], &desired);
        let text = scrape.render();
        assert!(
            text.contains(r#"stratos_cluster_members{cluster="c1",application="app",status="Starting"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"stratos_cluster_desired_members{cluster="c1",application="app"} 2"#), "{text}");
        cloud.set_clusters(&[count("c1", "Active", 3)], &BTreeMap::new());
        let text = scrape.render();
        assert!(
            text.contains(r#"stratos_cluster_members{cluster="c1",application="app",status="Active"} 3"#),
            "{text}"
        );
        assert!(!text.contains("Starting") && !text.contains("c2") && !text.contains("desired_members{"), "{text}");
    }
}
