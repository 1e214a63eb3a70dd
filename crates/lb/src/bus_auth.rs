//! How a separately run platform process (`stratos lb`, `stratos lb-extension`)
//! authenticates on the event bus: the platform's credentials, the password from a
//! file or the environment, never from the command line (which every user can read).

use std::path::PathBuf;

use stratos_bus::{Credentials, PlatformSecret, PLATFORM_USERNAME};

use crate::error::{Error, Result};

/// The bus credentials of a platform component.
#[derive(Debug, Clone, clap::Args)]
pub struct BusAuth {
    /// The username on the event bus: the platform's (`stratos`) on the embedded broker.
    #[arg(long, env = "STRATOS_BUS_USERNAME", default_value = PLATFORM_USERNAME)]
    pub bus_username: String,
    /// A file holding the bus password. For the embedded broker, that is the platform
    /// secret `stratos up` keeps in its data directory (`<data-dir>/bus-password`, mode 0600).
    /// Without it, the password is taken from STRATOS_BUS_PASSWORD; with neither, the
    /// connection is anonymous (which only an open broker accepts).
    #[arg(long, env = "STRATOS_BUS_PASSWORD_FILE")]
    pub bus_password_file: Option<PathBuf>,
}

/// The environment variable that may hold the bus password.
pub const PASSWORD_ENV: &str = "STRATOS_BUS_PASSWORD";

impl BusAuth {
    /// The credentials to connect with, if a password was given.
    pub fn credentials(&self) -> Result<Option<Credentials>> {
        let password = match &self.bus_password_file {
            Some(path) => {
                Some(PlatformSecret::read(path).map_err(Error::PasswordFile)?.platform_credentials().password)
            }
            None => std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
        };
        Ok(password.map(|password| Credentials { username: self.bus_username.clone(), password }))
    }
}

/// Refuses a password written into a `--broker` URL: it would be readable by every
/// user of the machine in the process list.
pub fn check_broker_url(url: &str) -> Result<()> {
    match stratos_bus::split_credentials(url).0 {
        Some(c) if !c.password.is_empty() => {
            Err(Error::PasswordInUrl { redacted: stratos_bus::redact(url), env: PASSWORD_ENV })
        }
        _ => Ok(()),
    }
}
