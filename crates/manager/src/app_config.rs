//! An application's configuration over the API (`stratos config set|unset|list`):
//! `GET|PATCH /api/applications/{id}/config`, and the platform key's rotation
//! (`POST /api/config/rotate-key`, platform admins).
//!
//! Entries are environment variables of the application's members, app-wide or for one
//! cluster alias ([`stratos_store::app_config`]); a secret's value is sealed here, under
//! the platform key, before it is stored, and never leaves in an answer or a log line
//! (answers name secrets and give their revisions; logs give keys only). A change that
//! alters what a deployed cluster's members get writes a `ClusterRestart` for it, as
//! `POST /api/clusters/{id}/restart` does: the controller replaces its members one at a
//! time, and they start with the new environment (with `restart: false`, only members
//! started later get it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use stratos_model::{ClusterRestart, Deployment, DeploymentStatus, Problems};
use stratos_store::app_config::{self, AppConfig, ConfigEntry, ConfigValue, Scope};
use stratos_store::sealed::KeyRing;
use stratos_store::Record;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, TenantId};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/applications/{id}/config", get(list).patch(change))
        .route("/api/config/rotate-key", post(rotate_key))
}

/// A change to an application's configuration: keys to set, keys to remove.
/// (No `Debug`: it carries values.)
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigChange {
    /// The cluster (its alias in the application) the entries are for; left out: the
    /// whole application. A cluster's entry wins over the application's.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Keys to set, with their values: environment variable names, not the platform's
    /// (`STRATOS_*`, `PORT`, `PORT_*`, `HOME`, `USER`, `LOGNAME`, `LD_*`); values of at most 32 KiB.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// The values of `set` are secrets: stored encrypted under the platform key, never shown.
    #[serde(default)]
    pub secret: bool,
    /// Keys to remove.
    #[serde(default)]
    pub unset: Vec<String>,
    /// Replace the members of the clusters whose environment changes, one at a time
    /// (the default); `false`: members started from now on get the change, running ones keep theirs.
    #[serde(default = "yes")]
    pub restart: bool,
}

fn yes() -> bool {
    true
}

/// One entry as the API shows it: a secret's name and revision, never its value.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub key: String,
    /// `application`, or the cluster alias.
    pub scope: String,
    pub secret: bool,
    /// The value of a plain entry; absent for a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub revision: u64,
    /// The platform key a secret is sealed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub updated_at: u64,
    pub updated_by: String,
}

/// An application's configuration: every entry, or (with `cluster`) the ones a cluster's
/// members get.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    pub application_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub entries: Vec<EntryView>,
}

/// What a change did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    pub application_id: String,
    /// Keys set to a new value, or removed.
    pub changed: Vec<String>,
    /// Keys set to the value they had, or removed while absent.
    pub unchanged: Vec<String>,
    /// Rolling restarts asked for: the clusters whose members' environment changes
    /// (none with `restart: false`, or when the application is not deployed).
    pub restarts: Vec<String>,
    /// Whether the application is deployed (if not, the change applies at its deploy).
    pub deployed: bool,
    pub entries: Vec<EntryView>,
}

/// The outcome of a key rotation.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    /// The key every secret is now sealed under.
    pub key_id: String,
    /// Secrets sealed again under it.
    pub resealed: usize,
    /// Keys removed from the key file.
    pub retired: Vec<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    cluster: Option<String>,
}

fn view(scope: Scope<'_>, key: &str, e: &ConfigEntry) -> EntryView {
    let (value, key_id) = match &e.value {
        ConfigValue::Plain(v) => (Some(v.clone()), None),
        ConfigValue::Secret(sealed) => (None, Some(sealed.key_id.clone())),
    };
    EntryView {
        key: key.to_owned(),
        scope: scope.name().to_owned(),
        secret: e.value.is_secret(),
        value,
        revision: e.revision,
        key_id,
        updated_at: e.updated_at,
        updated_by: e.updated_by.clone(),
    }
}

fn views(config: &AppConfig) -> Vec<EntryView> {
    config.entries().map(|(scope, key, e)| view(scope, key, e)).collect()
}

/// The application `id` of `tenant` (defined, or deployed), its deployment if any, and
/// its clusters' aliases. Another tenant's application is as absent as one that is not.
async fn application(state: &AppState, tenant: i64, id: &str) -> ApiResult<(Option<Deployment>, BTreeSet<String>)> {
    let defs = state.store.load_own_definitions(tenant).await?;
    let deployment = state.store.get_record::<Deployment>(tenant, id).await?;
    let defined = defs.applications.get(id);
    if defined.is_none() && deployment.is_none() {
        return Err(ApiError::not_found(format!("application {id:?} does not exist")));
    }
    let mut aliases: BTreeSet<String> =
        defined.into_iter().flat_map(|a| a.subscriptions()).map(|(_, c)| c.subscribable_info.alias.clone()).collect();
    aliases.extend(deployment.iter().flat_map(|d| d.clusters.iter().map(|c| c.alias.clone())));
    Ok((deployment, aliases))
}

