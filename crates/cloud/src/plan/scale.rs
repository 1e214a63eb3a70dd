//! How many members a cluster gains or loses, where new ones go and which leave:
//! the ReplicaSet step, pure over the cluster's members and its placement.

use std::collections::{HashMap, HashSet};

use stratos_model::placement::{Placement, Slot};
use stratos_model::topology::{Member, MemberStatus};
use stratos_model::{ClusterScale, ClusterSpec};

use super::restart::{oldest_old, restart_step, Pace, RestartStep};

/// What a cluster's scale needs.
pub struct ScaleInput<'a> {
    pub spec: &'a ClusterSpec,
    /// The autoscaler's record: the desired size, and the members to remove first.
    pub scale: Option<&'a ClusterScale>,
    pub placement: &'a Placement,
    /// Every member the topology has in the cluster.
    pub members: Vec<&'a Member>,
    /// Members on their way out (draining, or their driver stopping them): counted as
    /// neither live nor gone.
    pub leaving: &'a dyn Fn(&str) -> bool,
    /// The cluster waits after failures: it starts nobody now.
    pub backing_off: bool,
    /// Partitions where a member just failed (see `backoff`).
    pub avoid: &'a HashSet<Slot>,
    /// A rolling restart asked for at this time (milliseconds): members created before
    /// it are replaced one at a time (`restart`).
    pub restart_since: Option<u64>,
    /// The revision the cluster's members should run (`rollout`): members of another
    /// are replaced, at `pace`.
    pub revision: Option<u32>,
    pub pace: Pace,
    /// The cartridge has slot volumes (`slots::has_volumes`): members are replaced like a
    /// StatefulSet's, terminate-first whatever `pace` says ([`Pace::TERMINATE_FIRST`]),
    /// and none is created while a member of the cluster is leaving (still in the
    /// topology, so still holding its slot): a replacement takes the slot just freed and
    /// two members never use one slot's volumes at once.
    pub stateful: bool,
}

/// What a cluster's scale does.
#[derive(Debug, Default, PartialEq)]
pub struct ScalePlan {
    /// Where each new member goes.
    pub create: Vec<Slot>,
    /// Members to drain, in order.
    pub drain: Vec<String>,
    /// Why the cluster cannot grow to its desired size (every partition full).
    pub full: Option<String>,
}

/// The size the cluster converges to: the autoscaler's, else the deployment's, within min and max.
pub fn desired(spec: &ClusterSpec, scale: Option<&ClusterScale>) -> u32 {
    scale.map_or(spec.desired, |s| s.desired).clamp(spec.min, spec.max.max(spec.min))
}

/// A member counts toward the cluster's size while it is not leaving: not in
/// maintenance or past it (suspended included), not draining, not being terminated.
pub fn is_live(m: &Member, leaving: &dyn Fn(&str) -> bool) -> bool {
    m.status < MemberStatus::InMaintenance && !leaving(&m.member_id)
}

fn slot_of(m: &Member) -> Slot {
    (m.network_partition_id.clone(), m.partition_id.clone())
}

