//! The Stratos manager: the REST API (`/api/...`) and its OpenAPI document.
//!
//! Every request passes, outermost first: the request log, the browser guard (`Host`,
//! `Origin`, body media type: [`guard`]), authentication ([`auth::authenticate`]: a
//! bearer token on every route but [`auth::PUBLIC_ROUTES`]), then the handler, which
//! authorizes by the caller's role and scopes every record by its tenant.

mod app_config;
pub mod auth;
mod backup;
mod body;
pub mod bootstrap;
mod claims;
mod cluster_ops;
mod definitions;
pub mod deploy_checks;
mod deployments;
mod error;
pub mod files;
pub mod guard;
pub mod member_exec;
pub mod metrics;
mod mock_iaas;
mod openapi;
pub mod quota;
pub mod rollouts;
mod state;
mod tasks;
mod tenants;
pub mod tls;
mod volumes;
pub mod workloads;

use std::net::SocketAddr;
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
pub use state::{ApiConfig, AppState, TenantId};
pub use tenants::TenantQuota;

/// The whole API. `body_limit` bounds every request body, in bytes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let openapi = Arc::new(openapi::document());
    Router::new()
        .merge(definitions::routes())
        .merge(tenants::routes())
        .merge(deployments::routes())
        .merge(cluster_ops::routes())
        .merge(member_exec::routes())
        .merge(app_config::routes())
        .merge(rollouts::routes())
        .merge(volumes::routes())
        .merge(tasks::routes())
        .merge(auth::routes())
        .merge(mock_iaas::routes())
        .merge(backup::routes())
        .merge(metrics::routes())
        .route("/api/openapi.json", get(move || async move { Json((*openapi).clone()) }))
        .route("/api/health", get(health))
        .fallback(|| async { ApiError::not_found("no such API route; see /api/openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), guard::browser_guard))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::count_requests))
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
    let (user, tenant) = match response.extensions().get::<auth::Caller>() {
        Some(c) => (c.user.as_str(), Some(c.tenant_id)),
        None => ("-", None),
    };
    match request_log_level(&method, status) {
        tracing::Level::ERROR => tracing::error!(%method, %path, status, micros, user, tenant, "request"),
        tracing::Level::INFO => tracing::info!(%method, %path, status, micros, user, tenant, "request"),
        _ => tracing::debug!(%method, %path, status, micros, user, tenant, "request"),
    }
    response
}

/// How loud a request's log line is: the server's failures at error, refusals (4xx) and
/// changes that succeeded (any method but GET, HEAD, OPTIONS) at info, and reads that
/// succeeded at debug: a CLI polling a deploy's progress, or a monitor, is not news.
fn request_log_level(method: &axum::http::Method, status: u16) -> tracing::Level {
    use axum::http::Method;
    if status >= 500 {
        tracing::Level::ERROR
    } else if status >= 400 || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        tracing::Level::INFO
    } else {
        tracing::Level::DEBUG
    }
}

/// Serves the API in plain HTTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    body_limit: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, state, body_limit, shutdown).await
}

/// Serves the API on `listener`, in TLS when `tls` is given, until `shutdown` completes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    body_limit: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    if let Err(e) = tenants::announce(&state).await {
        tracing::warn!(error = ?e, "cannot read the tenants to announce them");
    }
    // The peer address counts failed logins per address.
    let app = router(state, body_limit).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use tracing::Level;

    #[test]
    fn reads_are_debug_changes_and_refusals_info_failures_error() {
        for (method, status, level) in [
            (Method::GET, 200, Level::DEBUG),
            (Method::HEAD, 304, Level::DEBUG),
            (Method::GET, 404, Level::INFO),
            (Method::GET, 401, Level::INFO),
            (Method::POST, 201, Level::INFO),
            (Method::DELETE, 204, Level::INFO),
            (Method::PUT, 409, Level::INFO),
            (Method::GET, 503, Level::ERROR),
            (Method::POST, 500, Level::ERROR),
        ] {
            assert_eq!(super::request_log_level(&method, status), level, "{method} {status}");
        }
    }
}
