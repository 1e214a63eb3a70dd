//! The monitors: every interval, each deployed cluster is evaluated against its
//! autoscaling policy and its size written for the cloud controller; the group
//! and application monitors above the clusters roll their statuses up (at each
//! interval, and soon after a cluster status event). A cluster whose requests in
//! flight surge far past its threshold is evaluated at once (`surge.rs`).
//!
//! The topology is followed cluster by cluster (`clusters.rs`) and the scaling
//! histories kept in memory (`history.rs`): a cycle reads what changed, and hands
//! the histories that changed to a writer task of their own.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use stratos_bus::events::{
    ApplicationActivatedEvent, ApplicationInactivatedEvent, ApplicationTerminatingEvent, ClusterCreatedEvent,
    ClusterHealthSummaryEvent, ClusterRemovedEvent, FactorSummary, GroupActivatedEvent, GroupInactivatedEvent,
    GroupTerminatingEvent, InFlightRequestsEvent, MemberCreatedEvent, MemberMaintenanceModeEvent,
    MemberReadyToShutdownEvent, MemberSuspendedEvent, MemberTerminatedEvent, ScalingDecisionEvent,
};
use stratos_bus::{now_millis, AnyEvent, Bus, Event};
use stratos_model::placement::{Placement, Slot};
use stratos_model::topology::{Member, MemberStatus};
use stratos_model::{
    ApplicationMonitorStatus, ClusterScale, Definitions, Deployment, DeploymentStatus, GroupSpec, MonitorStatus,
    NetworkPartition,
};
use stratos_store::{ScalingHistory, Store, StoreError};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::clusters::{cluster_of, Clusters};
use crate::decision::{decide, Action, Decision, FactorStats, Inputs, ScaleDownCounter, Thresholds};
use crate::dependents::{scale_together, Sizing};
use crate::error::AutoscalerError;
use crate::groups::{self, ApplicationMonitor, Change};
use crate::history::Histories;
use crate::surge::{Surges, READING_FRESH_MS};

#[derive(Debug, Clone)]
pub struct AutoscalerConfig {
    /// How often clusters are evaluated; also how far ahead loads are predicted.
    pub interval: Duration,
    /// Evaluations in a row that must ask for fewer members before one is removed.
    pub scale_down_after: u32,
    /// Predict one interval ahead (s = u + u'·t + ½·u''·t²) rather than use averages as they are.
    pub use_prediction: bool,
    /// Summaries older than this do not vote.
    pub freshness: Duration,
    /// Decisions and loads go here (`stratos up`).
    pub metrics: Option<stratos_metrics::AutoscalerMetrics>,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            interval: Duration::from_secs(15),
            scale_down_after: 3,
            use_prediction: true,
            freshness: Duration::from_secs(60),
            metrics: None,
        }
    }
}

/// The latest health summary of every cluster, per network partition.
#[derive(Default)]
struct Observed {
    /// cluster → network partition → its latest summary.
    clusters: HashMap<String, HashMap<String, ClusterHealthSummaryEvent>>,
}

impl Observed {
    fn take(&mut self, summary: ClusterHealthSummaryEvent) {
        let partitions = self.clusters.entry(summary.cluster_id.clone()).or_default();
        match partitions.get_mut(&summary.network_partition_id) {
            Some(latest) => *latest = summary,
            None => {
                partitions.insert(summary.network_partition_id.clone(), summary);
            }
        }
    }

    /// The cluster's summaries no older than `oldest` (milliseconds since the epoch).
    fn fresh(&self, cluster_id: &str, oldest: u64) -> impl Iterator<Item = &ClusterHealthSummaryEvent> {
        self.clusters.get(cluster_id).into_iter().flat_map(|p| p.values()).filter(move |s| s.timestamp >= oldest)
    }

    /// A member's load average as its cluster's latest summary gives it.
    fn member_load(&self, cluster_id: &str, member_id: &str) -> Option<f64> {
        self.clusters
            .get(cluster_id)?
            .values()
            .flat_map(|s| &s.members)
            .find(|m| m.member_id == member_id)
            .and_then(|m| m.load_average)
            .map(|l| l.average)
    }

    /// Forgets summaries older than `oldest`: they no longer vote, and clusters that
    /// went away would otherwise be kept for ever.
    fn expire(&mut self, oldest: u64) {
        self.clusters.retain(|_, partitions| {
            partitions.retain(|_, s| s.timestamp >= oldest);
            !partitions.is_empty()
        });
    }
}

pub async fn run(store: Store, bus: Bus, config: AutoscalerConfig) -> Result<(), AutoscalerError> {
    run_timed(store, bus, config, Default::default()).await
}

/// What the loop keeps between looks.
struct Autoscaler {
    store: Store,
    bus: Bus,
    config: AutoscalerConfig,
    observed: Observed,
    counters: HashMap<String, ScaleDownCounter>,
    monitors: Monitors,
    clusters: Clusters,
    histories: Histories,
    /// Where the histories to write go ([`spawn_history_writer`]).
    history_writer: mpsc::UnboundedSender<DueHistories>,
    surges: Surges,
    /// The size last written per cluster, and when: until the controller has created
    /// the members, a decision counts them (or a second look would ask again).
    written: HashMap<String, (u32, Instant)>,
    metrics: Option<crate::metrics::Recorder>,
}

