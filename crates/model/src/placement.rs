//! Where the next member of a cluster goes, and which partition gives one up
//! first: pure functions over the policies and the current member counts.

use std::collections::{HashMap, HashSet};

use crate::{ApplicationAlgorithm, DeploymentPolicy, NetworkPartition, PartitionAlgorithm};

/// A place for a member: (network partition id, partition id).
pub type Slot = (String, String);

/// The partitions a cluster may use, in the order they fill, with their capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub application_algorithm: ApplicationAlgorithm,
    pub network_partitions: Vec<NetworkPartitionPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPartitionPlan {
    pub id: String,
    pub algorithm: PartitionAlgorithm,
    /// (partition id, most members it takes).
    pub partitions: Vec<(String, u32)>,
}

impl Placement {
    /// The network partitions named by the application policy (in its order)
    /// that the deployment policy also uses; a partition's capacity is the lower of
    /// the deployment policy's `partitionMax` and the partition's own.
    pub fn new(
        application_algorithm: ApplicationAlgorithm,
        application_network_partitions: &[String],
        policy: &DeploymentPolicy,
        defined: &HashMap<String, NetworkPartition>,
    ) -> Placement {
        let network_partitions = application_network_partitions
            .iter()
            .filter_map(|np_id| policy.network_partitions.iter().find(|np| &np.id == np_id))
            .map(|np| NetworkPartitionPlan {
                id: np.id.clone(),
                algorithm: np.partition_algo,
                partitions: np
                    .partitions
                    .iter()
                    .map(|p| {
                        let own = defined.get(&np.id).and_then(|d| d.partition(&p.id)).and_then(|d| d.partition_max);
                        (p.id.clone(), own.map_or(p.partition_max, |own| own.min(p.partition_max)))
                    })
                    .collect(),
            })
            .collect();
        Placement { application_algorithm, network_partitions }
    }

    /// Most members the cluster can have in all its partitions together.
    pub fn capacity(&self) -> u32 {
        self.network_partitions.iter().flat_map(|np| np.partitions.iter().map(|(_, max)| *max)).sum()
    }

    /// Where the next member goes, given how many each slot has; `None` when every partition is full.
    pub fn next(&self, counts: &HashMap<Slot, u32>) -> Option<Slot> {
        let count = |np: &str, p: &str| counts.get(&(np.to_string(), p.to_string())).copied().unwrap_or(0);
        let np_total = |np: &NetworkPartitionPlan| np.partitions.iter().map(|(p, _)| count(&np.id, p)).sum::<u32>();
        let open: Vec<&NetworkPartitionPlan> = self
            .network_partitions
            .iter()
            .filter(|np| np.partitions.iter().any(|(p, max)| count(&np.id, p) < *max))
            .collect();
        let np = match self.application_algorithm {
            // Burst: the next network partition only once the earlier ones are full.
            ApplicationAlgorithm::OneAfterAnother => open.first().copied()?,
            // Spread over network partitions: the least used one (first on ties).
            ApplicationAlgorithm::AllAtOnce => open.iter().copied().min_by_key(|np| np_total(np))?,
        };
        let free = np.partitions.iter().filter(|(p, max)| count(&np.id, p) < *max);
        let partition = match np.algorithm {
            PartitionAlgorithm::OneAfterAnother => free.map(|(p, _)| p).next()?,
            PartitionAlgorithm::RoundRobin => free.min_by_key(|(p, _)| count(&np.id, p)).map(|(p, _)| p)?,
        };
        Some((np.id.clone(), partition.clone()))
    }

    /// Where the next member goes when members in the `avoid` slots failed to
    /// start or activate: another partition with room, as `next` would choose
    /// among the others; the usual slot when no other has room (better a retry
    /// where it failed than no member at all).
    pub fn next_avoiding(&self, counts: &HashMap<Slot, u32>, avoid: &HashSet<Slot>) -> Option<Slot> {
        if avoid.is_empty() {
            return self.next(counts);
        }
        let mut elsewhere = self.clone();
        for np in &mut elsewhere.network_partitions {
            for (p, max) in &mut np.partitions {
                if avoid.contains(&(np.id.clone(), p.clone())) {
                    // A capacity of 0: full, so `next` passes over it.
                    *max = 0;
                }
            }
        }
        elsewhere.next(counts).or_else(|| self.next(counts))
    }

