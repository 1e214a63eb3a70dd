//! How the cartridge agent checks that a member's app still answers: a `healthCheck`
//! on the cartridge, on one of its port mappings, or both (the port's fields win).
//!
//! Every field is optional, so Apache Stratos 4.1 cartridges (which have none) load
//! unchanged and get the defaults: an HTTP GET on `/` for `http` ports, a TCP connect
//! for `tcp` ports (a `send`/`expect` exchange when the cartridge gives one), a TLS
//! hello for `https` ports, nothing for `udp`; every 5 s, 2 s to answer, 3 consecutive
//! failures make the member unhealthy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Problems, Protocol};

/// The defaults, as in Kubernetes' probes but faster to notice a hang.
pub const DEFAULT_INTERVAL_SECONDS: u32 = 5;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 2;
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const DEFAULT_PATH: &str = "/";
/// Most bytes a `send` or an `expect` may hold.
pub const MAX_EXCHANGE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// GET `path`; a status below 500 (or one of `expectedStatuses`) is alive.
    Http,
    /// Connect; then send `send` and read until `expect` when they are given.
    Tcp,
    /// A TLS ClientHello; any answer (a ServerHello or an alert) is alive.
    Tls,
    /// No check: the member is never found unhealthy by its agent.
    None,
}

/// A `healthCheck` as written in a cartridge: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `http`, `tcp`, `tls` or `none`; by default from the port's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HealthCheckKind>,
    /// The path of an `http` check (`/` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Seconds between checks (5 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// Seconds one check may take, connect included (2 by default; at most the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Consecutive failed checks that make the member unhealthy (3 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// The statuses an `http` check accepts; by default any below 500.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<u16>,
    /// What a `tcp` check writes once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// What a `tcp` check must read back (anywhere in the first 4 KiB); without it, a
    /// `send` needs any answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// A check with nothing left to default, for one port: what the agent runs
/// (`STRATOS_HEALTH_CHECKS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedHealthCheck {
    /// The port the cartridge declares (the agent finds where it listens).
    pub port: u32,
    pub kind: HealthCheckKind,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

fn default_path() -> String {
    DEFAULT_PATH.into()
}
fn default_interval() -> u32 {
    DEFAULT_INTERVAL_SECONDS
}
fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}
fn default_threshold() -> u32 {
    DEFAULT_FAILURE_THRESHOLD
}

impl HealthCheckKind {
    /// The check a port of `protocol` gets when the cartridge names none.
    pub fn default_for(protocol: Protocol) -> HealthCheckKind {
        match protocol {
            Protocol::Http => HealthCheckKind::Http,
            Protocol::Https => HealthCheckKind::Tls,
            Protocol::Tcp => HealthCheckKind::Tcp,
            Protocol::Udp => HealthCheckKind::None,
        }
    }
}

impl HealthCheck {
    /// The check for a port: the port's own fields, else the cartridge's, else the defaults.
    pub fn resolve(
        port: u32,
        protocol: Protocol,
        on_port: Option<&HealthCheck>,
        on_cartridge: Option<&HealthCheck>,
    ) -> ResolvedHealthCheck {
        fn pick<T: Clone>(
            a: Option<&HealthCheck>,
            b: Option<&HealthCheck>,
            f: impl Fn(&HealthCheck) -> Option<T>,
        ) -> Option<T> {
            a.and_then(&f).or_else(|| b.and_then(&f))
        }
        let (a, b) = (on_port, on_cartridge);
        let statuses = pick(a, b, |h| (!h.expected_statuses.is_empty()).then(|| h.expected_statuses.clone()));
        ResolvedHealthCheck {
            port,
            kind: pick(a, b, |h| h.kind).unwrap_or_else(|| HealthCheckKind::default_for(protocol)),
            path: pick(a, b, |h| h.path.clone()).unwrap_or_else(|| DEFAULT_PATH.into()),
            interval_seconds: pick(a, b, |h| h.interval_seconds).unwrap_or(DEFAULT_INTERVAL_SECONDS),
            timeout_seconds: pick(a, b, |h| h.timeout_seconds).unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            failure_threshold: pick(a, b, |h| h.failure_threshold).unwrap_or(DEFAULT_FAILURE_THRESHOLD),
            expected_statuses: statuses.unwrap_or_default(),
            send: pick(a, b, |h| h.send.clone()),
            expect: pick(a, b, |h| h.expect.clone()),
        }
    }

