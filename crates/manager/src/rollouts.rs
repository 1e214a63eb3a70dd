//! Revisions and rollouts: `POST /api/applications/{id}/update` moves a deployed
//! application's changed clusters to new revisions, `GET .../rollout` and
//! `.../rollout/history` show how that goes, `POST .../rollout/undo` goes back.
//!
//! The manager writes the requests (`Revision`, `Rollout`, and the deployment's
//! `ClusterSpec::revision`); the controller replaces the members
//! (`cloud::plan::restart`, old = another revision) and writes each rollout's outcome
//! (`RolloutOutcome`): complete, or failed and sent back to where it came from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stratos_model::topology::MemberStatus;
use stratos_model::{
    effective_revision, Definitions, Deployment, DeploymentStatus, Problems, Revision, Rollout, RolloutCluster,
    RolloutEnd, RolloutOutcome, REVISION_PROPERTY,
};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, TenantId};

/// A rollout's deadline unless the request gives one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/applications/{id}/update", post(update))
        .route("/api/applications/{id}/rollout", get(status))
        .route("/api/applications/{id}/rollout/history", get(history))
        .route("/api/applications/{id}/rollout/undo", post(undo))
}

/// How a rollout goes; every field may be left out.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRequest {
    /// New members started beyond the desired size (default 1).
    #[serde(default)]
    pub max_surge: Option<u32>,
    /// Members in service the cluster may lack against its desired size (default 0).
    #[serde(default)]
    pub max_unavailable: Option<u32>,
    /// The rollout fails unless done within it, like `90s` or `5m` (default 5m).
    #[serde(default)]
    pub deadline: Option<String>,
}

/// The pace and deadline a request asks for, or each field at fault. Pure.
pub fn pace(req: &UpdateRequest) -> Result<(u32, u32, u64), Problems> {
    let mut p = Problems::default();
    let surge = req.max_surge.unwrap_or(1);
    let unavailable = req.max_unavailable.unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        p.push("maxSurge", "maxSurge and maxUnavailable cannot both be 0: no member could ever be replaced");
    }
    let deadline = match req.deadline.as_deref().map(stratos_model::duration::positive) {
        None => DEFAULT_DEADLINE,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.push("deadline", e);
            DEFAULT_DEADLINE
        }
    };
    p.into_result().map(|()| (surge, unavailable, deadline.as_millis() as u64))
}

/// One cluster of a rollout, with its members as the topology has them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRolloutView {
    pub cluster_id: String,
    /// The revision it leaves (none: the live definitions of a deployment made before revisions).
    pub from: Option<u32>,
    pub to: Option<u32>,
    /// Members of the new revision in service.
    pub updated: u32,
    /// Members of the new revision on their way.
    pub starting: u32,
    /// Members of another revision still in service or on their way.
    pub old: u32,
}

/// A rollout as it stands.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub application_id: String,
    pub number: u32,
    /// `progressing`, `complete`, `failed` (its clusters went back to where they came
    /// from), `rolled-back` (undone), or `abandoned` (its deployment is gone).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    pub requested_by: String,
    pub max_surge: u32,
    pub max_unavailable: u32,
    /// Like `5m`.
    pub deadline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_of: Option<u32>,
    pub clusters: Vec<ClusterRolloutView>,
}

/// What `update` (or `undo`) did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOutcome {
    /// Whether a rollout started (no cluster's definitions changed: none).
    pub started: bool,
    pub message: String,
    /// The rollout started, else the latest one.
    pub rollout: Option<RolloutView>,
}

/// A rollout's status word, from its outcome and the application's later rollouts. Pure.
pub fn status_word(r: &Rollout, outcome: Option<&RolloutOutcome>, all: &[Rollout], deployed_at: Option<u64>) -> String {
    if all.iter().any(|later| later.undo_of == Some(r.number)) {
        return "rolled-back".into();
    }
    match outcome.map(|o| o.end) {
        Some(RolloutEnd::Complete) => "complete".into(),
        Some(RolloutEnd::Failed) => "failed".into(),
        None if deployed_at == Some(r.deployed_at) => "progressing".into(),
        None => "abandoned".into(),
    }
}

/// The application's rollouts, oldest first, with their outcomes.
async fn rollouts_of(state: &AppState, tenant: i64, app: &str) -> ApiResult<Vec<(Rollout, Option<RolloutOutcome>)>> {
    let rollouts: Vec<Rollout> = state
        .store
        .list_records::<Rollout>(tenant)
        .await?
        .all()?
        .into_iter()
        .filter(|r| r.application_id == app)
        .collect();
    let mut outcomes: HashMap<u32, RolloutOutcome> = state
        .store
        .list_records::<RolloutOutcome>(tenant)
        .await?
        .all()?
        .into_iter()
        .filter(|o| o.application_id == app)
        .map(|o| (o.number, o))
        .collect();
    let mut out: Vec<_> = rollouts.into_iter().map(|r| (outcomes.remove(&r.number), r)).map(|(o, r)| (r, o)).collect();
    out.sort_by_key(|(r, _)| r.number);
    Ok(out)
}

