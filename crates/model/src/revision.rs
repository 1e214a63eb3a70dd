//! Revisions and rollouts (`stratos application update`).
//!
//! A [`Revision`] pins what a cluster's members are started from: the cartridge as it
//! was (image, command, environment properties, ports, health checks, limits) and the
//! artifact repository. Revisions are numbered per cluster from 1 and never change once
//! written; a deployment's [`ClusterSpec::revision`](crate::ClusterSpec) names the one
//! its members run. A [`Rollout`] is the manager's request to move an application's
//! clusters from one revision to another; a [`RolloutOutcome`] is the controller's word
//! on how it ended. Which revision a cluster runs is [`effective_revision`] (pure): the
//! deployment's, unless its latest rollout failed, in which case the one it came from.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Cartridge, ClusterSpec};

/// The member property that names the revision a member was started from.
pub const REVISION_PROPERTY: &str = "revision";

/// What one cluster's members are started from, pinned (store collection `revision`,
/// keyed `<cluster id>#<number>`, written by the manager, immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub cluster_id: String,
    pub application_id: String,
    /// 1, 2, ... within the cluster.
    pub number: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The cartridge as it was when the revision was taken.
    pub cartridge: Cartridge,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<String>,
}

impl Revision {
    /// The document id of revision `number` of `cluster_id`.
    pub fn key(cluster_id: &str, number: u32) -> String {
        format!("{cluster_id}#{number}")
    }

    /// Whether members started from it would differ from members started from
    /// `cartridge` with `artifact_repository`.
    pub fn same_as(&self, cartridge: &Cartridge, artifact_repository: Option<&str>) -> bool {
        &self.cartridge == cartridge && self.artifact_repository.as_deref() == artifact_repository
    }
}

/// One cluster of a rollout: the revision it leaves and the one it goes to (`None`:
/// the live definitions, for deployments made before revisions were kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCluster {
    pub cluster_id: String,
    pub from: Option<u32>,
    pub to: Option<u32>,
}

/// A request to move an application's clusters to new revisions (store collection
/// `rollout`, keyed `<application id>#<number, 6 digits>`, written by the manager).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub application_id: String,
    /// 1, 2, ... within the application.
    pub number: u32,
    /// The `deployedAt` of the deployment it moves: a rollout of an earlier deployment
    /// of the application says nothing of this one.
    pub deployed_at: u64,
    pub clusters: Vec<RolloutCluster>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    pub requested_by: String,
    /// Members of the new revision started beyond the desired size.
    pub max_surge: u32,
    /// Members the cluster may have fewer in service than its desired size.
    pub max_unavailable: u32,
    /// The rollout fails unless done within this many milliseconds.
    pub deadline_ms: u64,
    /// It undoes this rollout (`stratos application rollout undo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_of: Option<u32>,
}

impl Rollout {
    pub fn key(application_id: &str, number: u32) -> String {
        format!("{application_id}#{number:06}")
    }

    pub fn cluster(&self, cluster_id: &str) -> Option<&RolloutCluster> {
        self.clusters.iter().find(|c| c.cluster_id == cluster_id)
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutEnd {
    /// Every member runs the new revision.
    Complete,
    /// New members did not start, activate or pass their health checks in time: they
    /// were drained, and the clusters went back to the revisions they came from.
    Failed,
}

/// The controller's word on a rollout (store collection `rollout-outcome`, keyed as the
/// rollout, written by the controller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutOutcome {
    pub application_id: String,
    pub number: u32,
    pub end: RolloutEnd,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub finished_at: u64,
}

/// The revision a cluster runs: the deployment's, unless the application's latest
/// rollout (of this deployment, `deployed_at`) failed and moved this cluster, in which
/// case the one it came from.
pub fn effective_revision(
    spec: &ClusterSpec,
    deployed_at: u64,
    latest: Option<(&Rollout, Option<&RolloutOutcome>)>,
) -> Option<u32> {
    if let Some((rollout, Some(outcome))) = latest {
        if outcome.end == RolloutEnd::Failed && outcome.number == rollout.number && rollout.deployed_at == deployed_at {
            if let Some(c) = rollout.cluster(&spec.cluster_id) {
                return c.from;
            }
        }
    }
    spec.revision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(revision: Option<u32>) -> ClusterSpec {
        ClusterSpec {
            cluster_id: "app.web".into(),
            alias: "web".into(),
            cartridge_type: "web".into(),
            min: 1,
            max: 1,
            desired: 1,
            deployment_policy: "d".into(),
            autoscaling_policy: "a".into(),
            host_names: vec![],
            artifact_repository: None,
            depends_on: vec![],
            revision,
        }
    }

    fn rollout(from: Option<u32>, to: Option<u32>) -> Rollout {
        Rollout {
            application_id: "app".into(),
            number: 1,
            deployed_at: 7,
            clusters: vec![RolloutCluster { cluster_id: "app.web".into(), from, to }],
            started_at: 0,
            requested_by: "admin".into(),
            max_surge: 1,
            max_unavailable: 0,
            deadline_ms: 1000,
            undo_of: None,
        }
    }

    #[test]
    fn a_failed_rollout_sends_its_clusters_back_to_where_they_came_from() {
        let r = rollout(Some(1), Some(2));
        let mut outcome = RolloutOutcome {
            application_id: "app".into(),
            number: 1,
            end: RolloutEnd::Failed,
            reason: None,
            finished_at: 1,
        };
        assert_eq!(effective_revision(&spec(Some(2)), 7, Some((&r, None))), Some(2), "progressing");
        assert_eq!(effective_revision(&spec(Some(2)), 7, Some((&r, Some(&outcome)))), Some(1), "failed");
        assert_eq!(effective_revision(&spec(Some(2)), 8, Some((&r, Some(&outcome)))), Some(2), "another deployment's");
        outcome.end = RolloutEnd::Complete;
        assert_eq!(effective_revision(&spec(Some(2)), 7, Some((&r, Some(&outcome)))), Some(2));
        assert_eq!(effective_revision(&spec(None), 7, None), None, "stored before revisions: the live definitions");
        // Stored before revisions were kept: a spec without the field still loads.
        let mut old = serde_json::to_value(spec(None)).unwrap();
        old.as_object_mut().unwrap().remove("revision");
        assert_eq!(serde_json::from_value::<ClusterSpec>(old).unwrap().revision, None);
    }
}
