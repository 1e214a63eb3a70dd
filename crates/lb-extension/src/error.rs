//! What can stop the extension: one typed error, so that `stratos lb-extension` (the
//! binary's edge, with `anyhow`) and tests can tell a missing proxy from a lost bus.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::Kind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} is not installed at {} (Debian: apt-get install -y {kind}; or give its path with --binary)", path.display())]
    NotInstalled { kind: Kind, path: PathBuf },
    #[error("the run directory {0:?} has a character a proxy configuration cannot quote")]
    UnquotableRunDir(String),
    /// A file, directory, socket or process the extension needs.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} refuses the initial configuration {}:\n{output}", path.display())]
    Refused { kind: Kind, path: PathBuf, output: String },
    #[error("{kind} exited ({status}); its output:\n{output}")]
    Exited { kind: Kind, status: ExitStatus, output: String },
    #[error("{kind} did not serve configuration generation {generation} within {timeout:?}; its output:\n{output}")]
    NotInService { kind: Kind, generation: u64, timeout: Duration, output: String },
    #[error("{0} could not be restarted")]
    NotRestarted(Kind),
    #[error("subscribing to {filter}")]
    Subscribe {
        filter: &'static str,
        #[source]
        source: stratos_bus::BusError,
    },
    #[error("the load balancer extension lost its event bus subscription")]
    BusLost,
    #[error("the extension's controller failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// An I/O error with what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// `error: cause: cause`, as a log line or a rejection reason shows it.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