async fn view(
    state: &AppState,
    tenant: i64,
    all: &[(Rollout, Option<RolloutOutcome>)],
    at: usize,
    deployed_at: Option<u64>,
) -> ApiResult<RolloutView> {
    let (r, outcome) = &all[at];
    let rollouts: Vec<Rollout> = all.iter().map(|(r, _)| r.clone()).collect();
    let status = status_word(r, outcome.as_ref(), &rollouts, deployed_at);
    let (topology, _unreadable) = state.store.read_topology().await?;
    let clusters = r
        .clusters
        .iter()
        .map(|c| {
            let members: Vec<_> = topology
                .cluster(&c.cluster_id)
                .filter(|cl| cl.tenant_id == tenant)
                .map(|cl| cl.members.values().filter(|m| m.status < MemberStatus::InMaintenance).collect())
                .unwrap_or_default();
            let of = |m: &&stratos_model::topology::Member| {
                stratos_model::property(&m.properties, REVISION_PROPERTY).and_then(|v| v.parse().ok()) == c.to
            };
            let count =
                |f: &dyn Fn(&&stratos_model::topology::Member) -> bool| members.iter().filter(|m| f(m)).count() as u32;
            ClusterRolloutView {
                cluster_id: c.cluster_id.clone(),
                from: c.from,
                to: c.to,
                updated: count(&|m| of(m) && m.status == MemberStatus::Active),
                starting: count(&|m| of(m) && m.status != MemberStatus::Active),
                old: count(&|m| !of(m)),
            }
        })
        .collect();
    Ok(RolloutView {
        application_id: r.application_id.clone(),
        number: r.number,
        status,
        reason: outcome.as_ref().and_then(|o| o.reason.clone()),
        started_at: r.started_at,
        finished_at: outcome.as_ref().map(|o| o.finished_at),
        requested_by: r.requested_by.clone(),
        max_surge: r.max_surge,
        max_unavailable: r.max_unavailable,
        deadline: stratos_model::duration::format(Duration::from_millis(r.deadline_ms)),
        undo_of: r.undo_of,
        clusters,
    })
}

/// The deployed application `id` of `tenant` (another tenant's is absent).
async fn deployed(state: &AppState, tenant: i64, id: &str) -> ApiResult<Deployment> {
    let deployment = state
        .store
        .get_record::<Deployment>(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("application {id:?} is not deployed")))?;
    if deployment.status != DeploymentStatus::Deployed {
        return Err(ApiError::conflict(format!("application {id:?} is undeploying")));
    }
    Ok(deployment)
}

/// The latest rollout of this deployment, if it has one.
fn latest_of<'a>(
    all: &'a [(Rollout, Option<RolloutOutcome>)],
    deployment: &Deployment,
) -> Option<&'a (Rollout, Option<RolloutOutcome>)> {
    all.last().filter(|(r, _)| r.deployed_at == deployment.deployed_at)
}

/// The next free revision number of each cluster of the tenant.
async fn next_numbers(state: &AppState, tenant: i64) -> ApiResult<HashMap<String, u32>> {
    let mut next: HashMap<String, u32> = HashMap::new();
    for r in state.store.list_records::<Revision>(tenant).await?.all()? {
        let n = next.entry(r.cluster_id.clone()).or_insert(1);
        *n = (*n).max(r.number + 1);
    }
    Ok(next)
}

/// Pins revisions for a deployment about to be stored (`deploy`): each cluster's
/// cartridge as it is now, numbered after any revision the cluster had in an earlier
/// deployment.
pub async fn pin_at_deploy(
    state: &AppState,
    tenant: i64,
    deployment: &mut Deployment,
    defs: &Definitions,
) -> ApiResult<()> {
    let next = next_numbers(state, tenant).await?;
    for spec in &mut deployment.clusters {
        let Some(cartridge) = defs.cartridges.get(&spec.cartridge_type) else { continue };
        let number = next.get(&spec.cluster_id).copied().unwrap_or(1);
        let revision = Revision {
            cluster_id: spec.cluster_id.clone(),
            application_id: deployment.application_id.clone(),
            number,
            created_at: deployment.deployed_at,
            cartridge: cartridge.clone(),
            artifact_repository: spec.artifact_repository.clone(),
        };
        state.store.put_record(tenant, &revision).await?;
        spec.revision = Some(number);
    }
    Ok(())
}

