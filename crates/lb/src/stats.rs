//! Counters that outlive routing tables: requests in flight, ejections, round-robin turns.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use stratos_bus::events::InFlightRequestsEvent;

use crate::balance::ejection_time;
use crate::routing::RoutingTable;

/// One member's counters, kept by member id while the member is in the topology
/// (or has requests in flight).
#[derive(Debug)]
pub struct MemberStats {
    pub member_id: String,
    pub cluster_id: String,
    pub network_partition_id: String,
    in_flight: AtomicU64,
    requests: AtomicU64,
    ejection: Ejection,
}

/// Every request reads the ejection state of the members it may pick and records a
/// success, so reading it takes no lock: both fields are atomics. `update` only
/// serialises the rare changes, which read and write both.
#[derive(Debug, Default)]
struct Ejection {
    /// When the ejection ends, as [`Ejection::ticks`]; 0 when not ejected since the last success.
    until: AtomicU64,
    /// Ejections since the member last answered well: each doubles the next back-off.
    strikes: AtomicU32,
    update: Mutex<()>,
}

/// The origin of [`Ejection::ticks`].
static EPOCH: OnceLock<Instant> = OnceLock::new();

impl Ejection {
    /// `at` in nanoseconds since [`EPOCH`] (set when the first member is counted; an
    /// earlier instant counts as 0, before any ejection ends).
    fn ticks(at: Instant) -> u64 {
        let epoch = *EPOCH.get_or_init(Instant::now);
        u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the member is ejected at `now`, which is only asked for (the clock only
    /// read) when it has been ejected since its last success: the usual case costs a load.
    fn is_ejected(&self, now: impl FnOnce() -> Instant) -> bool {
        let until = self.until.load(Ordering::Acquire);
        until != 0 && until > Self::ticks(now())
    }
}

impl MemberStats {
    fn new(member_id: &str, cluster_id: &str, network_partition_id: &str) -> MemberStats {
        EPOCH.get_or_init(Instant::now);
        MemberStats {
            member_id: member_id.into(),
            cluster_id: cluster_id.into(),
            network_partition_id: network_partition_id.into(),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            ejection: Ejection::default(),
        }
    }

    /// Requests (HTTP) or connections (TCP) to the member not finished yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests or connections sent to the member so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a request to the member until the guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejection.is_ejected(|| now)
    }

    /// [`MemberStats::is_ejected`] at the time `now` gives, asked for only if needed.
    pub fn is_ejected_at(&self, now: impl FnOnce() -> Instant) -> bool {
        self.ejection.is_ejected(now)
    }

    /// Ejects the member for `base`, doubled for every ejection since it last answered
    /// well, at most `max`. `None` when it is already ejected (the back-off is not extended).
    pub fn eject(&self, now: Instant, base: Duration, max: Duration) -> Option<Duration> {
        let e = &self.ejection;
        let _update = e.update.lock().unwrap();
        if e.is_ejected(|| now) {
            return None;
        }
        let strikes = e.strikes.load(Ordering::Relaxed);
        let duration = ejection_time(base, max, strikes);
        // At least 1: 0 means "not ejected". An ejection of 0 s ends at once either way.
        e.until.store(Ejection::ticks(now + duration).max(1), Ordering::Release);
        e.strikes.store(strikes.saturating_add(1), Ordering::Relaxed);
        Some(duration)
    }

    /// The member answered: the next ejection starts from the base back-off again.
    pub fn record_success(&self, now: Instant) {
        self.record_success_at(|| now);
    }

    /// [`MemberStats::record_success`] at the time `now` gives, asked for only if there is
    /// something to reset (not for every request).
    pub fn record_success_at(&self, now: impl FnOnce() -> Instant) {
        let e = &self.ejection;
        // The usual case, a member not ejected since it last answered well: nothing to reset.
        if e.strikes.load(Ordering::Relaxed) == 0 {
            return;
        }
        let _update = e.update.lock().unwrap();
        if e.strikes.load(Ordering::Relaxed) > 0 && !e.is_ejected(now) {
            e.strikes.store(0, Ordering::Relaxed);
            e.until.store(0, Ordering::Release);
        }
    }
}

/// A request in flight to a member; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<MemberStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One cluster's shared balancing state, and its metrics' handles (made once per
/// cluster, so that a request never looks a series up).
#[derive(Debug, Default)]
pub struct ClusterStats {
    turn: AtomicUsize,
    metrics: Option<stratos_metrics::LbClusterMetrics>,
}

impl ClusterStats {
    /// When a request starts, if it is measured (metrics on).
    pub fn clock(&self) -> Option<Instant> {
        self.metrics.as_ref().map(|_| Instant::now())
    }

