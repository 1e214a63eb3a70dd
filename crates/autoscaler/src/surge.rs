//! Reaction to a load step: requests in flight far past what a cluster's members
//! carry at its threshold, as a load balancer reported them a moment ago, evaluate
//! the cluster at once rather than at the next interval (15 s by default, and its
//! health summaries average a 60 s window, which a step takes a while to move).
//!
//! Pure: readings and evaluations come in, "evaluate this cluster now" comes out.
//! A surge evaluation takes the reading as the requests in flight, flat (no
//! prediction from one reading); after it the cluster's size it asked for is what
//! the next readings are measured against, so one step scales out once.

use std::collections::HashMap;

/// A reading over this many times what the members carry at the threshold is a surge.
pub const SURGE_FACTOR: f64 = 2.0;

/// Readings older than this (ms) do not count: load balancers report every second.
pub const READING_FRESH_MS: u64 = 5_000;

/// Whether `in_flight` requests are a surge for `members` members at `threshold` each.
pub fn is_surge(in_flight: f64, threshold: f64, members: u32) -> bool {
    threshold > 0.0 && in_flight > SURGE_FACTOR * threshold * members.max(1) as f64
}

#[derive(Debug, Clone, Copy)]
struct Guide {
    /// `None`: requests in flight are not one of its factors.
    threshold: Option<f64>,
    /// Members at the last evaluation, or what a surge evaluation asked for since.
    members: u32,
    max: u32,
}

#[derive(Debug, Default)]
pub struct Surges {
    /// cluster → network partition → (requests in flight, when, ms).
    readings: HashMap<String, HashMap<String, (f64, u64)>>,
    guides: HashMap<String, Guide>,
}

impl Surges {
    /// After an evaluation of a cluster: its requests-in-flight threshold (`None`: not
    /// one of its factors), its members and its max.
    pub fn evaluated(&mut self, cluster_id: &str, threshold: Option<f64>, members: u32, max: u32) {
        self.guides.insert(cluster_id.to_string(), Guide { threshold, members, max });
    }

    /// Whether the cluster was evaluated (its readings can be judged).
    pub fn guided(&self, cluster_id: &str) -> bool {
        self.guides.contains_key(cluster_id)
    }

    /// A load balancer's count for one network partition of a cluster; true when the
    /// cluster (over its partitions) is in a surge that calls for more members.
    pub fn reading(&mut self, cluster_id: &str, network_partition_id: &str, in_flight: f64, at: u64) -> bool {
        let partitions = self.readings.entry(cluster_id.to_string()).or_default();
        match partitions.get_mut(network_partition_id) {
            Some(r) => *r = (in_flight, at),
            None => {
                partitions.insert(network_partition_id.to_string(), (in_flight, at));
            }
        }
        let Some(guide) = self.guides.get(cluster_id) else { return false };
        let Some(threshold) = guide.threshold else { return false };
        let total = self.in_flight(cluster_id, at.saturating_sub(READING_FRESH_MS)).unwrap_or(0.0);
        guide.members < guide.max && is_surge(total, threshold, guide.members)
    }

    /// The cluster's requests in flight over its partitions, from readings no older than `oldest`.
    pub fn in_flight(&self, cluster_id: &str, oldest: u64) -> Option<f64> {
        let fresh: Vec<f64> =
            self.readings.get(cluster_id)?.values().filter(|(_, at)| *at >= oldest).map(|(v, _)| *v).collect();
        (!fresh.is_empty()).then(|| fresh.iter().sum())
    }

    /// A surge evaluation asked for `members`: later readings are measured against them.
    pub fn scaled(&mut self, cluster_id: &str, members: u32) {
        if let Some(g) = self.guides.get_mut(cluster_id) {
            g.members = g.members.max(members);
        }
    }

    /// Forgets the clusters no longer deployed.
    pub fn retain(&mut self, deployed: impl Fn(&str) -> bool) {
        self.readings.retain(|id, _| deployed(id));
        self.guides.retain(|id, _| deployed(id));
    }
}

#[cfg(test)]
mod tests {
    use stratos_health::HealthState;

    use super::*;
    use crate::decision::{decide, Action, FactorStats, Inputs, ScaleDownCounter, Thresholds};

    #[test]
    fn a_surge_is_twice_what_the_members_carry_at_the_threshold() {
        assert!(!is_surge(8.0, 4.0, 1));
        assert!(is_surge(8.5, 4.0, 1));
        assert!(!is_surge(16.0, 4.0, 2));
        assert!(is_surge(1.0, 0.4, 0), "an empty cluster counts as one member");
        assert!(!is_surge(100.0, 0.0, 1), "no threshold, no surge");
    }

