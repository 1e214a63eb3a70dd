//! CRUD for every definition kind under `/api/<resource>`, as in Apache Stratos 4.1.
//!
//! Writes are serialised by one lock so that a reference check and the write it
//! guards see the same definitions; a rejected write stores nothing.
//!
//! Who writes what: developers their tenant's policies and applications; admins
//! (tenant admins in their tenant) cartridges and network partitions; only platform
//! admins the platform's shared definitions (the super tenant's cartridges, network
//! partitions and autoscaling policies) and any cartridge of the `local` provider,
//! whose command runs on the platform's own host. Tenants read the platform's shared
//! definitions beside their own (`stratos_store::shared_with_tenants`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use stratos_bus::events::{ApplicationCreatedEvent, ApplicationDeletedEvent};
use stratos_model::{
    Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, CartridgeGroup, Definition, Definitions, Deployment,
    DeploymentPolicy, Kind, NetworkPartition, Problems, SUPER_TENANT,
};
use stratos_store::shared_with_tenants;

use crate::auth::{forbidden, Principal};
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A definition kind the API serves.
pub trait Resource: Definition + Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static {}
impl<T: Definition + Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static> Resource for T {}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(routes_for::<Cartridge>())
        .merge(routes_for::<NetworkPartition>())
        .merge(routes_for::<DeploymentPolicy>())
        .merge(routes_for::<AutoscalingPolicy>())
        .merge(routes_for::<ApplicationPolicy>())
        .merge(routes_for::<CartridgeGroup>())
        .merge(routes_for::<Application>())
}

fn routes_for<D: Resource>() -> Router<Arc<AppState>> {
    let collection = format!("/api/{}", D::KIND.resource());
    let item = format!("{collection}/{{id}}");
    Router::new()
        .route(&collection, get(list::<D>).post(create::<D>).put(update_from_body::<D>))
        .route(&item, get(show::<D>).put(update::<D>).delete(remove::<D>))
}

/// The tenant's own definitions and the platform's it shares, ordered by id.
async fn list<D: Resource>(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Vec<Value>>> {
    let kind = D::KIND;
    let mut all = state.store.list(p.tenant_id, kind.name()).await?;
    if p.tenant_id != SUPER_TENANT {
        let own: HashSet<String> = all.iter().map(|v| id_of(kind, v)).collect();
        for v in state.store.list(SUPER_TENANT, kind.name()).await? {
            if shared_with_tenants(kind, &v) && !own.contains(&id_of(kind, &v)) {
                all.push(v);
            }
        }
        all.sort_by_key(|v| id_of(kind, v));
    }
    Ok(Json(all))
}

async fn show<D: Resource>(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(own) = state.store.get(p.tenant_id, D::KIND.name(), &id).await? {
        return Ok(Json(own));
    }
    platform_shared(&state, &p, D::KIND, &id).await?.map(Json).ok_or_else(|| not_found(D::KIND, &id))
}

fn id_of(kind: Kind, definition: &Value) -> String {
    definition[kind.id_field()].as_str().unwrap_or_default().to_owned()
}

/// The platform's definition `id`, if it is shared with the caller's tenant.
async fn platform_shared(state: &AppState, p: &Principal, kind: Kind, id: &str) -> ApiResult<Option<Value>> {
    if p.tenant_id == SUPER_TENANT {
        return Ok(None);
    }
    Ok(state.store.get(SUPER_TENANT, kind.name(), id).await?.filter(|v| shared_with_tenants(kind, v)))
}

/// Cartridges and network partitions: what runs and where, managed by admins.
fn admin_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Cartridge | Kind::NetworkPartition)
}

/// A cartridge with a `local` provider runs its command on the platform's own host.
fn runs_on_platform_host(cartridge: &Value) -> bool {
    cartridge["iaasProvider"].as_array().into_iter().flatten().any(|p| p["type"] == "local")
}

