//! Failure history per cluster: back-off (2, 4, ... 60 s) and partition avoidance.
//!
//! Pure: the time is passed in (`now`), never read here, so that tests step through
//! a back-off and its expiry without sleeping.
//!
//! Two kinds of failure count. A member that fails to start or to activate backs its
//! cluster off and turns the retry away from its partition; the first member to
//! activate ends both (the cluster works again). A member that fails after it
//! activated (its app never passes its health check, or it exits or stops reporting)
//! backs off too, but an activation does not end that: the next member would activate
//! and fail the same way, in a loop as fast as members start. That streak ends only
//! after [`STREAK_RESET`] without a failure.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use stratos_model::placement::Slot;

/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Failures further apart than this are not one streak: longer than the longest
/// back-off plus a member's start and health-check threshold, so that a member that
/// fails every time it is replaced always continues its streak.
pub const STREAK_RESET: Duration = Duration::from_secs(180);

/// How a member (or a cluster's configuration) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It could not start, exited before activating, or did not activate in time:
    /// its partition is avoided for a while.
    Start,
    /// It activated, then was reported unhealthy, exited, or stopped reporting.
    AfterActivation,
    /// The cluster cannot be converged at all (a policy or cartridge is missing).
    Configuration,
}

/// Back-off after `count` failures in a row: 2, 4, 8, ... 60 s.
pub fn backoff(count: u32) -> Duration {
    Duration::from_secs(1u64 << count.clamp(1, 6)).min(MAX_BACKOFF)
}

/// One cluster's failures in a row.
#[derive(Debug, Clone)]
pub struct Failures {
    pub count: u32,
    /// The message kept on the cluster (`application status`).
    pub message: String,
    pub last_at: Instant,
    pub retry_at: Instant,
    /// The streak has a member that failed after activating: an activation does not end it.
    pub after_activation: bool,
    /// Partitions where a member failed to start or activate, and until when.
    avoid: HashMap<Slot, Instant>,
}

/// Every cluster's failures in a row.
#[derive(Debug, Default)]
pub struct FailureHistory {
    clusters: HashMap<String, Failures>,
}

impl FailureHistory {
    /// Records a failure of `cluster_id` at `now` (of a member in `slot`, if known) and
    /// returns the message to keep on the cluster.
    pub fn record(&mut self, cluster_id: &str, now: Instant, error: &str, kind: Failure, slot: Option<Slot>) -> String {
        let f = self.clusters.entry(cluster_id.to_string()).or_insert_with(|| Failures {
            count: 0,
            message: String::new(),
            last_at: now,
            retry_at: now,
            after_activation: false,
            avoid: HashMap::new(),
        });
        if now.saturating_duration_since(f.last_at) >= STREAK_RESET {
            // A failure long after the last one starts a new streak.
            f.count = 0;
            f.after_activation = false;
        }
        f.count += 1;
        f.last_at = now;
        f.after_activation |= kind == Failure::AfterActivation;
        let wait = backoff(f.count);
        f.retry_at = now + wait;
        if let (Failure::Start, Some(slot)) = (kind, slot) {
            // Avoided one more back-off period past the retry.
            f.avoid.insert(slot, f.retry_at + wait);
        }
        let counted = if f.after_activation {
            format!("{} member failure(s) in a row", f.count)
        } else {
            format!("{} failed start(s)", f.count)
        };
        f.message = format!("{error} ({counted}; next try in {}s)", wait.as_secs());
        f.message.clone()
    }

    /// A member of the cluster activated: start failures are over (their partition is
    /// no longer avoided); true when the cluster's kept error goes too. Failures after
    /// activation keep counting until their streak ends ([`Self::expire`]), so a member
    /// that fails again backs off longer; their error stays shown only once they repeat
    /// (one member killed and replaced is not a cluster in trouble, a crash loop is).
    pub fn activated(&mut self, cluster_id: &str) -> bool {
        let Some(f) = self.clusters.get_mut(cluster_id) else { return true };
        f.avoid.clear();
        if f.after_activation {
            return f.count < 2;
        }
        self.clusters.remove(cluster_id);
        true
    }

    /// Whether the cluster waits before it starts another member.
    pub fn backing_off(&self, cluster_id: &str, now: Instant) -> bool {
        self.clusters.get(cluster_id).is_some_and(|f| now < f.retry_at)
    }

    /// Partitions the cluster's new members avoid at `now`.
    pub fn avoided(&self, cluster_id: &str, now: Instant) -> HashSet<Slot> {
        let Some(f) = self.clusters.get(cluster_id) else { return HashSet::new() };
        f.avoid.iter().filter(|(_, until)| now < **until).map(|(slot, _)| slot.clone()).collect()
    }

