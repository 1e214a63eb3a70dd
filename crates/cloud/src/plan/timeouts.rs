//! Members that took too long: to activate (replaced, their partition avoided) or to
//! drain (terminated anyway).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use stratos_model::topology::{Member, MemberStatus};

pub struct TimeoutInput<'a> {
    pub now: Instant,
    pub activation_timeout: Duration,
    /// When each member was first seen not yet active.
    pub pending_since: &'a HashMap<String, Instant>,
    /// Draining members and the time they must be gone by.
    pub draining: &'a HashMap<String, Instant>,
    pub terminating: &'a HashSet<String>,
    pub frozen: &'a HashSet<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Overdue {
    /// Members not yet active seen for the first time: their clock starts now.
    pub first_seen: Vec<String>,
    /// (cluster id, member id) of members that did not activate in time.
    pub late: Vec<(String, String)>,
    /// (cluster id, member id) of members whose drain timed out.
    pub drained: Vec<(String, String)>,
}

pub fn overdue<'m>(members: impl Iterator<Item = &'m Member>, input: &TimeoutInput) -> Overdue {
    let mut out = Overdue::default();
    for m in members {
        if input.terminating.contains(&m.member_id) || input.frozen.contains(&m.cluster_id) {
            continue;
        }
        let ids = || (m.cluster_id.clone(), m.member_id.clone());
        if m.status < MemberStatus::Active {
            match input.pending_since.get(&m.member_id) {
                None => out.first_seen.push(m.member_id.clone()),
                Some(since) if input.now.saturating_duration_since(*since) > input.activation_timeout => {
                    out.late.push(ids());
                    continue;
                }
                Some(_) => {}
            }
        }
        if input.draining.get(&m.member_id).is_some_and(|deadline| input.now > *deadline) {
            out.drained.push(ids());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::*;

    #[test]
    fn a_member_late_to_activate_or_to_drain_is_overdue() {
        let t0 = Instant::now();
        let mut starting = member("s", "np1", "a", active(), 1);
        starting.status = MemberStatus::Starting;
        let members = [starting, member("d", "np1", "a", active(), 2), member("k", "np1", "a", active(), 3)];
        let mut pending = HashMap::new();
        let draining = HashMap::from([("d".to_string(), t0 + Duration::from_secs(20))]);
        let (terminating, frozen) = (HashSet::new(), HashSet::new());
        let at = |now, pending: &HashMap<String, Instant>| {
            overdue(
                members.iter(),
                &TimeoutInput {
                    now,
                    activation_timeout: Duration::from_secs(120),
                    pending_since: pending,
                    draining: &draining,
                    terminating: &terminating,
                    frozen: &frozen,
                },
            )
        };
        assert_eq!(at(t0, &pending), Overdue { first_seen: vec!["s".into()], ..Default::default() });
        pending.insert("s".to_string(), t0);
        assert_eq!(at(t0 + Duration::from_secs(20), &pending), Overdue::default(), "neither is late yet");
        let o = at(t0 + Duration::from_secs(120), &pending);
        assert!(o.late.is_empty() && o.drained.len() == 1, "{o:?}");
        let o = at(t0 + Duration::from_secs(121), &pending);
        assert_eq!(o.late, [(CLUSTER.to_string(), "s".to_string())]);
        assert_eq!(o.drained, [(CLUSTER.to_string(), "d".to_string())]);
    }
}
