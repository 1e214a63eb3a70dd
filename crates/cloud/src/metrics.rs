//! What the controller's metrics say, from what it holds (pure): members by status per
//! cluster, and the size each deployed cluster converges to.

use std::collections::BTreeMap;

use stratos_metrics::MemberCount;
use stratos_model::topology::{MemberStatus, Topology};
use stratos_model::{ClusterScale, Deployment, DeploymentStatus};

/// A member status as the topology names it (`Active`, `In_Maintenance`, ...).
pub fn status_name(status: MemberStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{status:?}"))
}

/// Every cluster's members counted by status; a cluster with no member counts none.
pub fn member_counts(topology: &Topology) -> Vec<MemberCount> {
    let mut counts: BTreeMap<(&str, &str, MemberStatus), i64> = BTreeMap::new();
    for service in topology.services.values() {
        for cluster in service.clusters.values() {
            for m in cluster.members.values() {
                *counts.entry((&cluster.cluster_id, &cluster.app_id, m.status)).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|((cluster, application, status), members)| MemberCount {
            cluster: cluster.into(),
            application: application.into(),
            status: status_name(status),
            members,
        })
        .collect()
}

/// (cluster, application) → the size it converges to, for every deployed cluster;
/// `scale_of` gives a cluster's scale record if its tenant has one.
pub fn desired_sizes<'a>(
    deployments: &'a [Deployment],
    scale_of: impl Fn(i64, &str) -> Option<&'a ClusterScale>,
) -> BTreeMap<(String, String), i64> {
    deployments
        .iter()
        .filter(|d| d.status == DeploymentStatus::Deployed)
        .flat_map(|d| d.clusters.iter().map(move |c| (d, c)))
        .map(|(d, c)| {
            let desired = crate::plan::scale::desired(c, scale_of(d.tenant_id, &c.cluster_id));
            ((c.cluster_id.clone(), d.application_id.clone()), i64::from(desired))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_as_the_topology_names_them() {
        assert_eq!(status_name(MemberStatus::Active), "Active");
        assert_eq!(status_name(MemberStatus::InMaintenance), "In_Maintenance");
    }
}
