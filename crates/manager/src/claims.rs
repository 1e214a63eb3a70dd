//! One owner per host name, cluster id and TCP proxy port: the manager's side of
//! [`stratos_model::claims`]. A deploy, or an application added or changed, whose
//! clusters would claim what a deployed cluster of another application holds, or a
//! port the platform itself listens on, is a 409 naming each field at fault; the
//! owner is named only to its own tenant.

use std::collections::HashMap;

use axum::http::StatusCode;
use stratos_model::claims::{clashes, reserved_port_clashes, Clash, ClashOn, ClusterClaims};
use stratos_model::{Application, Definitions, Deployment, DeploymentStatus, Problems};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What every deployed cluster (of every tenant, undeploying ones included: their
/// members still serve) claims. A cluster's cartridge is multi-tenant when its
/// tenant's cartridge says so now.
pub async fn deployed_claims(state: &AppState) -> ApiResult<Vec<ClusterClaims>> {
    let mut cartridges: HashMap<i64, Definitions> = HashMap::new();
    let mut out = Vec::new();
    // An unreadable deployment fails the check, naming it: what it claims is unknown.
    for deployment in state.store.list_records_all_tenants::<Deployment>().await?.all()? {
        let tenant = deployment.tenant_id;
        let defs = match cartridges.entry(tenant) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(state.store.load_definitions(tenant).await?),
        };
        out.extend(ClusterClaims::of(&deployment, |spec| defs.cartridges.get(&spec.cartridge_type)));
    }
    Ok(out)
}

/// Refuses `deployment` (of `app`, by `caller_tenant`) when one of its clusters claims
/// a cluster id or host name that another deployed application's cluster holds.
pub async fn refuse_clashes(
    state: &AppState,
    app: &Application,
    deployment: &Deployment,
    defs: &Definitions,
    caller_tenant: i64,
) -> ApiResult<()> {
    let new = ClusterClaims::of(deployment, |spec| defs.cartridges.get(&spec.cartridge_type));
    let mut found = reserved_port_clashes(&new, &state.config.reserved_ports);
    found.extend(clashes(&new, &deployed_claims(state).await?, caller_tenant));
    if found.is_empty() {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::CONFLICT,
        error: "a host name, cluster id or proxy port it claims already belongs to another deployed application, or to the platform".into(),
        problems: problems(app, &found).0,
    })
}

/// Checks an application being added or changed as if it were deployed now.
pub async fn refuse_application_clashes(
    state: &AppState,
    app: &Application,
    defs: &Definitions,
    caller_tenant: i64,
) -> ApiResult<()> {
    let clusters = app
        .subscriptions_with_policy()
        .into_iter()
        .filter_map(|(_, sub, policy)| {
            defs.cartridges.get(&sub.cartridge_type).map(|c| crate::deployments::cluster_spec(app, sub, policy, c))
        })
        .collect();
    let provisional = Deployment {
        application_id: app.application_id.clone(),
        tenant_id: caller_tenant,
        application_policy_id: String::new(),
        status: DeploymentStatus::Deployed,
        deployed_at: 0,
        clusters,
        termination_behaviour: None,
        groups: Vec::new(),
    };
    refuse_clashes(state, app, &provisional, defs, caller_tenant).await
}

/// Each clash at the field of the application that makes the claim.
fn problems(app: &Application, found: &[Clash]) -> Problems {
    let at: HashMap<&str, (String, usize)> = app
        .subscriptions()
        .into_iter()
        .map(|(at, sub)| (sub.subscribable_info.alias.as_str(), (at, sub.subscribable_info.host_names.len())))
        .collect();
    let mut problems = Problems::default();
    for clash in found {
        let (path, given) = at.get(clash.alias.as_str()).cloned().unwrap_or_else(|| ("components".into(), 0));
        let field = match clash.on {
            ClashOn::HostName(j) if j < given => format!("{path}.subscribableInfo.hostNames[{j}]"),
            // The default host name and the cluster id come from the application id and the alias.
            ClashOn::HostName(_) | ClashOn::ClusterId => format!("{path}.subscribableInfo.alias"),
            // The proxy port is the cartridge's: the application names the cartridge by its type.
            ClashOn::ProxyPort(_) => format!("{path}.type"),
        };
        problems.push(field, clash.message.clone());
    }
    problems
}
