//! Identity on the API: users with roles, argon2 password hashes, bearer tokens with
//! an expiry and a revocation, failed logins rate-limited.
//!
//! [`authenticate`] is the one place a request's caller is established: every route
//! but [`PUBLIC_ROUTES`] needs a live bearer token, and handlers get the caller as a
//! [`Principal`] (or its [`TenantId`](crate::TenantId)). Tokens come from the
//! `Authorization` header only, never from a cookie, so a browser cannot send one on
//! its own.
//!
//! Users and token records are documents of the super tenant (collections `user`,
//! id = user name, and `api-token`, id = token id): user names are unique platform-wide.

pub mod password;
mod principal;
pub mod rate_limit;
pub mod routes;
pub mod token;

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stratos_model::SUPER_TENANT;
use stratos_store::{Record, Store};

pub use principal::{forbidden, Principal, Role};
pub use routes::routes;
pub use token::{TokenRecord, TokenView};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The routes anyone may call: logging in, the health probe and the API's description.
pub const PUBLIC_ROUTES: &[(&str, &str)] =
    &[("POST", "/api/tokens"), ("GET", "/api/health"), ("GET", "/api/openapi.json")];

/// A user as stored: the password only as its argon2 hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub username: String,
    pub tenant_id: i64,
    pub role: Role,
    pub password_hash: String,
    pub created_at: u64,
}

impl Record for UserRecord {
    const COLLECTION: &'static str = "user";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.username)
    }
}

pub async fn load_user(store: &Store, username: &str) -> ApiResult<Option<UserRecord>> {
    Ok(store.get_record(SUPER_TENANT, username).await?)
}

pub async fn save_user(store: &Store, user: &UserRecord) -> ApiResult<()> {
    Ok(store.put_record(SUPER_TENANT, user).await?)
}

pub async fn delete_user(store: &Store, username: &str) -> ApiResult<bool> {
    Ok(store.delete_record::<UserRecord>(SUPER_TENANT, username).await?)
}

/// Every user; an unreadable user document is the error (it names the document).
pub async fn all_users(store: &Store) -> ApiResult<Vec<UserRecord>> {
    Ok(store.list_records(SUPER_TENANT).await?.all()?)
}

pub async fn load_token(store: &Store, id: &str) -> ApiResult<Option<TokenRecord>> {
    Ok(store.get_record(SUPER_TENANT, id).await?)
}

pub async fn save_token(store: &Store, token: &TokenRecord) -> ApiResult<()> {
    Ok(store.put_record(SUPER_TENANT, token).await?)
}

/// Every token record; an unreadable one is the error (it names the document).
pub async fn all_tokens(store: &Store) -> ApiResult<Vec<TokenRecord>> {
    Ok(store.list_records(SUPER_TENANT).await?.all()?)
}

/// Revokes every live token of `username` but `keep`; returns how many.
pub async fn revoke_tokens_of(store: &Store, username: &str, keep: Option<&str>, now: u64) -> ApiResult<usize> {
    let mut revoked = 0;
    for mut t in all_tokens(store).await? {
        if t.username == username && t.revoked_at.is_none() && Some(t.id.as_str()) != keep {
            t.revoked_at = Some(now);
            save_token(store, &t).await?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// How long a dead token's record is kept (to tell "revoked" or "expired" from
/// "unknown" when it is presented) before it is deleted.
const KEEP_DEAD_TOKENS_MS: u64 = 7 * 24 * 3600 * 1000;

/// Deletes the records of tokens dead (expired or revoked) for over a week.
pub async fn purge_dead_tokens(store: &Store, now: u64) -> ApiResult<usize> {
    let mut purged = 0;
    for t in all_tokens(store).await? {
        let died = t.revoked_at.unwrap_or(t.expires_at).min(t.expires_at);
        if t.unusable(now).is_some() && now.saturating_sub(died) > KEEP_DEAD_TOKENS_MS {
            store.delete_record::<TokenRecord>(SUPER_TENANT, &t.id).await?;
            purged += 1;
        }
    }
    Ok(purged)
}

/// Establishes the caller of every request but the public ones (401 without a live
/// token), and refuses a viewer's writes (403) before any handler runs.
pub async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    if is_public(&method, &path) {
        return next.run(request).await;
    }
    // Prometheus's scrape token opens `/api/metrics` and nothing else.
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if is_read(&method) && crate::metrics::is_token_scrape(&state, &path, authorization) {
        request.extensions_mut().insert(crate::metrics::ScrapeCaller);
        return next.run(request).await;
    }
    let principal = match principal_of(&state, request.headers()).await {
        Ok(p) => p,
        Err(e) => return e,
    };
    if principal.role == Role::Viewer && !is_read(&method) && !is_self_service(&method, &path) {
        let e = forbidden(format!("user {:?} is a viewer and may not change anything", principal.user));
        return e.into_response();
    }
    let caller = Caller { user: principal.user.clone(), tenant_id: principal.tenant_id };
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// Who made a request, on its response: for the request log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub tenant_id: i64,
}

fn is_public(method: &Method, path: &str) -> bool {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    PUBLIC_ROUTES.iter().any(|(m, p)| *m == method && *p == path)
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// What every user may do to themselves: log out, revoke their own tokens, change
/// their password (the handlers check that it is their own).
fn is_self_service(method: &Method, path: &str) -> bool {
    (method == Method::DELETE && path.starts_with("/api/tokens/"))
        || (method == Method::PUT && path.starts_with("/api/users/") && path.ends_with("/password"))
}

async fn principal_of(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Principal, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("no bearer token: send `Authorization: Bearer <token>` (see `stratos login`)"));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
    let (id, secret) = token::split(presented).ok_or_else(|| unauthorized("not a Stratos token"))?;
    let record = load_token(&state.store, id).await.map_err(IntoResponse::into_response)?;
    let Some(record) = record.filter(|r| r.matches(secret)) else {
        return Err(unauthorized("unknown token"));
    };
    if let Some(why) = record.unusable(stratos_bus::now_millis()) {
        return Err(unauthorized(why));
    }
    let user = load_user(&state.store, &record.username).await.map_err(IntoResponse::into_response)?;
    // A removed user's tokens die with it; a changed role applies at once.
    let Some(user) = user.filter(|u| u.tenant_id == record.tenant_id) else {
        return Err(unauthorized("the token's user no longer exists"));
    };
    if let Some(why) =
        crate::tenants::refusal_for(&state.store, user.tenant_id).await.map_err(IntoResponse::into_response)?
    {
        return Err(forbidden(why).into_response());
    }
    Ok(Principal { user: user.username, tenant_id: user.tenant_id, role: user.role, token_id: record.id })
}

/// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn unauthorized(why: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, why).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"stratos\""));
    response
}

pub(crate) fn unauthorized_missing() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "this route needs a bearer token")
}

/// The domain of a tenant id, for messages and views (`None` for the super tenant).
pub async fn tenant_domain(store: &Store, tenant_id: i64) -> ApiResult<Option<String>> {
    if tenant_id == SUPER_TENANT {
        return Ok(None);
    }
    Ok(store.tenants().await?.into_iter().find(|t| t.tenant_id == tenant_id).map(|t| t.tenant_domain))
}
