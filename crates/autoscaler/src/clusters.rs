//! The topology as the autoscaler follows it: read whole once, then cluster by
//! cluster: a cluster is read again from the store when an event says it changed
//! (a member's lifecycle, the cluster created, removed or its status announced),
//! and every cluster in turn, a [`REFRESH_CYCLES`]th of them per cycle, in case an
//! event was missed. At 100k members, reading the whole topology at every cycle
//! was 10,000 documents and 100,000 members decoded every 15 s.
//!
//! The store stays the truth: events only say which clusters to read. The controller
//! saves a little after it announces, so a cluster stays marked for [`SETTLE`] after
//! its last event, and is read at each cycle until then. Pure: the monitor does the reads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stratos_bus::AnyEvent;
use stratos_model::topology::{Cluster, Topology};

/// Every cluster is read again at least once in this many cycles.
pub const REFRESH_CYCLES: u64 = 20;

/// How long after its last event a cluster is still read at every look: the
/// controller saves changes at most every 250 ms, later when it is busy.
pub const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Held {
    /// `None`: not saved (yet).
    cluster: Option<Cluster>,
    /// Which cycle modulo [`REFRESH_CYCLES`] reads it again.
    turn: u64,
}

#[derive(Debug, Default)]
pub struct Clusters {
    held: HashMap<String, Held>,
    /// Clusters events said changed, with the time of the last such event.
    changed: HashMap<String, Instant>,
    /// Whether the whole topology was read once.
    loaded: bool,
    cycle: u64,
    next_turn: u64,
}

impl Clusters {
    pub fn cluster(&self, cluster_id: &str) -> Option<&Cluster> {
        self.held.get(cluster_id).and_then(|h| h.cluster.as_ref())
    }

    /// Whether the whole topology is still to be read (the first look).
    pub fn needs_full_load(&self) -> bool {
        !self.loaded
    }

    /// Takes the whole topology, as read at `read_at`.
    pub fn load(&mut self, topology: Topology, read_at: Instant) {
        self.held.clear();
        for service in topology.services.into_values() {
            for (id, cluster) in service.clusters {
                self.hold(id, Some(cluster));
            }
        }
        self.loaded = true;
        self.settle(read_at);
    }

    /// An event about a cluster's topology (see [`cluster_of`]) arrived at `at`.
    pub fn changed(&mut self, cluster_id: &str, at: Instant) {
        match self.changed.get_mut(cluster_id) {
            Some(last) => *last = at,
            None => {
                self.changed.insert(cluster_id.to_string(), at);
            }
        }
    }

    /// The clusters to read at this look: those events marked, and this cycle's
    /// turn of the refresh (when `cycle` is true: a look at a cycle, not a roll-up
    /// or a surge between two).
    pub fn take_due(&mut self, cycle: bool) -> Vec<String> {
        let mut ids: Vec<String> = self.changed.keys().cloned().collect();
        if cycle {
            let turn = self.cycle % REFRESH_CYCLES;
            self.cycle += 1;
            ids.extend(
                self.held
                    .iter()
                    .filter(|(id, h)| h.turn % REFRESH_CYCLES == turn && !self.changed.contains_key(*id))
                    .map(|(id, _)| id.clone()),
            );
        }
        ids.sort();
        ids
    }

    /// Those of `wanted` not held yet (deployed since the last look).
    pub fn unknown<'a>(&self, wanted: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut ids: Vec<String> =
            wanted.into_iter().filter(|id| !self.held.contains_key(*id)).map(str::to_string).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// A cluster as read from the store (`None`: not saved).
    pub fn read(&mut self, cluster_id: String, cluster: Option<Cluster>) {
        match self.held.get_mut(&cluster_id) {
            Some(held) => held.cluster = cluster,
            None => self.hold(cluster_id, cluster),
        }
    }

    /// After the reads of a look that began at `began`: the marks of events older
    /// than [`SETTLE`] before it are done with.
    pub fn settle(&mut self, began: Instant) {
        self.changed.retain(|_, at| began.checked_duration_since(*at).is_none_or(|age| age < SETTLE));
    }

