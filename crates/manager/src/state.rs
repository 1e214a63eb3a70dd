use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use stratos_bus::{Bus, Event};
use stratos_model::SUPER_TENANT;
use stratos_store::Store;
use tokio::sync::Mutex;

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
}

impl AppState {
    pub fn new(store: Store, bus: Option<Bus>) -> Self {
        AppState { store, bus, write_lock: Mutex::new(()), repo_policy: Default::default() }
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

/// The tenant a request acts for. Until tokens arrive every request acts for the
/// super tenant; handlers already scope every record by this id.
pub struct TenantId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for TenantId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(TenantId(SUPER_TENANT))
    }
}
