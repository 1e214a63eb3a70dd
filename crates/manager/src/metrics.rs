//! `GET /api/metrics`: every component's Prometheus metrics in `stratos up` (one
//! process, one registry), for platform admins, or for Prometheus with the scrape
//! token (`stratos up --metrics-token-file`). A tenant's users get 403: the series
//! name every tenant's clusters and applications.
//!
//! Also the API's own series: every request by method, route template and status
//! ([`count_requests`], a middleware inside the router, where the matched route is known).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use stratos_metrics::{ApiMetrics, Scrape, ScrapeToken};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The route, which [`crate::auth::authenticate`] lets through with the scrape token.
pub const ROUTE: &str = "/api/metrics";

/// What the API serves and counts; in [`AppState::metrics`].
#[derive(Clone, Debug)]
pub struct ApiMetricsState {
    pub scrape: Scrape,
    pub api: ApiMetrics,
    /// Prometheus's token, if one is configured.
    pub token: Option<ScrapeToken>,
}

/// Marks a request that presented the scrape token (no user).
#[derive(Clone, Copy, Debug)]
pub struct ScrapeCaller;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(ROUTE, get(metrics))
}

/// Whether the request is a scrape presenting the configured token.
pub fn is_token_scrape(state: &AppState, path: &str, authorization: Option<&str>) -> bool {
    let Some(token) = state.metrics.as_ref().and_then(|m| m.token.as_ref()) else { return false };
    path == ROUTE && token.authorizes(authorization)
}

async fn metrics(State(state): State<Arc<AppState>>, request: Request) -> ApiResult<Response> {
    let by_token = request.extensions().get::<ScrapeCaller>().is_some();
    if !by_token {
        let principal = request.extensions().get::<Principal>().ok_or_else(crate::auth::unauthorized_missing)?;
        principal.require_platform_admin("read the platform's metrics")?;
    }
    let Some(metrics) = &state.metrics else {
        return Err(ApiError::not_found("this platform serves no metrics"));
    };
    Ok((
        [(header::CONTENT_TYPE, stratos_metrics::CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")],
        metrics.scrape.render(),
    )
        .into_response())
}

/// Counts every request by method, route template and status.
pub async fn count_requests(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(metrics) = state.metrics.as_ref().map(|m| m.api.clone()) else { return next.run(request).await };
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.request(method.as_str(), route.as_deref(), response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
