//! The autoscaler's errors: what failed under it, with its cause.

use stratos_bus::BusError;
use stratos_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}