    /// The problems of one `healthCheck` (at `at`), as written; `protocol` is its port's
    /// when it is on a port mapping.
    pub fn validate(&self, at: &str, protocol: Option<Protocol>, p: &mut Problems) {
        let kind = self.kind.or(protocol.map(HealthCheckKind::default_for));
        if let (Some(Protocol::Udp), Some(k)) = (protocol, self.kind) {
            if k != HealthCheckKind::None {
                p.push(format!("{at}.kind"), "a UDP port cannot be checked; use \"none\"");
            }
        }
        if let Some(path) = &self.path {
            if !path.starts_with('/') {
                p.push(format!("{at}.path"), format!("{path:?} must start with '/'"));
            } else if path.len() > 2048 {
                p.push(format!("{at}.path"), "must be at most 2048 characters");
            } else if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
                p.push(format!("{at}.path"), format!("{path:?} contains {c:?}; percent-encode it"));
            }
            if kind.is_some_and(|k| k != HealthCheckKind::Http) {
                p.push(format!("{at}.path"), "only an http check has a path");
            }
        }
        if let Some(i) = self.interval_seconds {
            if !(1..=3600).contains(&i) {
                p.push(format!("{at}.intervalSeconds"), format!("{i} is not between 1 and 3600"));
            }
        }
        if self.timeout_seconds == Some(0) {
            p.push(format!("{at}.timeoutSeconds"), "must be at least 1");
        }
        if let Some(n) = self.failure_threshold {
            if !(1..=100).contains(&n) {
                p.push(format!("{at}.failureThreshold"), format!("{n} is not between 1 and 100"));
            }
        }
        for (i, s) in self.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                p.push(format!("{at}.expectedStatuses[{i}]"), format!("{s} is not an HTTP status (100-599)"));
            }
        }
        if !self.expected_statuses.is_empty() && kind.is_some_and(|k| k != HealthCheckKind::Http) {
            p.push(format!("{at}.expectedStatuses"), "only an http check has statuses");
        }
        for (field, value) in [("send", &self.send), ("expect", &self.expect)] {
            let Some(value) = value else { continue };
            if value.is_empty() {
                p.push(format!("{at}.{field}"), "must not be empty");
            } else if value.len() > MAX_EXCHANGE_BYTES {
                p.push(format!("{at}.{field}"), format!("must be at most {MAX_EXCHANGE_BYTES} bytes"));
            }
            if kind.is_some_and(|k| k != HealthCheckKind::Tcp) {
                p.push(format!("{at}.{field}"), "only a tcp check sends or expects bytes");
            }
        }
    }
}

