//! The Stratos manager: the REST API (`/api/...`) and its OpenAPI document.
//!
//! Every request passes, outermost first: the request log, the browser guard (`Host`,
//! `Origin`, body media type: [`guard`]), authentication ([`auth::authenticate`]: a
//! bearer token on every route but [`auth::PUBLIC_ROUTES`]), then the handler, which
//! authorizes by the caller's role and scopes every record by its tenant.

pub mod auth;
mod body;
pub mod bootstrap;
mod definitions;
mod deployments;
mod error;
pub mod files;
pub mod guard;
mod openapi;
pub mod quota;
mod state;
mod tenants;
pub mod tls;

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

/// The whole API. `body_limit` bounds every request body, in bytes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let openapi = Arc::new(openapi::document());
    Router::new()
        .merge(definitions::routes())
        .merge(tenants::routes())
        .merge(deployments::routes())
        .merge(auth::routes())
        .route("/api/openapi.json", get(move || async move { Json((*openapi).clone()) }))
        .route("/api/health", get(health))
        .fallback(|| async { ApiError::not_found("no such API route; see /api/openapi.json") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), guard::browser_guard))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.list(stratos_model::SUPER_TENANT, "health-probe").await.is_ok();
    let body = json!({
        "status": if store_ok { "ok" } else { "degraded" },
        "store": state.store.describe(),
        "broker": state.bus.as_ref().map(|b| b.url().to_string()),
    });
    let status = if store_ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
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
    if status >= 500 {
        tracing::error!(%method, %path, status, micros, user, tenant, "request");
    } else {
        tracing::info!(%method, %path, status, micros, user, tenant, "request");
    }
    response
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
