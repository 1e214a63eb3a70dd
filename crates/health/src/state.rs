//! Health state of every cluster and member: windows per factor, and who went
//! silent. Pure: events and time go in, summaries and faults come out.

use std::collections::{BTreeMap, HashMap, HashSet};

use stratos_bus::events::{ClusterHealthSummaryEvent, FactorSummary, MemberFaultEvent, MemberHealthSummary};
use stratos_bus::MemberRef;

use crate::window::{Summary, Window};

/// The factors the autoscaler scales on.
pub const REQUESTS_IN_FLIGHT: &str = "requests-in-flight";
pub const LOAD_AVERAGE: &str = "load-average";
pub const MEMORY_CONSUMPTION: &str = "memory-consumption";

#[derive(Debug)]
pub struct HealthState {
    span: f64,
    fault_after: f64,
    /// (cluster, network partition) → requests in flight reported for the whole cluster.
    in_flight: HashMap<(String, String), Window>,
    members: BTreeMap<String, MemberHealth>,
    faulted: HashSet<String>,
}

#[derive(Debug)]
struct MemberHealth {
    member: MemberRef,
    load_average: Window,
    memory: Window,
    /// When the member was last heard of (a stat, or its activation).
    last_heard: f64,
}

impl HealthState {
    /// Windows span `span_secs`; a member silent for `fault_after_secs` is faulty.
    pub fn new(span_secs: f64, fault_after_secs: f64) -> HealthState {
        HealthState {
            span: span_secs,
            fault_after: fault_after_secs,
            in_flight: HashMap::new(),
            members: BTreeMap::new(),
            faulted: HashSet::new(),
        }
    }

    /// A member became active: watch it for silence from `now` on.
    pub fn member_activated(&mut self, member: MemberRef, now: f64) {
        self.faulted.remove(&member.member_id);
        let span = self.span;
        let entry = self.members.entry(member.member_id.clone()).or_insert_with(|| MemberHealth {
            member: member.clone(),
            load_average: Window::new(span),
            memory: Window::new(span),
            last_heard: now,
        });
        entry.last_heard = entry.last_heard.max(now);
    }

    /// A member the topology snapshot lists as serving: watched from `now` on if it
    /// is new here. Unlike its activation, a snapshot says nothing about whether it
    /// still reports, so a known member's silence goes on counting.
    pub fn member_known(&mut self, member: MemberRef, now: f64) {
        if !self.watches(&member.member_id) {
            self.member_activated(member, now);
        }
    }

