//! An operator's hand on a running cluster: its bounds (`PUT /api/clusters/{id}/scale`)
//! and a rolling restart (`POST|GET /api/clusters/{id}/restart`).
//!
//! New bounds are written into the deployment's `ClusterSpec` (the record the controller
//! and the autoscaler read min and max from), so the controller brings the cluster inside
//! them at its next reconcile and the autoscaler decides within them from then on. Once
//! an operator sets them, the application's `cartridgeMin`/`cartridgeMax` are what the
//! cluster was deployed with, no longer a limit: the limits are the deployment policy's
//! partitions (what placement can hold), the platform's largest cluster size and the
//! tenant's quota.
//!
//! A restart is a request (`ClusterRestart`): the controller replaces every member older
//! than it one at a time (`cloud::plan::restart`); it runs while such a member is left.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stratos_model::placement::Placement;
use stratos_model::topology::{Member, MemberStatus};
use stratos_model::{
    ClusterRestart, ClusterSpec, Definitions, Deployment, DeploymentStatus, NetworkPartition, Problems,
};

use crate::auth::Principal;
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, TenantId};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/clusters/{id}/scale", put(scale))
        .route("/api/clusters/{id}/restart", get(restart_status).post(restart))
}

/// New bounds for a cluster; a field left out keeps its value.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleRequest {
    /// Fewest members (at least 1).
    #[serde(default)]
    pub min: Option<u32>,
    /// Most members: no more than the deployment policy's partitions hold.
    #[serde(default)]
    pub max: Option<u32>,
}

/// A cluster's bounds as stored.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBounds {
    pub cluster_id: String,
    pub min: u32,
    pub max: u32,
}

/// What the platform holds a cluster to besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Members the deployment policy's partitions hold together.
    pub capacity: u32,
    /// `stratos up --max-cluster-size`.
    pub max_cluster_size: u32,
}

/// The bounds a request leaves the cluster with, or each field at fault. Pure.
pub fn new_bounds(spec: &ClusterSpec, req: &ScaleRequest, limits: Limits) -> Result<(u32, u32), Problems> {
    let mut p = Problems::default();
    if req.min.is_none() && req.max.is_none() {
        p.push("min", "give min, max or both");
        return Err(p);
    }
    let (min, max) = (req.min.unwrap_or(spec.min), req.max.unwrap_or(spec.max));
    if min < 1 {
        p.push("min", "must be at least 1");
    }
    if min > max {
        // Name the field the request set (both set: min).
        let field = if req.min.is_some() { "min" } else { "max" };
        p.push(field, format!("min {min} is above max {max}"));
    }
    for (field, value, given) in [("min", min, req.min.is_some()), ("max", max, req.max.is_some())] {
        if given && value > limits.max_cluster_size {
            p.push(
                field,
                format!(
                    "{value} is above this platform's largest cluster size, {} (stratos up --max-cluster-size)",
                    limits.max_cluster_size
                ),
            );
        }
    }
    if max > limits.capacity {
        p.push(
            "max",
            format!(
                "{max} is more than the partitions of deployment policy {:?} hold ({} member(s) at most)",
                spec.deployment_policy, limits.capacity
            ),
        );
    }
    p.into_result().map(|()| (min, max))
}

/// Members the cluster's placement holds: its deployment policy's partitions within the
/// application policy's network partitions.
fn capacity(deployment: &Deployment, spec: &ClusterSpec, defs: &Definitions) -> Result<u32, Problems> {
    let mut p = Problems::default();
    let app_policy = defs.application_policies.get(&deployment.application_policy_id);
    let policy = defs.deployment_policies.get(&spec.deployment_policy);
    let (Some(app_policy), Some(policy)) = (app_policy, policy) else {
        p.push(
            "max",
            format!(
                "cannot tell what the cluster's partitions hold: application policy {:?} or deployment policy {:?} no longer exists",
                deployment.application_policy_id, spec.deployment_policy
            ),
        );
        return Err(p);
    };
    let nps: HashMap<String, NetworkPartition> =
        defs.network_partitions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Placement::new(app_policy.algorithm, &app_policy.network_partitions, policy, &nps).capacity())
}

