//! Which artifact repositories a tenant may name: the agent clones them with `git` on
//! the platform's machines, so a repository must be a remote one. A local path or a
//! `file://` URL would read the platform's own files (another tenant's clone, the
//! store), and git's remote helpers (`ext::<command>`, `fd::<n>`) run commands or hang
//! on a descriptor. Classified the way git reads them: `scheme://...` is a URL,
//! `[user@]host:path` (a colon before any slash) is scp-style ssh, anything else a path.

use serde::{Deserialize, Serialize};

/// The URL schemes a repository may use. `http` is there because Apache Stratos 4.1
/// samples use it (it is no weaker than `git://`).
pub const REMOTE_SCHEMES: &[&str] = &["https", "http", "ssh", "git", "git+ssh", "ssh+git"];

/// What the platform's administrator allows besides remote repositories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoUrlPolicy {
    /// Local paths and `file://` URLs (`stratos up --allow-local-repos`): for a
    /// single-user machine and tests, never for tenants one does not trust.
    pub allow_local: bool,
}

/// Why `url` may not be cloned under `policy`; `Ok` when it may.
pub fn check_repo_url(url: &str, policy: RepoUrlPolicy) -> Result<(), String> {
    let remote = || format!("use {} or scp-style ssh (git@host:path)", scheme_list());
    if url.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    if url.starts_with('-') {
        return Err(format!("{url:?} starts with '-', which git would read as an option"));
    }
    if let Some((scheme, rest)) = url.split_once("://").filter(|(s, _)| is_scheme(s)) {
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            return local(url, policy);
        }
        if !REMOTE_SCHEMES.contains(&scheme.as_str()) {
            return Err(format!("the scheme {scheme:?} is not allowed; {}", remote()));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return Err(format!("{url:?} names no host"));
        }
        if host.starts_with('-') {
            return Err(format!("the host of {url:?} starts with '-'"));
        }
        return Ok(());
    }
    // git's remote helpers: `<transport>::<address>`.
    if let Some((transport, _)) = url.split_once("::").filter(|(t, _)| is_scheme(t)) {
        return Err(format!("git remote helpers ({transport}::) are not allowed; {}", remote()));
    }
    let colon = url.find(':');
    let slash = url.find('/');
    if let Some(colon) = colon.filter(|c| slash.is_none_or(|s| *c < s)) {
        let host = url[..colon].rsplit('@').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("{url:?} names no host before ':'"));
        }
        if host.starts_with('-') {
            return Err(format!("the host of {url:?} starts with '-'"));
        }
        return Ok(());
    }
    local(url, policy)
}

fn local(url: &str, policy: RepoUrlPolicy) -> Result<(), String> {
    if policy.allow_local {
        return Ok(());
    }
    Err(format!(
        "{url:?} is a repository on the platform's own machine; use {} or scp-style ssh (git@host:path) \
         (an administrator may allow local repositories with --allow-local-repos)",
        scheme_list()
    ))
}

fn scheme_list() -> String {
    REMOTE_SCHEMES.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ")
}

/// An RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: RepoUrlPolicy = RepoUrlPolicy { allow_local: false };
    const LOCAL: RepoUrlPolicy = RepoUrlPolicy { allow_local: true };

    #[test]
    fn remote_repositories_are_allowed() {
        for url in [
            "https://github.com/imesh/stratos-php-applications.git",
            "http://xxx:10080/git/default.git",
            "ssh://git@example.com:2222/org/repo.git",
            "git://example.com/repo.git",
            "git@github.com:org/repo.git",
            "example.com:repo",
            "HTTPS://example.com/r",
        ] {
            assert_eq!(check_repo_url(url, STRICT), Ok(()), "{url}");
        }
    }

    #[test]
    fn local_repositories_need_the_administrator() {
        for url in ["/srv/repo", "./repo", "repo", "~/repo", "file:///srv/repo", "FILE:///srv/repo", "../a:b"] {
            let err = check_repo_url(url, STRICT).unwrap_err();
            assert!(err.contains("--allow-local-repos"), "{url}: {err}");
            assert_eq!(check_repo_url(url, LOCAL), Ok(()), "{url}");
        }
    }

    #[test]
    fn helpers_options_and_other_schemes_are_refused_always() {
        for url in [
            "fd::17",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "-uhttps://x/y",
            "ssh://-oProxyCommand=x/y",
            "-oProxyCommand=x:y",
            "ftp://example.com/r",
            "https:///r",
            "https://example.com/a b",
            " ",
            "@:path",
        ] {
            assert!(check_repo_url(url, STRICT).is_err(), "{url}");
            assert!(check_repo_url(url, LOCAL).is_err(), "{url} (local allowed)");
        }
    }
}
