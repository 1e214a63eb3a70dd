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
    /// The application's groups as a tree over `clusters` (by alias): the
    /// autoscaler's group monitors. Empty in deployments stored before groups
    /// were kept, and for applications without groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
}

/// One group of a deployed application: its own clusters and nested groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    pub alias: String,
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub scaling_enabled: bool,
    /// Aliases of the clusters directly in this group.
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
}

impl GroupSpec {
    /// The group tree of an application's components.
    pub fn tree(groups: &[crate::GroupComponent]) -> Vec<GroupSpec> {
        groups
            .iter()
            .map(|g| GroupSpec {
                alias: g.alias.clone(),
                name: g.name.clone(),
                min: g.group_min,
                max: g.group_max,
                scaling_enabled: g.group_scaling_enabled,
                clusters: g.cartridges.iter().map(|c| c.subscribable_info.alias.clone()).collect(),
                groups: GroupSpec::tree(&g.groups),
            })
            .collect()
    }

    /// Every cluster alias in the group, nested groups included.
    pub fn all_clusters(&self) -> Vec<String> {
        let mut out = self.clusters.clone();
        out.extend(self.groups.iter().flat_map(GroupSpec::all_clusters));
        out
    }

    /// The group with this alias, here or nested.
    pub fn find<'a>(groups: &'a [GroupSpec], alias: &str) -> Option<&'a GroupSpec> {
        groups.iter().find_map(|g| if g.alias == alias { Some(g) } else { GroupSpec::find(&g.groups, alias) })
    }
}

impl Deployment {
    /// The cluster aliases a dependency reference stands for: `cartridge.<alias>`
    /// is one cluster, `group.<alias>` every cluster of the group (its monitor),
    /// nested groups included. Unknown references stand for nothing.
    pub fn expand(&self, reference: &str) -> Vec<String> {
        if let Some(alias) = reference.strip_prefix("cartridge.") {
            self.clusters.iter().filter(|c| c.alias == alias).map(|c| c.alias.clone()).collect()
        } else if let Some(alias) = reference.strip_prefix("group.") {
            GroupSpec::find(&self.groups, alias).map(GroupSpec::all_clusters).unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// Aliases of the clusters in no group: the application monitor's own children.
    pub fn top_level_clusters(&self) -> Vec<String> {
        let grouped: Vec<String> = self.groups.iter().flat_map(GroupSpec::all_clusters).collect();
        self.clusters.iter().filter(|c| !grouped.contains(&c.alias)).map(|c| c.alias.clone()).collect()
    }

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
            revision: None,
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
            groups: vec![],
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

    fn group(alias: &str, clusters: &[&str], groups: Vec<GroupSpec>) -> GroupSpec {
        GroupSpec {
            alias: alias.into(),
            name: alias.into(),
            min: 1,
            max: 1,
            scaling_enabled: false,
            clusters: clusters.iter().map(|s| s.to_string()).collect(),
            groups,
        }
    }

    #[test]
    fn references_expand_to_clusters_and_groups_to_all_their_clusters() {
        let d = Deployment {
            application_id: "app".into(),
            tenant_id: 1,
            application_policy_id: "p".into(),
            status: DeploymentStatus::Deployed,
            deployed_at: 0,
            clusters: vec![spec("web", &[]), spec("db", &[]), spec("cache", &[]), spec("queue", &[])],
            termination_behaviour: None,
            // backend { db, inner { cache } }; web and queue stand alone.
            groups: vec![group("backend", &["db"], vec![group("inner", &["cache"], vec![])])],
        };
        for (reference, expected) in [
            ("cartridge.web", vec!["web"]),
            ("cartridge.nope", vec![]),
            ("group.backend", vec!["db", "cache"]),
            ("group.inner", vec!["cache"]),
            ("group.nope", vec![]),
            ("web", vec![]),
        ] {
            assert_eq!(d.expand(reference), expected, "{reference}");
        }
        assert_eq!(d.top_level_clusters(), ["web", "queue"]);
        // Stored before groups were kept: still loads, with no group.
        let mut old = serde_json::to_value(&d).unwrap();
        old.as_object_mut().unwrap().remove("groups");
        let back: Deployment = serde_json::from_value(old).unwrap();
        assert!(back.groups.is_empty());
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
    /// The revision its members are started from (`model::Revision`); `None` in
    /// deployments stored before revisions were kept: the live definitions, until the
    /// first `stratos application update` pins one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// A group's or an application's status, rolled up from its children by the
/// autoscaler's monitors (Apache Stratos 4.1's GroupStatus / ApplicationStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MonitorStatus {
    /// Not every child has been active yet.
    Created,
    /// Every child is active.
    Active,
    /// A child that was active is not.
    Inactive,
    /// The application is being undeployed.
    Terminating,
}

/// The autoscaler's record of a deployed application's monitors
/// (store collection `application-status`, keyed by application id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationMonitorStatus {
    pub application_id: String,
    /// The `deployedAt` of the deployment the monitors watch: a record left from
    /// an earlier deployment of the application says nothing of this one.
    pub deployed_at: u64,
    pub status: MonitorStatus,
    /// Group alias → status.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, MonitorStatus>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
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

/// An operator's rolling restart of a cluster (`stratos cluster restart`), written by
/// the manager. It is a request, not a progress record: every member created before
/// `requested_at` is old, and the controller replaces the old members one at a time
/// until none is left; that is when the restart is over. A controller that restarts
/// reads the same record and carries on where the topology says it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRestart {
    pub cluster_id: String,
    /// Milliseconds since the Unix epoch (the manager's clock; members' `initTime` is
    /// the controller's, the same host's clock in one platform).
    pub requested_at: u64,
    /// Who asked for it.
    pub requested_by: String,
}