/// Whether `p` may write a `kind` definition, given the new one and the one it replaces.
pub fn authorize_write(p: &Principal, kind: Kind, new: Option<&Value>, stored: Option<&Value>) -> ApiResult<()> {
    p.require_write()?;
    let words = kind.words();
    if p.tenant_id == SUPER_TENANT && (admin_kind(kind) || kind == Kind::AutoscalingPolicy) {
        p.require_platform_admin(&format!("change the platform's {words}s, which every tenant uses"))?;
    } else if admin_kind(kind) {
        p.require_tenant_admin(&format!("change {words}s"))?;
    }
    if kind == Kind::Cartridge && new.into_iter().chain(stored).any(runs_on_platform_host) {
        p.require_platform_admin(
            "add, change or remove a cartridge of the `local` provider, which runs its command on the platform's own host",
        )?;
    }
    Ok(())
}

async fn create<D: Resource>(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    p.require_write()?;
    let def: D = decode(&headers, body)?;
    authorize_write(&p, D::KIND, Some(&serde_json::to_value(&def).expect("definitions serialise")), None)?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let mut defs = state.store.load_definitions(tenant).await?;
    defs.repo_policy = state.repo_policy;
    if state.store.get(tenant, D::KIND.name(), def.id()).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "{} {:?} already exists; update it with PUT /api/{}/{}",
            D::KIND.words(),
            def.id(),
            D::KIND.resource(),
            def.id()
        )));
    }
    if platform_shared(&state, &p, D::KIND, def.id()).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "the platform has a {} {:?}, which this tenant uses; choose another id",
            D::KIND.words(),
            def.id()
        )));
    }
    def.check(&defs).map_err(|p| invalid::<D>(def.id(), p))?;
    refuse_claimed_names(&state, &def, &defs, tenant).await?;
    state
        .store
        .put(tenant, D::KIND.name(), def.id(), &serde_json::to_value(&def).expect("definitions serialise"))
        .await?;
    insert(&mut defs, &def);
    tracing::info!(kind = %D::KIND, id = def.id(), tenant, "definition added");
    if D::KIND == Kind::Application {
        state.publish(&ApplicationCreatedEvent { application_id: def.id().to_string(), tenant_id: tenant }).await;
    }
    Ok((StatusCode::CREATED, Json(with_warnings(&state, &def))))
}

/// The definition as stored, with `warnings` beside its fields when something in it
/// will not work on this platform although it is valid: a network partition whose
/// provider has no driver here (a deploy placing members there is refused).
fn with_warnings<D: Resource>(state: &AppState, def: &D) -> Value {
    let mut value = serde_json::to_value(def).expect("definitions serialise");
    let mut warnings = Vec::new();
    if let (Kind::NetworkPartition, Some(drivers)) = (D::KIND, &state.drivers) {
        let np: NetworkPartition = serde_json::from_value(value.clone()).expect("a network partition reads back");
        warnings = crate::deploy_checks::provider_warnings(&np, drivers);
    }
    if !warnings.is_empty() {
        for w in &warnings {
            tracing::warn!(kind = %D::KIND, id = def.id(), warning = %w, "definition stored with a warning");
        }
        value["warnings"] = Value::from(warnings);
    }
    value
}

async fn update_from_body<D: Resource>(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require_write()?;
    let def: D = decode(&headers, body)?;
    replace(state, p, None, def).await
}

async fn update<D: Resource>(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    p.require_write()?;
    let def: D = decode(&headers, body)?;
    replace(state, p, Some(id), def).await
}

/// The caller's own definition `id`, or why it cannot change it: a platform
/// definition it only reads (403), or none (404).
async fn own_for_write(state: &AppState, p: &Principal, kind: Kind, id: &str) -> ApiResult<Value> {
    if let Some(own) = state.store.get(p.tenant_id, kind.name(), id).await? {
        return Ok(own);
    }
    if platform_shared(state, p, kind, id).await?.is_some() {
        return Err(forbidden(format!(
            "{} {id:?} is the platform's, which tenants use as it is; only platform admins change it",
            kind.words()
        )));
    }
    Err(not_found(kind, id))
}

