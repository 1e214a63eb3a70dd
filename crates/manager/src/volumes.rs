//! `GET /api/volumes[?application=APP]`: the caller's tenant's persistent volumes
//! (cartridges' `persistence`), with the member of each one's slot. Every role may list.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, TenantId};
use crate::workloads::VolumeView;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/volumes", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeQuery {
    /// Only this application's volumes.
    pub application: Option<String>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Query(query): Query<VolumeQuery>,
) -> ApiResult<Json<Vec<VolumeView>>> {
    // Without drivers (the API alone) there are no volumes.
    let Some(workloads) = state.workloads.clone() else { return Ok(Json(Vec::new())) };
    let volumes = workloads
        .list_volumes()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot list volumes: {e}")))?;
    let (topology, _unreadable) = state.store.read_topology().await?;
    // (cluster, slot) → the member holding it.
    let holders: HashMap<(String, String), String> = topology
        .services
        .values()
        .flat_map(|s| s.clusters.values())
        .filter(|c| c.tenant_id == tenant)
        .flat_map(|c| c.members.values())
        .filter_map(|m| {
            let slot = m.properties.iter().find(|p| p.name == "slot")?;
            Some(((m.cluster_id.clone(), slot.value.clone()), m.member_id.clone()))
        })
        .collect();
    let mut out: Vec<VolumeView> = volumes
        .into_iter()
        .filter(|v| v.tenant_id == tenant)
        .filter(|v| query.application.as_ref().is_none_or(|a| *a == v.application_id))
        .map(|mut v| {
            v.member_id = holders.get(&(v.cluster_id.clone(), v.slot.to_string())).cloned();
            v
        })
        .collect();
    out.sort_by(|a, b| (&a.cluster_id, a.slot, &a.volume_id).cmp(&(&b.cluster_id, b.slot, &b.volume_id)));
    Ok(Json(out))
}