    #[test]
    fn readings_add_up_over_partitions_while_fresh_and_a_scale_out_raises_the_bar() {
        let mut s = Surges::default();
        assert!(!s.reading("c", "np1", 100.0, 1_000), "never evaluated: nothing to measure against");
        assert!(!s.guided("c"));
        s.evaluated("c", Some(4.0), 2, 10);
        assert!(s.guided("c"));
        assert!(!s.reading("c", "np1", 10.0, 2_000));
        assert!(s.reading("c", "np2", 10.0, 2_500), "20 over two partitions > 2 × 4 × 2");
        assert!(!s.reading("c", "np2", 10.0, 2_000 + READING_FRESH_MS + 1), "np1's reading is stale");
        s.scaled("c", 5);
        assert!(!s.reading("c", "np1", 30.0, 8_000), "measured against the 5 asked for");
        s.evaluated("c", Some(4.0), 10, 10);
        assert!(!s.reading("c", "np1", 1000.0, 9_000), "at max: nothing to ask for");
        s.evaluated("c", None, 2, 10);
        assert!(!s.reading("c", "np1", 1000.0, 9_000), "requests in flight not a factor");
        s.retain(|_| false);
        assert_eq!(s.in_flight("c", 0), None);
    }

    /// What the monitor does, over time, with the real health windows: a load
    /// balancer reading every second, summaries and evaluations every 15 s with
    /// prediction, a surge evaluation on a surging reading; members follow the
    /// desired size at once. Returns the sizes the cluster scaled up to.
    fn scale_ups(load: impl Fn(u64) -> f64, seconds: u64, phase: u64) -> Vec<u32> {
        let (threshold, interval) = (4.0, 15);
        let thresholds = Thresholds { requests_in_flight: Some(threshold), ..Default::default() };
        let mut health = HealthState::new(60.0, 60.0);
        let mut surges = Surges::default();
        let mut counter = ScaleDownCounter::default();
        let mut members = 1u32;
        let mut ups = Vec::new();
        let act = |action: Action, members: &mut u32, ups: &mut Vec<u32>| match action {
            Action::ScaleUp(to) => {
                ups.push(to);
                *members = to;
            }
            Action::ScaleDown(to) => *members = to,
            Action::None => {}
        };
        surges.evaluated("c", Some(threshold), members, 10);
        for t in 0..seconds {
            let reading = load(t);
            health.cluster_in_flight("c", "np1", t as f64, reading);
            if surges.reading("c", "np1", reading, t * 1000) {
                let stats = FactorStats { average: reading, gradient: 0.0, second_derivative: 0.0 };
                let inputs =
                    Inputs { min: 1, max: 10, current: members, requests_in_flight: Some(stats), ..Default::default() };
                let d = decide(&inputs, &thresholds, interval as f64, true);
                let action = counter.next(members, d.required, 3);
                act(action, &mut members, &mut ups);
                surges.scaled("c", members);
            }
            if (t + phase).is_multiple_of(interval) {
                let summary = health.summaries(t as f64, t * 1000).into_iter().find(|s| s.cluster_id == "c");
                let inputs = Inputs {
                    min: 1,
                    max: 10,
                    current: members,
                    requests_in_flight: summary.and_then(|s| s.requests_in_flight).map(FactorStats::from),
                    ..Default::default()
                };
                let d = decide(&inputs, &thresholds, interval as f64, true);
                act(counter.next(members, d.required, 3), &mut members, &mut ups);
                surges.evaluated("c", Some(threshold), members, 10);
            }
        }
        ups
    }

    #[test]
    fn a_short_spike_does_not_scale_out_twice() {
        // 12 in flight (3 members' worth at 4 each) for 1 to 5 s after a quiet minute,
        // at every phase of the evaluation interval.
        for length in 1..=5u64 {
            for phase in 0..15 {
                let spike = |t: u64| if (60..60 + length).contains(&t) { 12.0 } else { 1.0 };
                let ups = scale_ups(spike, 240, phase);
                assert!(ups.len() <= 1, "spike of {length} s, phase {phase}: scaled up to {ups:?}");
            }
        }
    }

    #[test]
    fn a_step_scales_out_at_the_first_reading_past_the_surge() {
        for phase in 0..15 {
            let step = |t: u64| if t >= 60 { 12.0 } else { 1.0 };
            let ups = scale_ups(step, 120, phase);
            assert_eq!(ups.first(), Some(&3), "phase {phase}: {ups:?}");
        }
    }
}
