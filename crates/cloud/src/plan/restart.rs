//! A rolling replacement's next step, pure over the cluster's live members: a restart
//! (`stratos cluster restart`: members created before it was asked for are old) or a
//! rollout (`stratos application update`: members of another revision than the
//! cluster's are old, `rollout`). The caller says which members are old.
//!
//! New members start up to the desired size plus the surge (`Pace::max_surge`), and an
//! old member drains only while the members in service (Active, old or new) stay at
//! least the desired size less `Pace::max_unavailable`. With the default pace (a surge
//! of one, none unavailable) the load balancer never has fewer members in service than
//! before: an old member leaves only after its replacement serves. Old members not in
//! service (not yet Active) leave at once: they serve nobody. The step is read again
//! from the topology at every reconcile, so a controller that restarts carries on
//! where it was and never leaves an extra member behind (once no old member is left,
//! the surge is gone with it).

use stratos_model::topology::{Member, MemberStatus};

/// How fast a rolling replacement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// New members started beyond the desired size.
    pub max_surge: u32,
    /// Members in service the cluster may lack against its desired size.
    pub max_unavailable: u32,
}

impl Pace {
    /// One new member at a time, none fewer in service: a restart's, and a rollout's default.
    pub const ONE_AT_A_TIME: Pace = Pace { max_surge: 1, max_unavailable: 0 };
    /// A cluster with slot volumes, whatever was asked: an old member leaves before its
    /// replacement starts (which then takes the slot it freed, see `scale`).
    pub const TERMINATE_FIRST: Pace = Pace { max_surge: 0, max_unavailable: 1 };
}

impl Default for Pace {
    fn default() -> Pace {
        Pace::ONE_AT_A_TIME
    }
}

/// What a rolling cluster does next.
#[derive(Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// No old member is left: the replacement is over; the cluster scales as usual.
    Done,
    /// Start this many new members and drain these old ones (both may be none: wait).
    Act { start: u32, drain: Vec<String> },
}

impl RestartStep {
    /// Nothing to do this time: new members are on their way to Active.
    pub const WAIT: RestartStep = RestartStep::Act { start: 0, drain: Vec::new() };
}

/// The next step for a cluster of `live` members that should have `desired`.
pub fn restart_step(live: &[&Member], desired: u32, is_old: &dyn Fn(&Member) -> bool, pace: Pace) -> RestartStep {
    let mut old: Vec<&Member> = live.iter().copied().filter(|m| is_old(m)).collect();
    if old.is_empty() {
        return RestartStep::Done;
    }
    // Those not in service first, then the oldest.
    old.sort_by(|a, b| {
        (a.status == MemberStatus::Active, a.init_time, &a.member_id).cmp(&(
            b.status == MemberStatus::Active,
            b.init_time,
            &b.member_id,
        ))
    });
    let new = (live.len() - old.len()) as u32;
    let mut in_service = live.iter().filter(|m| m.status == MemberStatus::Active).count() as u32;
    let floor = desired.saturating_sub(pace.max_unavailable);
    let mut drain = Vec::new();
    for m in old {
        if m.status == MemberStatus::Active {
            if in_service <= floor {
                break;
            }
            in_service -= 1;
        }
        drain.push(m.member_id.clone());
    }
    // Members drained now still count: they are in service until their drain is seen
    // (the next step), so the surge is never exceeded, even for a moment.
    let start = (desired + pace.max_surge).saturating_sub(live.len() as u32).min(desired.saturating_sub(new));
    RestartStep::Act { start, drain }
}