/// The deployed application holding cluster `id` in `tenant`, and the cluster's index
/// in it. Another tenant's cluster is as absent as one that does not exist.
async fn deployed(state: &AppState, tenant: i64, id: &str) -> ApiResult<(Deployment, usize)> {
    let deployments: Vec<Deployment> = state.store.list_records(tenant).await?.all()?;
    let found = deployments
        .into_iter()
        .find_map(|d| d.clusters.iter().position(|c| c.cluster_id == id).map(|i| (d, i)))
        .ok_or_else(|| ApiError::not_found(format!("cluster {id:?} is not deployed")))?;
    if found.0.status != DeploymentStatus::Deployed {
        return Err(ApiError::conflict(format!("application {:?} is undeploying", found.0.application_id)));
    }
    Ok(found)
}

async fn scale(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ClusterBounds>> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let req: ScaleRequest = decode(&headers, body)?;
    let _write = state.write_lock.lock().await;
    let (mut deployment, at) = deployed(&state, tenant, &id).await?;
    let defs = state.store.load_definitions(tenant).await?;
    let refused = |problems| ApiError::invalid(format!("cannot scale cluster {id:?}"), problems);
    let capacity = capacity(&deployment, &deployment.clusters[at], &defs).map_err(refused)?;
    let limits = Limits { capacity, max_cluster_size: state.config.limits.max_cluster_size };
    let (min, max) = new_bounds(&deployment.clusters[at], &req, limits).map_err(refused)?;
    (deployment.clusters[at].min, deployment.clusters[at].max) = (min, max);
    if tenant != stratos_model::SUPER_TENANT {
        // The quota counts clusters' max: raising it must fit beside the tenant's others.
        let others: Vec<Deployment> = state
            .store
            .list_records::<Deployment>(tenant)
            .await?
            .all()?
            .into_iter()
            .filter(|d| d.application_id != deployment.application_id)
            .collect();
        let quota = crate::tenants::quota_of(&state.store, tenant).await?.effective(&state.config.limits);
        crate::quota::check_quota(&others, &deployment, quota).map_err(|problems| ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("max {max} for cluster {id:?} would exceed the tenant's quota"),
            problems: problems.0,
        })?;
    }
    state.store.put_record(tenant, &deployment).await?;
    tracing::info!(cluster_id = %id, min, max, tenant, user = %p.user, "cluster bounds set");
    Ok(Json(ClusterBounds { cluster_id: id, min, max }))
}

/// A cluster's rolling restart as the topology shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    pub cluster_id: String,
    /// When the last restart was asked for (milliseconds since the Unix epoch), if ever.
    pub requested_at: Option<u64>,
    pub requested_by: Option<String>,
    /// Whether members older than the request are still in service, or their
    /// replacements not yet created: fewer than the cluster's min since the request (a
    /// cluster with persistent volumes replaces a member only once it is gone).
    pub running: bool,
    /// Members created before the request, still in service: to be replaced.
    pub remaining: Vec<String>,
    /// Members created since, with their status.
    pub replacements: Vec<RestartMember>,
    /// The cluster's error, if the controller keeps one (a replacement failing to start).
    pub error: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartMember {
    pub member_id: String,
    pub status: MemberStatus,
}

async fn status_of(state: &AppState, tenant: i64, id: &str, min: u32) -> ApiResult<RestartStatus> {
    let record = state.store.get_record::<ClusterRestart>(tenant, id).await?;
    let (topology, _unreadable) = state.store.read_topology().await?;
    let cluster = topology.cluster(id).filter(|c| c.tenant_id == tenant);
    let members: Vec<&Member> = cluster.map(|c| c.members.values().collect()).unwrap_or_default();
    let since = record.as_ref().map(|r| r.requested_at);
    let in_service = |m: &&&Member| m.status < MemberStatus::InMaintenance;
    let remaining: Vec<String> = match since {
        Some(since) => {
            members.iter().filter(in_service).filter(|m| m.init_time < since).map(|m| m.member_id.clone()).collect()
        }
        None => Vec::new(),
    };
    let replacements = match since {
        Some(since) => members
            .iter()
            .filter(|m| m.init_time >= since)
            .map(|m| RestartMember { member_id: m.member_id.clone(), status: m.status })
            .collect(),
        None => Vec::new(),
    };
    let live_replacements = replacements.iter().filter(|m| m.status < MemberStatus::InMaintenance).count();
    let awaited = since.is_some() && live_replacements < min as usize;
    Ok(RestartStatus {
        cluster_id: id.to_string(),
        requested_at: since,
        requested_by: record.map(|r| r.requested_by),
        running: !remaining.is_empty() || awaited,
        remaining,
        replacements,
        error: cluster.and_then(|c| c.error.clone()),
    })
}

