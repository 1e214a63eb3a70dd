//! The cloud controller's errors: what stops it, and why a store may not be reconciled.

use std::path::PathBuf;

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

/// Why who members run as cannot be had: a `--member-user` or `--member-uids` that
/// says nothing this machine has, or files those users cannot reach (see `member_user`).
#[derive(Debug, thiserror::Error)]
pub enum MemberUserError {
    #[error("{0:?}: give platform, NAME or UID[:GID]")]
    BadUser(String),
    #[error("no user {0:?} on this machine; give UID:GID")]
    NoSuchUser(String),
    #[error("{spec:?}: {gid:?} is not a gid")]
    BadGid { spec: String, gid: String },
    #[error("{0:?}: give FIRST-LAST")]
    NotARange(String),
    #[error("{0:?} is not a uid")]
    BadUid(String),
    #[error("{0:?}: the range must start at 1000 or above and not end before it starts")]
    BadRange(String),
    #[error("{}: {source}", path.display())]
    Inaccessible { path: PathBuf, source: std::io::Error },
    #[error("{} (mode {mode:o}, owner {owner}) is not searchable by uid {uid}", path.display())]
    NotSearchable { path: PathBuf, mode: u32, owner: u32, uid: u32 },
    #[error("{} is not executable by others", path.display())]
    NotExecutable { path: PathBuf },
    #[error("cannot restrict {}: {source}", path.display())]
    Restrict { path: PathBuf, source: std::io::Error },
}
