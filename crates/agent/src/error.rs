//! How the agent fails: one typed error, which the `stratos` binary prints with its
//! causes (`error: cannot open app.log: Permission denied`) and turns into a non-zero exit.

use std::path::PathBuf;
use std::time::Duration;

use stratos_bus::BusError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot handle signals")]
    Signals(#[source] std::io::Error),
    #[error("cannot read the working directory")]
    WorkingDirectory(#[source] std::io::Error),
    #[error("cannot open {}", path.display())]
    AppLog { path: PathBuf, source: std::io::Error },
    #[error("cannot wait for the app")]
    WaitForApp(#[source] std::io::Error),
    /// The app could not start (`InstanceStartFailedEvent` was sent): what went wrong, with
    /// the tail of its output.
    #[error("{0}")]
    StartFailed(String),
    /// The app exited on its own after it was activated.
    #[error("app {0}")]
    AppEnded(String),
    #[error("STRATOS_BUS_USERNAME and {0} go together")]
    HalfCredentials(&'static str),
    #[error("giving up on the event bus after {after:?}")]
    BusUnreachable { after: Duration, source: BusError },
    #[error(transparent)]
    Bus(#[from] BusError),
}
