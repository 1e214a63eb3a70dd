//! The autoscaler's errors: what failed under it, with its cause.

use stratos_bus::BusError;
use stratos_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    // Both causes' messages already say which part failed ("the MQTT broker refused …").
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}
