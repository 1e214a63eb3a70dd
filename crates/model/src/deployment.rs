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