/// [`run`], recording how long each evaluation cycle (every cluster of every
/// deployed application) takes in `cycles`.
pub async fn run_timed(
    store: Store,
    bus: Bus,
    config: AutoscalerConfig,
    cycles: std::sync::Arc<stratos_model::DurationStats>,
) -> Result<(), AutoscalerError> {
    let mut summaries = bus.subscribe("summarized-health-stats/#").await?;
    // Cluster status changes roll up through the group monitors at once, not at the next interval.
    let mut cluster_status = bus.subscribe("cluster/status/#").await?;
    // Which clusters to read again: the events that change which members a cluster
    // counts (from created to maintenance mode, a member counts whether it started or
    // not), not the complete topology snapshots (tens of MB at 100k members).
    let filters: Vec<String> = [
        MemberCreatedEvent::FILTER,
        MemberMaintenanceModeEvent::FILTER,
        MemberReadyToShutdownEvent::FILTER,
        MemberSuspendedEvent::FILTER,
        MemberTerminatedEvent::FILTER,
        ClusterCreatedEvent::FILTER,
        ClusterRemovedEvent::FILTER,
    ]
    .map(String::from)
    .to_vec();
    let mut topology = bus.subscribe_many(&filters).await?;
    let mut in_flight = bus.subscribe_to::<InFlightRequestsEvent>().await?;
    let metrics = config.metrics.clone().map(crate::metrics::Recorder::new);
    let mut a = Autoscaler {
        metrics,
        store: store.clone(),
        bus,
        config,
        observed: Observed::default(),
        counters: HashMap::new(),
        monitors: Monitors::default(),
        clusters: Clusters::default(),
        histories: Histories::default(),
        history_writer: spawn_history_writer(store.clone()),
        surges: Surges::default(),
        written: HashMap::new(),
    };
    let mut roll_up_at: Option<tokio::time::Instant> = None;
    // Cluster statuses announced since the last roll-up, in order: a cluster down
    // and back up within the delay still takes its group down and back up.
    let mut announced: Vec<(String, MonitorStatus)> = Vec::new();
    // Clusters whose requests in flight surged since the last look, with the count.
    let mut surging: HashMap<String, f64> = HashMap::new();
    let mut tick = tokio::time::interval(a.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(interval = ?a.config.interval, prediction = a.config.use_prediction, "autoscaler started");
    loop {
        tokio::select! {
            Some(AnyEvent::ClusterHealthSummaryEvent(s)) = summaries.recv() => a.observed.take(s),
            Some(event) = topology.recv() => {
                let now = Instant::now();
                if let Some(id) = cluster_of(&event) {
                    a.clusters.changed(id, now);
                }
                // What else arrived meanwhile, in one go: 100k members' events at start.
                for _ in 0..INTAKE_BATCH {
                    let Some(event) = topology.try_recv() else { break };
                    if let Some(id) = cluster_of(&event) {
                        a.clusters.changed(id, now);
                    }
                }
            }
            Some(AnyEvent::InFlightRequestsEvent(e)) = in_flight.recv() => {
                // Per member counts are not a cluster's.
                if e.member_id.is_none() && a.surges.reading(&e.cluster_id, &e.network_partition_id, e.in_flight, e.timestamp) {
                    let total = a.surges.in_flight(&e.cluster_id, e.timestamp.saturating_sub(READING_FRESH_MS));
                    surging.insert(e.cluster_id, total.unwrap_or(e.in_flight));
                }
            }
            Some(event) = cluster_status.recv() => {
                if let Some(id) = cluster_of(&event) {
                    a.clusters.changed(id, Instant::now());
                }
                let status = match event {
                    AnyEvent::ClusterStatusClusterActivatedEvent(e) => Some((e.cluster_id, MonitorStatus::Active)),
                    AnyEvent::ClusterStatusClusterInactivateEvent(e) => Some((e.cluster_id, MonitorStatus::Inactive)),
                    _ => None,
                };
                announced.extend(status);
                // One look per burst of events; the controller saves the topology
                // a little after it announces a change.
                roll_up_at.get_or_insert_with(|| tokio::time::Instant::now() + ROLL_UP_DELAY);
            }
            _ = sleep_until(roll_up_at) => {
                roll_up_at = None;
                let announced = std::mem::take(&mut announced);
                if let Err(e) = a.roll_up_statuses(&announced).await {
                    error!(error = %e, "status roll-up failed");
                }
            }
            // A surge is evaluated before anything else waiting: it is what the load is waiting on.
            _ = std::future::ready(()), if !surging.is_empty() => {
                let clusters = std::mem::take(&mut surging);
                let started = Instant::now();
                if let Err(e) = a.evaluate(Some(&clusters)).await {
                    error!(error = %e, "surge evaluation failed");
                }
                info!(clusters = clusters.len(), took = ?started.elapsed(), "surge evaluated at once");
            }
            _ = tick.tick() => {
                let started = Instant::now();
                a.observed.expire(oldest_fresh(&a.config));
                if let Err(e) = a.evaluate(None).await {
                    error!(error = %e, "evaluation failed");
                }
                let took = started.elapsed();
                cycles.record(took);
                if took > a.config.interval / 2 {
                    info!(?took, "slow evaluation cycle: half the interval or more");
                } else {
                    debug!(?took, "evaluation cycle");
                }
            }
        }
    }
}

/// Topology events taken in per wake-up before the other events get a turn.
const INTAKE_BATCH: usize = 1024;

/// How long after a cluster status event its group and application monitors look.
const ROLL_UP_DELAY: Duration = Duration::from_millis(500);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Every deployment in the store (deployed or undeploying), and the (tenant,
/// application id) of each deployment whose document cannot be read: reported here,
/// its application neither scaled nor taken for undeployed.
async fn load_deployments(store: &Store) -> Result<(Vec<Deployment>, Vec<(i64, String)>), AutoscalerError> {
    let listed = store.list_records_all_tenants::<Deployment>().await?;
    for bad in &listed.unreadable {
        error!(error = %bad, "not scaling this application until its deployment is fixed");
    }
    let frozen = listed.unreadable.into_iter().map(|bad| (bad.tenant, bad.id)).collect();
    Ok((listed.records, frozen))
}

/// Reads the clusters again from the store, one by one.
async fn read_clusters(store: &Store, clusters: &mut Clusters, ids: Vec<String>) -> Result<(), AutoscalerError> {
    for id in ids {
        let cluster = match store.load_cluster(&id).await {
            Ok(cluster) => cluster,
            // As the whole topology's reading does: said, and the cluster not scaled.
            Err(bad @ StoreError::InvalidDocument { .. }) => {
                error!(error = %bad, "not scaling this cluster until its document is fixed");
                None
            }
            Err(e) => return Err(e.into()),
        };
        clusters.read(id, cluster);
    }
    Ok(())
}

impl Autoscaler {
    /// Loads the stored histories of the deployed clusters not held yet: a tenant's
    /// many at once in one query (at the first cycle after a start, 10,000 reads one
    /// by one were most of that cycle), a few one by one.
    async fn load_histories(&mut self, deployments: &[Deployment]) -> Result<(), AutoscalerError> {
        let mut missing: HashMap<i64, HashSet<&str>> = HashMap::new();
        for d in deployments.iter().filter(|d| d.status == DeploymentStatus::Deployed) {
            for spec in d.clusters.iter().filter(|c| !self.histories.holds(&c.cluster_id)) {
                missing.entry(d.tenant_id).or_default().insert(&spec.cluster_id);
            }
        }
        for (tenant, clusters) in missing {
            if clusters.len() < HISTORIES_READ_TOGETHER {
                for cluster_id in clusters {
                    let stored = load_history(&self.store, tenant, cluster_id).await?;
                    self.histories.load(tenant, cluster_id, stored);
                }
                continue;
            }
            let listed = self.store.list_records::<ScalingHistory>(tenant).await?;
            for bad in listed.unreadable.iter().filter(|bad| clusters.contains(bad.id.as_str())) {
                error!(error = %bad, "scaling history unreadable; starting it again");
            }
            let mut stored: HashMap<String, Vec<serde_json::Value>> =
                listed.records.into_iter().map(|h| (h.cluster_id, h.decisions)).collect();
            for cluster_id in clusters {
                let history = stored.remove(cluster_id).map(serde_json::Value::Array);
                self.histories.load(tenant, cluster_id, history);
            }
        }
        Ok(())
    }
}

/// A tenant's clusters with no history held yet from which their histories are read
/// in one query rather than one by one.
const HISTORIES_READ_TOGETHER: usize = 16;

/// Why the clusters are looked at, which says which to read again first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// An evaluation cycle: those events marked, and a turn of the others.
    Cycle,
    /// Surging clusters evaluated between two cycles: those events marked.
    Surge,
    /// Group and application statuses rolled up after cluster status events: none
    /// (only clusters of deployments not seen yet).
    RollUp,
}

/// More clusters than this share of those held to read again: the whole topology
/// is read in one query instead (while 100k members start, most clusters change).
const FULL_READ_SHARE: usize = 4;

impl Autoscaler {
    /// The deployments, and the clusters brought up to date: those changed since the
    /// last look (and, at a cycle, a turn of the others), then those of deployments
    /// not held yet.
    async fn look(&mut self, look: Look) -> Result<Vec<Deployment>, AutoscalerError> {
        let began = Instant::now();
        // The topology first: the controller drains an undeployed application's clusters
        // only after it has read the deployment as undeploying, so deployments read after
        // the topology are never older than it (the other way round, a cluster drained
        // for an undeploy could be read as merely inactive).
        let ids = match look {
            Look::Cycle => self.clusters.take_due(true),
            Look::Surge => self.clusters.take_due(false),
            // The statuses announced win over the store (`Monitors::heard`): a roll-up
            // needs no cluster read again. While 100k members start, roll-ups come every
            // half second, and each read most of the topology again.
            Look::RollUp => Vec::new(),
        };
        if self.clusters.needs_full_load() || ids.len() > self.clusters.len() / FULL_READ_SHARE {
            let (topology, unreadable) = self.store.read_topology().await?;
            for bad in &unreadable {
                error!(error = %bad, "not scaling what this document concerns until it is fixed");
            }
            self.clusters.load(topology, began);
        } else {
            read_clusters(&self.store, &mut self.clusters, ids).await?;
        }
        let (deployments, frozen) = load_deployments(&self.store).await?;
        self.monitors.frozen = frozen;
        let unknown =
            self.clusters.unknown(deployments.iter().flat_map(|d| d.clusters.iter().map(|c| c.cluster_id.as_str())));
        read_clusters(&self.store, &mut self.clusters, unknown).await?;
        if look != Look::RollUp {
            // Marks are done with only once their clusters were read after them.
            self.clusters.settle(began);
        }
        Ok(deployments)
    }

    async fn roll_up_statuses(&mut self, announced: &[(String, MonitorStatus)]) -> Result<(), AutoscalerError> {
        let deployments = self.look(Look::RollUp).await?;
        self.monitors.update(&self.store, &self.bus, &deployments, &self.clusters, announced).await?;
        self.guide_new_clusters(&deployments).await
    }

    /// Clusters deployed since the last cycle get what their surges are measured
    /// against at once (their policy's threshold, their members): a load step soon
    /// after a deploy is caught too.
    async fn guide_new_clusters(&mut self, deployments: &[Deployment]) -> Result<(), AutoscalerError> {
        let mut definitions: HashMap<i64, Definitions> = HashMap::new();
        for deployment in deployments.iter().filter(|d| d.status == DeploymentStatus::Deployed) {
            for spec in &deployment.clusters {
                if self.surges.guided(&spec.cluster_id) {
                    continue;
                }
                let Some(cluster) = self.clusters.cluster(&spec.cluster_id) else { continue };
                if let std::collections::hash_map::Entry::Vacant(slot) = definitions.entry(deployment.tenant_id) {
                    slot.insert(self.store.load_definitions(deployment.tenant_id).await?);
                }
                let defs = &definitions[&deployment.tenant_id];
                let Some(policy) = defs.autoscaling_policies.get(&spec.autoscaling_policy) else { continue };
                let live = cluster.members.values().filter(|m| m.status < MemberStatus::InMaintenance).count();
                let threshold = Thresholds::from(&policy.load_thresholds).requests_in_flight;
                self.surges.evaluated(&spec.cluster_id, threshold, live as u32, spec.max);
            }
        }
        Ok(())
    }
}

/// The monitor tree of every deployed application: application → groups → clusters.
#[derive(Default)]
struct Monitors {
    /// (tenant, application id) → its tree.
    applications: HashMap<(i64, String), ApplicationMonitor>,
    /// Each cluster's status as the controller last announced it. It wins over the
    /// stored topology, which the controller writes a little after it announces, so
    /// that a look at the store between the two cannot flip a monitor back.
    heard: HashMap<String, MonitorStatus>,
    /// Applications whose deployment cannot be read: kept as they are, not undeployed.
    frozen: Vec<(i64, String)>,
}

impl Monitors {
    /// Rolls the statuses up from the topology's clusters, after replaying the
    /// cluster statuses `announced` since the last roll-up one by one over it;
    /// announces and records the changes.
    async fn update(
        &mut self,
        store: &Store,
        bus: &Bus,
        deployments: &[Deployment],
        topology: &Clusters,
        announced: &[(String, MonitorStatus)],
    ) -> Result<(), AutoscalerError> {
        let mut views: Vec<HashMap<&str, MonitorStatus>> = Vec::new();
        let mut view = HashMap::new();
        for (cluster_id, status) in announced {
            view.insert(cluster_id.as_str(), *status);
            views.push(view.clone());
        }
        // Without announcements, the topology as it is. (After them, their last view:
        // the events are newer than the store, which the controller writes a little later.)
        if views.is_empty() {
            views.push(HashMap::new());
        }
        // Before its first announcement in this batch, a cluster not heard of before
        // counts as that first announced status, not as the stored topology: the store
        // is newer than the announcements replayed, and mixing the two made monitors
        // flap (down, up, down) on one status change.
        let mut first_announced: HashMap<&str, MonitorStatus> = HashMap::new();
        for (cluster_id, status) in announced {
            first_announced.entry(cluster_id.as_str()).or_insert(*status);
        }
        let mut seen = Vec::new();
        for deployment in deployments {
            let key = (deployment.tenant_id, deployment.application_id.clone());
            seen.push(key.clone());
            let fresh = self.applications.get(&key).is_none_or(|m| m.deployed_at != deployment.deployed_at);
            if fresh {
                // The autoscaler's own record: an unreadable one is said, then replaced.
                let stored = match store.get_record(deployment.tenant_id, &deployment.application_id).await {
                    Ok(stored) => stored,
                    Err(StoreError::Unreadable(bad)) => {
                        error!(error = %bad, "monitor statuses unreadable; rebuilding them from the topology");
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                info!(application_id = %deployment.application_id, groups = deployment.groups.len(), "application monitor built");
                self.applications.insert(key.clone(), ApplicationMonitor::new(deployment, stored.as_ref()));
            }
            let monitor = self.applications.get_mut(&key).expect("inserted above");
            let terminating = deployment.status == DeploymentStatus::Undeploying;
            let mut changes = Vec::new();
            for view in &views {
                let heard = &self.heard;
                let leaf = |id: &str| {
                    view.get(id)
                        .or_else(|| heard.get(id))
                        .or_else(|| first_announced.get(id))
                        .copied()
                        .unwrap_or_else(|| groups::cluster_status(topology.cluster(id).map(|c| c.status)))
                };
                changes.extend(monitor.update(&leaf, terminating));
            }
            for change in &changes {
                announce(bus, monitor, change).await;
            }
            if fresh || !changes.is_empty() {
                store.put_record(deployment.tenant_id, &monitor.record(now_millis())).await?;
            }
        }
        self.heard.extend(announced.iter().map(|(id, status)| (id.clone(), *status)));
        // Clusters no deployment names any more are forgotten.
        let deployed: std::collections::HashSet<&str> =
            deployments.iter().flat_map(|d| d.clusters.iter().map(|c| c.cluster_id.as_str())).collect();
        self.heard.retain(|id, _| deployed.contains(id.as_str()));
        // Undeployed: the controller deleted the deployment; its monitors go too.
        let gone: Vec<(i64, String)> =
            self.applications.keys().filter(|k| !seen.contains(k) && !self.frozen.contains(k)).cloned().collect();
        for (tenant, application_id) in gone {
            // Undeployed between two looks: it still went through terminating.
            if let Some(monitor) = self.applications.get_mut(&(tenant, application_id.clone())) {
                let leaf = |id: &str| groups::cluster_status(topology.cluster(id).map(|c| c.status));
                for change in monitor.update(&leaf, true) {
                    announce(bus, monitor, &change).await;
                }
            }
            self.applications.remove(&(tenant, application_id.clone()));
            info!(%application_id, "application monitor removed");
            store.delete_record::<ApplicationMonitorStatus>(tenant, &application_id).await?;
        }
        Ok(())
    }
}

async fn announce(bus: &Bus, monitor: &ApplicationMonitor, change: &Change) {
    let (application_id, tenant_id) = (monitor.application_id.clone(), monitor.tenant_id);
    let result = match change {
        Change::Application { from, to } => {
            info!(%application_id, ?from, ?to, "application status changed");
            match to {
                MonitorStatus::Active => bus.publish(&ApplicationActivatedEvent { application_id, tenant_id }).await,
                MonitorStatus::Inactive => {
                    bus.publish(&ApplicationInactivatedEvent { application_id, tenant_id }).await
                }
                MonitorStatus::Terminating => {
                    bus.publish(&ApplicationTerminatingEvent { application_id, tenant_id }).await
                }
                MonitorStatus::Created => return,
            }
        }
        Change::Group { alias, from, to } => {
            info!(%application_id, group = %alias, ?from, ?to, "group status changed");
            let group_alias = alias.clone();
            match to {
                MonitorStatus::Active => {
                    bus.publish(&GroupActivatedEvent { application_id, tenant_id, group_alias }).await
                }
                MonitorStatus::Inactive => {
                    bus.publish(&GroupInactivatedEvent { application_id, tenant_id, group_alias }).await
                }
                MonitorStatus::Terminating => {
                    bus.publish(&GroupTerminatingEvent { application_id, tenant_id, group_alias }).await
                }
                MonitorStatus::Created => return,
            }
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "cannot publish a status change");
    }
}

impl Autoscaler {
    /// Evaluates every deployed cluster (a cycle), or with `surging` only those
    /// clusters, each with its latest requests in flight, and their scaling dependents.
    async fn evaluate(&mut self, surging: Option<&HashMap<String, f64>>) -> Result<(), AutoscalerError> {
        let started = Instant::now();
        let cycle = surging.is_none();
        let all = self.look(if cycle { Look::Cycle } else { Look::Surge }).await?;
        let loaded = started.elapsed();
        if cycle {
            self.monitors.update(&self.store, &self.bus, &all, &self.clusters, &[]).await?;
        }
        self.load_histories(&all).await?;
        let rolled_up = started.elapsed();
        let deployed: HashSet<String> =
            all.iter().flat_map(|d| d.clusters.iter().map(|c| c.cluster_id.clone())).collect();
        let mut decided = 0usize;
        let mut definitions: HashMap<i64, Definitions> = HashMap::new();
        let oldest = oldest_fresh(&self.config);
        for deployment in all.into_iter().filter(|d| d.status == DeploymentStatus::Deployed) {
            if let Some(surging) = surging {
                if !deployment.clusters.iter().any(|c| surging.contains_key(&c.cluster_id)) {
                    continue;
                }
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = definitions.entry(deployment.tenant_id) {
                slot.insert(self.store.load_definitions(deployment.tenant_id).await?);
            }
            let defs = &definitions[&deployment.tenant_id];
            let deployment = with_groups(deployment, defs);
            let mut plans = Vec::new();
            for spec in &deployment.clusters {
                let Some(cluster) = self.clusters.cluster(&spec.cluster_id) else { continue };
                let Some(policy) = defs.autoscaling_policies.get(&spec.autoscaling_policy) else { continue };
                let live: Vec<&Member> =
                    cluster.members.values().filter(|m| m.status < MemberStatus::InMaintenance).collect();
                let surge = surging.and_then(|s| s.get(&spec.cluster_id)).copied();
                // Members asked for a moment ago count before the controller has created them.
                let asked = self
                    .written
                    .get(&spec.cluster_id)
                    .filter(|(_, at)| at.elapsed() < self.config.interval)
                    .map_or(0, |(n, _)| *n);
                let current = (live.len() as u32).max(asked);
                let mut inputs = inputs_for(&spec.cluster_id, spec.min, spec.max, current, &self.observed, oldest);
                if let Some(now) = surge {
                    // One reading: as it is, not predicted from.
                    let flat = FactorStats { average: now, gradient: 0.0, second_derivative: 0.0 };
                    inputs.requests_in_flight =
                        Some(inputs.requests_in_flight.map_or(flat, |s| if s.average >= now { s } else { flat }));
                }
                let thresholds = Thresholds::from(&policy.load_thresholds);
                let decision =
                    decide(&inputs, &thresholds, self.config.interval.as_secs_f64(), self.config.use_prediction);
                // Out of a cycle, only the surging clusters decide (and count towards a scale-down).
                let action = if cycle || surge.is_some() {
                    let counter = self.counters.entry(spec.cluster_id.clone()).or_default();
                    counter.next(inputs.current, decision.required, self.config.scale_down_after)
                } else {
                    Action::None
                };
                if cycle {
                    self.surges.evaluated(&spec.cluster_id, thresholds.requests_in_flight, current, spec.max);
                }
                plans.push((spec, live, decision, action, cycle || surge.is_some()));
            }
            let mut dependents: Vec<Plan> =
                plans.iter().map(|(s, l, d, a, _)| (*s, l.clone(), d.clone(), *a)).collect();
            apply_scaling_dependents(&deployment, defs, &mut dependents);
            for ((spec, live, decision, own, evaluated), (.., action)) in plans.into_iter().zip(dependents) {
                // Out of a cycle, a cluster that did not surge is recorded only if it moves with one that did.
                if !evaluated && action == own {
                    continue;
                }
                let (name, desired, drain_first) = match action {
                    Action::None => ("none", decision.inputs.current, Vec::new()),
                    Action::ScaleUp(to) => ("scale-up", to, Vec::new()),
                    Action::ScaleDown(to) => {
                        let victim = least_loaded(&deployment, spec, &live, defs, &self.observed);
                        ("scale-down", to, victim.into_iter().collect())
                    }
                };
                if action != Action::None {
                    info!(cluster_id = %spec.cluster_id, action = name, from = decision.inputs.current, to = desired, required = decision.required, surge = !cycle, "scaling");
                    let scale = ClusterScale {
                        cluster_id: spec.cluster_id.clone(),
                        desired,
                        drain_first,
                        updated_at: now_millis(),
                    };
                    // The controller freezes a cluster whose scale record it cannot read;
                    // it stays so (and said) until an operator looks, not overwritten here.
                    match self.store.get_record::<ClusterScale>(deployment.tenant_id, &spec.cluster_id).await {
                        Err(StoreError::Unreadable(bad)) => {
                            error!(error = %bad, "not scaling the cluster until its scale record is fixed");
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                        // Already the size the controller converges to (a new cluster still
                        // starting its members, asked for its minimum): nothing to write. At
                        // 100k members starting, these writes were thousands per cycle.
                        Ok(stored) if scale.drain_first.is_empty() && effective(stored.as_ref(), spec) == desired => {}
                        Ok(_) => self.store.put_record(deployment.tenant_id, &scale).await?,
                    }
                    self.written.insert(spec.cluster_id.clone(), (desired, Instant::now()));
                    self.surges.scaled(&spec.cluster_id, desired);
                } else {
                    debug!(cluster_id = %spec.cluster_id, required = decision.required, current = decision.inputs.current, "no scaling");
                }
                // Its history is held: `load_histories` loaded every deployed cluster's.
                let event = decision_event(&deployment, &spec.cluster_id, name, desired, &decision);
                // A run of decisions that do nothing is announced once, as the history
                // keeps it as one entry: 10,000 clusters at rest were 10,000 messages a cycle.
                if action != Action::None || !self.histories.idle(&spec.cluster_id) {
                    if let Err(e) = self.bus.publish(&event).await {
                        warn!(error = %e, "cannot publish a scaling decision");
                    }
                }
                let entry = serde_json::to_value(&event).expect("serialises");
                self.histories.record(deployment.tenant_id, &spec.cluster_id, entry);
                if let Some(m) = &mut self.metrics {
                    m.decided(&spec.cluster_id, &decision, action);
                }
                decided += 1;
            }
        }
        let evaluated = started.elapsed();
        let due = self.histories.due(cycle);
        if !due.is_empty() {
            // The writer task is gone only with the runtime.
            let _ = self.history_writer.send(due);
        }
        if cycle {
            // Clusters no deployment names any more are forgotten (their documents stay).
            let deployed = |id: &str| deployed.contains(id);
            self.clusters.retain(deployed);
            self.histories.retain(deployed);
            self.surges.retain(deployed);
            if let Some(m) = &mut self.metrics {
                m.retain(deployed);
            }
            self.counters.retain(|id, _| deployed(id));
            self.written.retain(|id, (_, at)| deployed(id) && at.elapsed() < self.config.interval);
        }
        let took = started.elapsed();
        // The phases of a cycle say where its time went (at info when it was slow).
        let (load, roll_up, evaluate, save_history) =
            (loaded, rolled_up - loaded, evaluated - rolled_up, took - evaluated);
        let clusters = self.clusters.len();
        let history = self.histories.entries();
        if took > self.config.interval / 2 {
            info!(
                decided,
                clusters,
                history,
                ?load,
                ?roll_up,
                ?evaluate,
                ?save_history,
                "slow evaluation cycle phases"
            );
        } else {
            debug!(decided, clusters, history, ?load, ?roll_up, ?evaluate, ?save_history, "evaluation cycle phases");
        }
        Ok(())
    }
}

/// The size the controller converges a cluster to: its scale record's, or the
/// deployment's until the autoscaler wrote one (as `cloud::plan::scale` reads them).
fn effective(stored: Option<&ClusterScale>, spec: &stratos_model::ClusterSpec) -> u32 {
    stored.map_or(spec.desired, |s| s.desired)
}

fn inputs_for(cluster_id: &str, min: u32, max: u32, current: u32, observed: &Observed, oldest: u64) -> Inputs {
    let fresh = |factor: fn(&ClusterHealthSummaryEvent) -> Option<FactorSummary>| -> Vec<FactorStats> {
        observed.fresh(cluster_id, oldest).filter_map(factor).map(FactorStats::from).collect()
    };
    // Requests in flight add up over network partitions; per-member loads average.
    let sum = |v: Vec<FactorStats>| -> Option<FactorStats> {
        (!v.is_empty()).then(|| FactorStats {
            average: v.iter().map(|s| s.average).sum(),
            gradient: v.iter().map(|s| s.gradient).sum(),
            second_derivative: v.iter().map(|s| s.second_derivative).sum(),
        })
    };
    let mean = |v: Vec<FactorStats>| -> Option<FactorStats> {
        let n = v.len() as f64;
        sum(v).map(|s| FactorStats {
            average: s.average / n,
            gradient: s.gradient / n,
            second_derivative: s.second_derivative / n,
        })
    };
    Inputs {
        min,
        max,
        current,
        requests_in_flight: sum(fresh(|s| s.requests_in_flight)),
        load_average: mean(fresh(|s| s.load_average)),
        memory_consumption: mean(fresh(|s| s.memory_consumption)),
    }
}

/// Summaries older than this (milliseconds since the epoch) do not vote.
fn oldest_fresh(config: &AutoscalerConfig) -> u64 {
    now_millis().saturating_sub(config.freshness.as_millis() as u64)
}

type Plan<'a> = (&'a stratos_model::ClusterSpec, Vec<&'a Member>, Decision, Action);

/// A deployment stored before groups were kept gets them from its application,
/// so that `group.<alias>` still names the group's clusters.
fn with_groups(mut deployment: Deployment, defs: &Definitions) -> Deployment {
    if deployment.groups.is_empty() {
        if let Some(app) = defs.applications.get(&deployment.application_id) {
            deployment.groups = GroupSpec::tree(&app.components.groups);
        }
    }
    deployment
}

/// Scaling dependents scale together, both ways: `cartridge.<alias>` is one
/// cluster, `group.<alias>` every cluster of the group's monitor.
fn apply_scaling_dependents(deployment: &Deployment, defs: &Definitions, plans: &mut [Plan]) {
    let Some(app) = defs.applications.get(&deployment.application_id) else { return };
    let sets: Vec<Vec<usize>> = app
        .components
        .dependencies
        .iter()
        .flat_map(|d| &d.scaling_dependents)
        .map(|list| {
            list.aliases
                .iter()
                .flat_map(|reference| deployment.expand(reference))
                .filter_map(|alias| plans.iter().position(|(spec, ..)| spec.alias == alias))
                .collect()
        })
        .collect();
    if sets.is_empty() {
        return;
    }
    let mut sizings: Vec<Sizing> = plans
        .iter()
        .map(|(spec, _, decision, action)| Sizing {
            current: decision.inputs.current,
            min: spec.min,
            max: spec.max,
            action: *action,
        })
        .collect();
    scale_together(&sets, &mut sizings);
    for ((spec, _, _, action), sizing) in plans.iter_mut().zip(sizings) {
        if *action != sizing.action {
            info!(cluster_id = %spec.cluster_id, own = ?action, with_dependents = ?sizing.action, "scaling with its dependents");
            *action = sizing.action;
        }
    }
}

/// The member to remove: in the partition that empties first (the last filled,
/// the burst network partition before the home one), the least loaded.
fn least_loaded(
    deployment: &Deployment,
    spec: &stratos_model::ClusterSpec,
    live: &[&Member],
    defs: &Definitions,
    observed: &Observed,
) -> Option<String> {
    let app_policy = defs.application_policies.get(&deployment.application_policy_id)?;
    let policy = defs.deployment_policies.get(&spec.deployment_policy)?;
    let nps: HashMap<String, NetworkPartition> = defs.network_partitions.clone().into_iter().collect();
    let placement = Placement::new(app_policy.algorithm, &app_policy.network_partitions, policy, &nps);
    let mut counts: HashMap<Slot, u32> = HashMap::new();
    for m in live {
        *counts.entry((m.network_partition_id.clone(), m.partition_id.clone())).or_insert(0) += 1;
    }
    let slot = placement.next_to_remove(&counts)?;
    live.iter()
        .filter(|m| (m.network_partition_id.clone(), m.partition_id.clone()) == slot)
        .min_by(|a, b| {
            let load = |m: &Member| observed.member_load(&spec.cluster_id, &m.member_id).unwrap_or(0.0);
            load(a).total_cmp(&load(b)).then(b.init_time.cmp(&a.init_time))
        })
        .map(|m| m.member_id.clone())
}

/// The decision as it is announced and kept in the cluster's history.
fn decision_event(
    deployment: &Deployment,
    cluster_id: &str,
    action: &str,
    desired: u32,
    decision: &Decision,
) -> ScalingDecisionEvent {
    ScalingDecisionEvent {
        cluster_id: cluster_id.to_string(),
        application_id: deployment.application_id.clone(),
        action: action.to_string(),
        current: decision.inputs.current,
        desired,
        decision: serde_json::to_value(decision).expect("serialises"),
        timestamp: now_millis(),
    }
}

/// A cluster's stored history (the first time the cluster is evaluated).
async fn load_history(
    store: &Store,
    tenant: i64,
    cluster_id: &str,
) -> Result<Option<serde_json::Value>, AutoscalerError> {
    // The autoscaler's own record: an unreadable one is said, then replaced.
    match store.get_record::<ScalingHistory>(tenant, cluster_id).await {
        Ok(history) => Ok(history.map(|h| serde_json::Value::Array(h.decisions))),
        Err(StoreError::Unreadable(bad)) => {
            error!(error = %bad, "scaling history unreadable; starting it again");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The histories to write after a look, per tenant (`Histories::due`).
type DueHistories = HashMap<i64, Vec<(String, serde_json::Value)>>;

/// A task that writes the histories handed to it, in the order handed, so that a
/// cycle's decisions (and the scale records, written in the cycle) do not wait on
/// their record: the first cycle after a start at 100k members wrote 10,000 new
/// histories, 0.6 s of a cycle of 2.4 s. It ends when the autoscaler does.
fn spawn_history_writer(store: Store) -> mpsc::UnboundedSender<DueHistories> {
    let (tx, mut rx) = mpsc::unbounded_channel::<DueHistories>();
    tokio::spawn(async move {
        while let Some(due) = rx.recv().await {
            if let Err(e) = save_histories(&store, due).await {
                error!(error = %e, "cannot save scaling histories");
            }
        }
    });
    tx
}

/// Writes the histories that changed, a batch of clusters per transaction (one
/// transaction per cluster, each a sync to disk, took most of a cycle at 100k members).
async fn save_histories(store: &Store, due: DueHistories) -> Result<(), AutoscalerError> {
    for (tenant, mut documents) in due {
        while !documents.is_empty() {
            let batch = documents.split_off(documents.len().saturating_sub(HISTORY_BATCH));
            let writes = batch
                .into_iter()
                .map(|(cluster_id, doc)| {
                    let decisions = match doc {
                        serde_json::Value::Array(decisions) => decisions,
                        _ => Vec::new(),
                    };
                    stratos_store::record_write(&ScalingHistory { cluster_id, decisions })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            store.write_batch(tenant, writes).await?;
        }
    }
    Ok(())
}

/// Cluster histories written per transaction.
const HISTORY_BATCH: usize = 1000;

#[cfg(test)]
mod tests {
    use stratos_model::{Application, ClusterSpec};

    use super::*;
    use crate::decision::Inputs;

    fn spec(alias: &str, min: u32, max: u32) -> ClusterSpec {
        ClusterSpec {
            cluster_id: format!("app.{alias}"),
            alias: alias.into(),
            cartridge_type: "c".into(),
            min,
            max,
            desired: min,
            deployment_policy: "d".into(),
            autoscaling_policy: "a".into(),
            host_names: vec![],
            artifact_repository: None,
            depends_on: vec![],
            revision: None,
        }
    }

    fn decision(current: u32) -> Decision {
        Decision { inputs: Inputs { current, ..Default::default() }, votes: vec![], required: current }
    }

    /// front; backend { api; data { db } }; lone stands apart. Scaling dependents:
    /// group.backend with cartridge.front: api and db (nested) follow front and each other.
    fn app_and_deployment(stored_groups: bool) -> (Definitions, Deployment) {
        let sub = |alias: &str| {
            serde_json::json!({"type": "c", "cartridgeMin": 1, "cartridgeMax": 10,
                "subscribableInfo": {"alias": alias, "autoscalingPolicy": "a", "deploymentPolicy": "d"}})
        };
        let app: Application = serde_json::from_value(serde_json::json!({
            "applicationId": "app",
            "components": {
                "cartridges": [sub("front"), sub("lone")],
                "groups": [{"name": "backend", "alias": "backend", "cartridges": [sub("api")],
                    "groups": [{"name": "data", "alias": "data", "cartridges": [sub("db")]}]}],
                "dependencies": {"scalingDependents": [{"aliases": ["group.backend", "cartridge.front"]}]}
            }
        }))
        .unwrap();
        let mut defs = Definitions::default();
        let deployment = Deployment {
            application_id: "app".into(),
            tenant_id: 1,
            application_policy_id: "p".into(),
            status: DeploymentStatus::Deployed,
            deployed_at: 0,
            clusters: vec![spec("front", 1, 10), spec("api", 1, 10), spec("db", 2, 10), spec("lone", 1, 10)],
            termination_behaviour: None,
            groups: if stored_groups { GroupSpec::tree(&app.components.groups) } else { vec![] },
        };
        defs.applications.insert("app".into(), app);
        (defs, deployment)
    }

    fn live_member(id: &str, partition: &str) -> Member {
        Member {
            service_name: "c".into(),
            cluster_id: "app.front".into(),
            member_id: id.into(),
            network_partition_id: "np".into(),
            partition_id: partition.into(),
            status: MemberStatus::Active,
            default_private_ip: None,
            default_public_ip: None,
            ports: vec![],
            init_time: 0,
            properties: vec![],
        }
    }

    #[test]
    fn the_least_loaded_member_of_the_cluster_summary_is_removed() {
        let (mut defs, mut deployment) = app_and_deployment(true);
        let np = serde_json::json!({"id": "np", "provider": "simulated", "partitions": [{"id": "a"}, {"id": "b"}]});
        defs.network_partitions.insert("np".into(), serde_json::from_value(np).unwrap());
        defs.deployment_policies.insert(
            "d".into(),
            serde_json::from_value(serde_json::json!({"id": "d", "networkPartitions": [{"id": "np",
                "partitionAlgo": "round-robin", "partitions": [{"id": "a", "partitionMax": 5}, {"id": "b", "partitionMax": 5}]}]}))
            .unwrap(),
        );
        defs.application_policies.insert(
            "p".into(),
            serde_json::from_value(
                serde_json::json!({"id": "p", "algorithm": "one-after-another", "networkPartitions": ["np"]}),
            )
            .unwrap(),
        );
        deployment.clusters.truncate(1);
        let spec = &deployment.clusters[0];
        // Members report their load; the health service summarises the cluster in one
        // event, which is all the autoscaler hears of them.
        let mut health = stratos_health::HealthState::new(60.0, 60.0);
        let members = [("m1", "a", 50.0), ("m2", "a", 5.0), ("m3", "b", 30.0), ("m4", "b", 20.0)];
        for (id, partition, load) in members {
            let m = live_member(id, partition);
            health.member_stats(stratos_bus::MemberRef::from(&m), 0.0, Some(load), Some(10.0));
        }
        let mut observed = Observed::default();
        for summary in health.summaries(1.0, now_millis()) {
            observed.take(summary);
        }
        let live: Vec<Member> = members.iter().map(|(id, partition, _)| live_member(id, partition)).collect();
        let live: Vec<&Member> = live.iter().collect();
        let victim = least_loaded(&deployment, spec, &live, &defs, &observed);
        assert_eq!(victim.as_deref(), Some("m4"), "b empties first (round robin), and m4 is its least loaded");
        // Its partition emptied, the least loaded of the other goes next.
        let victim = least_loaded(&deployment, spec, &[live[0], live[1]], &defs, &observed);
        assert_eq!(victim.as_deref(), Some("m2"));
        let inputs = inputs_for(&spec.cluster_id, 1, 10, 4, &observed, oldest_fresh(&AutoscalerConfig::default()));
        assert_eq!(inputs.load_average.map(|l| l.average), Some(26.25), "the cluster's mean");
    }

    #[test]
    fn group_references_scale_every_cluster_of_the_group_both_ways() {
        // (front's own action, sizes of front/api/db/lone, expected actions)
        let cases = [
            (
                Action::ScaleUp(4),
                [2, 3, 2, 2],
                [Action::ScaleUp(4), Action::ScaleUp(6), Action::ScaleUp(4), Action::None],
            ),
            (
                Action::ScaleDown(3),
                [4, 8, 4, 4],
                [Action::ScaleDown(3), Action::ScaleDown(6), Action::ScaleDown(3), Action::None],
            ),
            // db's min of 2 holds.
            (
                Action::ScaleDown(1),
                [2, 2, 2, 2],
                [Action::ScaleDown(1), Action::ScaleDown(1), Action::None, Action::None],
            ),
        ];
        for stored_groups in [true, false] {
            let (defs, deployment) = app_and_deployment(stored_groups);
            let deployment = with_groups(deployment, &defs);
            for (front, sizes, expected) in cases {
                let mut plans: Vec<Plan> = deployment
                    .clusters
                    .iter()
                    .zip(sizes)
                    .map(|(spec, n)| {
                        let action = if spec.alias == "front" { front } else { Action::None };
                        (spec, Vec::new(), decision(n), action)
                    })
                    .collect();
                apply_scaling_dependents(&deployment, &defs, &mut plans);
                let actions: Vec<Action> = plans.iter().map(|p| p.3).collect();
                assert_eq!(actions, expected, "front {front:?}, sizes {sizes:?}, groups stored {stored_groups}");
            }
        }
    }
}