    /// Whether the member is watched for silence (it was activated or reported).
    pub fn watches(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// A member left (terminated, draining): forget it.
    pub fn member_gone(&mut self, member_id: &str) {
        self.members.remove(member_id);
        self.faulted.remove(member_id);
    }

    pub fn member_stats(&mut self, member: MemberRef, t: f64, load_average: Option<f64>, memory: Option<f64>) {
        // Every member reports every interval: the one already watched is updated in
        // place, without copying its names.
        let m = match self.members.get_mut(&member.member_id) {
            Some(m) => {
                m.last_heard = m.last_heard.max(t);
                if !self.faulted.is_empty() {
                    self.faulted.remove(&member.member_id);
                }
                m
            }
            None => {
                self.member_activated(member.clone(), t);
                self.members.get_mut(&member.member_id).expect("just inserted")
            }
        };
        if let Some(v) = load_average {
            m.load_average.push(t, v);
        }
        if let Some(v) = memory {
            m.memory.push(t, v);
        }
    }

    /// Requests in flight of a whole cluster (member_id None) as a load balancer reports it.
    pub fn cluster_in_flight(&mut self, cluster_id: &str, network_partition_id: &str, t: f64, value: f64) {
        let span = self.span;
        self.in_flight
            .entry((cluster_id.to_string(), network_partition_id.to_string()))
            .or_insert_with(|| Window::new(span))
            .push(t, value);
    }

    /// One summary per cluster and network partition at `now`: requests in flight as
    /// the load balancers report them, load and memory averaged over the cluster's
    /// members, and each member's own load and memory.
    pub fn summaries(&mut self, now: f64, timestamp: u64) -> Vec<ClusterHealthSummaryEvent> {
        for window in self.in_flight.values_mut() {
            window.expire(now);
        }
        for m in self.members.values_mut() {
            m.load_average.expire(now);
            m.memory.expire(now);
        }
        // Borrowed names while grouping; each is copied once, into its event.
        let mut clusters: BTreeMap<(&str, &str), ClusterHealthSummaryEvent> = BTreeMap::new();
        let cluster = |cluster_id: &str, np: &str| -> ClusterHealthSummaryEvent {
            ClusterHealthSummaryEvent {
                cluster_id: cluster_id.to_string(),
                network_partition_id: np.to_string(),
                requests_in_flight: None,
                load_average: None,
                memory_consumption: None,
                members: Vec::new(),
                timestamp,
            }
        };
        // A load balancer reports every few seconds; a network partition it stopped
        // reporting (its last member left) must not keep voting with old samples.
        let stale_after = self.span / 4.0;
        for ((cluster_id, np), window) in &self.in_flight {
            if window.last_time().is_some_and(|t| now - t > stale_after) {
                continue;
            }
            if let Some(s) = window.summary() {
                clusters
                    .entry((cluster_id.as_str(), np.as_str()))
                    .or_insert_with(|| cluster(cluster_id, np))
                    .requests_in_flight = Some(factor(s));
            }
        }
        for m in self.members.values() {
            let (load_average, memory) = (m.load_average.summary().map(factor), m.memory.summary().map(factor));
            if load_average.is_none() && memory.is_none() {
                continue;
            }
            let r = &m.member;
            clusters
                .entry((r.cluster_id.as_str(), r.network_partition_id.as_str()))
                .or_insert_with(|| cluster(&r.cluster_id, &r.network_partition_id))
                .members
                .push(MemberHealthSummary { member_id: r.member_id.clone(), load_average, memory_consumption: memory });
        }
        clusters
            .into_values()
            .map(|mut c| {
                c.load_average = mean(c.members.iter().filter_map(|m| m.load_average));
                c.memory_consumption = mean(c.members.iter().filter_map(|m| m.memory_consumption));
                c
            })
            .collect()
    }

    /// Members silent for longer than the fault delay; each is reported once.
    ///
    /// When many fall silent at once (more than [`MASS_SILENCE_MIN`] and more than a
    /// fifth of all members), none is reported; the bus or this service is far likelier at fault than
    /// the members: replacing them all would turn an observer's trouble into an
    /// outage (Kubernetes stops evicting from a mostly unready zone for the same
    /// reason). They are held and looked at again at the next call; members whose
    /// process or instance is gone are still replaced by the controller, which sees
    /// that from its driver's listing.
    pub fn faults(&mut self, now: f64) -> Faults {
        let silent: Vec<(&MemberHealth, f64)> = self
            .members
            .values()
            .map(|m| (m, now - m.last_heard))
            .filter(|(m, silent)| *silent > self.fault_after && !self.faulted.contains(&m.member.member_id))
            .collect();
        if silent.len() > MASS_SILENCE_MIN && silent.len() * 5 > self.members.len() {
            return Faults { events: Vec::new(), held: silent.len() };
        }
        // And at most a fiftieth of all members per call: silence that spreads a
        // little at a time (an observer falling behind) is not replaced wholesale
        // before the hold above sees it.
        let limit = MASS_SILENCE_MIN.max(self.members.len() / 50);
        let held = silent.len().saturating_sub(limit);
        let events: Vec<MemberFaultEvent> = silent
            .into_iter()
            .take(limit)
            .map(|(m, silent)| MemberFaultEvent {
                member: m.member.clone(),
                reason: format!("no health statistics for {silent:.0} s"),
            })
            .collect();
        self.faulted.extend(events.iter().map(|f| f.member.member_id.clone()));
        Faults { events, held }
    }
}

/// Fewer silent members than this are always reported, however small the platform.
pub const MASS_SILENCE_MIN: usize = 10;

/// What [`HealthState::faults`] found.
#[derive(Debug, Default)]
pub struct Faults {
    /// Members to report as faulty.
    pub events: Vec<MemberFaultEvent>,
    /// Silent members not reported (yet), because too many are silent at once.
    pub held: usize,
}

fn factor(s: Summary) -> FactorSummary {
    FactorSummary { average: s.average, gradient: s.gradient, second_derivative: s.second_derivative }
}

/// The mean of each of the summaries' figures; `None` without any.
fn mean(summaries: impl Iterator<Item = FactorSummary>) -> Option<FactorSummary> {
    let (mut sum, mut n) = (FactorSummary { average: 0.0, gradient: 0.0, second_derivative: 0.0 }, 0.0);
    for s in summaries {
        sum.average += s.average;
        sum.gradient += s.gradient;
        sum.second_derivative += s.second_derivative;
        n += 1.0;
    }
    (n > 0.0).then(|| FactorSummary {
        average: sum.average / n,
        gradient: sum.gradient / n,
        second_derivative: sum.second_derivative / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, cluster: &str) -> MemberRef {
        MemberRef {
            service_name: "php".into(),
            cluster_id: cluster.into(),
            member_id: id.into(),
            network_partition_id: "np1".into(),
            partition_id: "p1".into(),
        }
    }

    #[test]
    fn one_summary_per_cluster_carries_its_mean_and_every_members_load() {
        let mut h = HealthState::new(60.0, 60.0);
        h.member_stats(member("a", "c"), 0.0, Some(20.0), Some(40.0));
        h.member_stats(member("b", "c"), 0.0, Some(60.0), None);
        h.member_stats(member("x", "other"), 0.0, Some(5.0), Some(5.0));
        let s = h.summaries(1.0, 1000);
        assert_eq!(s.len(), 2, "one per cluster");
        let c = s.iter().find(|e| e.cluster_id == "c").unwrap();
        assert_eq!(c.load_average.unwrap().average, 40.0);
        assert_eq!(c.memory_consumption.unwrap().average, 40.0, "only members that reported memory count");
        assert_eq!(c.requests_in_flight, None, "no load balancer reported");
        let load = |id: &str| c.members.iter().find(|m| m.member_id == id).and_then(|m| m.load_average);
        assert_eq!((load("a").unwrap().average, load("b").unwrap().average), (20.0, 60.0));
        assert!(load("x").is_none(), "another cluster's member is not in it");
    }

    #[test]
    fn in_flight_gradient_comes_from_the_load_balancer_reports() {
        let mut h = HealthState::new(60.0, 60.0);
        for t in 0..4 {
            h.cluster_in_flight("c", "np1", t as f64 * 10.0, t as f64 * 10.0);
        }
        let s = h.summaries(30.0, 0);
        let rif = s.iter().find_map(|e| e.requests_in_flight).unwrap();
        assert_eq!((rif.average, rif.gradient), (15.0, 1.0));
        // Once the reports stop for a quarter of the window, the factor stops voting.
        assert!(h.summaries(46.0, 0).iter().all(|e| e.requests_in_flight.is_none()));
        assert!(h.summaries(200.0, 0).iter().all(|e| e.requests_in_flight.is_none()));
    }

    #[test]
    fn silent_members_fault_once() {
        let mut h = HealthState::new(60.0, 60.0);
        h.member_activated(member("quiet", "c"), 0.0);
        h.member_stats(member("chatty", "c"), 0.0, Some(1.0), Some(1.0));
        assert!(h.faults(59.0).events.is_empty());
        h.member_stats(member("chatty", "c"), 50.0, Some(1.0), Some(1.0));
        let faults = h.faults(61.0).events;
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].member.member_id, "quiet");
        assert!(h.faults(100.0).events.iter().all(|f| f.member.member_id != "quiet"), "reported once");
        h.member_gone("chatty");
        assert!(h.faults(1000.0).events.is_empty());
    }