    /// Forgets the clusters no deployment names (read again if one does later).
    pub fn retain(&mut self, deployed: impl Fn(&str) -> bool) {
        self.held.retain(|id, _| deployed(id));
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    fn hold(&mut self, cluster_id: String, cluster: Option<Cluster>) {
        let turn = self.next_turn;
        self.next_turn += 1;
        self.held.insert(cluster_id, Held { cluster, turn });
    }
}

/// The cluster a topology or cluster status event is about.
pub fn cluster_of(event: &AnyEvent) -> Option<&str> {
    Some(match event {
        AnyEvent::MemberCreatedEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberInitializedEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberStartedEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberActivatedEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberMaintenanceModeEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberReadyToShutdownEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberSuspendedEvent(e) => &e.member.cluster_id,
        AnyEvent::MemberTerminatedEvent(e) => &e.member.cluster_id,
        AnyEvent::ClusterCreatedEvent(e) => &e.cluster.cluster_id,
        AnyEvent::ClusterRemovedEvent(e) => &e.cluster_id,
        AnyEvent::ClusterStatusClusterActivatedEvent(e) => &e.cluster_id,
        AnyEvent::ClusterStatusClusterInactivateEvent(e) => &e.cluster_id,
        AnyEvent::ClusterStatusClusterTerminatedEvent(e) => &e.cluster_id,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use stratos_model::topology::{ClusterStatus, Service, ServiceType};

    use super::*;

    fn cluster(id: &str) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "serviceName": "s", "clusterId": id, "tenantId": 1, "appId": "app", "alias": "web", "hostNames": [],
            "autoscalePolicyName": "a", "deploymentPolicyName": "d", "status": "Created", "members": {}
        }))
        .unwrap()
    }

    fn topology(ids: &[&str]) -> Topology {
        let mut service = Service {
            service_name: "s".into(),
            service_type: ServiceType::SingleTenant,
            ports: vec![],
            clusters: Default::default(),
        };
        for id in ids {
            service.clusters.insert(id.to_string(), cluster(id));
        }
        let mut t = Topology::default();
        t.services.insert("s".into(), service);
        t
    }

    #[test]
    fn after_the_first_load_only_changed_unknown_and_a_turn_of_clusters_are_read() {
        let ids: Vec<String> = (0..40).map(|i| format!("c{i:02}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut c = Clusters::default();
        assert!(c.needs_full_load());
        let t0 = Instant::now();
        c.load(topology(&refs), t0);
        assert!(!c.needs_full_load());
        assert_eq!(c.len(), 40);
        // A cycle reads its turn: 40 / REFRESH_CYCLES clusters.
        assert!(c.unknown(refs.iter().copied()).is_empty());
        let read = c.take_due(true);
        assert_eq!(read.len(), 40 / REFRESH_CYCLES as usize);
        // Over REFRESH_CYCLES cycles, every cluster once.
        let mut all = read;
        for _ in 1..REFRESH_CYCLES {
            all.extend(c.take_due(true));
        }
        all.sort();
        assert_eq!(all, ids);
        // A roll-up between cycles reads no turn; a changed and an unknown cluster are read.
        c.changed("c07", t0);
        assert_eq!(c.take_due(false), ["c07"]);
        assert_eq!(c.unknown(refs.iter().copied().chain(["new", "new"])), ["new"]);
        c.read("new".into(), None);
        assert!(c.cluster("new").is_none(), "not saved yet: held as absent");
        assert!(c.unknown(["new"]).is_empty(), "not read again at every look");
        assert_eq!(c.take_due(false), ["c07"], "still settling");
    }

    #[test]
    fn a_changed_cluster_is_read_until_its_last_event_settled() {
        let mut c = Clusters::default();
        let t0 = Instant::now();
        c.load(topology(&["a"]), t0);
        c.changed("a", t0);
        c.settle(t0 + SETTLE / 2);
        assert_eq!(c.take_due(false), ["a"], "the controller may not have saved it yet");
        c.changed("a", t0 + SETTLE);
        c.settle(t0 + SETTLE + SETTLE / 2);
        assert_eq!(c.take_due(false), ["a"], "a later event starts the delay again");
        c.settle(t0 + 3 * SETTLE);
        assert!(c.take_due(false).is_empty());
        let mut active = cluster("a");
        active.status = ClusterStatus::Active;
        c.read("a".into(), Some(active));
        assert_eq!(c.cluster("a").map(|c| c.status), Some(ClusterStatus::Active));
        c.retain(|_| false);
        assert!(c.cluster("a").is_none());
    }
}