async fn list(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<ConfigView>> {
    let (_, aliases) = application(&state, tenant, &id).await?;
    let config = state.store.get_record::<AppConfig>(tenant, &id).await?.unwrap_or_else(|| AppConfig::new(&id));
    let entries = match &query.cluster {
        None => views(&config),
        Some(alias) => {
            check_alias(alias, &aliases).map_err(|p| ApiError::invalid("no such cluster", p))?;
            config.effective(alias).into_iter().map(|(key, (scope, e))| view(scope, key, e)).collect()
        }
    };
    Ok(Json(ConfigView { application_id: id, cluster: query.cluster, entries }))
}

fn check_alias(alias: &str, aliases: &BTreeSet<String>) -> Result<(), Problems> {
    if aliases.contains(alias) {
        return Ok(());
    }
    let mut p = Problems::default();
    let known: Vec<&str> = aliases.iter().map(String::as_str).collect();
    p.push("cluster", format!("the application has no cluster alias {alias:?} (its aliases: {})", known.join(", ")));
    Err(p)
}

/// Each key and value at fault, by its path in the request (`set.KEY`, `unset[0]`).
fn check_change(change: &ConfigChange, aliases: &BTreeSet<String>) -> Result<(), Problems> {
    let mut p = Problems::default();
    if change.set.is_empty() && change.unset.is_empty() {
        p.push("set", "give keys to set or to unset");
    }
    if let Some(alias) = &change.cluster {
        if let Err(bad) = check_alias(alias, aliases) {
            p.0.extend(bad.0);
        }
    }
    for (key, value) in &change.set {
        if let Err(why) = app_config::check_key(key) {
            p.push(format!("set.{key}"), why);
        } else if let Err(why) = app_config::check_value(value) {
            p.push(format!("set.{key}"), format!("{key}: {why}"));
        }
    }
    for (i, key) in change.unset.iter().enumerate() {
        if let Err(why) = app_config::check_key(key) {
            p.push(format!("unset[{i}]"), why);
        } else if change.set.contains_key(key) {
            p.push(format!("unset[{i}]"), format!("{key} is both set and unset"));
        }
    }
    p.into_result()
}

/// Whether `entry` already holds `value` with the same secrecy (a secret is opened to tell).
fn holds(entry: &ConfigEntry, value: &str, secret: bool, ring: Option<&KeyRing>, context: &str) -> bool {
    match (&entry.value, secret) {
        (ConfigValue::Plain(v), false) => v == value,
        (ConfigValue::Secret(sealed), true) => {
            ring.and_then(|r| r.open(sealed, context).ok()).is_some_and(|old| old.expose() == value)
        }
        _ => false,
    }
}

fn secrets(state: &AppState) -> ApiResult<&KeyRing> {
    state.secrets.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "this API runs without the platform's secrets key")
    })
}

