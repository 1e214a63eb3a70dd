//! Places a driver cannot reach (a Docker Engine that does not answer), each judged on
//! its own: while one is out of reach its members are neither listed nor judged gone,
//! and no new member is placed there; once it has been out of reach longer than the
//! grace period its members are given up (and replaced where the policies allow). When it
//! answers again, whatever of this platform it still runs that no member names is an
//! orphan like any other, reaped by the usual judgement.
//!
//! Pure: the time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::driver::Unreachable;

/// What becomes of a member on an unreachable place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unseen {
    /// Within the grace period: left as it is.
    Waiting,
    /// Past it: given up, with the reason to show.
    Lost(String),
}

/// A change to report (once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Unreachable { provider: String, place: String, reason: String },
    Back { provider: String, place: String, after: Duration },
}

#[derive(Debug, Clone)]
struct Out {
    since: Instant,
    reason: String,
}

/// Each driver's unreachable places, since when.
#[derive(Debug)]
pub struct Places {
    grace: Duration,
    out: HashMap<(String, String), Out>,
}

impl Places {
    pub fn new(grace: Duration) -> Places {
        Places { grace, out: HashMap::new() }
    }

    /// Records what `provider`'s latest listing could not reach at `now`: its places not
    /// named are reachable again.
    pub fn observe(&mut self, provider: &str, unreachable: &[Unreachable], now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        self.out.retain(|(p, place), out| {
            if p != provider || unreachable.iter().any(|u| &u.place == place) {
                return true;
            }
            let after = now.saturating_duration_since(out.since);
            changes.push(Change::Back { provider: p.clone(), place: place.clone(), after });
            false
        });
        for u in unreachable {
            let key = (provider.to_string(), u.place.clone());
            match self.out.get_mut(&key) {
                Some(out) => out.reason = u.reason.clone(),
                None => {
                    changes.push(Change::Unreachable {
                        provider: provider.to_string(),
                        place: u.place.clone(),
                        reason: u.reason.clone(),
                    });
                    self.out.insert(key, Out { since: now, reason: u.reason.clone() });
                }
            }
        }
        changes
    }

    /// Whether every place answers.
    pub fn all_reachable(&self) -> bool {
        self.out.is_empty()
    }

    /// Whether `provider`'s `place` is out of reach now.
    pub fn is_out(&self, provider: &str, place: &str) -> bool {
        self.out.contains_key(&(provider.to_string(), place.to_string()))
    }

    /// What becomes of a member on `provider`'s `place` at `now`; `None`: it answers.
    pub fn verdict(&self, provider: &str, place: &str, now: Instant) -> Option<Unseen> {
        let out = self.out.get(&(provider.to_string(), place.to_string()))?;
        let for_ = now.saturating_duration_since(out.since);
        if for_ < self.grace {
            return Some(Unseen::Waiting);
        }
        Some(Unseen::Lost(format!(
            "{place} has not answered for {}s (longer than the {}s grace): {}",
            for_.as_secs(),
            self.grace.as_secs(),
            out.reason
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(place: &str) -> Unreachable {
        Unreachable { place: place.into(), reason: format!("cannot connect to {place}") }
    }

    #[test]
    fn a_place_waits_out_its_grace_then_its_members_are_lost() {
        let (t0, mut places) = (Instant::now(), Places::new(Duration::from_secs(30)));
        assert_eq!(places.verdict("docker", "e2", t0), None);
        let changes = places.observe("docker", &[down("e2")], t0);
        assert!(matches!(&changes[..], [Change::Unreachable { place, .. }] if place == "e2"), "{changes:?}");
        assert!(places.observe("docker", &[down("e2")], t0 + Duration::from_secs(5)).is_empty(), "reported once");
        assert_eq!(places.verdict("docker", "e2", t0 + Duration::from_secs(29)), Some(Unseen::Waiting));
        assert_eq!(places.verdict("docker", "e1", t0 + Duration::from_secs(29)), None, "each place on its own");
        assert_eq!(places.verdict("local", "e2", t0 + Duration::from_secs(29)), None, "each driver on its own");
        match places.verdict("docker", "e2", t0 + Duration::from_secs(31)) {
            Some(Unseen::Lost(reason)) => {
                assert!(reason.contains("e2 has not answered for 31s"), "{reason}");
                assert!(reason.contains("cannot connect to e2"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_place_that_answers_again_starts_afresh() {
        let (t0, mut places) = (Instant::now(), Places::new(Duration::from_secs(30)));
        places.observe("docker", &[down("e2"), down("e3")], t0);
        let changes = places.observe("docker", &[down("e3")], t0 + Duration::from_secs(40));
        assert_eq!(
            changes,
            [Change::Back { provider: "docker".into(), place: "e2".into(), after: Duration::from_secs(40) }]
        );
        assert!(places.is_out("docker", "e3") && !places.is_out("docker", "e2"));
        // Another driver's listing says nothing of docker's places.
        assert!(places.observe("local", &[], t0 + Duration::from_secs(41)).is_empty());
        assert!(places.is_out("docker", "e3"));
        // Out again later: a new grace period.
        places.observe("docker", &[down("e2"), down("e3")], t0 + Duration::from_secs(50));
        assert_eq!(places.verdict("docker", "e2", t0 + Duration::from_secs(60)), Some(Unseen::Waiting));
        assert!(!places.all_reachable());
        places.observe("docker", &[], t0 + Duration::from_secs(61));
        assert!(places.all_reachable());
    }
}
