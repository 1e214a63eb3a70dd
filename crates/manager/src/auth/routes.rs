//! `/api/tokens` (log in, log out, list and revoke tokens) and `/api/users`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use stratos_model::{Problems, SUPER_TENANT};

use super::{
    all_tokens, all_users, load_token, load_user, password, revoke_tokens_of, save_token, save_user, tenant_domain,
    unauthorized, Principal, Role, TokenRecord, TokenView, UserRecord,
};
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/tokens", get(list_tokens).post(login))
        .route("/api/tokens/current", get(whoami).delete(logout))
        .route("/api/tokens/{id}", delete(revoke))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{name}", get(show_user).delete(remove_user))
        .route("/api/users/{name}/password", put(change_password))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// How long the token lives, in seconds; at most the platform's limit (its default when absent).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// What the token is for, shown when tokens are listed.
    #[serde(default)]
    pub description: Option<String>,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub id: String,
    pub username: String,
    pub tenant_id: i64,
    pub role: Role,
    pub expires_at: u64,
}

/// The caller, as its token says.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    pub username: String,
    pub tenant_id: i64,
    /// Absent for the super tenant (the platform's own).
    pub tenant_domain: Option<String>,
    pub role: Role,
    pub token_id: String,
}

/// A user as listed: no password, no hash.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub username: String,
    pub tenant_id: i64,
    pub role: Role,
    pub created_at: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// The tenant the user belongs to; a platform admin may name any (the super tenant
    /// when absent), a tenant admin only its own.
    #[serde(default)]
    pub tenant_domain: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
    /// Required when users change their own password.
    #[serde(default)]
    pub current_password: Option<String>,
}

impl UserRecord {
    fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            tenant_id: self.tenant_id,
            role: self.role,
            created_at: self.created_at,
        }
    }
}