    /// Which slot gives up a member first: the reverse of `next`, so that
    /// scaling in empties the last-filled partition and contracts from the
    /// burst network partition first. `None` when the cluster has no member.
    pub fn next_to_remove(&self, counts: &HashMap<Slot, u32>) -> Option<Slot> {
        let count = |np: &str, p: &str| counts.get(&(np.to_string(), p.to_string())).copied().unwrap_or(0);
        let np_total = |np: &NetworkPartitionPlan| np.partitions.iter().map(|(p, _)| count(&np.id, p)).sum::<u32>();
        let used: Vec<&NetworkPartitionPlan> = self.network_partitions.iter().filter(|np| np_total(np) > 0).collect();
        let np = match self.application_algorithm {
            ApplicationAlgorithm::OneAfterAnother => used.last().copied()?,
            ApplicationAlgorithm::AllAtOnce => used.iter().rev().copied().max_by_key(|np| np_total(np))?,
        };
        let busy = np.partitions.iter().rev().filter(|(p, _)| count(&np.id, p) > 0);
        let partition = match np.algorithm {
            PartitionAlgorithm::OneAfterAnother => busy.map(|(p, _)| p).next()?,
            // The fullest partition, the last one on ties (max_by_key keeps the last max of the reversed order... so reverse again).
            PartitionAlgorithm::RoundRobin => {
                let mut best: Option<(&String, u32)> = None;
                for (p, _) in busy {
                    let c = count(&np.id, p);
                    if best.is_none_or(|(_, b)| c > b) {
                        best = Some((p, c));
                    }
                }
                best.map(|(p, _)| p)?
            }
        };
        Some((np.id.clone(), partition.clone()))
    }
}