async fn update(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<UpdateOutcome>)> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    // Another tenant's application is absent, whatever the body.
    let mut deployment = deployed(&state, tenant, &id).await?;
    let req: UpdateRequest = match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => UpdateRequest::default(),
        _ => crate::body::decode(&headers, body)?,
    };
    let refused = |problems| ApiError::invalid(format!("cannot update application {id:?}"), problems);
    let (max_surge, max_unavailable, deadline_ms) = pace(&req).map_err(refused)?;
    let defs = state.store.load_definitions(tenant).await?;
    let app = defs
        .applications
        .get(&id)
        .ok_or_else(|| ApiError::conflict(format!("application {id:?} is deployed but its definition is gone")))?;
    let fresh = crate::deployments::plan(app, &deployment.application_policy_id, tenant, &defs).map_err(refused)?;
    let all = rollouts_of(&state, tenant, &id).await?;
    let latest = latest_of(&all, &deployment);
    if let Some((r, None)) = latest {
        return Err(ApiError::conflict(format!(
            "rollout {} of application {id:?} is progressing; wait for it to end, or undo it (stratos application rollout undo {id})",
            r.number
        )));
    }
    let mut next = next_numbers(&state, tenant).await?;
    let mut moved = Vec::new();
    let mut revisions = Vec::new();
    let now = stratos_bus::now_millis();
    for spec in &mut deployment.clusters {
        let Some(new_spec) = fresh.clusters.iter().find(|c| c.cluster_id == spec.cluster_id) else { continue };
        let Some(cartridge) = defs.cartridges.get(&spec.cartridge_type) else { continue };
        let current = effective_revision(spec, deployment.deployed_at, latest.map(|(r, o)| (r, o.as_ref())));
        let pinned = match current {
            Some(n) => state.store.get_record::<Revision>(tenant, &Revision::key(&spec.cluster_id, n)).await?,
            None => None,
        };
        if pinned.is_some_and(|r| r.same_as(cartridge, new_spec.artifact_repository.as_deref())) {
            continue;
        }
        let number = next.get(&spec.cluster_id).copied().unwrap_or(1);
        next.insert(spec.cluster_id.clone(), number + 1);
        revisions.push(Revision {
            cluster_id: spec.cluster_id.clone(),
            application_id: id.clone(),
            number,
            created_at: now,
            cartridge: cartridge.clone(),
            artifact_repository: new_spec.artifact_repository.clone(),
        });
        moved.push(RolloutCluster { cluster_id: spec.cluster_id.clone(), from: current, to: Some(number) });
        spec.revision = Some(number);
        spec.artifact_repository = new_spec.artifact_repository.clone();
    }
    if moved.is_empty() {
        let rollout = match all.len() {
            0 => None,
            n => Some(view(&state, tenant, &all, n - 1, Some(deployment.deployed_at)).await?),
        };
        let message = format!("no cluster of application {id:?} changed: nothing to roll out");
        return Ok((StatusCode::OK, Json(UpdateOutcome { started: false, message, rollout })));
    }
    for r in &revisions {
        state.store.put_record(tenant, r).await?;
    }
    let rollout = Rollout {
        application_id: id.clone(),
        number: all.last().map_or(1, |(r, _)| r.number + 1),
        deployed_at: deployment.deployed_at,
        clusters: moved,
        started_at: now,
        requested_by: p.user.clone(),
        max_surge,
        max_unavailable,
        deadline_ms,
        undo_of: None,
    };
    start(&state, tenant, &deployment, rollout, all, &p.user).await
}

