//! The Stratos manager: the REST API (`/api/...`) and its OpenAPI document.

mod body;
mod claims;
mod definitions;
mod deployments;
mod error;
mod openapi;
mod state;
mod tenants;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub use body::DEFAULT_BODY_LIMIT;
pub use error::{ApiError, ErrorBody};
pub use openapi::document as openapi_document;
pub use state::{AppState, TenantId};

/// The whole API. `body_limit` bounds every request body, in bytes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let openapi = Arc::new(openapi::document());
    Router::new()
        .merge(definitions::routes())
        .merge(tenants::routes())
        .merge(deployments::routes())
        .route("/api/openapi.json", get(move || async move { Json((*openapi).clone()) }))
        .route("/api/health", get(health))
        .fallback(|| async { ApiError::not_found("no such API route; see /api/openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// How long a write probe's outcome answers `/api/health`: a flood of health checks
/// (the route needs no credentials) costs one committed write a second, not one each.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The store's last write probe, by store (`describe`): when, and its error.
type Probes = std::collections::HashMap<String, (std::time::Instant, Option<String>)>;

/// Probes the store with a write, at most every [`PROBE_EVERY`].
async fn store_error(state: &AppState) -> Option<String> {
    static PROBES: std::sync::Mutex<Option<Probes>> = std::sync::Mutex::new(None);
    let key = state.store.describe();
    let recent = |probes: &Option<Probes>| {
        probes.as_ref()?.get(&key).filter(|(at, _)| at.elapsed() < PROBE_EVERY).map(|(_, e)| e.clone())
    };
    if let Some(error) = recent(&PROBES.lock().unwrap_or_else(|e| e.into_inner())) {
        return error;
    }
    let error = state.store.probe_write().await.err().map(|e| e.to_string());
    let mut probes = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    probes.get_or_insert_with(Default::default).insert(key, (std::time::Instant::now(), error.clone()));
    error
}

/// 200 when the store takes a write (a read alone passes with an unwritable WAL or a
/// full disk), else 503 with the store's error as the reason.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let store_error = store_error(&state).await;
    if let Some(reason) = &store_error {
        tracing::error!(reason = %reason, store = %state.store.describe(), "health: the store fails");
    }
    let body = json!({
        "status": if store_error.is_none() { "ok" } else { "unavailable" },
        "store": state.store.describe(),
        "storeError": store_error,
        "broker": state.bus.as_ref().map(|b| b.url().to_string()),
    });
    let status =
        if store_error.is_none() { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::error!(%method, %path, status, micros, "request");
    } else {
        tracing::info!(%method, %path, status, micros, "request");
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    body_limit: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Err(e) = tenants::announce(&state).await {
        tracing::warn!(error = ?e, "cannot read the tenants to announce them");
    }
    axum::serve(listener, router(state, body_limit)).with_graceful_shutdown(shutdown).await
}
