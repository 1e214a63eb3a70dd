//! The scrape token: what Prometheus presents (`Authorization: Bearer <token>`) to read
//! metrics without a user's token. Kept as its SHA-256 only, compared in constant time.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest scrape token taken: a guessable one would open the metrics to anyone.
pub const MIN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the metrics token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the metrics token file {path} holds a token of {len} characters; at least {MIN_LEN} are needed")]
    TooShort { path: PathBuf, len: usize },
}

/// A scrape token, as its digest.
#[derive(Clone)]
pub struct ScrapeToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ScrapeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeToken(..)")
    }
}

impl ScrapeToken {
    /// The token in `path`: its first line, trimmed. Never logged.
    pub fn from_file(path: &Path) -> Result<ScrapeToken, TokenError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: path.to_path_buf(), source })?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.len() < MIN_LEN {
            return Err(TokenError::TooShort { path: path.to_path_buf(), len: token.len() });
        }
        Ok(ScrapeToken::new(token))
    }

    pub fn new(token: &str) -> ScrapeToken {
        ScrapeToken { digest: Sha256::digest(token.as_bytes()).into() }
    }

    /// Whether `presented` is the token; the time taken does not depend on how much of
    /// it is right (digests of equal length, compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }

    /// Whether an `Authorization` header's value is `Bearer <the token>`.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        bearer(authorization).is_some_and(|t| self.matches(t))
    }
}

/// The token of a `Bearer <token>` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_authorizes() {
        let t = ScrapeToken::new("a-scrape-token-0123456789");
        assert!(t.authorizes(Some("Bearer a-scrape-token-0123456789")));
        assert!(t.authorizes(Some("bearer  a-scrape-token-0123456789 ")));
        for wrong in [
            None,
            Some(""),
            Some("a-scrape-token-0123456789"),
            Some("Bearer a-scrape-token-012345678"),
            Some("Basic x"),
        ] {
            assert!(!t.authorizes(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn short_or_missing_files_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("stratos-metrics-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(matches!(ScrapeToken::from_file(&short), Err(TokenError::TooShort { len: 3, .. })));
        assert!(matches!(ScrapeToken::from_file(&dir.join("none")), Err(TokenError::Read { .. })));
        let good = dir.join("good");
        std::fs::write(&good, "  0123456789abcdef0123  \nignored\n").unwrap();
        assert!(ScrapeToken::from_file(&good).unwrap().matches("0123456789abcdef0123"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