/// Replaces a definition; refused when it would break a definition that names it.
async fn replace<D: Resource>(
    state: Arc<AppState>,
    p: Principal,
    path_id: Option<String>,
    def: D,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant_id;
    if let Some(id) = &path_id {
        if id != def.id() {
            let mut p = Problems::default();
            p.push(D::KIND.id_field(), format!("{:?} differs from {:?} in the URL; an id cannot change", def.id(), id));
            return Err(ApiError::invalid(format!("cannot update {} {id:?}", D::KIND.words()), p));
        }
    }
    let _write = state.write_lock.lock().await;
    let mut defs = state.store.load_definitions(tenant).await?;
    defs.repo_policy = state.repo_policy;
    let stored = own_for_write(&state, &p, D::KIND, def.id()).await?;
    let new = serde_json::to_value(&def).expect("definitions serialise");
    authorize_write(&p, D::KIND, Some(&new), Some(&stored))?;
    def.check(&defs).map_err(|p| invalid::<D>(def.id(), p))?;
    refuse_claimed_names(&state, &def, &defs, tenant).await?;
    insert(&mut defs, &def);
    let mut broken = Problems::default();
    for (kind, id) in defs.dependents_of(D::KIND, def.id()) {
        if let Err(problems) = check_references_of(&defs, kind, &id) {
            for p in problems.0 {
                broken.push(format!("{}/{id}: {}", kind.resource(), p.path), p.message);
            }
        }
    }
    if tenant == SUPER_TENANT {
        broken.0.extend(tenants_broken_by(&state, D::KIND, def.id(), Some(new)).await?.0);
    }
    if !broken.is_empty() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            error: format!("updating {} {:?} would break definitions that use it", D::KIND.words(), def.id()),
            problems: broken.0,
        });
    }
    state
        .store
        .put(tenant, D::KIND.name(), def.id(), &serde_json::to_value(&def).expect("definitions serialise"))
        .await?;
    tracing::info!(kind = %D::KIND, id = def.id(), tenant, "definition updated");
    Ok(Json(with_warnings(&state, &def)))
}

