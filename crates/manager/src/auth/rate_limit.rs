//! Failed logins, counted per user name and per peer address: past the limit, logins
//! are refused (429) before the password is even checked, until the oldest failure
//! leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures, within which window, before logins are refused.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_user: usize,
    pub per_peer: usize,
    pub window: Duration,
}

impl Default for LoginLimits {
    /// 5 failures per user name and 20 per address in 15 minutes.
    fn default() -> Self {
        LoginLimits { per_user: 5, per_peer: 20, window: Duration::from_secs(15 * 60) }
    }
}

/// Keys kept at most, so that a flood of made-up user names cannot fill the memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Peer(IpAddr),
}

pub struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter { limits, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry after)` while the user name or the address is over its limit.
    pub fn check(&self, user: &str, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None;
        for (key, limit) in self.keys(user, peer) {
            if let Some(times) = failures.get_mut(&key) {
                prune(times, now, self.limits.window);
                if times.len() >= limit {
                    let free_at = times[times.len() - limit] + self.limits.window;
                    let w = free_at.saturating_duration_since(now).max(Duration::from_secs(1));
                    wait = Some(wait.map_or(w, |o: Duration| o.max(w)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, user: &str, peer: Option<IpAddr>, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS {
            let window = self.limits.window;
            failures.retain(|_, times| {
                prune(times, now, window);
                !times.is_empty()
            });
        }
        for (key, _) in self.keys(user, peer) {
            if failures.len() < MAX_KEYS || failures.contains_key(&key) {
                failures.entry(key).or_default().push_back(now);
            }
        }
    }

    /// A right password clears the user name's failures (not the address's: one
    /// account of its own does not let an address guess others' passwords).
    pub fn succeeded(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&Key::User(user.to_owned()));
    }

    fn keys(&self, user: &str, peer: Option<IpAddr>) -> Vec<(Key, usize)> {
        let mut keys = vec![(Key::User(user.to_owned()), self.limits.per_user)];
        if let Some(ip) = peer {
            keys.push((Key::Peer(ip), self.limits.per_peer));
        }
        keys
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginLimits { per_user: 3, per_peer: 5, window: Duration::from_secs(60) })
    }

    #[test]
    fn a_user_name_is_locked_after_its_failures_until_the_window_passes() {
        let l = limiter();
        let (t0, ip) = (Instant::now(), Some("10.0.0.1".parse().unwrap()));
        for _ in 0..3 {
            assert!(l.check("ann", ip, t0).is_ok());
            l.failed("ann", ip, t0);
        }
        let wait = l.check("ann", ip, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(l.check("ann", None, t0).is_err(), "from any address");
        assert!(l.check("bob", ip, t0).is_ok(), "other names from the address are still allowed");
        assert!(l.check("ann", ip, t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn an_address_is_locked_across_user_names() {
        let l = limiter();
        let (t0, ip) = (Instant::now(), Some("10.0.0.2".parse().unwrap()));
        for n in 0..5 {
            l.failed(&format!("user{n}"), ip, t0);
        }
        assert!(l.check("someone-else", ip, t0).is_err());
        assert!(l.check("someone-else", Some("10.0.0.3".parse().unwrap()), t0).is_ok());
    }

    #[test]
    fn success_clears_the_user_name_only() {
        let l = limiter();
        let (t0, ip) = (Instant::now(), Some("10.0.0.4".parse().unwrap()));
        l.failed("ann", ip, t0);
        l.failed("ann", ip, t0);
        l.succeeded("ann");
        l.failed("ann", ip, t0);
        l.failed("ann", ip, t0);
        assert!(l.check("ann", ip, t0).is_ok());
        l.failed("ann", ip, t0);
        assert!(l.check("x", ip, t0).is_err(), "the address has 5 failures");
    }
}
