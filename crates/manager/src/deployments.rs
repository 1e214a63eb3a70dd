//! Deploying and undeploying applications (Apache Stratos 4.1 routes), their
//! runtime status, and the topology.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use stratos_bus::events::ApplicationDeployedEvent;
use stratos_model::topology::{Cluster, Member, Topology};
use stratos_model::{
    cluster_id, Application, ApplicationMonitorStatus, Cartridge, CartridgeSubscription, ClusterScale, ClusterSpec,
    Definitions, Deployment, DeploymentStatus, GroupSpec, MonitorStatus, Problems,
};
use stratos_store::{ScalingHistory, StoreError};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::quota;
use crate::state::{AppState, TenantId};

/// Suffix of the host name every cluster gets: `<application>.<alias>.<domain>`.
pub const DEFAULT_DOMAIN: &str = "stratos.local";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/applications/{id}/deploy/{policy}", post(deploy))
        .route("/api/applications/{id}/undeploy", post(undeploy))
        .route("/api/applications/{id}/runtime", get(runtime))
        .route("/api/topology", get(topology))
        .route("/api/clusters/{id}/scalingHistory", get(scaling_history))
}

async fn deploy(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path((id, policy)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let defs = state.store.load_definitions(tenant).await?;
    let app =
        defs.applications.get(&id).ok_or_else(|| ApiError::not_found(format!("application {id:?} does not exist")))?;
    if !defs.application_policies.contains_key(&policy) {
        return Err(ApiError::not_found(format!("application policy {policy:?} does not exist")));
    }
    if state.store.get_record::<Deployment>(tenant, &id).await?.is_some() {
        return Err(ApiError::conflict(format!("application {id:?} is already deployed; undeploy it first")));
    }
    // First: a provider with no driver would fail every start, whatever else is right.
    if let Some(drivers) = &state.drivers {
        let missing = crate::deploy_checks::missing_drivers(app, &policy, &defs, drivers);
        if !missing.is_empty() {
            return Err(ApiError::invalid(
                format!("cannot deploy application {id:?} with policy {policy:?}: a provider has no driver here"),
                missing,
            ));
        }
    }
    let mut deployment = plan(app, &policy, tenant, &defs)
        .map_err(|p| ApiError::invalid(format!("cannot deploy application {id:?} with policy {policy:?}"), p))?;
    let placement = crate::deploy_checks::run(&state.deploy_checks, app, &policy, &defs).await;
    if !placement.is_empty() {
        return Err(ApiError::invalid(format!("cannot deploy application {id:?} with policy {policy:?}"), placement));
    }
    let mut too_big = Problems::default();
    quota::check_cluster_sizes(app, state.config.limits.max_cluster_size, &mut too_big);
    if !too_big.is_empty() {
        return Err(ApiError::invalid(format!("cannot deploy application {id:?}: a cluster is too large"), too_big));
    }
    if tenant != stratos_model::SUPER_TENANT {
        // An unreadable deployment fails the deploy (naming it): its size is unknown.
        let existing: Vec<Deployment> = state.store.list_records(tenant).await?.all()?;
        let quota = crate::tenants::quota_of(&state.store, tenant).await?.effective(&state.config.limits);
        quota::check_quota(&existing, &deployment, quota).map_err(|problems| ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("deploying application {id:?} would exceed the tenant's quota"),
            problems: problems.0,
        })?;
    }
    // Host names and cluster ids belong to one cluster: a second claim is refused.
    crate::claims::refuse_clashes(&state, app, &deployment, &defs, tenant)
        .await
        .map_err(|e| e.context(format!("cannot deploy application {id:?}")))?;
    // What every cluster's members start from, pinned (`rollouts`).
    crate::rollouts::pin_at_deploy(&state, tenant, &mut deployment, &defs).await?;
    state.store.put_record(tenant, &deployment).await?;
    tracing::info!(application_id = %id, policy = %policy, tenant, "application deployed");
    state
        .publish(&ApplicationDeployedEvent { application_id: id, tenant_id: tenant, application_policy_id: policy })
        .await;
    Ok((StatusCode::ACCEPTED, Json(deployment)))
}