async fn restart(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RestartStatus>)> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let (deployment, at) = deployed(&state, tenant, &id).await?;
    let min = deployment.clusters[at].min;
    let current = status_of(&state, tenant, &id, min).await?;
    if current.running {
        return Err(ApiError::conflict(format!(
            "a restart of cluster {id:?} is running ({} member(s) left to replace); wait for it to finish",
            current.remaining.len()
        )));
    }
    let record = ClusterRestart {
        cluster_id: id.clone(),
        requested_at: stratos_bus::now_millis(),
        requested_by: p.user.clone(),
    };
    state.store.put_record(tenant, &record).await?;
    tracing::info!(cluster_id = %id, tenant, user = %p.user, "rolling restart asked for");
    Ok((StatusCode::ACCEPTED, Json(status_of(&state, tenant, &id, min).await?)))
}

async fn restart_status(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<RestartStatus>> {
    let (deployment, at) = deployed(&state, tenant, &id).await?;
    Ok(Json(status_of(&state, tenant, &id, deployment.clusters[at].min).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: u32, max: u32) -> ClusterSpec {
        ClusterSpec {
            cluster_id: "app.web".into(),
            alias: "web".into(),
            cartridge_type: "web".into(),
            min,
            max,
            desired: min,
            deployment_policy: "dp".into(),
            autoscaling_policy: "asp".into(),
            host_names: vec![],
            artifact_repository: None,
            depends_on: vec![],
            revision: None,
        }
    }

    const ROOMY: Limits = Limits { capacity: 10, max_cluster_size: 100 };

    fn fields(r: Result<(u32, u32), Problems>) -> Vec<(String, String)> {
        r.expect_err("refused").0.into_iter().map(|p| (p.path, p.message)).collect()
    }

    #[test]
    fn a_field_left_out_keeps_its_value() {
        assert_eq!(new_bounds(&spec(1, 3), &ScaleRequest { min: Some(2), max: None }, ROOMY), Ok((2, 3)));
        assert_eq!(new_bounds(&spec(1, 3), &ScaleRequest { min: None, max: Some(8) }, ROOMY), Ok((1, 8)));
        // cartridgeMax (3 here) is not a limit: the partitions are.
        assert_eq!(new_bounds(&spec(1, 3), &ScaleRequest { min: Some(10), max: Some(10) }, ROOMY), Ok((10, 10)));
    }

    #[test]
    fn bad_bounds_name_the_field_and_why() {
        let f = fields(new_bounds(&spec(1, 3), &ScaleRequest::default(), ROOMY));
        assert_eq!(f[0].0, "min");
        let f = fields(new_bounds(&spec(1, 3), &ScaleRequest { min: Some(4), max: None }, ROOMY));
        assert_eq!(f, [("min".to_string(), "min 4 is above max 3".to_string())]);
        let f = fields(new_bounds(&spec(2, 3), &ScaleRequest { min: None, max: Some(1) }, ROOMY));
        assert_eq!(f[0], ("max".to_string(), "min 2 is above max 1".to_string()));
        let f = fields(new_bounds(&spec(1, 3), &ScaleRequest { min: Some(0), max: None }, ROOMY));
        assert_eq!(f[0], ("min".to_string(), "must be at least 1".to_string()));
        let f = fields(new_bounds(&spec(1, 3), &ScaleRequest { min: None, max: Some(11) }, ROOMY));
        assert_eq!(f[0].0, "max");
        assert!(f[0].1.contains("10 member(s) at most"), "{f:?}");
        let tight = Limits { capacity: 1000, max_cluster_size: 5 };
        let f = fields(new_bounds(&spec(1, 3), &ScaleRequest { min: None, max: Some(6) }, tight));
        assert!(f[0].0 == "max" && f[0].1.contains("--max-cluster-size"), "{f:?}");
    }
}
