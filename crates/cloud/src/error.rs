//! The cloud controller's errors: what stops it, and why a store may not be reconciled.

use crate::driver::DriverError;

/// Why the controller cannot start (or goes no further).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error("cannot read the topology: {0}")]
    Store(#[from] stratos_store::StoreError),
    #[error("cannot subscribe to {filter}: {source}")]
    Subscribe { filter: &'static str, source: stratos_bus::BusError },
    #[error("the controller runs once")]
    AlreadyRan,
}

/// Why the store may not reconcile the members that run (see `ownership`).
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("the store: {0}")]
    Store(#[from] stratos_store::StoreError),
    #[error("cannot list the {driver} driver's members: {source}")]
    List { driver: &'static str, source: DriverError },
    /// The operator's message: how many members run that the store does not know, and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("cannot adopt: {0}")]
    CannotAdopt(String),
    #[error(transparent)]
    Terminate(DriverError),
}