/// Turns an application and an application policy into the clusters to run,
/// checking that every cluster can be placed and started.
pub fn plan(app: &Application, policy_id: &str, tenant: i64, defs: &Definitions) -> Result<Deployment, Problems> {
    let mut problems = Problems::default();
    let policy = &defs.application_policies[policy_id];
    let mut clusters = Vec::new();
    for (at, sub, deployment_policy) in app.subscriptions_with_policy() {
        let Some(cartridge) = defs.cartridges.get(&sub.cartridge_type) else { continue };
        if let Some(dp) = defs.deployment_policies.get(deployment_policy) {
            let usable: Vec<_> =
                dp.network_partitions.iter().filter(|np| policy.network_partitions.contains(&np.id)).collect();
            if usable.is_empty() {
                problems.push(
                    policy_field(app, &at),
                    format!(
                        "deployment policy {:?} uses none of the network partitions of application policy {policy_id:?}",
                        dp.id
                    ),
                );
            }
            for np_ref in usable {
                let Some(np) = defs.network_partitions.get(&np_ref.id) else { continue };
                for part in np_ref.partitions.iter().filter_map(|p| np.partition(&p.id)) {
                    let provider = np.provider_of(part).unwrap_or_default();
                    if cartridge.iaas(provider).is_none() {
                        problems.push(
                            format!("{at}.type"),
                            format!(
                                "cartridge {:?} has no iaasProvider of type {provider:?}, which partition {:?} of network partition {:?} uses",
                                cartridge.cartridge_type, part.id, np.id
                            ),
                        );
                    }
                }
            }
        }
        clusters.push(cluster_spec(app, sub, deployment_policy, cartridge));
    }
    problems.into_result()?;
    let mut deployment = Deployment {
        application_id: app.application_id.clone(),
        tenant_id: tenant,
        application_policy_id: policy_id.to_string(),
        status: DeploymentStatus::Deployed,
        deployed_at: stratos_bus::now_millis(),
        clusters,
        termination_behaviour: app.components.dependencies.as_ref().map(|d| d.termination_behaviour),
        groups: GroupSpec::tree(&app.components.groups),
    };
    apply_startup_orders(app, &mut deployment);
    Ok(deployment)
}

/// The cluster a subscription runs as. Its host names are the subscription's, then
/// `<application>.<alias>.<cartridge host or stratos.local>`.
/// `deployment_policy` is the one it is placed by (its own, or its group's).
pub fn cluster_spec(
    app: &Application,
    sub: &CartridgeSubscription,
    deployment_policy: &str,
    cartridge: &Cartridge,
) -> ClusterSpec {
    let info = &sub.subscribable_info;
    let domain = cartridge.host.clone().unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
    let mut host_names = info.host_names.clone();
    host_names.push(format!("{}.{}.{domain}", app.application_id, info.alias));
    ClusterSpec {
        cluster_id: cluster_id(&app.application_id, &info.alias),
        alias: info.alias.clone(),
        cartridge_type: sub.cartridge_type.clone(),
        min: sub.cartridge_min,
        max: sub.cartridge_max,
        desired: sub.cartridge_min,
        deployment_policy: deployment_policy.to_owned(),
        autoscaling_policy: info.autoscaling_policy.clone(),
        host_names,
        artifact_repository: info.artifact_repository.as_ref().map(|r| r.repo_url.clone()),
        depends_on: Vec::new(),
        revision: None,
    }
}

/// The field that names the deployment policy of the subscription at `at`: its own, or
/// that of the group that gives it.
pub fn policy_field(app: &Application, at: &str) -> String {
    app.deployment_policy_field(at).unwrap_or_else(|| format!("{at}.subscribableInfo.deploymentPolicy"))
}

/// Startup orders: each component waits for the one before it in every list. A
/// group stands for its monitor, so it is active when every cluster in it, nested
/// groups included, is; the controller waits for each of them.
fn apply_startup_orders(app: &Application, deployment: &mut Deployment) {
    for order in app.components.dependencies.iter().flat_map(|d| &d.startup_orders) {
        for pair in order.aliases.windows(2) {
            let before = deployment.expand(&pair[0]);
            for later in deployment.expand(&pair[1]) {
                if let Some(c) = deployment.clusters.iter_mut().find(|c| c.alias == later) {
                    for alias in &before {
                        if !c.depends_on.contains(alias) {
                            c.depends_on.push(alias.clone());
                        }
                    }
                }
            }
        }
    }
}