/// A check's timeout must fit in its interval, once the port's and the cartridge's fields
/// are merged: reported at the `timeoutSeconds` that set it (`at_port` or `at_cartridge`).
pub fn check_timing(
    resolved: &ResolvedHealthCheck,
    on_port: Option<&HealthCheck>,
    at_port: &str,
    at_cartridge: &str,
    p: &mut Problems,
) {
    let (timeout, interval) = (resolved.timeout_seconds, resolved.interval_seconds);
    if timeout == 0 || interval == 0 || timeout <= interval {
        return;
    }
    let at = if on_port.is_some_and(|h| h.timeout_seconds.is_some()) { at_port } else { at_cartridge };
    p.push(format!("{at}.timeoutSeconds"), format!("{timeout} is longer than the interval ({interval} s)"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_protocol() {
        let http = HealthCheck::resolve(8080, Protocol::Http, None, None);
        assert_eq!(
            http,
            ResolvedHealthCheck {
                port: 8080,
                kind: HealthCheckKind::Http,
                path: "/".into(),
                interval_seconds: 5,
                timeout_seconds: 2,
                failure_threshold: 3,
                expected_statuses: vec![],
                send: None,
                expect: None,
            }
        );
        assert_eq!(HealthCheck::resolve(1, Protocol::Tcp, None, None).kind, HealthCheckKind::Tcp);
        assert_eq!(HealthCheck::resolve(1, Protocol::Https, None, None).kind, HealthCheckKind::Tls);
        assert_eq!(HealthCheck::resolve(1, Protocol::Udp, None, None).kind, HealthCheckKind::None);
    }

    #[test]
    fn the_port_wins_over_the_cartridge() {
        let cartridge = HealthCheck { path: Some("/health".into()), interval_seconds: Some(10), ..Default::default() };
        let port = HealthCheck { interval_seconds: Some(1), timeout_seconds: Some(1), ..Default::default() };
        let r = HealthCheck::resolve(80, Protocol::Http, Some(&port), Some(&cartridge));
        assert_eq!((r.path.as_str(), r.interval_seconds, r.timeout_seconds), ("/health", 1, 1));
    }

    #[test]
    fn the_timeout_fits_the_merged_interval() {
        let cartridge = HealthCheck { interval_seconds: Some(10), timeout_seconds: Some(3), ..Default::default() };
        let port = HealthCheck { timeout_seconds: Some(9), ..Default::default() };
        let mut p = Problems::default();
        let resolved = HealthCheck::resolve(80, Protocol::Http, Some(&port), Some(&cartridge));
        check_timing(&resolved, Some(&port), "portMapping[0].healthCheck", "healthCheck", &mut p);
        assert!(p.is_empty(), "9 s fits the cartridge's 10 s interval: {p}");
        let port = HealthCheck { interval_seconds: Some(2), ..Default::default() };
        let resolved = HealthCheck::resolve(80, Protocol::Http, Some(&port), Some(&cartridge));
        check_timing(&resolved, Some(&port), "portMapping[0].healthCheck", "healthCheck", &mut p);
        assert_eq!(p.to_string(), "healthCheck.timeoutSeconds: 3 is longer than the interval (2 s)");
    }

    #[test]
    fn problems_name_their_field() {
        let bad = HealthCheck {
            kind: Some(HealthCheckKind::Tcp),
            path: Some("health".into()),
            interval_seconds: Some(2),
            timeout_seconds: Some(0),
            failure_threshold: Some(0),
            expected_statuses: vec![99],
            send: Some(String::new()),
            expect: None,
        };
        let mut p = Problems::default();
        bad.validate("portMapping[0].healthCheck", Some(Protocol::Tcp), &mut p);
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "portMapping[0].healthCheck.path",
                "portMapping[0].healthCheck.path",
                "portMapping[0].healthCheck.timeoutSeconds",
                "portMapping[0].healthCheck.failureThreshold",
                "portMapping[0].healthCheck.expectedStatuses[0]",
                "portMapping[0].healthCheck.expectedStatuses",
                "portMapping[0].healthCheck.send",
            ]
        );
        let mut p = Problems::default();
        HealthCheck { kind: Some(HealthCheckKind::Http), ..Default::default() }.validate(
            "h",
            Some(Protocol::Udp),
            &mut p,
        );
        assert_eq!(p.iter().next().unwrap().path, "h.kind");
        let mut p = Problems::default();
        HealthCheck { path: Some("/a b".into()), ..Default::default() }.validate("h", Some(Protocol::Http), &mut p);
        assert!(p.iter().next().unwrap().message.contains("percent-encode"), "{p}");
    }
}
