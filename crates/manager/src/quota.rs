//! Tenant quotas and the platform-wide cap on cluster sizes, checked at deploy: pure
//! functions over the tenant's deployments.
//!
//! A tenant's members are counted as its clusters' `cartridgeMax` summed, the most the
//! autoscaler may run for it, so that a deploy accepted now cannot exceed the quota later.

use serde::{Deserialize, Serialize};
use stratos_model::{Application, Deployment, Problems};

/// The platform's settings (`stratos up --tenant-max-members`, `--tenant-max-clusters`,
/// `--max-cluster-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Default quota of members per tenant.
    pub tenant_max_members: u32,
    /// Default quota of clusters per tenant.
    pub tenant_max_clusters: u32,
    /// The largest `cartridgeMin`/`cartridgeMax` of any cluster, every tenant included.
    pub max_cluster_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { tenant_max_members: 50, tenant_max_clusters: 20, max_cluster_size: 100 }
    }
}

/// One tenant's quota, as a platform admin set it (`PUT /api/tenants/{domain}/quota`);
/// a field left out takes the platform's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clusters: Option<u32>,
}

impl Quota {
    /// (members, clusters) in force.
    pub fn effective(&self, limits: &Limits) -> (u32, u32) {
        (self.max_members.unwrap_or(limits.tenant_max_members), self.max_clusters.unwrap_or(limits.tenant_max_clusters))
    }
}

/// Every cluster's `cartridgeMin` and `cartridgeMax` within `cap`, with field paths.
pub fn check_cluster_sizes(app: &Application, cap: u32, problems: &mut Problems) {
    for (at, sub) in app.subscriptions() {
        for (field, value) in [("cartridgeMin", sub.cartridge_min), ("cartridgeMax", sub.cartridge_max)] {
            if value > cap {
                problems.push(
                    format!("{at}.{field}"),
                    format!(
                        "{value} is above this platform's largest cluster size, {cap} (stratos up --max-cluster-size)"
                    ),
                );
            }
        }
    }
}

/// Whether `new` fits in the quota beside the tenant's `existing` deployments.
pub fn check_quota(
    existing: &[Deployment],
    new: &Deployment,
    (max_members, max_clusters): (u32, u32),
) -> Result<(), Problems> {
    let clusters = |d: &Deployment| d.clusters.len() as u64;
    let members = |d: &Deployment| d.clusters.iter().map(|c| u64::from(c.max)).sum::<u64>();
    let (used_clusters, used_members): (u64, u64) =
        existing.iter().fold((0, 0), |(c, m), d| (c + clusters(d), m + members(d)));
    let mut p = Problems::default();
    if used_clusters + clusters(new) > u64::from(max_clusters) {
        p.push(
            "clusters",
            format!(
                "{} more cluster(s) beside the {used_clusters} deployed exceed the tenant's quota of {max_clusters}",
                clusters(new)
            ),
        );
    }
    if used_members + members(new) > u64::from(max_members) {
        p.push(
            "members",
            format!(
                "up to {} more member(s) (cartridgeMax summed) beside the {used_members} the deployed clusters may have exceed the tenant's quota of {max_members}",
                members(new)
            ),
        );
    }
    p.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From JSON, so that fields other parts add to deployments do not break it.
    fn deployment(maxes: &[u32]) -> Deployment {
        let clusters: Vec<serde_json::Value> = maxes
            .iter()
            .enumerate()
            .map(|(i, max)| {
                serde_json::json!({"clusterId": format!("a.c{i}"), "alias": format!("c{i}"), "cartridgeType": "t",
                    "min": 1, "max": max, "desired": 1, "deploymentPolicy": "d", "autoscalingPolicy": "s", "hostNames": []})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"applicationId": "a", "tenantId": 1, "applicationPolicyId": "p",
            "status": "deployed", "deployedAt": 0, "clusters": clusters}))
        .unwrap()
    }

    #[test]
    fn members_count_as_the_clusters_maxima() {
        let existing = [deployment(&[3, 3])];
        assert!(check_quota(&existing, &deployment(&[4]), (10, 5)).is_ok());
        let p = check_quota(&existing, &deployment(&[5]), (10, 5)).unwrap_err();
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].path, "members");
        let p = check_quota(&existing, &deployment(&[1, 1]), (10, 3)).unwrap_err();
        assert_eq!(p.0[0].path, "clusters");
    }
}