async fn undeploy(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    p.require_write()?;
    let tenant = p.tenant_id;
    let _write = state.write_lock.lock().await;
    let mut deployment = state
        .store
        .get_record::<Deployment>(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("application {id:?} is not deployed")))?;
    deployment.status = DeploymentStatus::Undeploying;
    state.store.put_record(tenant, &deployment).await?;
    tracing::info!(application_id = %id, tenant, "application undeploying");
    state.publish(&stratos_bus::events::ApplicationUndeployedEvent { application_id: id, tenant_id: tenant }).await;
    Ok((StatusCode::ACCEPTED, Json(deployment)))
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    pub application_id: String,
    /// `not-deployed`, `deployed`, `undeploying`.
    pub status: String,
    pub application_policy_id: Option<String>,
    /// The autoscaler's application monitor: `Created`, `Active`, `Inactive`,
    /// `Terminating`; `None` when not deployed.
    pub application_status: Option<MonitorStatus>,
    /// The group monitors, nested as in the application.
    pub groups: Vec<GroupRuntime>,
    pub clusters: Vec<ClusterRuntime>,
    /// Stored documents of the application that cannot be read, each naming its
    /// document and why: the controller and the autoscaler leave what they concern
    /// as it is until they are fixed (or removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRuntime {
    pub alias: String,
    pub name: String,
    /// As the autoscaler's group monitor last rolled it up from its children.
    pub status: MonitorStatus,
    pub min: u32,
    pub max: u32,
    pub scaling_enabled: bool,
    /// Aliases of the clusters directly in the group.
    pub clusters: Vec<String>,
    pub groups: Vec<GroupRuntime>,
}