    /// Ends streaks with no failure for [`STREAK_RESET`]; returns each ended one's
    /// cluster and message (to clear from the cluster if it still shows it).
    pub fn expire(&mut self, now: Instant) -> Vec<(String, String)> {
        let ended: Vec<String> = self
            .clusters
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_at) >= STREAK_RESET)
            .map(|(id, _)| id.clone())
            .collect();
        ended.into_iter().filter_map(|id| self.clusters.remove(&id).map(|f| (id, f.message))).collect()
    }

    pub fn forget(&mut self, cluster_id: &str) {
        self.clusters.remove(cluster_id);
    }

    pub fn get(&self, cluster_id: &str) -> Option<&Failures> {
        self.clusters.get(cluster_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(p: &str) -> Slot {
        ("np".to_string(), p.to_string())
    }

    #[test]
    fn back_off_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_failed_start_backs_the_cluster_off_until_its_retry() {
        let (t0, mut h) = (Instant::now(), FailureHistory::default());
        assert!(!h.backing_off("c", t0));
        let msg = h.record("c", t0, "boom", Failure::Start, Some(slot("p1")));
        assert_eq!(msg, "boom (1 failed start(s); next try in 2s)");
        assert!(h.backing_off("c", t0 + Duration::from_millis(1999)));
        assert!(!h.backing_off("c", t0 + Duration::from_secs(2)), "the back-off expires");
        assert!(!h.backing_off("other", t0), "per cluster");
        let t1 = t0 + Duration::from_secs(3);
        let msg = h.record("c", t1, "boom", Failure::Start, None);
        assert!(msg.ends_with("(2 failed start(s); next try in 4s)"), "{msg}");
        assert!(h.backing_off("c", t1 + Duration::from_secs(3)));
        assert!(!h.backing_off("c", t1 + Duration::from_secs(4)));
    }

    #[test]
    fn the_failed_partition_is_avoided_one_back_off_past_the_retry_or_until_an_activation() {
        let (t0, mut h) = (Instant::now(), FailureHistory::default());
        h.record("c", t0, "never activated", Failure::Start, Some(slot("p1")));
        // Retry at +2 s, avoided until +4 s.
        assert_eq!(h.avoided("c", t0 + Duration::from_secs(3)), HashSet::from([slot("p1")]));
        assert!(h.avoided("c", t0 + Duration::from_secs(4)).is_empty(), "the avoidance ends");
        h.record("c", t0 + Duration::from_secs(5), "again", Failure::Start, Some(slot("p2")));
        assert!(h.avoided("c", t0 + Duration::from_secs(6)).contains(&slot("p2")));
        assert!(h.activated("c"), "an activation ends start failures and their error");
        assert!(h.avoided("c", t0 + Duration::from_secs(6)).is_empty());
        assert!(!h.backing_off("c", t0 + Duration::from_secs(6)));
        assert!(h.get("c").is_none());
    }

    #[test]
    fn failures_after_activation_keep_backing_off_across_activations() {
        // A member whose app never passes its health check: it activates, is reported
        // unhealthy, is replaced, and so on. Each round must wait longer.
        let (mut now, mut h) = (Instant::now(), FailureHistory::default());
        let mut waits = Vec::new();
        for round in 0..7 {
            now += Duration::from_secs(15);
            h.record("c", now, "member m unhealthy: GET / failed", Failure::AfterActivation, Some(slot("p1")));
            assert_eq!(
                h.activated("c"),
                round == 0,
                "a first failure's error goes with the next activation; a repeated one's stays, and the back-off with it"
            );
            let f = h.get("c").unwrap();
            waits.push(f.retry_at.duration_since(now).as_secs());
            assert!(f.message.contains("member failure(s) in a row"), "{}", f.message);
            assert!(h.avoided("c", now).is_empty(), "the partition is not to blame");
            now = f.retry_at;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        assert!(h.backing_off("c", now - Duration::from_secs(1)));
    }

    #[test]
    fn a_streak_ends_after_a_quiet_spell() {
        let (t0, mut h) = (Instant::now(), FailureHistory::default());
        h.record("c", t0, "exited after activating", Failure::AfterActivation, None);
        h.record("c", t0 + Duration::from_secs(20), "exited after activating", Failure::AfterActivation, None);
        assert!(h.expire(t0 + Duration::from_secs(20) + STREAK_RESET - Duration::from_secs(1)).is_empty());
        let ended = h.expire(t0 + Duration::from_secs(20) + STREAK_RESET);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, "c");
        assert!(ended[0].1.contains("2 member failure(s)"), "{ended:?}");
        assert!(h.get("c").is_none());
        // A failure long after the last starts again at 2 s.
        h.record("c", t0, "x", Failure::AfterActivation, None);
        let later = t0 + STREAK_RESET + Duration::from_secs(1);
        let msg = h.record("c", later, "x", Failure::AfterActivation, None);
        assert!(msg.contains("(1 member failure(s) in a row; next try in 2s)"), "{msg}");
    }
}