fn peer_ip(connect: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<IpAddr> {
    connect.map(|Extension(ConnectInfo(addr))| addr.ip())
}

async fn login(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: LoginRequest = decode(&headers, body)?;
    let peer = peer_ip(connect);
    let limiter = &state.login_limiter;
    if let Err(wait) = limiter.check(&request.username, peer, Instant::now()) {
        tracing::warn!(user = %request.username, peer = ?peer, "login refused: too many failed logins");
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins; try again in {} s", wait.as_secs()),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        return Ok(response);
    }
    let user = load_user(&state.store, &request.username).await?;
    let (given, hash) = (request.password.clone(), user.as_ref().map(|u| u.password_hash.clone()));
    // argon2 takes tens of milliseconds of CPU on purpose: off the async workers.
    let right = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => password::verify(&given, &hash),
        None => {
            password::verify_nothing(&given);
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| right) else {
        limiter.failed(&request.username, peer, Instant::now());
        tracing::warn!(user = %request.username, peer = ?peer, "failed login");
        return Ok(unauthorized("wrong user name or password"));
    };
    limiter.succeeded(&user.username);
    // The right password, but the tenant is shut out: say so (the caller proved it is the user).
    if let Some(why) = crate::tenants::refusal_for(&state.store, user.tenant_id).await? {
        tracing::warn!(user = %user.username, tenant = user.tenant_id, "login refused: the tenant is deactivated");
        return Err(super::forbidden(why));
    }
    let limit = state.config.max_token_ttl.as_secs();
    let ttl = match request.ttl_seconds {
        Some(0) => {
            let mut p = Problems::default();
            p.push("ttlSeconds", "must be at least 1");
            return Err(ApiError::invalid("invalid login", p));
        }
        Some(s) => s.min(limit),
        None => state.config.token_ttl.as_secs().min(limit),
    };
    let description = request.description.unwrap_or_else(|| match peer {
        Some(ip) => format!("login from {ip}"),
        None => "login".into(),
    });
    let (token, record) =
        TokenRecord::issue(&user.username, user.tenant_id, ttl * 1000, description, stratos_bus::now_millis());
    save_token(&state.store, &record).await?;
    tracing::info!(user = %user.username, token_id = %record.id, tenant = user.tenant_id, "token issued");
    let purged = super::purge_dead_tokens(&state.store, stratos_bus::now_millis()).await?;
    if purged > 0 {
        tracing::info!(purged, "deleted the records of tokens dead for over a week");
    }
    let answer = LoginAnswer {
        token,
        id: record.id,
        username: user.username,
        tenant_id: user.tenant_id,
        role: user.role,
        expires_at: record.expires_at,
    };
    // RFC 6749 5.1: a response with a token is not to be cached.
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn whoami(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Whoami>> {
    Ok(Json(Whoami {
        tenant_domain: tenant_domain(&state.store, p.tenant_id).await?,
        username: p.user,
        tenant_id: p.tenant_id,
        role: p.role,
        token_id: p.token_id,
    }))
}

async fn logout(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<StatusCode> {
    revoke_one(&state, &p, &p.token_id).await
}

async fn revoke(State(state): State<Arc<AppState>>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    revoke_one(&state, &p, &id).await
}

/// Whether `p` may see and revoke `token`: its own, its tenant's for a tenant admin, any
/// for a platform admin.
fn administers(p: &Principal, username: &str, tenant_id: i64) -> bool {
    p.user == username || p.is_platform_admin() || (p.role == Role::TenantAdmin && p.tenant_id == tenant_id)
}

async fn revoke_one(state: &AppState, p: &Principal, id: &str) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found(format!("token {id:?} does not exist"));
    let mut token = load_token(&state.store, id).await?.ok_or_else(not_found)?;
    if !administers(p, &token.username, token.tenant_id) {
        return Err(not_found());
    }
    if token.revoked_at.is_none() {
        token.revoked_at = Some(stratos_bus::now_millis());
        save_token(&state.store, &token).await?;
        tracing::info!(token_id = %id, user = %token.username, by = %p.user, "token revoked");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The live tokens the caller may revoke (never their secrets).
async fn list_tokens(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Vec<TokenView>>> {
    let now = stratos_bus::now_millis();
    let mut tokens: Vec<TokenView> = all_tokens(&state.store)
        .await?
        .into_iter()
        .filter(|t| t.unusable(now).is_none() && administers(&p, &t.username, t.tenant_id))
        .map(|t| t.view())
        .collect();
    tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(Json(tokens))
}

async fn list_users(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Vec<UserView>>> {
    p.require_tenant_admin("list users")?;
    let users = all_users(&state.store).await?;
    Ok(Json(users.iter().filter(|u| p.is_platform_admin() || u.tenant_id == p.tenant_id).map(|u| u.view()).collect()))
}

/// The user named, if the caller may see it: itself, its tenant's for a tenant admin,
/// any for a platform admin. Anything else is "does not exist".
async fn visible_user(state: &AppState, p: &Principal, name: &str) -> ApiResult<UserRecord> {
    let not_found = || ApiError::not_found(format!("user {name:?} does not exist"));
    let user = load_user(&state.store, name).await?.ok_or_else(not_found)?;
    if administers(p, &user.username, user.tenant_id) {
        Ok(user)
    } else {
        Err(not_found())
    }
}

async fn show_user(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(visible_user(&state, &p, &name).await?.view()))
}

/// User names: what ids allow, plus `@`, so that an email address can be one.
fn check_username(name: &str, problems: &mut Problems) {
    if name.is_empty() || name.len() > 64 {
        problems.push("username", format!("must be 1 to 64 characters, found {}", name.len()));
    } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))) {
        problems.push("username", format!("{name:?} contains {c:?}; use letters, digits, '.', '_', '-' and '@'"));
    } else if matches!(name, "." | "..") || name.starts_with('.') {
        problems.push("username", format!("{name:?} must not start with '.'"));
    }
}

async fn create_user(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    p.require_tenant_admin("create users")?;
    let new: NewUser = decode(&headers, body)?;
    let tenant_id = match &new.tenant_domain {
        None => p.tenant_id,
        Some(domain) => {
            let tenant = state.store.tenants().await?.into_iter().find(|t| &t.tenant_domain == domain);
            match tenant {
                Some(t) if p.is_platform_admin() || t.tenant_id == p.tenant_id => t.tenant_id,
                _ => return Err(ApiError::not_found(format!("tenant {domain:?} does not exist"))),
            }
        }
    };
    let mut problems = Problems::default();
    check_username(&new.username, &mut problems);
    password::check("password", &new.password, &mut problems);
    if new.role > p.role {
        problems.push("role", format!("a {} cannot create a {}", p.role, new.role));
    } else if new.role == Role::PlatformAdmin && tenant_id != SUPER_TENANT {
        problems.push("role", "platform admins belong to the super tenant only");
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid("invalid user", problems));
    }
    let _write = state.write_lock.lock().await;
    if load_user(&state.store, &new.username).await?.is_some() {
        return Err(ApiError::conflict(format!("user {:?} already exists", new.username)));
    }
    let given = new.password;
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&given))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("hashing the password: {e}")))?;
    let user = UserRecord {
        username: new.username,
        tenant_id,
        role: new.role,
        password_hash,
        created_at: stratos_bus::now_millis(),
    };
    save_user(&state.store, &user).await?;
    tracing::info!(user = %user.username, tenant = tenant_id, role = %user.role, by = %p.user, "user created");
    Ok((StatusCode::CREATED, Json(user.view())))
}