/// The member that leaves next to make room: the oldest old one.
pub fn oldest_old<'a>(live: &[&'a Member], is_old: &dyn Fn(&Member) -> bool) -> Option<&'a str> {
    live.iter()
        .filter(|m| is_old(m))
        .min_by(|a, b| (a.init_time, &a.member_id).cmp(&(b.init_time, &b.member_id)))
        .map(|m| m.member_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::*;

    fn act(start: u32, drain: &[&str]) -> RestartStep {
        RestartStep::Act { start, drain: drain.iter().map(|s| s.to_string()).collect() }
    }

    fn step_at(members: &[Member], desired: u32, since: u64, pace: Pace) -> RestartStep {
        restart_step(&members.iter().collect::<Vec<_>>(), desired, &|m: &Member| m.init_time < since, pace)
    }

    fn step(members: &[Member], desired: u32, since: u64) -> RestartStep {
        step_at(members, desired, since, Pace::ONE_AT_A_TIME)
    }

    #[test]
    fn replaces_one_member_at_a_time_each_after_its_replacement_is_active() {
        // Two old members (created at 1 and 2), restart asked for at 10.
        let mut members = vec![member("a", "np1", "a", active(), 2), member("b", "np1", "a", active(), 1)];
        assert_eq!(step(&members, 2, 10), act(1, &[]), "a surge of one first");
        members.push(member("c", "np1", "a", MemberStatus::Starting, 11));
        assert_eq!(step(&members, 2, 10), RestartStep::WAIT, "nobody drains before c serves");
        members[2].status = MemberStatus::Active;
        assert_eq!(step(&members, 2, 10), act(0, &["b"]), "the oldest leaves first");
        members.remove(1);
        assert_eq!(step(&members, 2, 10), act(1, &[]), "then the next surge starts");
        members.push(member("d", "np1", "a", MemberStatus::Created, 12));
        assert_eq!(step(&members, 2, 10), RestartStep::WAIT);
        members[2].status = MemberStatus::Active;
        assert_eq!(step(&members, 2, 10), act(0, &["a"]), "the last: no surge after it");
        members.remove(0);
        assert_eq!(step(&members, 2, 10), RestartStep::Done, "only new members: over, no surge left");
    }

    /// Walks a replacement of `n` members to its end at `pace`, applying each step
    /// (new members become Active at the next step), and returns the fewest members in
    /// service and the most members alive seen after any step.
    fn walk(n: u32, pace: Pace) -> (u32, u32) {
        let mut members: Vec<Member> =
            (0..n).map(|i| member(&format!("old{i}"), "np1", "a", active(), i as u64)).collect();
        let mut clock = 100;
        let serving = |ms: &[Member]| ms.iter().filter(|m| m.status == MemberStatus::Active).count() as u32;
        let (mut fewest, mut most) = (n, n);
        for _ in 0..100 {
            match step_at(&members, n, 100, pace) {
                RestartStep::Done => break,
                RestartStep::Act { start, drain } => {
                    // The replacements started last time become active.
                    members.iter_mut().filter(|m| m.init_time >= 100).for_each(|m| m.status = MemberStatus::Active);
                    members.retain(|m| !drain.contains(&m.member_id));
                    fewest = fewest.min(serving(&members));
                    for _ in 0..start {
                        clock += 1;
                        members.push(member(&format!("new{clock}"), "np1", "a", MemberStatus::Created, clock));
                    }
                    most = most.max(members.len() as u32);
                }
            }
        }
        assert_eq!(step_at(&members, n, 100, pace), RestartStep::Done, "{pace:?} ends");
        // No extra member left behind; one short at most by max_unavailable, which the
        // cluster's scale (not the replacement) starts again.
        let left = members.len() as u32;
        assert!(left <= n && left + pace.max_unavailable >= n, "{left} of {n} left");
        assert!(members.iter().all(|m| m.init_time >= 100), "only new members left");
        (fewest, most)
    }

    #[test]
    fn surge_and_unavailable_bound_every_step() {
        assert_eq!(walk(3, Pace::ONE_AT_A_TIME), (3, 4), "never fewer in service, one extra at most");
        assert_eq!(walk(5, Pace { max_surge: 2, max_unavailable: 0 }), (5, 7));
        assert_eq!(walk(4, Pace { max_surge: 0, max_unavailable: 1 }), (3, 4), "one down, never more members");
        assert_eq!(walk(4, Pace { max_surge: 2, max_unavailable: 2 }), (2, 6));
    }

    #[test]
    fn old_members_not_in_service_leave_at_once() {
        // Rolled back: the new revision's members (now old) never activated.
        let members = [
            member("a", "np1", "a", active(), 20),
            member("b", "np1", "a", active(), 21),
            member("x", "np1", "a", MemberStatus::Starting, 5),
        ];
        assert_eq!(step(&members, 2, 10), act(0, &["x"]), "a, b untouched; nothing new to start");
    }

    #[test]
    fn a_cluster_below_its_size_grows_back_and_one_above_it_sheds_old_members() {
        // One old member of a desired three (say min was raised): two plus the surge start.
        let members = [member("a", "np1", "a", active(), 1)];
        assert_eq!(step(&members, 3, 10), act(3, &[]));
        // Three old members of a desired one (max lowered): the oldest two leave, then one starts.
        let members: Vec<Member> = (0..3).map(|i| member(&format!("o{i}"), "np1", "a", active(), i)).collect();
        assert_eq!(step(&members, 1, 10), act(0, &["o0", "o1"]));
        assert_eq!(step(&members[2..], 1, 10), act(1, &[]));
    }

    #[test]
    fn members_created_after_the_request_are_not_restarted() {
        let members = [member("a", "np1", "a", active(), 10), member("b", "np1", "a", active(), 11)];
        assert_eq!(step(&members, 2, 10), RestartStep::Done);
        assert_eq!(step(&[], 2, 10), RestartStep::Done, "an empty cluster has nothing to restart");
    }
}
