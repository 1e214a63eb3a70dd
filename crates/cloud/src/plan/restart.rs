//! A rolling restart's next step (`stratos cluster restart`), pure over the cluster's
//! live members and the time the restart was asked for.
//!
//! Every member created before the request is old. One member more than the desired
//! size is started (a surge of one); once every new member is Active, the oldest old
//! member drains, and the next surge starts. So the load balancer never has fewer
//! members in service than before the restart: an old member leaves only after its
//! replacement serves. The step is read again from the topology at every reconcile,
//! so a controller that restarts carries on where it was and never leaves an extra
//! member behind (once no old member is left, the surge is gone with it).

use stratos_model::topology::{Member, MemberStatus};

/// What a restarting cluster does next.
#[derive(Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// No old member is left: the restart is over; the cluster scales as usual.
    Done,
    /// A replacement is still on its way to Active: nothing starts or drains meanwhile.
    Wait,
    /// Start this many new members (up to the desired size plus the one surge member).
    Start(u32),
    /// The replacements serve: this old member drains now.
    Replace(String),
}

/// The next step of a restart asked for at `since` (milliseconds, as members'
/// `init_time`), for a cluster of `live` members that should have `desired`.
pub fn restart_step(live: &[&Member], desired: u32, since: u64) -> RestartStep {
    let Some(oldest) = oldest_old(live, since) else {
        return RestartStep::Done;
    };
    if live.iter().any(|m| m.init_time >= since && m.status != MemberStatus::Active) {
        return RestartStep::Wait;
    }
    let have = live.len() as u32;
    if have <= desired {
        return RestartStep::Start(desired + 1 - have);
    }
    RestartStep::Replace(oldest.to_string())
}

/// The member that leaves next: the oldest of those created before `since`.
pub fn oldest_old<'a>(live: &[&'a Member], since: u64) -> Option<&'a str> {
    live.iter()
        .filter(|m| m.init_time < since)
        .min_by(|a, b| (a.init_time, &a.member_id).cmp(&(b.init_time, &b.member_id)))
        .map(|m| m.member_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::*;

    fn step(members: &[Member], desired: u32, since: u64) -> RestartStep {
        restart_step(&members.iter().collect::<Vec<_>>(), desired, since)
    }

    #[test]
    fn replaces_one_member_at_a_time_each_after_its_replacement_is_active() {
        // Two old members (created at 1 and 2), restart asked for at 10.
        let mut members = vec![member("a", "np1", "a", active(), 2), member("b", "np1", "a", active(), 1)];
        assert_eq!(step(&members, 2, 10), RestartStep::Start(1), "a surge of one first");
        members.push(member("c", "np1", "a", MemberStatus::Starting, 11));
        assert_eq!(step(&members, 2, 10), RestartStep::Wait, "nobody drains before c serves");
        members[2].status = MemberStatus::Active;
        assert_eq!(step(&members, 2, 10), RestartStep::Replace("b".into()), "the oldest leaves first");
        // b drains (no longer live): back to the desired size, the next surge.
        members.remove(1);
        assert_eq!(step(&members, 2, 10), RestartStep::Start(1));
        members.push(member("d", "np1", "a", MemberStatus::Created, 12));
        assert_eq!(step(&members, 2, 10), RestartStep::Wait);
        members[2].status = MemberStatus::Active;
        assert_eq!(step(&members, 2, 10), RestartStep::Replace("a".into()));
        members.remove(0);
        assert_eq!(step(&members, 2, 10), RestartStep::Done, "only new members: over, no surge left");
    }

    #[test]
    fn in_service_never_drops_below_the_count_before() {
        // Walk a restart of 3 members to its end, applying each step, and count the
        // members in service (Active, not draining) after every one.
        let mut members: Vec<Member> = (0..3).map(|i| member(&format!("old{i}"), "np1", "a", active(), i)).collect();
        let mut clock = 100;
        let serving = |ms: &[Member]| ms.iter().filter(|m| m.status == MemberStatus::Active).count();
        for _ in 0..20 {
            match step(&members, 3, 100) {
                RestartStep::Done => break,
                RestartStep::Wait => {
                    // The replacements become active.
                    members.iter_mut().filter(|m| m.init_time >= 100).for_each(|m| m.status = MemberStatus::Active);
                }
                RestartStep::Start(n) => {
                    for _ in 0..n {
                        clock += 1;
                        members.push(member(&format!("new{clock}"), "np1", "a", MemberStatus::Created, clock));
                    }
                }
                RestartStep::Replace(id) => members.retain(|m| m.member_id != id),
            }
            assert!(serving(&members) >= 3, "{members:?}");
        }
        assert_eq!(step(&members, 3, 100), RestartStep::Done);
        assert_eq!(members.len(), 3, "no extra member left behind");
        assert!(members.iter().all(|m| m.init_time >= 100));
    }

    #[test]
    fn a_cluster_below_its_size_grows_back_and_one_above_it_sheds_old_members() {
        // One old member of a desired three (say min was raised): two plus the surge start.
        let members = [member("a", "np1", "a", active(), 1)];
        assert_eq!(step(&members, 3, 10), RestartStep::Start(3));
        // Three old members of a desired one (max lowered): old ones leave first, one a step.
        let members: Vec<Member> = (0..3).map(|i| member(&format!("o{i}"), "np1", "a", active(), i)).collect();
        assert_eq!(step(&members, 1, 10), RestartStep::Replace("o0".into()));
    }

    #[test]
    fn members_created_after_the_request_are_not_restarted() {
        let members = [member("a", "np1", "a", active(), 10), member("b", "np1", "a", active(), 11)];
        assert_eq!(step(&members, 2, 10), RestartStep::Done);
        assert_eq!(step(&[], 2, 10), RestartStep::Done, "an empty cluster has nothing to restart");
    }
}
