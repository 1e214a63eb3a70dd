//! Bearer tokens: 32 random bytes from the OS, stored only as their SHA-256, with an
//! expiry and a revocation time.
//!
//! A token reads `stratos_<id>_<secret>`: the id (8 random bytes, hex) finds the
//! record, the secret (32 random bytes, hex) is checked against the record's hash in
//! constant time. SHA-256 without salt or stretching is enough for 256 random bits.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "stratos_";

/// A token's stored record. The secret is not in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub secret_sha256: String,
    pub username: String,
    pub tenant_id: i64,
    /// Milliseconds since the Unix epoch, as every time here.
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    /// What it is for: `login from 127.0.0.1`, `stratos up (admin token file)`.
    #[serde(default)]
    pub description: String,
}

impl stratos_store::Record for TokenRecord {
    const COLLECTION: &'static str = "api-token";
    fn id(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.id)
    }
}

/// A token as listed: everything but its hash.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub username: String,
    pub tenant_id: i64,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
    pub description: String,
}

impl TokenRecord {
    /// A new token for `username`: the secret to hand out once, and the record to store.
    pub fn issue(username: &str, tenant_id: i64, ttl_ms: u64, description: String, now: u64) -> (String, TokenRecord) {
        let id = hex(&random::<8>());
        let secret = hex(&random::<32>());
        let record = TokenRecord {
            id: id.clone(),
            secret_sha256: hex(&Sha256::digest(secret.as_bytes())),
            username: username.to_owned(),
            tenant_id,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
            revoked_at: None,
            description,
        };
        (format!("{PREFIX}{id}_{secret}"), record)
    }

    /// Whether `secret` is this token's, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        let presented = hex(&Sha256::digest(secret.as_bytes()));
        presented.as_bytes().ct_eq(self.secret_sha256.as_bytes()).into()
    }

    /// Why it cannot be used at `now`, if it cannot.
    pub fn unusable(&self, now: u64) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the token was revoked")
        } else if now >= self.expires_at {
            Some("the token has expired")
        } else {
            None
        }
    }

    pub fn view(&self) -> TokenView {
        TokenView {
            id: self.id.clone(),
            username: self.username.clone(),
            tenant_id: self.tenant_id,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            description: self.description.clone(),
        }
    }
}

/// `(id, secret)` of a token as presented, if it has the shape of one.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_its_record_only() {
        let (token, record) = TokenRecord::issue("ann", 1, 1000, String::new(), 5);
        let (id, secret) = split(&token).unwrap();
        assert_eq!(id, record.id);
        assert!(record.matches(secret));
        assert!(!record.matches(&secret.replace(&secret[..1], if &secret[..1] == "0" { "1" } else { "0" })));
        assert!(!serde_json::to_string(&record).unwrap().contains(secret), "the secret is never stored");
        assert_eq!(record.unusable(5), None);
        assert_eq!(record.unusable(1005), Some("the token has expired"));
        let (other, _) = TokenRecord::issue("ann", 1, 1000, String::new(), 5);
        assert_ne!(token, other);
    }

    #[test]
    fn malformed_tokens_are_not_split() {
        for bad in
            ["", "stratos_", "stratos_abc_def", "Bearer x", &format!("stratos_{}_{}", "g".repeat(16), "0".repeat(64))]
        {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
