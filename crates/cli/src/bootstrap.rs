//! What `stratos up` leaves for the CLI on the same machine: the first admin's password
//! (once) and a live admin token in 0600 files of the data directory, and the token
//! file's path recorded for the API's URL in the user's config directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use stratos_manager::bootstrap::{self, PASSWORD_FILE, TOKEN_FILE};
use stratos_manager::files::write_private;
use stratos_store::Store;

use crate::credentials::{read_token_file, ApiRecord};

pub struct AdminCredentials {
    pub token_file: PathBuf,
    /// Where the first admin's password was written, when it was created now.
    pub password_file: Option<PathBuf>,
}

/// Creates the first admin if the platform has none, and (re)writes the admin token file.
pub async fn admin_credentials(store: &Store, data_dir: &Path) -> Result<AdminCredentials> {
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let password_file = match bootstrap::first_admin(store).await.map_err(|e| anyhow!(e))? {
        Some(password) => {
            let file = data_dir.join(PASSWORD_FILE);
            write_private(&file, format!("{password}\n").as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
            Some(file)
        }
        None => None,
    };
    let token_file = data_dir.join(TOKEN_FILE);
    let current = read_token_file(&token_file);
    let token = bootstrap::admin_token(store, current.as_deref()).await.map_err(|e| anyhow!(e))?;
    write_private(&token_file, format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write {}", token_file.display()))?;
    Ok(AdminCredentials { token_file, password_file })
}

/// The address a client on this machine reaches `listen` at: loopback for a wildcard.
pub fn client_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// Records the token file (and the certificate's fingerprint) for `api` in the user's
/// config directory, so that client commands find them with no flag. A failure is
/// only a warning: `--token` and `STRATOS_TOKEN` still work.
pub fn record_for_cli(api: &str, token_file: &Path, fingerprint: Option<&str>) {
    let mut record = ApiRecord::load(api);
    record.token_file = Some(token_file.to_owned());
    if let Some(f) = fingerprint {
        record.tls_fingerprint = Some(f.to_owned());
    }
    match record.save() {
        Ok(file) => tracing::info!(api, record = %file.display(), "recorded the admin token file for the CLI"),
        Err(e) => tracing::warn!(api, error = %format!("{e:#}"), "cannot record the admin token file for the CLI"),
    }
}