    /// A request answered with `status` (by a member, or a 4xx of the proxy's own).
    pub fn answered(&self, status: u16, started: Option<Instant>) {
        if let (Some(m), Some(started)) = (&self.metrics, started) {
            m.answered(status, started.elapsed().as_secs_f64());
        }
    }

    /// A request the proxy answered itself with `status` for want of a member's answer.
    pub fn failed(&self, status: u16, started: Option<Instant>) {
        if let (Some(m), Some(started)) = (&self.metrics, started) {
            m.failed(status, started.elapsed().as_secs_f64());
        }
    }

    /// Sets the cluster's requests in flight (every publish interval).
    pub fn set_in_flight(&self, n: u64) {
        if let Some(m) = &self.metrics {
            m.set_in_flight(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The next round-robin turn (also breaks least-outstanding ties).
    pub fn next_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Hands out the counters of members and clusters by id, so that a routing table
/// rebuilt from a new topology keeps them.
#[derive(Debug, Default)]
pub struct Registry {
    members: Mutex<HashMap<String, Arc<MemberStats>>>,
    clusters: Mutex<HashMap<String, Arc<ClusterStats>>>,
    metrics: Option<stratos_metrics::LbMetrics>,
}

impl Registry {
    /// A registry whose clusters count into `metrics`.
    pub fn with_metrics(metrics: Option<stratos_metrics::LbMetrics>) -> Registry {
        Registry { metrics, ..Registry::default() }
    }

    /// A request no cluster serves (or a malformed one).
    pub fn unrouted(&self) {
        if let Some(m) = &self.metrics {
            m.unrouted();
        }
    }

    pub fn member(&self, member_id: &str, cluster_id: &str, network_partition_id: &str) -> Arc<MemberStats> {
        let mut members = self.members.lock().unwrap();
        members
            .entry(member_id.to_string())
            .or_insert_with(|| Arc::new(MemberStats::new(member_id, cluster_id, network_partition_id)))
            .clone()
    }

    pub fn cluster(&self, cluster_id: &str) -> Arc<ClusterStats> {
        let mut clusters = self.clusters.lock().unwrap();
        let made = || {
            let metrics = self.metrics.as_ref().map(|m| m.cluster(cluster_id));
            Arc::new(ClusterStats { turn: AtomicUsize::new(0), metrics })
        };
        clusters.entry(cluster_id.to_string()).or_insert_with(made).clone()
    }

    /// Forgets members that `table` no longer routes to and that have nothing in flight,
    /// and clusters it no longer has.
    pub fn retain(&self, table: &RoutingTable) {
        let routable = table.routable_members();
        self.members.lock().unwrap().retain(|id, m| routable.contains_key(id.as_str()) || m.in_flight() > 0);
        let clusters = table.clusters();
        self.clusters.lock().unwrap().retain(|id, _| {
            let keep = clusters.contains_key(id.as_str());
            if let (false, Some(m)) = (keep, &self.metrics) {
                m.forget(id);
            }
            keep
        });
    }

    /// Every member with counters, by member id.
    pub fn members(&self) -> Vec<Arc<MemberStats>> {
        let mut members: Vec<_> = self.members.lock().unwrap().values().cloned().collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        members
    }
}

/// A member as the load balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub cluster_id: String,
    pub network_partition_id: String,
    pub in_flight: u64,
    pub requests: u64,
    pub ejected: bool,
    /// Whether new requests may go to it (it is in the routing table).
    pub routable: bool,
}

pub fn snapshot(table: &RoutingTable, registry: &Registry, now: Instant) -> Vec<MemberSnapshot> {
    let routable = table.routable_members();
    registry
        .members()
        .iter()
        .map(|m| MemberSnapshot {
            member_id: m.member_id.clone(),
            cluster_id: m.cluster_id.clone(),
            network_partition_id: m.network_partition_id.clone(),
            in_flight: m.in_flight(),
            requests: m.requests(),
            ejected: m.is_ejected(now),
            routable: routable.contains_key(m.member_id.as_str()),
        })
        .collect()
}

/// Member events go out at every this many publishes of the clusters' (which the
/// autoscaler reacts on, every second by default): nothing scales on a member's.
pub const MEMBER_EVENTS_EVERY: u64 = 5;

/// The in-flight events to publish: one per cluster and network partition
/// (`member_id: None`) with the sum of its members, for every cluster in the table,
/// and with `per_member`, one per member that is routable or still has requests in flight.
pub fn in_flight_events(
    table: &RoutingTable,
    members: &[MemberSnapshot],
    timestamp: u64,
    per_member: bool,
) -> Vec<InFlightRequestsEvent> {
    let mut per_cluster: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (cluster_id, partitions) in table.clusters() {
        for np in partitions {
            per_cluster.insert((cluster_id.to_string(), np.clone()), 0);
        }
    }
    let mut events = Vec::new();
    for m in members.iter().filter(|m| m.routable || m.in_flight > 0) {
        *per_cluster.entry((m.cluster_id.clone(), m.network_partition_id.clone())).or_default() += m.in_flight;
        if !per_member {
            continue;
        }
        events.push(InFlightRequestsEvent {
            cluster_id: m.cluster_id.clone(),
            network_partition_id: m.network_partition_id.clone(),
            member_id: Some(m.member_id.clone()),
            in_flight: m.in_flight as f64,
            timestamp,
        });
    }
    let clusters = per_cluster.into_iter().map(|((cluster_id, network_partition_id), n)| InFlightRequestsEvent {
        cluster_id,
        network_partition_id,
        member_id: None,
        in_flight: n as f64,
        timestamp,
    });
    clusters.chain(events).collect()
}

/// Sets each cluster's in-flight gauge from the cluster events of `events` (summed over
/// network partitions).
pub fn set_in_flight_metrics(table: &RoutingTable, events: &[InFlightRequestsEvent]) {
    let mut per_cluster: HashMap<&str, u64> = HashMap::new();
    for e in events.iter().filter(|e| e.member_id.is_none()) {
        *per_cluster.entry(e.cluster_id.as_str()).or_default() += e.in_flight as u64;
    }
    for upstream in table.ports.values().flat_map(|r| r.upstreams.iter()) {
        upstream.stats.set_in_flight(per_cluster.get(upstream.cluster_id.as_str()).copied().unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_backs_off_and_resets() {
        let m = MemberStats::new("m1", "c1", "np1");
        let t0 = Instant::now();
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(m.eject(t0, base, max), Some(Duration::from_secs(10)));
        assert!(m.is_ejected(t0 + Duration::from_secs(9)));
        assert_eq!(m.eject(t0 + Duration::from_secs(5), base, max), None, "not extended while ejected");
        let t1 = t0 + Duration::from_secs(11);
        assert!(!m.is_ejected(t1));
        assert_eq!(m.eject(t1, base, max), Some(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(21);
        assert_eq!(m.eject(t2, base, max), Some(Duration::from_secs(40)));
        let t3 = t2 + Duration::from_secs(41);
        assert_eq!(m.eject(t3, base, max), Some(Duration::from_secs(60)));
        let t4 = t3 + Duration::from_secs(61);
        // A success while ejected changes nothing; after, the back-off starts over.
        m.record_success(t3 + Duration::from_secs(1));
        assert!(m.is_ejected(t3 + Duration::from_secs(2)));
        m.record_success(t4);
        assert_eq!(m.eject(t4, base, max), Some(Duration::from_secs(10)));
    }

    #[test]
    fn in_flight_events_cover_clusters_and_members() {
        let table = RoutingTable::default();
        let snap = |id: &str, cluster: &str, np: &str, n: u64, routable: bool| MemberSnapshot {
            member_id: id.into(),
            cluster_id: cluster.into(),
            network_partition_id: np.into(),
            in_flight: n,
            requests: 0,
            ejected: false,
            routable,
        };
        let members = vec![
            snap("m1", "c1", "np1", 2, true),
            snap("m2", "c1", "np1", 3, false), // draining
            snap("m3", "c1", "np2", 0, true),
            snap("m4", "c2", "np1", 0, false), // gone, nothing in flight
        ];
        let clusters_only = in_flight_events(&table, &members, 42, false);
        assert!(clusters_only.iter().all(|e| e.member_id.is_none()) && clusters_only.len() == 2);
        let events = in_flight_events(&table, &members, 42, true);
        let clusters: Vec<_> = events
            .iter()
            .filter(|e| e.member_id.is_none())
            .map(|e| (e.cluster_id.as_str(), e.network_partition_id.as_str(), e.in_flight))
            .collect();
        assert_eq!(clusters, vec![("c1", "np1", 5.0), ("c1", "np2", 0.0)]);
        let per_member: Vec<_> = events.iter().filter_map(|e| e.member_id.as_deref()).collect();
        assert_eq!(per_member, vec!["m1", "m2", "m3"]);
        assert!(events.iter().all(|e| e.timestamp == 42));
    }
}
