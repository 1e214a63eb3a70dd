//! Who is on the bus: the platform's shared secret, the credentials it issues to
//! each member, and the identity a CONNECT's username and password prove.
//!
//! A member's password is an HMAC-SHA256 of its cluster and member id under the
//! platform secret, so the broker's gate verifies it without a registry (and after
//! a restart, for members it adopts); its username names both ids, so the gate
//! knows which topics are the member's. Revocation (a terminated member) is the
//! gate's: it refuses a verified member it has seen terminated.

use std::fmt;
use std::io::Write;
use std::path::Path;

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The username platform components connect with.
pub const PLATFORM_USERNAME: &str = "stratos";
/// Members' usernames: `member/<clusterId>/<memberId>`.
const MEMBER_PREFIX: &str = "member/";
/// Separates this use of the secret from any other (domain separation).
const MEMBER_CONTEXT: &[u8] = b"stratos bus member credential v1\0";

/// A username and password for the broker. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Who a connection proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A platform component (controller, health, autoscaler, manager, load balancers).
    Platform,
    /// One member's agent.
    Member { cluster_id: String, member_id: String },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Platform => write!(f, "platform"),
            Identity::Member { member_id, .. } => write!(f, "member {member_id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the bus password from {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the bus password to {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("the bus password in {path} is empty")]
    Empty { path: String },
    #[error("cannot generate a random secret: {0}")]
    Random(String),
}

/// The platform's bus secret: the platform components' password, and the key of
/// members' credentials. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct PlatformSecret(String);

impl fmt::Debug for PlatformSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlatformSecret(<redacted>)")
    }
}

impl PlatformSecret {
    /// A new random secret: 32 bytes from the operating system, hex-encoded.
    pub fn generate() -> Result<PlatformSecret, SecretError> {
        Ok(PlatformSecret(random_hex(32)?))
    }

    /// Takes a secret given by the operator (a password file, an environment variable).
    pub fn new(secret: impl Into<String>) -> PlatformSecret {
        PlatformSecret(secret.into())
    }

    /// Reads the secret from `path`, or creates it there (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<PlatformSecret, SecretError> {
        if path.exists() {
            return PlatformSecret::read(path);
        }
        let secret = PlatformSecret::generate()?;
        let write_err =
            |e: std::io::Error| SecretError::Write { path: path.display().to_string(), reason: e.to_string() };
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode_0600().open(path).map_err(write_err)?;
        file.write_all(secret.0.as_bytes()).and_then(|()| file.sync_all()).map_err(write_err)?;
        Ok(secret)
    }

    /// Reads a secret from a file (surrounding whitespace ignored).
    pub fn read(path: &Path) -> Result<PlatformSecret, SecretError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(SecretError::Empty { path: path.display().to_string() });
        }
        Ok(PlatformSecret(secret.to_string()))
    }

    /// The credentials platform components connect with.
    pub fn platform_credentials(&self) -> Credentials {
        Credentials { username: PLATFORM_USERNAME.into(), password: self.0.clone() }
    }

    /// The credentials the controller gives the member it starts.
    pub fn member_credentials(&self, cluster_id: &str, member_id: &str) -> Credentials {
        Credentials {
            username: format!("{MEMBER_PREFIX}{cluster_id}/{member_id}"),
            password: hex(&self.member_mac(cluster_id, member_id).finalize().into_bytes()),
        }
    }

    /// Who `username` and `password` prove to be, if anyone. Constant time in the
    /// password's content.
    pub fn verify(&self, username: &str, password: &str) -> Option<Identity> {
        if username == PLATFORM_USERNAME {
            return bool::from(password.as_bytes().ct_eq(self.0.as_bytes())).then_some(Identity::Platform);
        }
        let (cluster_id, member_id) = username.strip_prefix(MEMBER_PREFIX)?.split_once('/')?;
        if cluster_id.is_empty() || member_id.is_empty() || member_id.contains('/') {
            return None;
        }
        let tag = unhex(password)?;
        self.member_mac(cluster_id, member_id).verify_slice(&tag).ok()?;
        Some(Identity::Member { cluster_id: cluster_id.into(), member_id: member_id.into() })
    }

    fn member_mac(&self, cluster_id: &str, member_id: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(MEMBER_CONTEXT);
        // Lengths first, so that no two (cluster, member) pairs give the same input.
        mac.update(&(cluster_id.len() as u64).to_be_bytes());
        mac.update(cluster_id.as_bytes());
        mac.update(member_id.as_bytes());
        mac
    }
}

/// `bytes` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String, SecretError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// `OpenOptions::mode(0o600)` on Unix, nothing elsewhere.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    #[cfg(unix)]
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
    #[cfg(not(unix))]
    fn mode_0600(&mut self) -> &mut Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_credentials_verify_and_name_the_member() {
        let secret = PlatformSecret::new("s3cret");
        let c = secret.member_credentials("php.web", "php.web-1");
        assert_eq!(c.username, "member/php.web/php.web-1");
        assert_eq!(
            secret.verify(&c.username, &c.password),
            Some(Identity::Member { cluster_id: "php.web".into(), member_id: "php.web-1".into() })
        );
        // Another member's password, another secret, another cluster: refused.
        let other = secret.member_credentials("php.web", "php.web-2");
        assert_eq!(secret.verify(&c.username, &other.password), None);
        assert_eq!(PlatformSecret::new("other").verify(&c.username, &c.password), None);
        assert_eq!(secret.verify("member/php.webx/php.web-1", &c.password), None);
        assert_eq!(secret.verify("member/php.web/php.web-1/x", &c.password), None);
        assert_eq!(secret.verify(&c.username, "zz"), None);
        assert_eq!(secret.verify(&c.username, ""), None);
    }

    #[test]
    fn platform_password_is_the_secret() {
        let secret = PlatformSecret::new("s3cret");
        assert_eq!(secret.verify("stratos", "s3cret"), Some(Identity::Platform));
        assert_eq!(secret.verify("stratos", "s3cre"), None);
        assert_eq!(secret.verify("root", "s3cret"), None);
    }

    #[test]
    fn secrets_never_print() {
        let secret = PlatformSecret::new("s3cret");
        assert!(!format!("{secret:?}").contains("s3cret"));
        assert!(!format!("{:?}", secret.platform_credentials()).contains("s3cret"));
    }

    #[test]
    fn secret_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus-secret");
        let first = PlatformSecret::load_or_create(&path).unwrap();
        let again = PlatformSecret::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        assert_eq!(first.0.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