pub fn plan_scale(input: &ScaleInput) -> ScalePlan {
    let live: Vec<&Member> = input.members.iter().copied().filter(|m| is_live(m, input.leaving)).collect();
    // A stateful cluster waits for its leaving members to be gone before it starts any.
    let hold = input.backing_off || (input.stateful && live.len() < input.members.len());
    let pace = if input.stateful { Pace::TERMINATE_FIRST } else { input.pace };
    let desired = desired(input.spec, input.scale);
    let mut counts: HashMap<Slot, u32> = HashMap::new();
    for m in &live {
        *counts.entry(slot_of(m)).or_insert(0) += 1;
    }
    let mut plan = ScalePlan::default();
    let have = live.len() as u32;
    let is_old = |m: &Member| {
        super::rollout::revision_of(m) != input.revision || input.restart_since.is_some_and(|since| m.init_time < since)
    };
    match restart_step(&live, desired, &is_old, pace) {
        RestartStep::Done => {}
        RestartStep::Act { start, drain } => {
            plan.drain = drain;
            if hold {
                return plan;
            }
            for _ in 0..start {
                match input.placement.next_avoiding(&counts, input.avoid) {
                    Some(slot) => {
                        *counts.entry(slot.clone()).or_insert(0) += 1;
                        plan.create.push(slot);
                    }
                    // No room for the surge member: the oldest old member makes room
                    // (one fewer in service for a while), and is replaced next.
                    None if plan.create.is_empty() && plan.drain.is_empty() && have >= desired => {
                        plan.drain.extend(oldest_old(&live, &is_old).map(str::to_string));
                        plan.full = Some(format!(
                            "replacing without a surge member: every partition is full ({} member(s) at most)",
                            input.placement.capacity()
                        ));
                        break;
                    }
                    None => break,
                }
            }
            return plan;
        }
    }
    if have < desired {
        if hold {
            return plan;
        }
        for _ in have..desired {
            let Some(slot) = input.placement.next_avoiding(&counts, input.avoid) else {
                plan.full = Some(format!(
                    "cannot place more members: every partition is full ({} member(s) at most)",
                    input.placement.capacity()
                ));
                break;
            };
            *counts.entry(slot.clone()).or_insert(0) += 1;
            plan.create.push(slot);
        }
    } else if have > desired {
        let mut excess = have - desired;
        let mut chosen: HashSet<&str> = HashSet::new();
        // The autoscaler's choice first (the least loaded members).
        for id in input.scale.map(|s| s.drain_first.as_slice()).unwrap_or_default() {
            if excess == 0 {
                break;
            }
            let Some(m) = live.iter().find(|m| &m.member_id == id) else { continue };
            if !chosen.insert(&m.member_id) {
                continue;
            }
            if let Some(count) = counts.get_mut(&slot_of(m)) {
                *count -= 1;
            }
            plan.drain.push(id.clone());
            excess -= 1;
        }
        // Then the placement's rule: the slot filled last gives one up first; within
        // it, a member not yet active first, then the newest.
        for _ in 0..excess {
            let Some(slot) = input.placement.next_to_remove(&counts) else { break };
            let victim = live
                .iter()
                .filter(|m| slot_of(m) == slot && !chosen.contains(m.member_id.as_str()))
                .max_by_key(|m| (m.status != MemberStatus::Active, m.init_time));
            if let Some(count) = counts.get_mut(&slot) {
                *count -= 1;
            }
            if let Some(m) = victim {
                chosen.insert(&m.member_id);
                plan.drain.push(m.member_id.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::*;
    use stratos_model::{ApplicationAlgorithm as A, PartitionAlgorithm as P};

    fn run(
        spec: &ClusterSpec,
        scale: Option<&ClusterScale>,
        placement: &Placement,
        members: &[Member],
        leaving: &[&str],
    ) -> ScalePlan {
        let leaving = |id: &str| leaving.contains(&id);
        plan_scale(&ScaleInput {
            spec,
            scale,
            placement,
            members: members.iter().collect(),
            leaving: &leaving,
            backing_off: false,
            avoid: &HashSet::new(),
            restart_since: None,
            revision: None,
            pace: Pace::ONE_AT_A_TIME,
            stateful: false,
        })
    }

    #[test]
    fn grows_to_min_and_never_past_max() {
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 10)])]);
        let plan = run(&spec(2, 4, 1), None, &p, &[], &[]);
        assert_eq!(plan.create, [slot("np1", "a"), slot("np1", "a")], "desired 1 is raised to min 2");
        let plan = run(&spec(2, 4, 1), Some(&scale(9, &[])), &p, &[], &[]);
        assert_eq!(plan.create.len(), 4, "desired 9 is held to max 4");
        let members: Vec<Member> = (0..4).map(|i| member(&format!("m{i}"), "np1", "a", active(), i)).collect();
        let plan = run(&spec(2, 4, 1), Some(&scale(0, &[])), &p, &members, &[]);
        assert_eq!(plan.drain.len(), 2, "desired 0 is held to min 2");
        assert!(plan.create.is_empty());
        assert_eq!(run(&spec(2, 4, 1), Some(&scale(4, &[])), &p, &members, &[]), ScalePlan::default());
    }

    #[test]
    fn one_after_another_fills_each_partition_to_its_max_then_bursts() {
        let p = placement(
            A::OneAfterAnother,
            &[("np1", P::OneAfterAnother, &[("a", 2), ("b", 1)]), ("np2", P::OneAfterAnother, &[("c", 2)])],
        );
        let plan = run(&spec(1, 10, 10), None, &p, &[], &[]);
        assert_eq!(
            plan.create,
            [slot("np1", "a"), slot("np1", "a"), slot("np1", "b"), slot("np2", "c"), slot("np2", "c")]
        );
        let full = plan.full.expect("the cluster wants 10 where 5 fit");
        assert!(full.contains("every partition is full (5 member(s) at most)"), "{full}");
    }

    #[test]
    fn round_robin_spreads_over_partitions_within_each_partition_max() {
        let p = placement(A::OneAfterAnother, &[("np1", P::RoundRobin, &[("a", 3), ("b", 1), ("c", 3)])]);
        // One member already runs in b: the others go to a and c in turn, b stays at its max.
        let members = [member("m0", "np1", "b", active(), 0)];
        let plan = run(&spec(1, 6, 6), None, &p, &members, &[]);
        assert_eq!(
            plan.create,
            [slot("np1", "a"), slot("np1", "c"), slot("np1", "a"), slot("np1", "c"), slot("np1", "a")]
        );
    }

    #[test]
    fn all_at_once_spreads_over_network_partitions() {
        let p = placement(
            A::AllAtOnce,
            &[("np1", P::OneAfterAnother, &[("a", 5)]), ("np2", P::OneAfterAnother, &[("b", 5)])],
        );
        let plan = run(&spec(4, 4, 4), None, &p, &[], &[]);
        assert_eq!(plan.create, [slot("np1", "a"), slot("np2", "b"), slot("np1", "a"), slot("np2", "b")]);
    }

    #[test]
    fn scale_down_drains_the_autoscalers_choice_first_then_by_the_placement_rule() {
        let p = placement(
            A::OneAfterAnother,
            &[("np1", P::OneAfterAnother, &[("a", 2)]), ("np2", P::OneAfterAnother, &[("b", 2)])],
        );
        let members = [
            member("a1", "np1", "a", active(), 1),
            member("a2", "np1", "a", active(), 2),
            member("b1", "np2", "b", active(), 3),
            member("b2", "np2", "b", active(), 4),
        ];
        // The autoscaler names a1 (least loaded) and an unknown member; one more leaves by
        // the rule: the burst partition np2 first, its newest member.
        let plan = run(&spec(1, 4, 4), Some(&scale(2, &["gone", "a1"])), &p, &members, &[]);
        assert_eq!(plan.drain, ["a1", "b2"]);
        // Within a slot a member not yet active goes before an active one, even an older one.
        let mut members = members.to_vec();
        members[2].status = MemberStatus::Starting;
        let plan = run(&spec(1, 4, 4), Some(&scale(3, &[])), &p, &members, &[]);
        assert_eq!(plan.drain, ["b1"]);
    }

    #[test]
    fn leaving_members_count_as_neither_live_nor_gone() {
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 10)])]);
        let members = [member("m1", "np1", "a", active(), 1), member("m2", "np1", "a", active(), 2)];
        // m2 is being terminated: one live, desired 2 → one new member; m2 is not drained again.
        let plan = run(&spec(1, 4, 2), None, &p, &members, &["m2"]);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.drain.is_empty());
        // A member in maintenance (draining) is not live either.
        let mut members = members.to_vec();
        members[0].status = MemberStatus::InMaintenance;
        assert_eq!(run(&spec(1, 4, 2), None, &p, &members, &[]).create.len(), 1);
    }

    #[test]
    fn a_suspended_member_is_replaced_at_once() {
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 10)])]);
        let mut suspended = member("m1", "np1", "a", active(), 1);
        suspended.status = MemberStatus::Suspended;
        let members = [suspended, member("m2", "np1", "a", active(), 2)];
        // Its termination has not reported yet (it is not "leaving" here): still not live.
        assert_eq!(run(&spec(2, 4, 2), None, &p, &members, &[]).create, [slot("np1", "a")]);
    }

    #[test]
    fn a_cluster_backing_off_starts_nobody_and_avoids_the_failed_partition_after() {
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 5), ("b", 5)])]);
        let s = spec(2, 4, 2);
        let no = |_: &str| false;
        let mut input = ScaleInput {
            spec: &s,
            scale: None,
            placement: &p,
            members: vec![],
            leaving: &no,
            backing_off: true,
            avoid: &HashSet::new(),
            restart_since: None,
            revision: None,
            pace: Pace::ONE_AT_A_TIME,
            stateful: false,
        };
        assert_eq!(plan_scale(&input), ScalePlan::default());
        let avoid = HashSet::from([slot("np1", "a")]);
        input.backing_off = false;
        input.avoid = &avoid;
        assert_eq!(plan_scale(&input).create, [slot("np1", "b"), slot("np1", "b")]);
        // No other partition has room: the failed one rather than no member at all.
        let small = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 5)])]);
        input.placement = &small;
        assert_eq!(plan_scale(&input).create, [slot("np1", "a"), slot("np1", "a")]);
    }

    #[test]
    fn a_restart_surges_into_a_free_slot_or_drains_first_when_every_partition_is_full() {
        let members = [member("m1", "np1", "a", active(), 1), member("m2", "np1", "a", active(), 2)];
        let no = |_: &str| false;
        let roomy = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 3)])]);
        let s = spec(2, 2, 2);
        let mut input = ScaleInput {
            spec: &s,
            scale: None,
            placement: &roomy,
            members: members.iter().collect(),
            leaving: &no,
            backing_off: false,
            avoid: &HashSet::new(),
            restart_since: Some(10),
            revision: None,
            pace: Pace::ONE_AT_A_TIME,
            stateful: false,
        };
        // Max 2 is the autoscaler's bound, not the restart's: the surge member is the third.
        assert_eq!(plan_scale(&input).create, [slot("np1", "a")]);
        let full = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 2)])]);
        input.placement = &full;
        let plan = plan_scale(&input);
        assert!(plan.create.is_empty());
        assert_eq!(plan.drain, ["m1"], "the oldest makes room");
        assert!(plan.full.is_some());
        // Without a restart, the same cluster is converged and nothing happens.
        input.restart_since = None;
        assert_eq!(plan_scale(&input), ScalePlan::default());
    }

    #[test]
    fn scaling_acts_during_a_rollout_with_members_of_the_new_revision() {
        use stratos_model::{Property, REVISION_PROPERTY};
        let at = |mut m: Member, revision: u32| {
            m.properties.push(Property { name: REVISION_PROPERTY.into(), value: revision.to_string() });
            m
        };
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 10)])]);
        let members = [at(member("o1", "np1", "a", active(), 1), 1), at(member("o2", "np1", "a", active(), 2), 1)];
        let no = |_: &str| false;
        let s = spec(1, 5, 2);
        let mut input = ScaleInput {
            spec: &s,
            scale: None,
            placement: &p,
            members: members.iter().collect(),
            leaving: &no,
            backing_off: false,
            avoid: &HashSet::new(),
            restart_since: None,
            revision: Some(2),
            pace: Pace::ONE_AT_A_TIME,
            stateful: false,
        };
        assert_eq!(plan_scale(&input).create.len(), 1, "the surge member (revision 2)");
        // The autoscaler asks for 4 meanwhile: new members up to 4 plus the surge, none old.
        let four = scale(4, &[]);
        input.scale = Some(&four);
        assert_eq!(plan_scale(&input).create.len(), 3);
        // And for 1: the cluster shrinks, by its oldest old member; no new one yet.
        let one = scale(1, &[]);
        input.scale = Some(&one);
        let plan = plan_scale(&input);
        assert!(plan.create.is_empty() && plan.drain == ["o1"], "{plan:?}");
        // Same revision: nothing to roll.
        input.revision = Some(1);
        input.scale = None;
        assert_eq!(plan_scale(&input), ScalePlan::default());
    }

    /// One reconcile of a restart asked for at 10 of a cluster of `n` (partition a, room
    /// for 10), its members given as (id, status, leaving).
    fn restart_of(n: u32, stateful: bool, members: &[(Member, bool)]) -> ScalePlan {
        let p = placement(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 10)])]);
        let s = spec(n, n, n);
        let leaving: Vec<&str> = members.iter().filter(|(_, l)| *l).map(|(m, _)| m.member_id.as_str()).collect();
        let leaving = |id: &str| leaving.contains(&id);
        plan_scale(&ScaleInput {
            spec: &s,
            scale: None,
            placement: &p,
            members: members.iter().map(|(m, _)| m).collect(),
            leaving: &leaving,
            backing_off: false,
            avoid: &HashSet::new(),
            restart_since: Some(10),
            revision: None,
            // A rollout's surge is not a stateful cluster's.
            pace: Pace { max_surge: 2, max_unavailable: 0 },
            stateful,
        })
    }

    fn drains(ids: &[&str]) -> ScalePlan {
        ScalePlan { drain: ids.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn creates(n: usize) -> ScalePlan {
        ScalePlan { create: vec![slot("np1", "a"); n], ..Default::default() }
    }

    #[test]
    fn a_stateful_member_restarts_terminate_first_with_nothing_created_while_it_leaves() {
        let old = member("a", "np1", "a", active(), 1);
        assert_eq!(restart_of(1, true, &[(old.clone(), false)]), drains(&["a"]), "drain first, no surge");
        assert_eq!(restart_of(1, true, &[(old.clone(), true)]), ScalePlan::default(), "draining: nothing created");
        let mut leaving = old.clone();
        leaving.status = MemberStatus::Terminated;
        assert_eq!(restart_of(1, true, &[(leaving, false)]), ScalePlan::default(), "still in the topology: wait");
        assert_eq!(restart_of(1, true, &[]), creates(1), "gone: its replacement, in the slot it freed");
        let new = member("b", "np1", "a", MemberStatus::Starting, 11);
        assert_eq!(restart_of(1, true, &[(new, false)]), ScalePlan::default(), "done");
    }

    #[test]
    fn a_stateful_pair_restarts_one_member_at_a_time_each_after_the_old_one_is_gone() {
        let (a, b) = (member("a", "np1", "a", active(), 1), member("b", "np1", "a", active(), 2));
        assert_eq!(restart_of(2, true, &[(a.clone(), false), (b.clone(), false)]), drains(&["a"]));
        assert_eq!(restart_of(2, true, &[(a.clone(), true), (b.clone(), false)]), ScalePlan::default());
        assert_eq!(restart_of(2, true, &[(b.clone(), false)]), creates(1), "a is gone: its replacement");
        let mut c = member("c", "np1", "a", MemberStatus::Starting, 11);
        assert_eq!(restart_of(2, true, &[(b.clone(), false), (c.clone(), false)]), ScalePlan::default());
        c.status = MemberStatus::Active;
        assert_eq!(restart_of(2, true, &[(b.clone(), false), (c.clone(), false)]), drains(&["b"]), "c serves");
        assert_eq!(restart_of(2, true, &[(b, true), (c.clone(), false)]), ScalePlan::default(), "b leaving");
        assert_eq!(restart_of(2, true, &[(c.clone(), false)]), creates(1));
        let d = member("d", "np1", "a", active(), 12);
        assert_eq!(restart_of(2, true, &[(c, false), (d, false)]), ScalePlan::default(), "done");
    }

    #[test]
    fn a_cluster_without_volumes_keeps_surging_first() {
        let (a, b) = (member("a", "np1", "a", active(), 1), member("b", "np1", "a", active(), 2));
        assert_eq!(restart_of(2, false, &[(a.clone(), false), (b.clone(), false)]), creates(2), "the surge of 2");
        assert_eq!(restart_of(1, false, &[(a.clone(), false)]), creates(1), "a new member before the old leaves");
        // A leaving member holds nothing back.
        assert_eq!(restart_of(2, false, &[(a, true), (b, false)]), creates(2));
    }
}