async fn remove<D: Resource>(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let defs = state.store.load_definitions(tenant).await?;
    let stored = own_for_write(&state, &p, D::KIND, &id).await?;
    authorize_write(&p, D::KIND, None, Some(&stored))?;
    if tenant == SUPER_TENANT {
        let broken = tenants_broken_by(&state, D::KIND, &id, None).await?;
        if !broken.is_empty() {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                error: format!("{} {id:?} is used by tenants' definitions; they must change first", D::KIND.words()),
                problems: broken.0,
            });
        }
    }
    let users = defs.dependents_of(D::KIND, &id);
    if !users.is_empty() {
        let names: Vec<String> = users.iter().map(|(k, i)| format!("{} {i:?}", k.words())).collect();
        return Err(ApiError::conflict(format!(
            "{} {id:?} is used by {}; remove or change those first",
            D::KIND.words(),
            names.join(", ")
        )));
    }
    if D::KIND == Kind::Application && state.store.get_record::<Deployment>(tenant, &id).await?.is_some() {
        return Err(ApiError::conflict(format!("application {id:?} is deployed; undeploy it first")));
    }
    if D::KIND == Kind::ApplicationPolicy {
        // No definition names an application policy: deployments do, at deploy time.
        for deployment in state.store.list_records::<Deployment>(tenant).await?.all()? {
            if deployment.application_policy_id == id {
                let app = deployment.application_id;
                return Err(ApiError::conflict(format!(
                    "application policy {id:?} is used by deployed application {app:?}; undeploy it first"
                )));
            }
        }
    }
    state.store.delete(tenant, D::KIND.name(), &id).await?;
    tracing::info!(kind = %D::KIND, %id, tenant, "definition removed");
    if D::KIND == Kind::Application {
        state.publish(&ApplicationDeletedEvent { application_id: id, tenant_id: tenant }).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An application naming a host name (or making a cluster id) that another deployed
/// application's cluster holds is refused now, not at its deploy.
async fn refuse_claimed_names<D: Resource>(
    state: &AppState,
    def: &D,
    defs: &Definitions,
    tenant: i64,
) -> ApiResult<()> {
    if D::KIND != Kind::Application {
        return Ok(());
    }
    let app: Application = serde_json::from_value(serde_json::to_value(def).expect("definitions serialise"))
        .expect("an application reads back");
    crate::claims::refuse_application_clashes(state, &app, defs, tenant)
        .await
        .map_err(|e| e.context(format!("cannot save application {:?}", app.application_id)))
}

/// What replacing the platform's definition `id` by `replacement` (or removing it, `None`)
/// would break in the tenants that use it: each tenant's definitions are checked
/// against its view with the change made. A tenant with its own definition of that id
/// does not use the platform's.
async fn tenants_broken_by(state: &AppState, kind: Kind, id: &str, replacement: Option<Value>) -> ApiResult<Problems> {
    let mut broken = Problems::default();
    let was_shared =
        state.store.get(SUPER_TENANT, kind.name(), id).await?.is_some_and(|v| shared_with_tenants(kind, &v));
    if !was_shared {
        return Ok(broken);
    }
    for tenant in state.store.tenants().await? {
        let own = state.store.load_own_definitions(tenant.tenant_id).await?;
        if view_has_own(&own, kind, id) || own.dependents_of(kind, id).is_empty() {
            continue;
        }
        let mut view = state.store.load_definitions(tenant.tenant_id).await?;
        let users = own.dependents_of(kind, id);
        match replacement.clone().filter(|v| shared_with_tenants(kind, v)) {
            Some(new) => {
                view.insert_json(kind, new).expect("a definition reads back");
                for (k, user) in users {
                    if let Err(problems) = check_references_of(&view, k, &user) {
                        for p in problems.0 {
                            broken.push(
                                format!("tenants/{}/{}/{user}: {}", tenant.tenant_domain, k.resource(), p.path),
                                p.message,
                            );
                        }
                    }
                }
            }
            None => {
                for (k, user) in users {
                    broken.push(
                        format!("tenants/{}/{}/{user}", tenant.tenant_domain, k.resource()),
                        format!("names the platform's {} {id:?}", kind.words()),
                    );
                }
            }
        }
    }
    Ok(broken)
}

fn view_has_own(own: &Definitions, kind: Kind, id: &str) -> bool {
    own.contains(kind, id)
}

fn not_found(kind: Kind, id: &str) -> ApiError {
    ApiError::not_found(format!("{} {id:?} does not exist", kind.words()))
}

fn invalid<D: Resource>(id: &str, problems: Problems) -> ApiError {
    ApiError::invalid(format!("invalid {} {id:?}", D::KIND.words()), problems)
}

fn insert<D: Resource>(defs: &mut Definitions, def: &D) {
    defs.insert_json(D::KIND, serde_json::to_value(def).expect("definitions serialise"))
        .expect("a definition reads back");
}

fn check_references_of(defs: &Definitions, kind: Kind, id: &str) -> Result<(), Problems> {
    fn one<D: Definition>(
        map: &std::collections::BTreeMap<String, D>,
        defs: &Definitions,
        id: &str,
    ) -> Result<(), Problems> {
        let mut p = Problems::default();
        if let Some(d) = map.get(id) {
            d.check_references(defs, &mut p);
        }
        p.into_result()
    }
    match kind {
        Kind::Cartridge => one(&defs.cartridges, defs, id),
        Kind::NetworkPartition => one(&defs.network_partitions, defs, id),
        Kind::DeploymentPolicy => one(&defs.deployment_policies, defs, id),
        Kind::AutoscalingPolicy => one(&defs.autoscaling_policies, defs, id),
        Kind::ApplicationPolicy => one(&defs.application_policies, defs, id),
        Kind::CartridgeGroup => one(&defs.cartridge_groups, defs, id),
        Kind::Application => one(&defs.applications, defs, id),
    }
}
