//! The load balancer's errors, typed: `stratos lb` (the binary's edge, with `anyhow`)
//! reports them with their causes.

use stratos_bus::{BusError, SecretError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("subscribing to {filter}")]
    Subscribe {
        filter: &'static str,
        #[source]
        source: BusError,
    },
    #[error("the load balancer lost its event bus subscription")]
    BusLost,
    #[error("--bus-password-file")]
    PasswordFile(#[source] SecretError),
    /// The URL as shown is redacted: the password is never echoed. `env` is the
    /// variable that may hold the password instead.
    #[error("--broker {redacted}: a password on the command line is visible to every user; use --bus-password-file or {env}")]
    PasswordInUrl { redacted: String, env: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
