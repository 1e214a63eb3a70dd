//! CRUD for every definition kind under `/api/<resource>`, as in Apache Stratos 4.1.
//!
//! Writes are serialised by one lock so that a reference check and the write it
//! guards see the same definitions; a rejected write stores nothing.

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
    Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, Definition, Definitions, DeploymentPolicy, Kind,
    NetworkPartition, Problems,
};

use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, TenantId};

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
        .merge(routes_for::<Application>())
}

fn routes_for<D: Resource>() -> Router<Arc<AppState>> {
    let collection = format!("/api/{}", D::KIND.resource());
    let item = format!("{collection}/{{id}}");
    Router::new()
        .route(&collection, get(list::<D>).post(create::<D>).put(update_from_body::<D>))
        .route(&item, get(show::<D>).put(update::<D>).delete(remove::<D>))
}

async fn list<D: Resource>(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(state.store.list(tenant, D::KIND.name()).await?))
}

async fn show<D: Resource>(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.get(tenant, D::KIND.name(), &id).await?.map(Json).ok_or_else(|| not_found(D::KIND, &id))
}

async fn create<D: Resource>(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<D>)> {
    let def: D = decode(&headers, body)?;
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
    def.check(&defs).map_err(|p| invalid::<D>(def.id(), p))?;
    state
        .store
        .put(tenant, D::KIND.name(), def.id(), &serde_json::to_value(&def).expect("definitions serialise"))
        .await?;
    insert(&mut defs, &def);
    tracing::info!(kind = %D::KIND, id = def.id(), tenant, "definition added");
    if D::KIND == Kind::Application {
        state.publish(&ApplicationCreatedEvent { application_id: def.id().to_string(), tenant_id: tenant }).await;
    }
    Ok((StatusCode::CREATED, Json(def)))
}

async fn update_from_body<D: Resource>(
    State(state): State<Arc<AppState>>,
    tenant: TenantId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<D>> {
    let def: D = decode(&headers, body)?;
    replace(state, tenant, None, def).await
}

async fn update<D: Resource>(
    State(state): State<Arc<AppState>>,
    tenant: TenantId,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<D>> {
    let def: D = decode(&headers, body)?;
    replace(state, tenant, Some(id), def).await
}

/// Replaces a definition; refused when it would break a definition that names it.
async fn replace<D: Resource>(
    state: Arc<AppState>,
    TenantId(tenant): TenantId,
    path_id: Option<String>,
    def: D,
) -> ApiResult<Json<D>> {
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
    if state.store.get(tenant, D::KIND.name(), def.id()).await?.is_none() {
        return Err(not_found(D::KIND, def.id()));
    }
    def.check(&defs).map_err(|p| invalid::<D>(def.id(), p))?;
    insert(&mut defs, &def);
    let mut broken = Problems::default();
    for (kind, id) in defs.dependents_of(D::KIND, def.id()) {
        if let Err(problems) = check_references_of(&defs, kind, &id) {
            for p in problems.0 {
                broken.push(format!("{}/{id}: {}", kind.resource(), p.path), p.message);
            }
        }
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
    Ok(Json(def))
}

async fn remove<D: Resource>(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let _write = state.write_lock.lock().await;
    let defs = state.store.load_definitions(tenant).await?;
    if state.store.get(tenant, D::KIND.name(), &id).await?.is_none() {
        return Err(not_found(D::KIND, &id));
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
    if D::KIND == Kind::Application && state.store.get(tenant, "deployment", &id).await?.is_some() {
        return Err(ApiError::conflict(format!("application {id:?} is deployed; undeploy it first")));
    }
    if D::KIND == Kind::ApplicationPolicy {
        // No definition names an application policy: deployments do, at deploy time.
        for deployment in state.store.list(tenant, "deployment").await? {
            if deployment["applicationPolicyId"] == id.as_str() {
                let app = deployment["applicationId"].as_str().unwrap_or("?").to_string();
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
        Kind::Application => one(&defs.applications, defs, id),
    }
}