async fn change(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ConfigChanged>> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    // Another tenant's application is absent, whatever the body says.
    let (deployment, aliases) = application(&state, tenant, &id).await?;
    let change = decode(&headers, body)?;
    let refused =
        |problems| ApiError::invalid(format!("cannot change the configuration of application {id:?}"), problems);
    check_change(&change, &aliases).map_err(refused)?;
    let ring = if change.secret && !change.set.is_empty() { Some(secrets(&state)?) } else { state.secrets.as_deref() };
    let scope = match &change.cluster {
        Some(alias) => Scope::Cluster(alias),
        None => Scope::App,
    };
    let before = state.store.get_record::<AppConfig>(tenant, &id).await?.unwrap_or_else(|| AppConfig::new(&id));
    let mut after = before.clone();
    let now = stratos_bus::now_millis();
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for (key, value) in &change.set {
        let context = app_config::seal_context(tenant, &id, scope, key);
        if after.entry(scope, key).is_some_and(|e| holds(e, value, change.secret, ring, &context)) {
            unchanged.push(key.clone());
            continue;
        }
        let stored = match ring.filter(|_| change.secret) {
            Some(ring) => ConfigValue::Secret(ring.seal(value.as_bytes(), &context).map_err(|e| {
                tracing::error!(error = %e, "cannot seal a secret");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot seal {key}: {e}"))
            })?),
            None => ConfigValue::Plain(value.clone()),
        };
        after.put(scope, key, stored, &p.user, now);
        changed.push(key.clone());
    }
    for key in &change.unset {
        if after.remove(scope, key) {
            changed.push(key.clone());
        } else {
            unchanged.push(key.clone());
        }
    }
    if let Err(why) = app_config::check_size(&after) {
        let mut problems = Problems::default();
        problems.push("set", why);
        return Err(refused(problems));
    }
    if after != before {
        state.store.put_record(tenant, &after).await?;
    }
    let deployed = deployment.as_ref().filter(|d| d.status == DeploymentStatus::Deployed);
    let mut restarts = Vec::new();
    if let (Some(deployment), true) = (deployed, change.restart) {
        let by_alias: Vec<&str> = deployment.clusters.iter().map(|c| c.alias.as_str()).collect();
        let affected = app_config::affected_aliases(&before, &after, &by_alias);
        // After the configuration is stored: a member created from now on reads the new one.
        let requested_at = stratos_bus::now_millis();
        for spec in deployment.clusters.iter().filter(|c| affected.contains(&c.alias.as_str())) {
            let record =
                ClusterRestart { cluster_id: spec.cluster_id.clone(), requested_at, requested_by: p.user.clone() };
            state.store.put_record(tenant, &record).await?;
            restarts.push(spec.cluster_id.clone());
        }
    }
    tracing::info!(
        application_id = %id, tenant, user = %p.user, scope = scope.name(), secret = change.secret,
        changed = ?changed, unchanged = ?unchanged, restarts = ?restarts,
        "application configuration changed"
    );
    Ok(Json(ConfigChanged {
        application_id: id,
        changed,
        unchanged,
        restarts,
        deployed: deployed.is_some(),
        entries: views(&after),
    }))
}

async fn rotate_key(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Rotated>> {
    p.require_platform_admin("rotate the secrets key")?;
    let ring = secrets(&state)?;
    let _write = state.write_lock.lock().await;
    let failed = |what: String| {
        tracing::error!(reason = %what, "secrets key rotation stopped; every stored secret still opens");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}; the old key is kept, run it again"))
    };
    let key_id = ring.add_key().map_err(|e| failed(e.to_string()))?;
    let mut resealed = 0;
    for (tenant, body) in state.store.list_all_tenants(AppConfig::COLLECTION).await? {
        let mut config: AppConfig = serde_json::from_value(body)
            .map_err(|e| failed(format!("a stored configuration of tenant {tenant} cannot be read: {e}")))?;
        let id = config.application_id.clone();
        let mut changed = false;
        let scopes: Vec<(Option<String>, String)> = config
            .entries()
            .filter(|(_, _, e)| matches!(&e.value, ConfigValue::Secret(s) if s.key_id != key_id))
            .map(|(scope, key, _)| {
                (matches!(scope, Scope::Cluster(_)).then(|| scope.name().to_owned()), key.to_owned())
            })
            .collect();
        for (alias, key) in scopes {
            let scope = alias.as_deref().map_or(Scope::App, Scope::Cluster);
            let context = app_config::seal_context(tenant, &id, scope, &key);
            let entries = match scope {
                Scope::App => &mut config.app,
                Scope::Cluster(alias) => config.clusters.get_mut(alias).expect("listed above"),
            };
            let entry = entries.get_mut(&key).expect("listed above");
            let ConfigValue::Secret(sealed) = &entry.value else { continue };
            let open = ring.open(sealed, &context).map_err(|e| failed(format!("{key} of application {id:?}: {e}")))?;
            let again = ring.seal(open.expose().as_bytes(), &context).map_err(|e| failed(e.to_string()))?;
            entry.value = ConfigValue::Secret(again);
            resealed += 1;
            changed = true;
        }
        if changed {
            state.store.put_record(tenant, &config).await?;
        }
    }
    let retired = ring.retire_others().map_err(|e| failed(e.to_string()))?;
    tracing::info!(key_id = %key_id, resealed, retired = ?retired, user = %p.user, "secrets key rotated");
    Ok(Json(Rotated { key_id, resealed, retired }))
}

/// The body as a [`ConfigChange`] (JSON). serde's messages quote what they could not
/// take; those quotes are left out, so that a value sent by mistake is not sent back.
fn decode(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<ConfigChange> {
    let body = body.map_err(|e| ApiError::new(e.status(), format!("cannot read the request body: {}", e.status())))?;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.contains("json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {content_type:?} is not supported; use application/json"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        let mut p = Problems::default();
        p.push("", without_values(&e.to_string()));
        ApiError::invalid("malformed configuration change", p)
    })
}