/// Records a rollout, then the deployment naming its revisions (the controller reads
/// the deployment first), and answers with it.
async fn start(
    state: &AppState,
    tenant: i64,
    deployment: &Deployment,
    rollout: Rollout,
    mut all: Vec<(Rollout, Option<RolloutOutcome>)>,
    user: &str,
) -> ApiResult<(StatusCode, Json<UpdateOutcome>)> {
    state.store.put_record(tenant, &rollout).await?;
    state.store.put_record(tenant, deployment).await?;
    let moves: Vec<String> =
        rollout.clusters.iter().map(|c| format!("{} {:?} -> {:?}", c.cluster_id, c.from, c.to)).collect();
    tracing::info!(application_id = %rollout.application_id, rollout = rollout.number, tenant, user, clusters = ?moves, "rollout started");
    let message = format!(
        "rollout {} of application {:?} started: {}",
        rollout.number,
        rollout.application_id,
        rollout
            .clusters
            .iter()
            .map(|c| format!(
                "{} to revision {}",
                c.cluster_id,
                c.to.map_or("of the live definitions".into(), |n| n.to_string())
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    all.push((rollout, None));
    let view = view(state, tenant, &all, all.len() - 1, Some(deployment.deployed_at)).await?;
    Ok((StatusCode::ACCEPTED, Json(UpdateOutcome { started: true, message, rollout: Some(view) })))
}

async fn undo(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<UpdateOutcome>)> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let mut deployment = deployed(&state, tenant, &id).await?;
    let all = rollouts_of(&state, tenant, &id).await?;
    let Some((last, outcome)) = latest_of(&all, &deployment) else {
        return Err(ApiError::conflict(format!("application {id:?} has no rollout to undo since it was deployed")));
    };
    if outcome.as_ref().is_some_and(|o| o.end == RolloutEnd::Failed) {
        return Err(ApiError::conflict(format!(
            "rollout {} of application {id:?} failed: its clusters already went back to the revisions they came from",
            last.number
        )));
    }
    let mut clusters = Vec::new();
    for c in &last.clusters {
        let Some(spec) = deployment.clusters.iter_mut().find(|s| s.cluster_id == c.cluster_id) else { continue };
        if let Some(n) = c.from {
            let pinned = state.store.get_record::<Revision>(tenant, &Revision::key(&c.cluster_id, n)).await?;
            spec.artifact_repository = pinned.and_then(|r| r.artifact_repository);
        }
        clusters.push(RolloutCluster { cluster_id: c.cluster_id.clone(), from: spec.revision, to: c.from });
        spec.revision = c.from;
    }
    let rollout = Rollout {
        application_id: id.clone(),
        number: last.number + 1,
        deployed_at: deployment.deployed_at,
        clusters,
        started_at: stratos_bus::now_millis(),
        requested_by: p.user.clone(),
        max_surge: last.max_surge,
        max_unavailable: last.max_unavailable,
        deadline_ms: last.deadline_ms,
        undo_of: Some(last.number),
    };
    let all = all.clone();
    start(&state, tenant, &deployment, rollout, all, &p.user).await
}

async fn status(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<Option<RolloutView>>> {
    let deployment = state.store.get_record::<Deployment>(tenant, &id).await?;
    let all = rollouts_of(&state, tenant, &id).await?;
    match (all.len(), &deployment) {
        (0, None) => Err(ApiError::not_found(format!("application {id:?} is not deployed and has had no rollout"))),
        (0, Some(_)) => Ok(Json(None)),
        (n, _) => Ok(Json(Some(view(&state, tenant, &all, n - 1, deployment.map(|d| d.deployed_at)).await?))),
    }
}

async fn history(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<RolloutView>>> {
    let deployment = state.store.get_record::<Deployment>(tenant, &id).await?;
    let all = rollouts_of(&state, tenant, &id).await?;
    if all.is_empty() && deployment.is_none() {
        return Err(ApiError::not_found(format!("application {id:?} is not deployed and has had no rollout")));
    }
    let mut out = Vec::new();
    for at in (0..all.len()).rev() {
        out.push(view(&state, tenant, &all, at, deployment.as_ref().map(|d| d.deployed_at)).await?);
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(number: u32, deployed_at: u64, undo_of: Option<u32>) -> Rollout {
        Rollout {
            application_id: "app".into(),
            number,
            deployed_at,
            clusters: vec![],
            started_at: 0,
            requested_by: "admin".into(),
            max_surge: 1,
            max_unavailable: 0,
            deadline_ms: 1,
            undo_of,
        }
    }

    #[test]
    fn a_rollouts_status_comes_from_its_outcome_and_the_ones_after_it() {
        let (first, undo) = (rollout(1, 7, None), rollout(2, 7, Some(1)));
        let end = |end| RolloutOutcome { application_id: "app".into(), number: 1, end, reason: None, finished_at: 1 };
        let only = [first.clone()];
        assert_eq!(status_word(&first, None, &only, Some(7)), "progressing");
        assert_eq!(status_word(&first, None, &only, Some(8)), "abandoned", "another deployment's");
        assert_eq!(status_word(&first, Some(&end(RolloutEnd::Complete)), &only, Some(7)), "complete");
        assert_eq!(status_word(&first, Some(&end(RolloutEnd::Failed)), &only, Some(7)), "failed");
        let both = [first.clone(), undo.clone()];
        assert_eq!(status_word(&first, Some(&end(RolloutEnd::Complete)), &both, Some(7)), "rolled-back");
        assert_eq!(status_word(&undo, None, &both, Some(7)), "progressing");
    }

    #[test]
    fn pace_defaults_to_one_at_a_time_and_refuses_what_cannot_progress() {
        assert_eq!(pace(&UpdateRequest::default()).unwrap(), (1, 0, 300_000));
        let req = UpdateRequest { max_surge: Some(0), max_unavailable: Some(2), deadline: Some("90s".into()) };
        assert_eq!(pace(&req).unwrap(), (0, 2, 90_000));
        let req = UpdateRequest { max_surge: Some(0), max_unavailable: Some(0), deadline: Some("soon".into()) };
        let problems = pace(&req).unwrap_err();
        let fields: Vec<&str> = problems.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(fields, ["maxSurge", "deadline"]);
    }
}