/// Placements as tests write them, for this module's tests and its users' (the
/// controller's planner): the `testing` feature, a dev-dependency only.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;

    /// A network partition: its id, its algorithm, and its (partition, max) pairs.
    pub type NpPlan<'a> = (&'a str, PartitionAlgorithm, &'a [(&'a str, u32)]);

    /// The placement of `nps`, filled by `app`.
    pub fn plan(app: ApplicationAlgorithm, nps: &[NpPlan]) -> Placement {
        Placement {
            application_algorithm: app,
            network_partitions: nps
                .iter()
                .map(|(id, algo, parts)| NetworkPartitionPlan {
                    id: id.to_string(),
                    algorithm: *algo,
                    partitions: parts.iter().map(|(p, m)| (p.to_string(), *m)).collect(),
                })
                .collect(),
        }
    }

    /// The slot of partition `p` in network partition `np`.
    pub fn slot(np: &str, p: &str) -> Slot {
        (np.into(), p.into())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{plan, slot as s};
    use super::*;

    /// Places `n` members one by one and returns the slots in order.
    fn fill(placement: &Placement, n: usize) -> (Vec<Slot>, HashMap<Slot, u32>) {
        let mut counts = HashMap::new();
        let mut order = Vec::new();
        for _ in 0..n {
            let Some(slot) = placement.next(&counts) else { break };
            *counts.entry(slot.clone()).or_insert(0) += 1;
            order.push(slot);
        }
        (order, counts)
    }

    use ApplicationAlgorithm as A;
    use PartitionAlgorithm as P;

    #[test]
    fn one_after_another_fills_each_partition_to_its_max_then_bursts() {
        let p = plan(
            A::OneAfterAnother,
            &[("np1", P::OneAfterAnother, &[("a", 2), ("b", 1)]), ("np2", P::OneAfterAnother, &[("c", 2)])],
        );
        let (order, _) = fill(&p, 10);
        assert_eq!(order, [s("np1", "a"), s("np1", "a"), s("np1", "b"), s("np2", "c"), s("np2", "c")]);
        assert_eq!(p.capacity(), 5);
    }

    #[test]
    fn round_robin_spreads_and_respects_each_max() {
        let p = plan(A::OneAfterAnother, &[("np1", P::RoundRobin, &[("a", 3), ("b", 1), ("c", 3)])]);
        let (order, counts) = fill(&p, 10);
        assert_eq!(order[..3], [s("np1", "a"), s("np1", "b"), s("np1", "c")]);
        assert_eq!(order.len(), 7);
        assert_eq!(counts[&s("np1", "b")], 1);
        assert_eq!(counts[&s("np1", "a")], 3);
    }

    #[test]
    fn removal_reverses_placement() {
        for p in [
            plan(
                A::OneAfterAnother,
                &[("np1", P::OneAfterAnother, &[("a", 2), ("b", 2)]), ("np2", P::RoundRobin, &[("c", 2), ("d", 2)])],
            ),
            plan(A::OneAfterAnother, &[("np1", P::RoundRobin, &[("a", 2), ("b", 3)])]),
        ] {
            let (order, mut counts) = fill(&p, 100);
            let mut removed = Vec::new();
            while let Some(slot) = p.next_to_remove(&counts) {
                *counts.get_mut(&slot).unwrap() -= 1;
                removed.push(slot);
            }
            assert_eq!(removed.len(), order.len());
            // The burst network partition empties before the first one loses a member.
            if let Some(first_np1) = removed.iter().position(|(np, _)| np == "np1") {
                assert!(removed[first_np1..].iter().all(|(np, _)| np == "np1"), "{removed:?}");
            }
        }
        let p = plan(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 2), ("b", 2)])]);
        let (_, counts) = fill(&p, 3);
        assert_eq!(p.next_to_remove(&counts), Some(s("np1", "b")), "last-filled partition first");
        assert_eq!(p.next_to_remove(&HashMap::new()), None);
    }

    #[test]
    fn all_at_once_spreads_over_network_partitions() {
        let p =
            plan(A::AllAtOnce, &[("np1", P::OneAfterAnother, &[("a", 5)]), ("np2", P::OneAfterAnother, &[("b", 5)])]);
        let (order, _) = fill(&p, 4);
        assert_eq!(order, [s("np1", "a"), s("np2", "b"), s("np1", "a"), s("np2", "b")]);
    }

    #[test]
    fn existing_members_count_even_in_slots_no_longer_planned() {
        let p = plan(A::OneAfterAnother, &[("np1", P::OneAfterAnother, &[("a", 1), ("b", 1)])]);
        let mut counts = HashMap::new();
        counts.insert(s("np1", "a"), 1);
        counts.insert(s("gone", "x"), 4);
        assert_eq!(p.next(&counts), Some(s("np1", "b")));
    }

    #[test]
    fn a_failed_slot_is_passed_over_while_another_has_room() {
        let rr = plan(A::OneAfterAnother, &[("np1", P::RoundRobin, &[("a", 2), ("b", 2)])]);
        let oaa = plan(
            A::OneAfterAnother,
            &[("np1", P::OneAfterAnother, &[("a", 2), ("b", 1)]), ("np2", P::OneAfterAnother, &[("c", 1)])],
        );
        let counts = |items: &[(&str, &str, u32)]| -> HashMap<Slot, u32> {
            items.iter().map(|(np, p, n)| (s(np, p), *n)).collect()
        };
        let avoid = |items: &[(&str, &str)]| -> HashSet<Slot> { items.iter().map(|(np, p)| s(np, p)).collect() };
        // (what, placement, counts, slots to avoid, expected)
        type Case<'a> = (&'a str, &'a Placement, HashMap<Slot, u32>, HashSet<Slot>, Option<Slot>);
        let cases: Vec<Case> = vec![
            ("nothing to avoid: as next", &rr, counts(&[]), avoid(&[]), Some(s("np1", "a"))),
            ("a failed: b instead", &rr, counts(&[]), avoid(&[("np1", "a")]), Some(s("np1", "b"))),
            ("b is full: back to a", &rr, counts(&[("np1", "b", 2)]), avoid(&[("np1", "a")]), Some(s("np1", "a"))),
            ("b failed: a", &rr, counts(&[("np1", "a", 1)]), avoid(&[("np1", "b")]), Some(s("np1", "a"))),
            ("both failed: as next", &rr, counts(&[]), avoid(&[("np1", "a"), ("np1", "b")]), Some(s("np1", "a"))),
            ("everything full", &rr, counts(&[("np1", "a", 2), ("np1", "b", 2)]), avoid(&[("np1", "a")]), None),
            ("one-after-another skips a", &oaa, counts(&[]), avoid(&[("np1", "a")]), Some(s("np1", "b"))),
            (
                "the whole first network partition failed: burst",
                &oaa,
                counts(&[]),
                avoid(&[("np1", "a"), ("np1", "b")]),
                Some(s("np2", "c")),
            ),
            ("an unknown slot changes nothing", &oaa, counts(&[]), avoid(&[("np9", "x")]), Some(s("np1", "a"))),
        ];
        for (what, placement, counts, avoid, expected) in cases {
            assert_eq!(placement.next_avoiding(&counts, &avoid), expected, "{what}");
        }
    }

    #[test]
    fn partition_max_is_the_lower_of_policy_and_partition() {
        let np: NetworkPartition = serde_json::from_value(serde_json::json!({
            "id": "np1", "provider": "local", "partitions": [{"id": "a", "partitionMax": 1}, {"id": "b"}]
        }))
        .unwrap();
        let policy: DeploymentPolicy = serde_json::from_value(serde_json::json!({
            "id": "d", "networkPartitions": [{"id": "np1", "partitionAlgo": "round-robin",
                "partitions": [{"id": "a", "partitionMax": 5}, {"id": "b", "partitionMax": 2}]}]
        }))
        .unwrap();
        let defined = HashMap::from([("np1".to_string(), np)]);
        let p = Placement::new(A::OneAfterAnother, &["np1".into(), "np-unused".into()], &policy, &defined);
        assert_eq!(p.network_partitions[0].partitions, [("a".to_string(), 1), ("b".to_string(), 2)]);
        assert_eq!(p.capacity(), 3);
    }
}
