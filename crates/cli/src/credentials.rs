//! What the CLI remembers per API URL, in the user's config directory
//! (`$XDG_CONFIG_HOME/stratos/apis/`, else `~/.config/stratos/apis/`), one 0600 file
//! per URL: the token of `stratos login`, the admin token file `stratos up` wrote, and
//! how to trust the API's certificate.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRecord {
    pub api: String,
    /// The token `stratos login` got; `stratos logout` revokes and forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The admin token file of a `stratos up` serving this URL on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the API's certificate, pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    /// A CA certificate (PEM) to trust for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/stratos`, else `$HOME/.config/stratos`.
pub fn config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("stratos"))
}

/// The URL as records are keyed: no trailing slash, lower case.
pub fn normalise(api: &str) -> String {
    api.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn file_for(api: &str) -> Option<PathBuf> {
    let key: String = normalise(api)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    Some(config_dir()?.join("apis").join(format!("{key}.json")))
}

impl ApiRecord {
    /// The record of `api`, or an empty one.
    pub fn load(api: &str) -> ApiRecord {
        let fresh = ApiRecord { api: normalise(api), ..Default::default() };
        let Some(file) = file_for(api) else { return fresh };
        match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).unwrap_or(fresh),
            Err(_) => fresh,
        }
    }

    /// Writes it (0600, in a 0700 directory); returns where.
    pub fn save(&self) -> Result<PathBuf> {
        let file = file_for(&self.api).context("no config directory: set HOME or XDG_CONFIG_HOME")?;
        let dir = file.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for d in [dir, dir.parent().unwrap_or(dir)] {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
        let text = serde_json::to_vec_pretty(self).expect("records serialise");
        stratos_manager::files::write_private(&file, &text)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(file)
    }

    /// The token to send: the login's, else the one in `stratos up`'s token file.
    pub fn token(&self) -> Option<String> {
        self.token.clone().or_else(|| self.token_file.as_deref().and_then(read_token_file))
    }
}

/// A token file's token (its first line).
pub fn read_token_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.lines().next()?.trim().to_owned();
    (!token.is_empty()).then_some(token)
}
