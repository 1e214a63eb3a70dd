//! Choosing a member: the algorithms, sticky sessions and ejection back-off, all pure.

use std::time::Duration;

/// How a cluster's members share its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// Each member in turn.
    RoundRobin,
    /// The member with the fewest requests in flight (ties in turn): for TCP, the fewest connections.
    #[default]
    LeastOutstanding,
}

/// What the algorithms know of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub in_flight: u64,
    /// Not ejected by a health check.
    pub healthy: bool,
}

/// Picks the index of a candidate. Healthy candidates only, unless none is: then any,
/// since a suspect member is better than a certain error. `turn` is the cluster's
/// round-robin counter (it also spreads least-outstanding ties).
pub fn choose(algorithm: Algorithm, candidates: &[Candidate], turn: usize) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    let any_healthy = candidates.iter().any(|c| c.healthy);
    let eligible = |c: &Candidate| c.healthy || !any_healthy;
    match algorithm {
        Algorithm::RoundRobin => {
            let count = candidates.iter().filter(|c| eligible(c)).count();
            candidates.iter().enumerate().filter(|(_, c)| eligible(c)).nth(turn % count).map(|(i, _)| i)
        }
        Algorithm::LeastOutstanding => {
            let n = candidates.len();
            (0..n)
                .map(|offset| (turn % n + offset) % n)
                .filter(|&i| eligible(&candidates[i]))
                .min_by_key(|&i| candidates[i].in_flight)
        }
    }
}

/// The cookie that pins a client to a member.
pub const STICKY_COOKIE: &str = "STRATOS_STICKY";

/// The member a request is pinned to, from its `Cookie` headers.
pub fn sticky_member<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STICKY_COOKIE)
        .map(|(_, value)| decode_cookie_value(value.trim_matches('"')))
}

/// Index of the member the request is pinned to, if it is still a healthy candidate.
pub fn sticky_choice<'a>(members: impl IntoIterator<Item = (&'a str, bool)>, wanted: Option<&str>) -> Option<usize> {
    let wanted = wanted?;
    members.into_iter().position(|(id, healthy)| id == wanted && healthy)
}

/// The `Set-Cookie` value that pins a client to `member_id`.
pub fn sticky_set_cookie(member_id: &str) -> String {
    format!("{STICKY_COOKIE}={}; Path=/; HttpOnly", encode_cookie_value(member_id))
}

/// Percent-encodes what a cookie value may not hold (RFC 6265 cookie-octet) and `%`.
fn encode_cookie_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let ok = matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E) && b != b'%';
        if ok {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_cookie_value(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// How long the `strikes`+1-th ejection in a row lasts: `base`, doubling, at most `max`.
pub fn ejection_time(base: Duration, max: Duration, strikes: u32) -> Duration {
    base.saturating_mul(1u32 << strikes.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(in_flight: u64, healthy: bool) -> Candidate {
        Candidate { in_flight, healthy }
    }

    #[test]
    fn round_robin_takes_turns_among_healthy() {
        let cands = [c(0, true), c(9, true), c(0, false), c(5, true)];
        let picks: Vec<_> = (0..6).map(|t| choose(Algorithm::RoundRobin, &cands, t).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 3, 0, 1, 3]);
        assert_eq!(choose(Algorithm::RoundRobin, &[], 3), None);
    }

    #[test]
    fn least_outstanding_prefers_idle_and_spreads_ties() {
        let cands = [c(3, true), c(1, true), c(1, true), c(0, false)];
        assert_eq!(choose(Algorithm::LeastOutstanding, &cands, 0), Some(1));
        assert_eq!(choose(Algorithm::LeastOutstanding, &cands, 1), Some(1));
        assert_eq!(choose(Algorithm::LeastOutstanding, &cands, 2), Some(2));
        assert_eq!(choose(Algorithm::LeastOutstanding, &cands, 3), Some(1), "the ejected idle one is skipped");
        let idle = [c(0, true), c(0, true), c(0, true)];
        let picks: Vec<_> = (0..3).map(|t| choose(Algorithm::LeastOutstanding, &idle, t).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }

    #[test]
    fn all_ejected_falls_back_to_any() {
        let cands = [c(2, false), c(1, false)];
        assert_eq!(choose(Algorithm::LeastOutstanding, &cands, 0), Some(1));
        assert_eq!(choose(Algorithm::RoundRobin, &cands, 1), Some(1));
    }

    #[test]
    fn sticky_cookie_round_trips() {
        assert_eq!(sticky_member(["a=1; STRATOS_STICKY=m-1.x; b=2"]).as_deref(), Some("m-1.x"));
        assert_eq!(sticky_member(["a=1", "STRATOS_STICKY=\"m2\""]).as_deref(), Some("m2"));
        assert_eq!(sticky_member(["a=1; b=2"]), None);
        let odd = "m 1;2,\"x\"%";
        let set = sticky_set_cookie(odd);
        assert!(set.starts_with("STRATOS_STICKY=") && set.ends_with("; Path=/; HttpOnly"), "{set}");
        let value = set.split(';').next().unwrap();
        assert!(!value.contains(' ') && !value.contains(',') && !value.contains('"'), "{value}");
        assert_eq!(sticky_member([value]).as_deref(), Some(odd));
    }

    #[test]
    fn sticky_choice_needs_a_healthy_routable_member() {
        let members = [("m1", true), ("m2", true), ("m3", false)];
        assert_eq!(sticky_choice(members, Some("m2")), Some(1));
        assert_eq!(sticky_choice(members, Some("m3")), None, "ejected");
        assert_eq!(sticky_choice(members, Some("gone")), None);
        assert_eq!(sticky_choice(members, None), None);
    }

    #[test]
    fn ejection_doubles_up_to_the_maximum() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(60));
        let times: Vec<_> = (0..5).map(|s| ejection_time(base, max, s).as_secs()).collect();
        assert_eq!(times, vec![10, 20, 40, 60, 60]);
        assert_eq!(ejection_time(base, max, 1000), max);
    }
}
