//! The two-command start: `stratos up` creates the first platform admin once, and keeps
//! a live token of it for the CLI on the same machine (in a 0600 file it names).

use std::time::Duration;

use stratos_model::SUPER_TENANT;
use stratos_store::Store;

use crate::auth::{self, password, Role, TokenRecord, UserRecord};
use crate::error::ApiError;

/// The admin token file in the data directory (0600): the token the CLI on this machine uses.
pub const TOKEN_FILE: &str = "admin-token";
/// The first admin's generated password, in the data directory (0600), written once.
pub const PASSWORD_FILE: &str = "admin-password";

/// The first platform admin's user name.
pub const FIRST_ADMIN: &str = "admin";

/// How long the token of `stratos up`'s token file lives; renewed at a start when it
/// has less than a day left.
pub const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const RENEW_BEFORE: u64 = 24 * 3600 * 1000;

fn message(e: ApiError) -> String {
    e.error
}

/// Creates the platform admin [`FIRST_ADMIN`] with a random password when the platform
/// has none; returns that password (to be put in a 0600 file), only then.
pub async fn first_admin(store: &Store) -> Result<Option<String>, String> {
    let users = auth::all_users(store).await.map_err(message)?;
    if users.iter().any(|u| u.role == Role::PlatformAdmin) {
        return Ok(None);
    }
    if users.iter().any(|u| u.username == FIRST_ADMIN) {
        return Err(format!("user {FIRST_ADMIN:?} exists but no platform admin does; restore one in the store"));
    }
    let secret = password::generate();
    let given = secret.clone();
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&given)).await.map_err(|e| e.to_string())?;
    let admin = UserRecord {
        username: FIRST_ADMIN.into(),
        tenant_id: SUPER_TENANT,
        role: Role::PlatformAdmin,
        password_hash,
        created_at: stratos_bus::now_millis(),
    };
    auth::save_user(store, &admin).await.map_err(message)?;
    tracing::info!(user = FIRST_ADMIN, "created the first platform admin");
    Ok(Some(secret))
}

/// A live token of a platform admin for `stratos up`'s token file: `current` again while
/// it is live, its user still a platform admin and a day or more left; otherwise a new
/// one (and `current` revoked).
pub async fn admin_token(store: &Store, current: Option<&str>) -> Result<String, String> {
    let now = stratos_bus::now_millis();
    if let Some((id, secret)) = current.and_then(auth::token::split) {
        if let Some(mut record) = auth::load_token(store, id).await.map_err(message)?.filter(|r| r.matches(secret)) {
            let user = auth::load_user(store, &record.username).await.map_err(message)?;
            let admin = user.is_some_and(|u| u.role == Role::PlatformAdmin);
            if admin && record.unusable(now).is_none() && record.expires_at.saturating_sub(now) > RENEW_BEFORE {
                return Ok(current.unwrap_or_default().to_owned());
            }
            if record.revoked_at.is_none() {
                record.revoked_at = Some(now);
                auth::save_token(store, &record).await.map_err(message)?;
            }
        }
    }
    let users = auth::all_users(store).await.map_err(message)?;
    let admin = users
        .iter()
        .filter(|u| u.role == Role::PlatformAdmin)
        .min_by_key(|u| (u.username != FIRST_ADMIN, u.created_at))
        .ok_or("no platform admin to issue a token for")?;
    issue(store, &admin.username, ADMIN_TOKEN_TTL, "stratos up (the admin token file)").await
}

/// Issues a token for `username` (which must exist) and stores its record.
pub async fn issue(store: &Store, username: &str, ttl: Duration, description: &str) -> Result<String, String> {
    let user =
        auth::load_user(store, username).await.map_err(message)?.ok_or_else(|| format!("no user {username:?}"))?;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let (token, record) =
        TokenRecord::issue(&user.username, user.tenant_id, ttl_ms, description.into(), stratos_bus::now_millis());
    auth::save_token(store, &record).await.map_err(message)?;
    Ok(token)
}
