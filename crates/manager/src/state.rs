use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use stratos_bus::{Bus, Event};
use stratos_store::Store;
use tokio::sync::Mutex;

use crate::auth::rate_limit::{LoginLimiter, LoginLimits};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::quota::Limits;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    /// Absent when the manager runs without a broker (tests of the API alone).
    pub bus: Option<Bus>,
    /// Serialises writes so that reference checks and the write they guard agree.
    pub write_lock: Mutex<()>,
    /// Which artifact repositories applications may name (remote ones unless the
    /// administrator allows local ones).
    pub repo_policy: stratos_model::RepoUrlPolicy,
    pub config: ApiConfig,
    pub login_limiter: LoginLimiter,
    /// Drivers' deploy-time checks (the docker driver's: images exist).
    pub deploy_checks: Vec<std::sync::Arc<dyn crate::deploy_checks::DeployCheck>>,
    /// Runs commands in members (`stratos member exec`): the drivers, through `stratos up`;
    /// `None` without a cloud controller (API tests).
    pub member_exec: Option<std::sync::Arc<dyn crate::member_exec::MemberExec>>,
    /// The drivers' volumes and one-off tasks, through `stratos up`; `None` without a
    /// cloud controller (API tests).
    pub workloads: Option<std::sync::Arc<dyn crate::workloads::Workloads>>,
    /// The providers the running platform has a driver for, as its drivers name
    /// themselves (`local`, `docker`, ...); `None` when the API runs without a cloud
    /// controller (API tests), where nothing is checked against them.
    pub drivers: Option<Vec<String>>,
    /// The platform's secrets key (`stratos config set --secret`); `None`: secrets are refused (503).
    pub secrets: Option<std::sync::Arc<stratos_store::sealed::KeyRing>>,
    /// The platform's metrics (`GET /api/metrics`) and the API's own counters; `None`:
    /// none are served (API tests).
    pub metrics: Option<crate::metrics::ApiMetricsState>,
}

/// The API's settings (`stratos up --api-*` flags).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Origins whose web pages may call the API (`https://console.example.com`); none by default.
    pub allowed_origins: Vec<String>,
    /// DNS names the API answers to besides addresses and `localhost` (`Host` checks).
    pub names: Vec<String>,
    /// How long a login's token lives unless it asks for less.
    pub token_ttl: Duration,
    /// The longest life a login may ask for.
    pub max_token_ttl: Duration,
    pub login_limits: LoginLimits,
    /// Tenant quotas and the platform-wide cap on cluster sizes.
    pub limits: Limits,
    /// Ports the platform itself listens on (the API, the event bus): no cartridge's
    /// proxy port may take one.
    pub reserved_ports: Vec<stratos_model::claims::ReservedPort>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            allowed_origins: Vec::new(),
            names: Vec::new(),
            token_ttl: Duration::from_secs(12 * 3600),
            max_token_ttl: Duration::from_secs(30 * 24 * 3600),
            login_limits: LoginLimits::default(),
            limits: Limits::default(),
            reserved_ports: Vec::new(),
        }
    }
}

impl AppState {
    pub fn new(store: Store, bus: Option<Bus>) -> Self {
        AppState::with_config(store, bus, ApiConfig::default())
    }

    pub fn with_config(store: Store, bus: Option<Bus>, config: ApiConfig) -> Self {
        let login_limiter = LoginLimiter::new(config.login_limits);
        AppState {
            store,
            bus,
            write_lock: Mutex::new(()),
            repo_policy: Default::default(),
            config,
            login_limiter,
            deploy_checks: Vec::new(),
            member_exec: None,
            workloads: None,
            drivers: None,
            secrets: None,
            metrics: None,
        }
    }

    /// Publishes an event; a bus failure is logged, never fails the request that
    /// already stored its change (consumers reconcile from the store).
    pub async fn publish<E: Event>(&self, event: &E) {
        if let Some(bus) = &self.bus {
            if let Err(e) = bus.publish(event).await {
                tracing::warn!(topic = E::NAME, error = %e, "cannot publish event");
            }
        }
    }
}

/// The tenant a request acts for: the authenticated caller's.
pub struct TenantId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for TenantId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Principal::from_request_parts(parts, state).await.map(|p| TenantId(p.tenant_id))
    }
}
