//! Deployments: the desired state of a deployed application, written by the
//! manager (and later the autoscaler), reconciled by the cloud controller.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An application deployed with an application policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub application_id: String,
    pub tenant_id: i64,
    pub application_policy_id: String,
    pub status: DeploymentStatus,
    /// Milliseconds since the Unix epoch.
    pub deployed_at: u64,
    pub clusters: Vec<ClusterSpec>,
    /// What happens to the other clusters when one goes down (no active member
    /// left); `None` when the application declares no dependencies: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_behaviour: Option<crate::TerminationBehaviour>,
}

impl Deployment {
    /// The clusters to take down when `failed` goes down, by the termination behaviour.
    pub fn clusters_to_terminate(&self, failed: &str) -> Vec<String> {
        let Some(failed_spec) = self.clusters.iter().find(|c| c.cluster_id == failed) else { return Vec::new() };
        match self.termination_behaviour {
            None | Some(crate::TerminationBehaviour::TerminateNone) => Vec::new(),
            Some(crate::TerminationBehaviour::TerminateAll) => {
                self.clusters.iter().filter(|c| c.cluster_id != failed).map(|c| c.cluster_id.clone()).collect()
            }
            Some(crate::TerminationBehaviour::TerminateDependents) => {
                // Every cluster that depends on the failed one, directly or through others.
                let mut down = vec![failed_spec.alias.clone()];
                let mut out = Vec::new();
                while let Some(alias) = down.pop() {
                    for c in &self.clusters {
                        if c.depends_on.contains(&alias) && !out.contains(&c.cluster_id) {
                            out.push(c.cluster_id.clone());
                            down.push(c.alias.clone());
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TerminationBehaviour::*;

    fn spec(alias: &str, depends_on: &[&str]) -> ClusterSpec {
        ClusterSpec {
            cluster_id: cluster_id("app", alias),
            alias: alias.into(),
            cartridge_type: "c".into(),
            min: 1,
            max: 1,
            desired: 1,
            deployment_policy: "d".into(),
            autoscaling_policy: "a".into(),
            host_names: vec![],
            artifact_repository: None,
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn termination_behaviours() {
        let mut d = Deployment {
            application_id: "app".into(),
            tenant_id: 1,
            application_policy_id: "p".into(),
            status: DeploymentStatus::Deployed,
            deployed_at: 0,
            // db ← api ← web; cache stands alone.
            clusters: vec![spec("db", &[]), spec("api", &["db"]), spec("web", &["api"]), spec("cache", &[])],
            termination_behaviour: None,
        };
        assert!(d.clusters_to_terminate("app.db").is_empty());
        d.termination_behaviour = Some(TerminateNone);
        assert!(d.clusters_to_terminate("app.db").is_empty());
        d.termination_behaviour = Some(TerminateDependents);
        assert_eq!(d.clusters_to_terminate("app.db"), ["app.api", "app.web"]);
        assert_eq!(d.clusters_to_terminate("app.web"), Vec::<String>::new());
        d.termination_behaviour = Some(TerminateAll);
        assert_eq!(d.clusters_to_terminate("app.web"), ["app.db", "app.api", "app.cache"]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    /// Members are kept at each cluster's desired count.
    Deployed,
    /// Members drain and terminate; the deployment is deleted once none is left.
    Undeploying,
}

/// One cluster of a deployment: what to run and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub cluster_id: String,
    pub alias: String,
    pub cartridge_type: String,
    pub min: u32,
    pub max: u32,
    /// Members the cloud controller keeps running; starts at `min`.
    pub desired: u32,
    pub deployment_policy: String,
    pub autoscaling_policy: String,
    pub host_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<String>,
    /// Clusters (by alias) that must be active before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// The cluster id of a subscription: `<application>.<alias>`.
pub fn cluster_id(application_id: &str, alias: &str) -> String {
    format!("{application_id}.{alias}")
}

/// The autoscaler's word on a cluster's size, kept apart from the deployment
/// (which the manager owns) so that neither overwrites the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterScale {
    pub cluster_id: String,
    /// Members to keep; the cloud controller bounds it by the cluster's min and max.
    pub desired: u32,
    /// Members to remove first when the cluster is above `desired` (the least loaded).
    #[serde(default)]
    pub drain_first: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
}