/// serde's message without the value it quotes (`invalid type: string "x", expected ...`).
fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(at) = message.find(lead) {
            if let Some(expected) = message[at..].find(", expected") {
                let lead = lead.trim_end_matches([':', ' ']);
                return format!("{}{lead}{}", &message[..at], &message[at + expected..]);
            }
        }
    }
    message.to_owned()
}

/// The routes in the OpenAPI document.
pub fn openapi(generator: &mut schemars::SchemaGenerator, paths: &mut Map<String, Value>, errors: &Value) {
    let change = generator.subschema_for::<ConfigChange>();
    let changed = generator.subschema_for::<ConfigChanged>();
    let config = generator.subschema_for::<ConfigView>();
    let rotated = generator.subschema_for::<Rotated>();
    let merge = |mut a: Value| {
        for (k, v) in errors.as_object().into_iter().flatten() {
            a.as_object_mut().expect("an object").entry(k.clone()).or_insert_with(|| v.clone());
        }
        a
    };
    let id = json!({"name": "id", "in": "path", "required": true, "description": "The application's applicationId", "schema": {"type": "string"}});
    let cluster = json!({"name": "cluster", "in": "query", "required": false, "description": "A cluster alias: only the entries its members get, the cluster's winning over the application's", "schema": {"type": "string"}});
    paths.insert(
        "/api/applications/{id}/config".into(),
        json!({
            "get": {"tags": ["applications"], "operationId": "getApplicationConfig",
                "summary": "An application's configuration: its members' environment variables",
                "description": "Plain entries with their values; secrets by name, revision and the key they are sealed under, never their values.",
                "parameters": [id, cluster],
                "responses": merge(json!({"200": {"description": "The entries", "content": {"application/json": {"schema": config}}}}))},
            "patch": {"tags": ["applications"], "operationId": "changeApplicationConfig",
                "summary": "Set or unset entries of an application's configuration (developers and above)",
                "description": "Keys are environment variable names, none of the platform's (400 naming the key). Secrets are stored encrypted under the platform key. Unless `restart` is false, each deployed cluster whose members' environment changes is restarted one member at a time (follow it with GET /api/clusters/{id}/restart); otherwise members started later get the change.",
                "parameters": [id],
                "requestBody": {"required": true, "content": {"application/json": {"schema": change}}},
                "responses": merge(json!({"200": {"description": "What changed, and the restarts asked for", "content": {"application/json": {"schema": changed}}}}))}
        }),
    );
    paths.insert(
        "/api/config/rotate-key".into(),
        json!({"post": {"tags": ["platform"], "operationId": "rotateSecretsKey",
            "summary": "Seal every stored secret under a new platform key, then retire the old one (platform admins)",
            "description": "The new key is written to the key file beside the old before any secret is sealed again, and the old one is removed only once none is left under it: stopped half-way, every secret still opens; run it again to finish.",
            "responses": merge(json!({"200": {"description": "The new key", "content": {"application/json": {"schema": rotated}}}}))}}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_quote_no_value() {
        let e = serde_json::from_str::<ConfigChange>(r#"{"set": {"A": "x"}, "secret": "hunter2"}"#).err().unwrap();
        let shown = without_values(&e.to_string());
        assert!(!shown.contains("hunter2") && shown.contains("expected a boolean"), "{shown}");
        let e = serde_json::from_str::<ConfigChange>(r#"{"unset": "hunter2"}"#).err().unwrap();
        assert!(!without_values(&e.to_string()).contains("hunter2"));
    }

    #[test]
    fn each_bad_key_is_named_at_its_path() {
        let aliases = BTreeSet::from(["web".to_string()]);
        let change = ConfigChange {
            cluster: Some("db".into()),
            set: BTreeMap::from([
                ("STRATOS_X".into(), "v".into()),
                ("1A".into(), "v".into()),
                ("BIG".into(), "v".repeat(app_config::MAX_VALUE + 1)),
                ("OK".into(), "v".into()),
            ]),
            secret: false,
            unset: vec!["PORT".into(), "OK".into()],
            restart: true,
        };
        let problems = check_change(&change, &aliases).unwrap_err();
        let at: Vec<(&str, &str)> = problems.0.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
        let paths: Vec<&str> = at.iter().map(|(p, _)| *p).collect();
        assert_eq!(paths, ["cluster", "set.1A", "set.BIG", "set.STRATOS_X", "unset[0]", "unset[1]"], "{at:?}");
        assert!(at[3].1.contains("STRATOS_X is reserved"), "{at:?}");
        assert!(at[4].1.contains("PORT is reserved"), "{at:?}");
        assert!(at[2].1.starts_with("BIG: "), "{at:?}");
    }
}
