//! `/api/mockIaas`: the patterns of the mock IaaS's health statistics (Apache Stratos
//! 4.1's `mock-iaas.xml`), read and replaced by platform admins. The mock driver reads
//! the stored record every second, so a change reaches running mock members at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use stratos_model::{MockIaasConfig, Problems, SUPER_TENANT};
use stratos_store::MOCK_IAAS_ID;

use crate::auth::Principal;
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/mockIaas", get(show).put(replace))
}

/// The patterns in force (none set: no patterns).
async fn show(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<MockIaasConfig>> {
    p.require_platform_admin("read the mock IaaS's patterns")?;
    let config = state.store.get_record::<MockIaasConfig>(SUPER_TENANT, MOCK_IAAS_ID).await?;
    Ok(Json(config.unwrap_or_default()))
}

/// Replaces every pattern; those that changed start their time now.
async fn replace(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<MockIaasConfig>> {
    p.require_platform_admin("set the mock IaaS's patterns")?;
    let config: MockIaasConfig = decode(&headers, body)?;
    let mut problems = Problems::default();
    config.validate(&mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid("invalid mock IaaS patterns", problems));
    }
    let _write = state.write_lock.lock().await;
    state.store.put_record(SUPER_TENANT, &config).await?;
    tracing::info!(cartridges = config.cartridges.len(), by = %p.user, "mock IaaS patterns set");
    Ok(Json(config))
}
