//! Tenants: `/api/tenants`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use stratos_bus::events::{CompleteTenantEvent, TenantCreatedEvent};
use stratos_model::{Problems, Tenant};

use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a client sends to create a tenant; the platform assigns the id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewTenant {
    pub tenant_domain: String,
    #[serde(default)]
    pub email: Option<String>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/tenants", get(list).post(create)).route("/api/tenants/{domain}", get(show))
}

async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Tenant>>> {
    Ok(Json(state.store.tenants().await?))
}

async fn show(State(state): State<Arc<AppState>>, Path(domain): Path<String>) -> ApiResult<Json<Tenant>> {
    let tenants = state.store.tenants().await?;
    tenants
        .into_iter()
        .find(|t| t.tenant_domain == domain)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("tenant {domain:?} does not exist")))
}

async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let new: NewTenant = decode(&headers, body)?;
    let _write = state.write_lock.lock().await;
    let tenants = state.store.tenants().await?;
    let tenant = Tenant {
        tenant_id: tenants.iter().map(|t| t.tenant_id).max().unwrap_or(0).max(0) + 1,
        tenant_domain: new.tenant_domain,
        active: true,
        email: new.email,
        created_at: stratos_bus::now_millis(),
    };
    let mut problems = Problems::default();
    tenant.validate(&mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid("invalid tenant", problems));
    }
    if tenants.iter().any(|t| t.tenant_domain == tenant.tenant_domain) {
        return Err(ApiError::conflict(format!("tenant {:?} already exists", tenant.tenant_domain)));
    }
    state.store.put_tenant(&tenant).await?;
    tracing::info!(tenant_id = tenant.tenant_id, domain = %tenant.tenant_domain, "tenant created");
    state.publish(&TenantCreatedEvent { tenant: tenant.clone() }).await;
    let mut all = tenants;
    all.push(tenant.clone());
    state.publish(&CompleteTenantEvent { tenants: all }).await;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// Publishes the retained snapshot of every tenant, so that load balancers started
/// before or after the manager agree with the store.
pub async fn announce(state: &AppState) -> ApiResult<()> {
    let tenants = state.store.tenants().await?;
    tracing::info!(tenants = tenants.len(), "announcing tenants");
    state.publish(&CompleteTenantEvent { tenants }).await;
    Ok(())
}
