//! Tenants: `/api/tenants`, and their quotas. Platform admins create tenants and set
//! quotas; a tenant's users see their own tenant only (any other is "does not exist").
//!
//! A platform admin may deactivate a tenant (`POST /api/tenants/{domain}/deactivate`,
//! as Apache Stratos 4.1's `deactivate`): its users can no longer log in and its
//! tokens are refused (403 saying so) until it is activated again. Its applications
//! keep running and serving: deactivation shuts the tenant's people out of the
//! platform, it does not take its customers' traffic down (undeploying stays an
//! explicit act, by the tenant before or by a platform admin).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stratos_bus::events::{CompleteTenantEvent, TenantCreatedEvent, TenantUpdatedEvent};
use stratos_model::{Problems, Tenant, SUPER_TENANT};
use stratos_store::Store;

use crate::auth::Principal;
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::quota::Quota;
use crate::state::AppState;

/// A tenant's quota as stored (tenant [`SUPER_TENANT`], keyed by the tenant id in
/// decimal; the body is the [`Quota`] alone).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantQuota {
    #[serde(skip)]
    pub tenant_id: i64,
    pub quota: Quota,
}

impl stratos_store::Record for TenantQuota {
    const COLLECTION: &'static str = "tenant-quota";
    fn id(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(self.tenant_id.to_string())
    }
    fn keyed(&mut self, id: &str) {
        // Written by `set_quota` under the tenant's id, so it parses.
        self.tenant_id = id.parse().unwrap_or_default();
    }
}

/// A tenant's quota as set (absent fields take the platform's defaults) and in force.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaView {
    pub set: Quota,
    pub max_members: u32,
    pub max_clusters: u32,
}

/// The quota a platform admin set for a tenant (none: the platform's defaults; an
/// unreadable one is the error, naming its document).
pub async fn quota_of(store: &Store, tenant_id: i64) -> ApiResult<Quota> {
    let stored = store.get_record::<TenantQuota>(SUPER_TENANT, &tenant_id.to_string()).await?;
    Ok(stored.map(|q| q.quota).unwrap_or_default())
}

/// What a client sends to create a tenant; the platform assigns the id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewTenant {
    pub tenant_domain: String,
    #[serde(default)]
    pub email: Option<String>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/tenants", get(list).post(create))
        .route("/api/tenants/{domain}", get(show))
        .route("/api/tenants/{domain}/quota", get(show_quota).put(set_quota))
        .route("/api/tenants/{domain}/activate", post(activate))
        .route("/api/tenants/{domain}/deactivate", post(deactivate))
}

async fn activate(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(domain): Path<String>,
) -> ApiResult<Json<Tenant>> {
    set_active(&state, &p, &domain, true).await.map(Json)
}

async fn deactivate(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(domain): Path<String>,
) -> ApiResult<Json<Tenant>> {
    set_active(&state, &p, &domain, false).await.map(Json)
}

/// Activates or deactivates a tenant (platform admins); the tenant as it now is.
async fn set_active(state: &AppState, p: &Principal, domain: &str, active: bool) -> ApiResult<Tenant> {
    let _write = state.write_lock.lock().await;
    let mut tenant = visible(state, p, domain).await?;
    p.require_platform_admin(if active { "activate tenants" } else { "deactivate tenants" })?;
    if tenant.active != active {
        tenant.active = active;
        state.store.put_tenant(&tenant).await?;
        tracing::info!(tenant = tenant.tenant_id, domain = %tenant.tenant_domain, active, by = %p.user, "tenant activation changed");
        state.publish(&TenantUpdatedEvent { tenant: tenant.clone() }).await;
        let tenants = state.store.tenants().await?;
        state.publish(&CompleteTenantEvent { tenants }).await;
    }
    Ok(tenant)
}

/// Why a user of `tenant_id` may not use the API now, if it may not: its tenant is
/// deactivated (the super tenant never is).
pub async fn refusal_for(store: &Store, tenant_id: i64) -> ApiResult<Option<String>> {
    if tenant_id == SUPER_TENANT {
        return Ok(None);
    }
    let tenant = store.tenants().await?.into_iter().find(|t| t.tenant_id == tenant_id);
    Ok(match tenant {
        Some(t) if !t.active => Some(format!(
            "tenant {:?} is deactivated: its users cannot use the platform until a platform admin activates it",
            t.tenant_domain
        )),
        Some(_) => None,
        None => Some("the user's tenant no longer exists".into()),
    })
}

/// Every tenant for a platform admin; the caller's own otherwise.
async fn list(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Vec<Tenant>>> {
    let tenants = state.store.tenants().await?;
    Ok(Json(tenants.into_iter().filter(|t| p.is_platform_admin() || t.tenant_id == p.tenant_id).collect()))
}

/// The tenant named, if the caller may see it.
async fn visible(state: &AppState, p: &Principal, domain: &str) -> ApiResult<Tenant> {
    state
        .store
        .tenants()
        .await?
        .into_iter()
        .find(|t| t.tenant_domain == domain && (p.is_platform_admin() || t.tenant_id == p.tenant_id))
        .ok_or_else(|| ApiError::not_found(format!("tenant {domain:?} does not exist")))
}

async fn show(State(state): State<Arc<AppState>>, p: Principal, Path(domain): Path<String>) -> ApiResult<Json<Tenant>> {
    visible(&state, &p, &domain).await.map(Json)
}

async fn show_quota(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(domain): Path<String>,
) -> ApiResult<Json<QuotaView>> {
    let tenant = visible(&state, &p, &domain).await?;
    let set = quota_of(&state.store, tenant.tenant_id).await?;
    let (max_members, max_clusters) = set.effective(&state.config.limits);
    Ok(Json(QuotaView { set, max_members, max_clusters }))
}

/// Sets a tenant's quota (platform admins); deployments already made stay.
async fn set_quota(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<QuotaView>> {
    let tenant = visible(&state, &p, &domain).await?;
    p.require_platform_admin("set tenant quotas")?;
    let set: Quota = decode(&headers, body)?;
    state.store.put_record(SUPER_TENANT, &TenantQuota { tenant_id: tenant.tenant_id, quota: set }).await?;
    tracing::info!(tenant = tenant.tenant_id, quota = ?set, by = %p.user, "tenant quota set");
    let (max_members, max_clusters) = set.effective(&state.config.limits);
    Ok(Json(QuotaView { set, max_members, max_clusters }))
}

async fn create(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    p.require_platform_admin("create tenants")?;
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
