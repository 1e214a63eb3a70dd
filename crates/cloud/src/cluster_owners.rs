//! One deployment per cluster id, whatever the store holds.
//!
//! `<application>.<alias>` is ambiguous (`x.y` + `z` and `x` + `y.z` are both
//! `x.y.z`). The manager refuses a deploy whose cluster ids are taken, but a store
//! written by an earlier build (or by hand) may still hold two deployments naming one
//! cluster; converging both made one cluster of their members, past either's max.
//! Here each cluster id gets exactly one owner, and the controller converges (and
//! undeploys) a cluster only for its owner.

use std::collections::HashMap;

use stratos_model::topology::Topology;
use stratos_model::Deployment;

/// Which deployment (tenant, application) a cluster belongs to.
pub type Owner = (i64, String);

/// The owner of every cluster id the deployments name: the application the cluster
/// already runs for when the topology has it, else the deployment deployed first
/// (then by tenant and application id, so that the choice never flips).
pub fn cluster_owners(deployments: &[Deployment], topology: &Topology) -> HashMap<String, Owner> {
    let mut by_age: Vec<&Deployment> = deployments.iter().collect();
    by_age.sort_by(|a, b| {
        (a.deployed_at, a.tenant_id, &a.application_id).cmp(&(b.deployed_at, b.tenant_id, &b.application_id))
    });
    let mut owners = HashMap::new();
    for d in by_age {
        for spec in &d.clusters {
            owners.entry(spec.cluster_id.clone()).or_insert_with(|| match topology.cluster(&spec.cluster_id) {
                Some(c) => (c.tenant_id, c.app_id.clone()),
                None => (d.tenant_id, d.application_id.clone()),
            });
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratos_model::{ClusterSpec, DeploymentStatus};

    fn deployment(app: &str, alias: &str, deployed_at: u64) -> Deployment {
        Deployment {
            application_id: app.into(),
            tenant_id: -1234,
            application_policy_id: "p".into(),
            status: DeploymentStatus::Deployed,
            deployed_at,
            clusters: vec![ClusterSpec {
                cluster_id: stratos_model::cluster_id(app, alias),
                alias: alias.into(),
                cartridge_type: "c".into(),
                min: 1,
                max: 3,
                desired: 1,
                deployment_policy: "d".into(),
                autoscaling_policy: "a".into(),
                host_names: vec![],
                artifact_repository: None,
                depends_on: vec![],
                revision: None,
            }],
            termination_behaviour: None,
            groups: vec![],
        }
    }

    #[test]
    fn the_first_deployment_owns_a_colliding_cluster_id() {
        let first = deployment("x.y", "z", 10);
        let second = deployment("x", "y.z", 20);
        for order in [vec![first.clone(), second.clone()], vec![second.clone(), first.clone()]] {
            let owners = cluster_owners(&order, &Topology::default());
            assert_eq!(owners.len(), 1);
            assert_eq!(owners["x.y.z"], (-1234, "x.y".to_string()));
        }
    }
}