async fn remove_user(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_tenant_admin("remove users")?;
    let _write = state.write_lock.lock().await;
    let user = visible_user(&state, &p, &name).await?;
    if user.role > p.role {
        return Err(super::forbidden(format!("a {} cannot remove a {}", p.role, user.role)));
    }
    if user.role == Role::PlatformAdmin {
        let admins = all_users(&state.store).await?.iter().filter(|u| u.role == Role::PlatformAdmin).count();
        if admins <= 1 {
            return Err(ApiError::conflict(format!("user {name:?} is the last platform admin")));
        }
    }
    super::delete_user(&state.store, &name).await?;
    let revoked = revoke_tokens_of(&state.store, &name, None, stratos_bus::now_millis()).await?;
    tracing::info!(user = %name, by = %p.user, revoked, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn change_password(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let mut user = visible_user(&state, &p, &name).await?;
    let own = user.username == p.user;
    if !own && (p.role < Role::TenantAdmin || user.role > p.role) {
        return Err(super::forbidden(format!("a {} cannot change the password of a {}", p.role, user.role)));
    }
    let change: NewPassword = decode(&headers, body)?;
    if own {
        if let Err(wait) = state.login_limiter.check(&user.username, None, Instant::now()) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many wrong passwords; try again in {} s", wait.as_secs()),
            ));
        }
    }
    let mut problems = Problems::default();
    password::check("password", &change.password, &mut problems);
    if own && change.current_password.is_none() {
        problems.push("currentPassword", "is required to change one's own password");
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid("invalid password change", problems));
    }
    let (current, hash, new) = (change.current_password, user.password_hash.clone(), change.password);
    let hashed = tokio::task::spawn_blocking(move || {
        if own && !current.is_some_and(|c| password::verify(&c, &hash)) {
            return None;
        }
        Some(password::hash(&new))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("hashing the password: {e}")))?;
    let Some(hashed) = hashed else {
        state.login_limiter.failed(&user.username, None, Instant::now());
        return Err(super::forbidden("the current password is wrong"));
    };
    let _write = state.write_lock.lock().await;
    user.password_hash = hashed;
    save_user(&state.store, &user).await?;
    // Whoever knew the old password may hold tokens: they go, but the caller's own.
    let keep = own.then_some(p.token_id.as_str());
    let revoked = revoke_tokens_of(&state.store, &name, keep, stratos_bus::now_millis()).await?;
    tracing::info!(user = %name, by = %p.user, revoked, "password changed");
    Ok(StatusCode::NO_CONTENT)
}