    #[test]
    fn mass_silence_is_held_not_reported() {
        let mut h = HealthState::new(60.0, 60.0);
        for i in 0..50 {
            h.member_stats(member(&format!("m{i}"), "c"), 0.0, Some(1.0), Some(1.0));
        }
        // Ten of fifty go quiet: reported.
        for i in 10..50 {
            h.member_stats(member(&format!("m{i}"), "c"), 50.0, Some(1.0), Some(1.0));
        }
        let faults = h.faults(61.0);
        assert_eq!((faults.events.len(), faults.held), (10, 0));
        // All the others at once (40 of 50): held, and held again while it lasts.
        let faults = h.faults(200.0);
        assert_eq!((faults.events.len(), faults.held), (0, 40));
        assert_eq!(h.faults(210.0).held, 40);
        // Most report again: the few still silent are reported.
        for i in 10..45 {
            h.member_stats(member(&format!("m{i}"), "c"), 215.0, Some(1.0), Some(1.0));
        }
        let faults = h.faults(220.0);
        assert_eq!((faults.events.len(), faults.held), (5, 0));
    }

    #[test]
    fn a_snapshot_does_not_count_as_hearing_from_a_member() {
        let mut h = HealthState::new(60.0, 60.0);
        h.member_activated(member("quiet", "c"), 0.0);
        h.member_known(member("quiet", "c"), 50.0);
        h.member_known(member("new", "c"), 50.0);
        let faults = h.faults(61.0).events;
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].member.member_id, "quiet");
    }

    #[test]
    fn faults_are_reported_a_fiftieth_of_the_members_at_a_time() {
        let mut h = HealthState::new(60.0, 60.0);
        for i in 0..1000 {
            h.member_stats(member(&format!("m{i}"), "c"), 0.0, Some(1.0), Some(1.0));
        }
        for i in 100..1000 {
            h.member_stats(member(&format!("m{i}"), "c"), 50.0, Some(1.0), Some(1.0));
        }
        // 100 of 1,000 silent (under a fifth): 20 per call.
        let faults = h.faults(61.0);
        assert_eq!((faults.events.len(), faults.held), (20, 80));
        assert_eq!(h.faults(62.0).events.len(), 20);
    }
}