impl GroupRuntime {
    /// The deployment's group tree with the statuses the autoscaler recorded
    /// (`Created` until it has looked at the group).
    fn tree(groups: &[GroupSpec], status: Option<&ApplicationMonitorStatus>) -> Vec<GroupRuntime> {
        groups
            .iter()
            .map(|g| GroupRuntime {
                alias: g.alias.clone(),
                name: g.name.clone(),
                status: status.and_then(|s| s.groups.get(&g.alias).copied()).unwrap_or(MonitorStatus::Created),
                min: g.min,
                max: g.max,
                scaling_enabled: g.scaling_enabled,
                clusters: g.clusters.clone(),
                groups: GroupRuntime::tree(&g.groups, status),
            })
            .collect()
    }
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRuntime {
    pub cluster_id: String,
    pub alias: String,
    pub cartridge_type: String,
    /// The alias of the innermost group the cluster is in.
    pub group: Option<String>,
    /// `Created`, `Active`, `Inactive`, `Terminating`, or `Pending` before the controller created it.
    pub status: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub active_members: u32,
    pub host_names: Vec<String>,
    pub error: Option<String>,
    pub members: Vec<Member>,
}

async fn runtime(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<Runtime>> {
    let defs = state.store.load_definitions(tenant).await?;
    let stored = match state.store.get_record::<Deployment>(tenant, &id).await {
        Ok(stored) => stored,
        Err(StoreError::Unreadable(bad)) => {
            tracing::error!(error = %bad, "application status: the deployment cannot be read");
            return Ok(Json(Runtime {
                application_id: id,
                status: "unreadable".into(),
                application_policy_id: None,
                application_status: None,
                groups: vec![],
                clusters: vec![],
                errors: vec![bad.to_string()],
            }));
        }
        Err(e) => return Err(e.into()),
    };
    if stored.is_none() && !defs.applications.contains_key(&id) {
        return Err(ApiError::not_found(format!("application {id:?} does not exist")));
    }
    let Some(deployment) = stored else {
        return Ok(Json(Runtime {
            application_id: id,
            status: "not-deployed".into(),
            application_policy_id: None,
            application_status: None,
            groups: vec![],
            clusters: vec![],
            errors: vec![],
        }));
    };
    let (topology, unreadable_topology) = state.store.read_topology().await?;
    let scales = state.store.list_records::<ClusterScale>(tenant).await?;
    let mut errors = Vec::new();
    let monitors = match state.store.get_record::<ApplicationMonitorStatus>(tenant, &id).await {
        Ok(monitors) => monitors.filter(|s| s.deployed_at == deployment.deployed_at),
        Err(StoreError::Unreadable(bad)) => {
            errors.push(bad.to_string());
            None
        }
        Err(e) => return Err(e.into()),
    };
    let clusters = deployment
        .clusters
        .iter()
        .map(|spec| {
            let cluster = topology.cluster(&spec.cluster_id).filter(|c| c.tenant_id == tenant);
            let members: Vec<Member> = cluster.map(|c| c.members.values().cloned().collect()).unwrap_or_default();
            // The cluster's own documents that cannot be read come before its last error.
            let bad_cluster = unreadable_topology.iter().find(|u| u.is::<Cluster>(&spec.cluster_id));
            let bad: Vec<String> = bad_cluster
                .into_iter()
                .chain(scales.unreadable.iter().filter(|u| u.id == spec.cluster_id))
                .map(|u| u.to_string())
                .collect();
            errors.extend(bad.iter().cloned());
            let status = match (bad_cluster, cluster) {
                (Some(_), _) => "Unreadable".to_string(),
                (None, Some(c)) => format!("{:?}", c.status),
                (None, None) => "Pending".into(),
            };
            let error = bad.into_iter().chain(cluster.and_then(|c| c.error.clone())).reduce(|a, b| format!("{a}; {b}"));
            ClusterRuntime {
                cluster_id: spec.cluster_id.clone(),
                alias: spec.alias.clone(),
                cartridge_type: spec.cartridge_type.clone(),
                group: innermost_group(&deployment.groups, &spec.alias),
                status,
                min: spec.min,
                max: spec.max,
                desired: spec.desired,
                active_members: members.iter().filter(|m| m.status.serves_traffic()).count() as u32,
                host_names: spec.host_names.clone(),
                error,
                members,
            }
        })
        .collect();
    let status = match deployment.status {
        DeploymentStatus::Deployed => "deployed",
        DeploymentStatus::Undeploying => "undeploying",
    };
    Ok(Json(Runtime {
        application_id: id,
        status: status.into(),
        application_policy_id: Some(deployment.application_policy_id),
        application_status: Some(monitors.as_ref().map_or(MonitorStatus::Created, |s| s.status)),
        groups: GroupRuntime::tree(&deployment.groups, monitors.as_ref()),
        clusters,
        errors,
    }))
}

fn innermost_group(groups: &[GroupSpec], alias: &str) -> Option<String> {
    groups.iter().find_map(|g| {
        innermost_group(&g.groups, alias).or_else(|| g.clusters.iter().any(|c| c == alias).then(|| g.alias.clone()))
    })
}

/// The whole topology for a platform admin; a tenant's users see their tenant's clusters only.
/// A cluster whose document cannot be read is left out and logged; `application status`
/// names it (one bad document does not hide every other cluster).
async fn topology(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Json<Topology>> {
    let (mut topology, unreadable) = state.store.read_topology().await?;
    for bad in unreadable {
        tracing::error!(error = %bad, "topology: a document cannot be read; left out");
    }
    if !p.is_platform_admin() {
        for service in topology.services.values_mut() {
            service.clusters.retain(|_, c| c.tenant_id == p.tenant_id);
        }
        topology.services.retain(|_, s| !s.clusters.is_empty());
    }
    Ok(Json(topology))
}

/// The autoscaler's last decisions for a cluster, oldest first, each with its inputs.
async fn scaling_history(
    State(state): State<Arc<AppState>>,
    TenantId(tenant): TenantId,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    if let Some(history) = state.store.get_record::<ScalingHistory>(tenant, &id).await? {
        return Ok(Json(serde_json::Value::Array(history.decisions)));
    }
    // A cluster whose document cannot be read has no tenant to check: "does not exist"
    // here, named in `application status` to its own tenant.
    let (topology, _unreadable) = state.store.read_topology().await?;
    let known = topology.cluster(&id).is_some_and(|c| c.tenant_id == tenant);
    if known {
        Ok(Json(serde_json::Value::Array(Vec::new())))
    } else {
        Err(ApiError::not_found(format!("cluster {id:?} does not exist")))
    }
}
