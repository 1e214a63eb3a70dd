//! The cloud controller: owns the topology and reconciles it, with the members
//! the drivers report, against the deployments in the store. What to do is decided
//! by the pure functions of `plan` (unit-tested there); this file executes their
//! plans: driver calls, bus publishes, store saves.
//!
//! Invariants:
//! - A member enters the topology (and the store) before its driver starts it, so
//!   a crash between the two leaves a member to replace, never an unknown process.
//! - A running instance of this platform that no member of the topology names is an
//!   orphan and is terminated; another platform's members are never touched, and
//!   nothing is judged while the store is not this platform's (see `ownership`).
//! - Agents' events move a member forward; the drivers' listing tells when it is gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_bus::events::*;
use stratos_bus::{now_millis, AnyEvent, Bus, MemberRef};
use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::{ClusterRestart, ClusterScale, ClusterSpec, Deployment, DeploymentStatus, Property};
use stratos_store::{Store, TopologyChanges, Unreadable};
use tracing::{debug, error, info, warn};

use crate::cluster_owners;
use crate::driver::{Driver, MemberSpec, PortSpec};
use crate::error::ControllerError;
use crate::ownership::{self, Strangers};
use crate::plan::{self, Failure, FailureHistory, Listed};
use stratos_model::placement::Slot;

/// The longest pause between reconciles that a slow reconcile may impose.
const MAX_RECONCILE_PAUSE: Duration = Duration::from_secs(10);

/// Most often the topology's changes are saved.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The complete topology snapshot is published at most this often per member: it
/// costs O(members) to encode and to deliver, while the per-member events that
/// consumers apply as they come cost O(1). 100 µs: every 1 s at 10k members.
const SNAPSHOT_EVERY_PER_MEMBER: Duration = Duration::from_micros(100);
/// The snapshot is never older than this, however large the topology.
const SNAPSHOT_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// How long reconciles take, for benchmarks and diagnostics.
pub type ReconcileStats = stratos_model::DurationStats;

/// How long the complete snapshot of a topology of `members` may lag behind.
fn snapshot_interval(members: usize) -> Duration {
    (SNAPSHOT_EVERY_PER_MEMBER * members.min(u32::MAX as usize) as u32).clamp(FLUSH_EVERY, SNAPSHOT_AT_LEAST_EVERY)
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Where members' agents reach the bus (no credentials in it: each member gets its own).
    pub broker_url: String,
    /// Issues each member its own bus credentials when it is started (the embedded
    /// broker's gate verifies them, and refuses them once the member is terminated).
    /// `None`: members connect without credentials, which only an open broker accepts.
    pub member_credentials: Option<stratos_bus::PlatformSecret>,
    /// The CA (or self-signed certificate) file members trust for a `mqtts://` broker,
    /// handed to them as `STRATOS_BUS_CA_CERT`; `None`: the system's roots.
    pub bus_ca_cert: Option<std::path::PathBuf>,
    /// How often desired and actual state are compared.
    pub reconcile_interval: Duration,
    /// A member that does not activate in this time is replaced.
    pub activation_timeout: Duration,
    /// How long a draining member may take before it is terminated anyway.
    pub drain_timeout: Duration,
    /// Grace between SIGTERM (or its IaaS equivalent) and a forced stop.
    pub terminate_grace: Duration,
    /// What to do, at start, with running members the store does not know.
    pub strangers: Strangers,
    /// Agents may clone local paths and file:// repositories (`--allow-local-repos`).
    pub allow_local_repos: bool,
    /// How long members on a place their driver cannot reach (a Docker Engine that does
    /// not answer) are kept before they are given up and replaced elsewhere.
    pub unreachable_grace: Duration,
    /// The platform's secrets key, to open applications' secrets as members start
    /// (`app_env`); `None`: a member of an application with secrets fails to start.
    pub secrets: Option<Arc<stratos_store::sealed::KeyRing>>,
    /// Members by status, desired sizes and reconcile durations go here (`stratos up`).
    pub metrics: Option<stratos_metrics::CloudMetrics>,
}

impl ControllerConfig {
    pub fn new(broker_url: impl Into<String>) -> Self {
        ControllerConfig {
            broker_url: broker_url.into(),
            member_credentials: None,
            bus_ca_cert: None,
            reconcile_interval: Duration::from_secs(1),
            activation_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(20),
            terminate_grace: Duration::from_secs(10),
            strangers: Strangers::Refuse,
            allow_local_repos: false,
            unreachable_grace: Duration::from_secs(30),
            secrets: None,
            metrics: None,
        }
    }
}

/// What `converge` needs of a tenant besides its deployment, read once per reconcile
/// however many deployments the tenant has.
struct TenantInputs {
    defs: stratos_model::Definitions,
    scales: HashMap<String, ClusterScale>,
    /// Rolling restarts asked for (`ClusterRestart`): cluster id → when (milliseconds).
    restarts: HashMap<String, u64>,
    /// Scale and restart records that cannot be read: their clusters are frozen.
    unreadable: Vec<Unreadable>,
    /// Each application's latest rollout and its outcome (`revisions`).
    rollouts: crate::revisions::LatestRollouts,
}

pub struct CloudController {
    store: Store,
    bus: Bus,
    drivers: HashMap<&'static str, Arc<dyn Driver>>,
    config: ControllerConfig,
    topology: Topology,
    /// Services and clusters changed since the last save.
    changes: TopologyChanges,
    /// The topology changed since its complete snapshot was last published.
    snapshot_stale: bool,
    last_snapshot: Option<Instant>,
    stats: Arc<ReconcileStats>,
    /// Members being drained, with the time they must be gone by.
    draining: HashMap<String, Instant>,
    /// When each member of this controller's life was first seen not yet active.
    pending_since: HashMap<String, Instant>,
    /// Clusters' failures in a row: back-off, avoided partitions, the error they show.
    history: FailureHistory,
    /// Running members `--adopt-members` adopts (this platform's, not in the store when
    /// the controller started), until they are recorded.
    adopting: HashSet<String>,
    /// Adoptable members whose cluster no deployment has, already reported.
    not_adoptable: HashSet<String>,
    /// Each cluster's minimum, from its deployment: it is Active from that many active members.
    cluster_min: HashMap<String, u32>,
    /// The deployments as last read, for the termination behaviour of their applications.
    deployments: Arc<Vec<Deployment>>,
    /// Each tenant's definitions and cluster sizes, read once per reconcile.
    tenant_inputs: HashMap<i64, Arc<TenantInputs>>,
    /// Clusters that served and have no active member left.
    down: std::collections::HashSet<String>,
    /// Clusters to take down (with the cluster whose failure asks for it).
    takedown: Vec<(String, String)>,
    /// Members recorded in this reconcile, to start once the record is saved.
    to_launch: Vec<(Member, MemberSpec, Arc<dyn Driver>)>,
    /// Members their driver is stopping, each in a task of its own: one that takes its
    /// grace period to stop holds up nothing else. They stay in the topology until
    /// their task reports on `stopped`.
    terminating: std::collections::HashSet<String>,
    stopped: (tokio::sync::mpsc::UnboundedSender<Stopped>, Option<tokio::sync::mpsc::UnboundedReceiver<Stopped>>),
    /// The platform (store) this controller acts for; its members carry it.
    platform_id: String,
    /// Why the last reconcile was skipped (the store's platform id is gone or another),
    /// so that it is logged once, not every second.
    store_alarm: Option<String>,
    /// Cluster ids claimed by two deployments, already logged.
    id_clashes: std::collections::HashSet<String>,
    /// The one deployment each cluster id is converged for, as of this reconcile.
    owners: HashMap<String, cluster_owners::Owner>,
    /// Topology documents that could not be read when the controller started (it reads
    /// the topology once): their clusters stay frozen until a restart reads them.
    unreadable_topology: Vec<Unreadable>,
    /// What `ownership::establish` read, when it ran before the controller was made
    /// (`stratos up`); `run` establishes ownership itself otherwise.
    established: Option<ownership::Established>,
    /// Clusters a stored document that cannot be read is about, as of this reconcile
    /// (`frozen::frozen_clusters`): no member is created, terminated or reaped in them.
    frozen: std::collections::HashSet<String>,
    /// Unreadable documents already logged, so that each is logged once while it lasts.
    reported: std::collections::HashSet<String>,
    /// The drivers' places (engines) that did not answer their last listing.
    places: plan::Places,
    /// Revisions read so far (they never change).
    revisions: crate::revisions::RevisionCache,
    /// Persistent volumes no slot needs any more, removed (`volume.rs`).
    volume_sweep: crate::volume::Sweeper,
}

/// A termination's outcome, from its task.
struct Stopped {
    cluster_id: String,
    member_id: String,
    reason: String,
    result: Result<(), crate::driver::DriverError>,
}

impl CloudController {
    pub fn new(store: Store, bus: Bus, drivers: Vec<Arc<dyn Driver>>, config: ControllerConfig) -> Self {
        let config_grace = config.unreachable_grace;
        CloudController {
            store,
            bus,
            drivers: drivers.into_iter().map(|d| (d.name(), d)).collect(),
            config,
            topology: Topology::default(),
            changes: TopologyChanges::default(),
            snapshot_stale: false,
            last_snapshot: None,
            stats: Default::default(),
            draining: HashMap::new(),
            pending_since: HashMap::new(),
            history: FailureHistory::default(),
            adopting: HashSet::new(),
            not_adoptable: HashSet::new(),
            cluster_min: HashMap::new(),
            deployments: Default::default(),
            tenant_inputs: HashMap::new(),
            down: Default::default(),
            takedown: Vec::new(),
            to_launch: Vec::new(),
            terminating: Default::default(),
            stopped: {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (tx, Some(rx))
            },
            platform_id: String::new(),
            store_alarm: None,
            id_clashes: Default::default(),
            owners: HashMap::new(),
            unreadable_topology: Vec::new(),
            established: None,
            frozen: Default::default(),
            reported: Default::default(),
            places: plan::Places::new(config_grace),
            revisions: Default::default(),
            volume_sweep: Default::default(),
        }
    }

    /// Starts from what `ownership::establish` read (with this controller's drivers and
    /// store) rather than establishing ownership again: one read of the topology, one
    /// listing of the drivers.
    pub fn with_established(mut self, established: ownership::Established) -> Self {
        self.established = Some(established);
        self
    }

    /// How long reconciles take; shared with the running controller.
    pub fn stats(&self) -> Arc<ReconcileStats> {
        self.stats.clone()
    }

    /// Runs until the process ends: reacts to agents' events, reconciles on a timer.
    pub async fn run(mut self) -> Result<(), ControllerError> {
        // Never reconcile a store that does not know the members running.
        let established = match self.established.take() {
            Some(established) => established,
            None => {
                let drivers: Vec<Arc<dyn Driver>> = self.drivers.values().cloned().collect();
                ownership::establish(&self.store, &drivers, self.config.strangers, self.config.terminate_grace).await?
            }
        };
        self.platform_id = established.platform_id;
        info!(platform_id = %self.platform_id, "cloud controller acts for this platform");
        (self.topology, self.unreadable_topology) = (established.topology, established.unreadable);
        if self.config.strangers == Strangers::Adopt {
            let recorded: HashSet<String> = self.topology.members().map(|m| m.member_id.clone()).collect();
            self.adopting = ownership::to_adopt(&self.platform_id, &recorded, &established.listed);
            info!(members = self.adopting.len(), "members to adopt (--adopt-members)");
        }
        // Late joiners get the adopted topology even if nothing changes for a while.
        self.snapshot_stale = true;
        let subscribe = |filter: &'static str| {
            let bus = self.bus.clone();
            async move { bus.subscribe(filter).await.map_err(|source| ControllerError::Subscribe { filter, source }) }
        };
        let mut status = subscribe("instance/status/#").await?;
        let mut apps = subscribe("application/#").await?;
        let mut faults = subscribe(MemberFaultEvent::FILTER).await?;
        let mut stopped = self.stopped.1.take().ok_or(ControllerError::AlreadyRan)?;
        info!(members = self.topology.members().count(), "cloud controller started; adopting the stored topology");
        let mut last_flush = Instant::now();
        let mut tick = tokio::time::interval(self.config.reconcile_interval);
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut reconcile_wanted, mut next_reconcile) = (false, Instant::now());
        loop {
            tokio::select! {
                Some(event) = status.recv() => self.on_instance_event(event).await,
                Some(_) = apps.recv() => reconcile_wanted = true,
                Some(AnyEvent::MemberFaultEvent(fault)) = faults.recv() => {
                    // A member that stopped reporting is replaced, like one whose process died.
                    let reason = format!("faulty: {}", fault.reason);
                    warn!(member_id = %fault.member.member_id, %reason, "replacing a faulty member");
                    let status = self.member_mut(&fault.member).map(|m| m.status);
                    if let (Some(status), false) = (status, self.terminating.contains(&fault.member.member_id)) {
                        let kind = if status < MemberStatus::Active { Failure::Start } else { Failure::AfterActivation };
                        let error = format!("member {} {reason}", fault.member.member_id);
                        self.member_failed(&fault.member.cluster_id, &fault.member.member_id, error, kind);
                    }
                    self.terminate(&fault.member.cluster_id, &fault.member.member_id, &reason).await;
                }
                Some(done) = stopped.recv() => {
                    self.on_stopped(done).await;
                    // Its cluster may now be empty (undeployed) or short of a member.
                    reconcile_wanted = true;
                }
                _ = tick.tick() => reconcile_wanted = true,
                _ = flush_tick.tick() => {}
            }
            // A reconcile of a large topology takes a while; agents' events are handled
            // for at least twice as long before the next, so that they never starve.
            if reconcile_wanted && Instant::now() >= next_reconcile {
                reconcile_wanted = false;
                let took = self.reconcile().await;
                next_reconcile = Instant::now() + (took * 2).min(MAX_RECONCILE_PAUSE);
            }
            // Bursts of agent events are written and announced together: the
            // per-member events went out already; the snapshot can lag a little.
            if last_flush.elapsed() >= FLUSH_EVERY {
                self.flush().await;
                last_flush = Instant::now();
            }
        }
    }

    /// Saves the topology's changes, and publishes its complete snapshot when due.
    async fn flush(&mut self) {
        if self.save().await {
            self.publish_snapshot_if_due().await;
        }
    }

    /// Writes the services and clusters changed since the last save; false if the store failed.
    async fn save(&mut self) -> bool {
        if self.changes.is_empty() {
            return true;
        }
        let changes = std::mem::take(&mut self.changes);
        let started = Instant::now();
        if let Err(e) = self.store.save_topology_changes(&self.topology, &changes).await {
            error!(error = %e, clusters = changes.clusters.len(), "cannot save the topology");
            // Kept for the next flush, with what changed since.
            self.changes.merge(changes);
            return false;
        }
        debug!(clusters = changes.clusters.len(), took = ?started.elapsed(), "topology changes saved");
        self.snapshot_stale = true;
        true
    }

    /// The retained snapshot serves components that join late (the per-member events
    /// went out already), so a large topology's is published less often.
    async fn publish_snapshot_if_due(&mut self) {
        if !self.snapshot_stale {
            return;
        }
        let members = self.topology.members().count();
        if self.last_snapshot.is_some_and(|at| at.elapsed() < snapshot_interval(members)) {
            return;
        }
        let started = Instant::now();
        // Lent to the event, not cloned: the snapshot of 100k members is tens of MB.
        let event = CompleteTopologyEvent { topology: std::mem::take(&mut self.topology) };
        self.publish(&event).await;
        self.topology = event.topology;
        self.snapshot_stale = false;
        self.last_snapshot = Some(Instant::now());
        debug!(members, took = ?started.elapsed(), "topology snapshot published");
    }

    async fn publish<E: Event>(&self, event: &E) {
        if let Err(e) = self.bus.publish(event).await {
            warn!(topic = E::NAME, error = %e, "cannot publish");
        }
    }

    fn member_mut(&mut self, member: &MemberRef) -> Option<&mut Member> {
        self.topology.cluster_mut(&member.cluster_id)?.members.get_mut(&member.member_id)
    }

    // `advance` changes state: it reads better in the arm than as a match guard.
    #[allow(clippy::collapsible_match)]
    async fn on_instance_event(&mut self, event: AnyEvent) {
        match event {
            AnyEvent::InstanceStartedEvent(e) => {
                if self.advance(&e.member, MemberStatus::Starting) {
                    self.publish(&MemberStartedEvent { member: e.member }).await;
                }
            }
            AnyEvent::InstanceActivatedEvent(e) => {
                if self.advance(&e.member, MemberStatus::Active) {
                    let cluster_id = e.member.cluster_id.clone();
                    self.pending_since.remove(&e.member.member_id);
                    // Start failures end here; failures after activation keep their streak.
                    if self.history.activated(&e.member.cluster_id) {
                        if let Some(cluster) = self.topology.cluster_mut(&e.member.cluster_id) {
                            cluster.error = None;
                        }
                    }
                    let m = self.member_mut(&e.member).cloned();
                    if let Some(m) = m {
                        info!(member_id = %m.member_id, cluster_id = %m.cluster_id, "member activated");
                        self.publish(&MemberActivatedEvent {
                            member: e.member,
                            default_private_ip: m.default_private_ip,
                            ports: m.ports,
                        })
                        .await;
                    }
                    self.update_cluster_status(&cluster_id).await;
                }
            }
            AnyEvent::InstanceMaintenanceModeEvent(e) => {
                if self.advance(&e.member, MemberStatus::InMaintenance) {
                    self.publish(&MemberMaintenanceModeEvent { member: e.member }).await;
                }
            }
            AnyEvent::InstanceReadyToShutdownEvent(e) => {
                if self.advance(&e.member, MemberStatus::ReadyToShutdown) {
                    self.publish(&MemberReadyToShutdownEvent { member: e.member.clone() }).await;
                    self.terminate(&e.member.cluster_id, &e.member.member_id, "drained").await;
                }
            }
            AnyEvent::InstanceUnhealthyEvent(e) => self.on_unhealthy(e.member, e.reason).await,
            AnyEvent::InstanceStartFailedEvent(e) => {
                warn!(member_id = %e.member.member_id, error = %e.error, "member failed to start");
                self.member_failed(
                    &e.member.cluster_id,
                    &e.member.member_id,
                    format!("member {} failed to start: {}", e.member.member_id, e.error),
                    Failure::Start,
                );
                self.terminate(&e.member.cluster_id, &e.member.member_id, &format!("start failed: {}", e.error)).await;
            }
            _ => {}
        }
    }

    /// A member whose app stopped answering its health checks: out of rotation at once
    /// (`MemberSuspendedEvent`; load balancers stop routing to it), then terminated like a
    /// faulty member; `converge` starts its replacement, since a suspended member is not live.
    async fn on_unhealthy(&mut self, member: MemberRef, reason: String) {
        if self.terminating.contains(&member.member_id) || !self.advance(&member, MemberStatus::Suspended) {
            // Unknown, already suspended, or on its way out: the repeats of the report end here.
            return;
        }
        warn!(member_id = %member.member_id, cluster_id = %member.cluster_id, %reason, "member unhealthy: suspending and replacing it");
        // An app that never passes its checks must not be replaced in a tight loop.
        let error = format!("member {} unhealthy: {reason}", member.member_id);
        self.member_failed(&member.cluster_id, &member.member_id, error, Failure::AfterActivation);
        self.draining.remove(&member.member_id);
        self.publish(&MemberSuspendedEvent { member: member.clone(), reason: reason.clone() }).await;
        self.update_cluster_status(&member.cluster_id).await;
        self.terminate(&member.cluster_id, &member.member_id, &format!("unhealthy: {reason}")).await;
    }

    /// Moves a member forward to `to`; false when it is unknown or already there or past it.
    fn advance(&mut self, member: &MemberRef, to: MemberStatus) -> bool {
        let Some(m) = self.member_mut(member) else {
            return false;
        };
        if m.status >= to {
            return false;
        }
        m.status = to;
        self.changes.clusters.insert(member.cluster_id.clone());
        true
    }

    /// Counts a failure against the cluster (back-off) and keeps its message on it.
    fn record_failure(&mut self, cluster_id: &str, error: String, kind: Failure, slot: Option<Slot>) {
        let message = self.history.record(cluster_id, Instant::now(), &error, kind, slot);
        if let Some(cluster) = self.topology.cluster_mut(cluster_id) {
            if cluster.error.as_ref() != Some(&message) {
                cluster.error = Some(message);
                self.changes.clusters.insert(cluster_id.to_string());
            }
        }
    }

    /// A member (still in the topology) failed: the cluster backs off, and after a
    /// failed start its retry goes to another partition.
    fn member_failed(&mut self, cluster_id: &str, member_id: &str, error: String, kind: Failure) {
        let slot = self
            .topology
            .cluster(cluster_id)
            .and_then(|c| c.members.get(member_id))
            .map(|m| (m.network_partition_id.clone(), m.partition_id.clone()));
        if let (Failure::Start, Some((np, p))) = (kind, &slot) {
            info!(cluster_id, network_partition_id = %np, partition_id = %p, "next members go to another partition if one has room");
        }
        self.record_failure(cluster_id, error, kind, slot);
    }

    /// Streaks of failures that ended take their message off their cluster.
    fn expire_failures(&mut self) {
        for (cluster_id, message) in self.history.expire(Instant::now()) {
            if let Some(cluster) = self.topology.cluster_mut(&cluster_id) {
                if cluster.error.as_ref() == Some(&message) {
                    cluster.error = None;
                    self.changes.clusters.insert(cluster_id);
                }
            }
        }
    }

    /// Active when at least its minimum of members is active; Inactive otherwise.
    async fn update_cluster_status(&mut self, cluster_id: &str) {
        let min = self.cluster_min.get(cluster_id).copied().unwrap_or(1);
        let Some(cluster) = self.topology.cluster_mut(cluster_id) else { return };
        if matches!(cluster.status, ClusterStatus::Terminating | ClusterStatus::Terminated) {
            return;
        }
        let active = cluster.members.values().filter(|m| m.status == MemberStatus::Active).count() as u32;
        let next = if active >= min.max(1) { ClusterStatus::Active } else { ClusterStatus::Inactive };
        // Down: it served, and now no member does.
        let went_down =
            active == 0 && cluster.status != ClusterStatus::Created && self.down.insert(cluster_id.to_string());
        if next == ClusterStatus::Active {
            self.down.remove(cluster_id);
        }
        if went_down {
            self.apply_termination_behaviour(cluster_id);
        }
        let Some(cluster) = self.topology.cluster_mut(cluster_id) else { return };
        if next == cluster.status || (cluster.status == ClusterStatus::Created && next == ClusterStatus::Inactive) {
            return;
        }
        cluster.status = next;
        self.changes.clusters.insert(cluster_id.to_string());
        let (app_id, service_name, cluster_id) =
            (cluster.app_id.clone(), cluster.service_name.clone(), cluster.cluster_id.clone());
        info!(%cluster_id, status = ?next, "cluster status changed");
        match next {
            ClusterStatus::Active => {
                self.publish(&ClusterStatusClusterActivatedEvent { app_id, service_name, cluster_id }).await
            }
            _ => self.publish(&ClusterStatusClusterInactivateEvent { app_id, service_name, cluster_id }).await,
        }
    }

    /// A cluster went down (no active member left): take down the clusters its
    /// application's termination behaviour names. They start again, in startup
    /// order, once what they depend on is active again.
    fn apply_termination_behaviour(&mut self, failed: &str) {
        let Some(deployment) = self.deployments.iter().find(|d| d.clusters.iter().any(|c| c.cluster_id == failed))
        else {
            return;
        };
        if deployment.status != DeploymentStatus::Deployed {
            return;
        }
        let victims = deployment.clusters_to_terminate(failed);
        if victims.is_empty() {
            return;
        }
        warn!(cluster_id = failed, behaviour = ?deployment.termination_behaviour, ?victims, "cluster down: applying the termination behaviour");
        self.takedown.extend(victims.into_iter().map(|v| (v, failed.to_string())));
    }

    /// Takes down the clusters a termination behaviour named.
    async fn take_down(&mut self) {
        for (cluster_id, failed) in std::mem::take(&mut self.takedown) {
            let members: Vec<Member> =
                self.topology.cluster(&cluster_id).map(|c| c.members.values().cloned().collect()).unwrap_or_default();
            for m in members {
                if m.status == MemberStatus::Active {
                    self.drain(&m.member_id).await;
                } else if m.status < MemberStatus::Active {
                    self.terminate(&cluster_id, &m.member_id, &format!("{failed} went down")).await;
                }
            }
        }
    }

    /// Has a member's driver terminate it, in a task; the member leaves the topology
    /// when the task reports ([`Self::on_stopped`]).
    async fn terminate(&mut self, cluster_id: &str, member_id: &str, reason: &str) {
        if self.terminating.contains(member_id) {
            return;
        }
        if self.frozen.contains(cluster_id) {
            return warn!(
                cluster_id,
                member_id,
                reason,
                "not terminating a member of a frozen cluster (a stored document about it cannot be read)"
            );
        }
        let Some(member) = self.topology.cluster(cluster_id).and_then(|c| c.members.get(member_id)).cloned() else {
            return;
        };
        let Some(driver) = self.driver_of(&member) else {
            return self.forget(&member, reason).await;
        };
        self.terminating.insert(member_id.to_string());
        let (report, grace) = (self.stopped.0.clone(), self.config.terminate_grace);
        let (cluster_id, member_id, reason) = (cluster_id.to_string(), member_id.to_string(), reason.to_string());
        tokio::spawn(async move {
            let result = driver.terminate(&member_id, grace).await;
            let _ = report.send(Stopped { cluster_id, member_id, reason, result });
        });
    }

    async fn on_stopped(&mut self, done: Stopped) {
        self.terminating.remove(&done.member_id);
        if let Err(e) = done.result {
            // Kept in the topology: a later reconcile tries again.
            return error!(member_id = %done.member_id, error = %e, "cannot terminate member");
        }
        let member = self.topology.cluster(&done.cluster_id).and_then(|c| c.members.get(&done.member_id)).cloned();
        if let Some(member) = member {
            self.forget(&member, &done.reason).await;
        }
    }

    /// Removes a member that no longer runs, and says so.
    async fn forget(&mut self, member: &Member, reason: &str) {
        if let Some(cluster) = self.topology.cluster_mut(&member.cluster_id) {
            cluster.members.remove(&member.member_id);
        }
        self.draining.remove(&member.member_id);
        self.pending_since.remove(&member.member_id);
        self.changes.clusters.insert(member.cluster_id.clone());
        info!(member_id = %member.member_id, cluster_id = %member.cluster_id, reason, "member terminated");
        self.publish(&MemberTerminatedEvent { member: MemberRef::from(member), reason: reason.to_string() }).await;
        self.update_cluster_status(&member.cluster_id).await;
    }

    fn driver_of(&self, member: &Member) -> Option<Arc<dyn Driver>> {
        let provider = stratos_model::property(&member.properties, "provider")?;
        self.drivers.get(provider).cloned()
    }

    /// Compares desired with actual state and acts on every difference.
    pub async fn reconcile(&mut self) -> Duration {
        let mut phases = Phases::start();
        let launched = self.reconcile_once(&mut phases).await;
        let took = phases.elapsed();
        self.stats.record(took);
        self.record_metrics(took);
        if took > Duration::from_secs(1) {
            info!(?took, members = self.topology.members().count(), launched, phases = %phases, "slow reconcile");
        } else {
            debug!(?took, "reconciled");
        }
        took
    }

    /// The topology's members by status, the desired sizes and the reconcile's duration,
    /// into the metrics (`crate::metrics`).
    fn record_metrics(&self, took: Duration) {
        let Some(metrics) = &self.config.metrics else { return };
        metrics.reconciled(took.as_secs_f64());
        let scale_of = |tenant: i64, cluster: &str| self.tenant_inputs.get(&tenant)?.scales.get(cluster);
        let desired = crate::metrics::desired_sizes(&self.deployments, scale_of);
        metrics.set_clusters(&crate::metrics::member_counts(&self.topology), &desired);
    }

    /// Returns how many members it started.
    async fn reconcile_once(&mut self, phases: &mut Phases) -> usize {
        if !self.store_is_ours().await {
            return 0;
        }
        let (deployments, mut unreadable) = match self.store.list_records_all_tenants::<Deployment>().await {
            Ok(listed) => (listed.records, listed.unreadable),
            Err(e) => {
                error!(error = %e, "cannot read deployments; skipping this reconcile");
                return 0;
            }
        };
        // Definitions and sizes may have changed since the last reconcile.
        self.tenant_inputs.clear();
        let tenants: std::collections::BTreeSet<i64> = deployments.iter().map(|d| d.tenant_id).collect();
        for tenant in tenants {
            if let Some(inputs) = self.tenant_inputs(tenant).await {
                unreadable.extend(inputs.unreadable.iter().cloned());
            }
        }
        unreadable.extend(self.unreadable_topology.iter().cloned());
        self.name_places();
        self.frozen = crate::frozen::frozen_clusters(&self.topology, &unreadable);
        self.report_unreadable(&unreadable);
        self.owners = cluster_owners::cluster_owners(&deployments, &self.topology);
        self.deployments = Arc::new(deployments);
        let deployments = self.deployments.clone();
        phases.done("read deployments");
        let instances = self.list_instances().await;
        phases.done("list instances");
        if let Some(instances) = &instances {
            self.check_members(instances, &deployments).await;
        }
        self.take_down().await;
        self.expire_pending_and_draining().await;
        self.expire_failures();
        phases.done("check members");
        for deployment in deployments.iter() {
            match deployment.status {
                DeploymentStatus::Deployed => self.converge(deployment).await,
                DeploymentStatus::Undeploying => self.undeploy(deployment).await,
            }
        }
        self.remove_clusters_without_deployment(&deployments).await;
        if self.frozen.is_empty() {
            let scales: HashMap<String, u32> = self
                .tenant_inputs
                .values()
                .flat_map(|i| i.scales.values().map(|s| (s.cluster_id.clone(), s.desired)))
                .collect();
            let (drivers, topology) = (self.drivers.values().cloned().collect(), &self.topology);
            self.volume_sweep.start_if_due(drivers, &self.platform_id, || {
                crate::volume::cluster_slots(&deployments, &scales, topology)
            });
        }
        phases.done("converge");
        let launched = self.to_launch.len();
        self.launch_recorded().await;
        phases.done("launch");
        launched
    }

    /// Logs each unreadable document once (and once more if it comes back after a fix).
    fn report_unreadable(&mut self, unreadable: &[Unreadable]) {
        let now: std::collections::HashSet<String> = unreadable.iter().map(|u| u.to_string()).collect();
        for bad in unreadable.iter().filter(|u| !self.reported.contains(&u.to_string())) {
            error!(error = %bad, "leaving the clusters this document is about as they are (no member created, terminated or reaped) until it is fixed or removed");
        }
        self.reported = now;
    }

    /// Whether the store still is this platform's: emptied, replaced or failing, it
    /// must not be taken for the truth (every member would look like an orphan).
    async fn store_is_ours(&mut self) -> bool {
        let alarm = match self.store.platform_id().await {
            Ok(Some(id)) if id == self.platform_id => None,
            Ok(Some(id)) => Some(format!(
                "the store now belongs to platform {id}, not {}: it was replaced under the running platform",
                self.platform_id
            )),
            Ok(None) => Some(format!(
                "the store no longer has platform id {}: it was emptied or replaced under the running platform",
                self.platform_id
            )),
            Err(e) => Some(format!("cannot read the platform id from the store: {e}")),
        };
        match (&alarm, &self.store_alarm) {
            (Some(now), before) if before.as_ref() != Some(now) => {
                error!(reason = %now, "not reconciling: members are left as they are until the store is this platform's again");
            }
            (None, Some(_)) => info!("the store is this platform's again; reconciling"),
            _ => {}
        }
        let ok = alarm.is_none();
        self.store_alarm = alarm;
        ok
    }

    /// Starts the members this reconcile recorded, after one write of them all: a
    /// crash in between leaves members to replace, never an unknown process. After a
    /// cluster's first failed start its other new members are dropped (it backs off).
    async fn launch_recorded(&mut self) {
        if self.to_launch.is_empty() {
            return;
        }
        self.flush().await;
        let mut failed_clusters = std::collections::HashSet::new();
        let mut configs = crate::app_env::ConfigCache::default();
        for (member, mut member_spec, driver) in std::mem::take(&mut self.to_launch) {
            if failed_clusters.contains(&member.cluster_id) {
                self.forget(&member, "not started: an earlier start failed").await;
                continue;
            }
            // The application's configuration, read now that the member is recorded.
            let alias = self.topology.cluster(&member.cluster_id).map(|c| c.alias.clone()).unwrap_or_default();
            let (store, ring) = (self.store.clone(), self.config.secrets.clone());
            let (tenant, app) = (member_spec.tenant_id, member_spec.app_id.clone());
            match crate::app_env::env_for(&store, ring.as_deref(), &mut configs, driver.name(), tenant, &app, &alias)
                .await
            {
                Ok(env) => member_spec.env.extend(env),
                Err(e) => {
                    let reason = format!("not started: {e}");
                    self.member_failed(&member.cluster_id, &member.member_id, reason.clone(), Failure::Start);
                    self.forget(&member, &reason).await;
                    failed_clusters.insert(member.cluster_id.clone());
                    continue;
                }
            }
            self.publish(&MemberCreatedEvent { member: member.clone() }).await;
            let cluster_id = member.cluster_id.clone();
            if !self.launch(member, member_spec, driver).await {
                failed_clusters.insert(cluster_id);
            }
        }
    }

    async fn list_instances(&mut self) -> Option<HashMap<String, Listed>> {
        let mut all = HashMap::new();
        let drivers: Vec<Arc<dyn Driver>> = self.drivers.values().cloned().collect();
        for driver in drivers {
            match driver.list_reachable().await {
                Ok(listing) => {
                    for change in self.places.observe(driver.name(), &listing.unreachable, Instant::now()) {
                        self.report_place(change);
                    }
                    all.extend(
                        listing
                            .instances
                            .into_iter()
                            .map(|instance| (instance.member_id.clone(), Listed { instance, provider: driver.name() })),
                    );
                }
                Err(e) => {
                    // Without a full listing nothing may be judged gone or orphaned.
                    error!(driver = driver.name(), error = %e, "cannot list members");
                    return None;
                }
            }
        }
        Some(all)
    }

    fn report_place(&self, change: plan::places::Change) {
        match change {
            plan::places::Change::Unreachable { provider, place, reason } => warn!(
                driver = %provider,
                %place,
                %reason,
                grace_s = self.config.unreachable_grace.as_secs(),
                "a place of the driver does not answer: its members are kept for the grace period, then replaced elsewhere; no new member goes there"
            ),
            plan::places::Change::Back { provider, place, after } => {
                info!(driver = %provider, %place, after_s = after.as_secs(), "the place answers again")
            }
        }
    }

    /// Tells each driver the places the deployed tenants' partitions name, so that it
    /// lists them (or reports them unreachable) before any member starts there.
    fn name_places(&self) {
        for inputs in self.tenant_inputs.values() {
            for (np_id, np) in &inputs.defs.network_partitions {
                for partition in &np.partitions {
                    let Some(driver) = np.provider_of(partition).and_then(|p| self.drivers.get(p)) else { continue };
                    driver.place_of(&placement_properties(&inputs.defs, np_id, &partition.id));
                }
            }
        }
    }

    /// The place a member of `tenant` in (`np_id`, `partition_id`) runs in, by its driver.
    fn place_of(&self, driver: &Arc<dyn Driver>, tenant: i64, np_id: &str, partition_id: &str) -> Option<String> {
        let defs = &self.tenant_inputs.get(&tenant)?.defs;
        driver.place_of(&placement_properties(defs, np_id, partition_id))
    }

    /// Members on a place out of reach, and what becomes of them now (`plan::places`).
    fn unseen_members(&self) -> HashMap<String, plan::Unseen> {
        let mut out = HashMap::new();
        if self.places.all_reachable() {
            return out;
        }
        let now = Instant::now();
        let mut places: HashMap<(i64, &str, &str, &str), Option<String>> = HashMap::new();
        for service in self.topology.services.values() {
            for cluster in service.clusters.values() {
                for m in cluster.members.values() {
                    let Some(driver) = self.driver_of(m) else { continue };
                    let place = places
                        .entry((cluster.tenant_id, driver.name(), &m.network_partition_id, &m.partition_id))
                        .or_insert_with(|| {
                            self.place_of(&driver, cluster.tenant_id, &m.network_partition_id, &m.partition_id)
                        });
                    let Some(place) = place else { continue };
                    if let Some(verdict) = self.places.verdict(driver.name(), place, now) {
                        out.insert(m.member_id.clone(), verdict);
                    }
                }
            }
        }
        out
    }

    /// A tenant's partitions on places out of reach: no new member goes there.
    fn unreachable_slots(&self, tenant: i64, defs: &stratos_model::Definitions) -> HashSet<Slot> {
        let mut out = HashSet::new();
        if self.places.all_reachable() {
            return out;
        }
        for (np_id, np) in &defs.network_partitions {
            for partition in &np.partitions {
                let Some(driver) = np.provider_of(partition).and_then(|p| self.drivers.get(p)) else { continue };
                let out_of_reach = self
                    .place_of(driver, tenant, np_id, &partition.id)
                    .is_some_and(|place| self.places.is_out(driver.name(), &place));
                if out_of_reach {
                    out.insert((np_id.clone(), partition.id.clone()));
                }
            }
        }
        out
    }

    /// Judges the members against the drivers' listing (`plan::judge`) and acts: gone
    /// members are removed (and replaced by `converge`), orphans reaped, members the
    /// operator asked to adopt recorded.
    async fn check_members(&mut self, instances: &HashMap<String, Listed>, deployments: &[Deployment]) {
        // Where an adopted member may go: a cluster a deployed application converges.
        let deployed: HashMap<String, String> = deployments
            .iter()
            .filter(|d| d.status == DeploymentStatus::Deployed)
            .flat_map(|d| d.clusters.iter().map(move |c| (d, c)))
            .filter(|(d, c)| {
                self.owners.get(&c.cluster_id).is_none_or(|(t, a)| *t == d.tenant_id && *a == d.application_id)
            })
            .map(|(_, c)| (c.cluster_id.clone(), c.cartridge_type.clone()))
            .collect();
        let draining = |id: &str| self.draining.contains_key(id);
        let unseen = self.unseen_members();
        let judgement = plan::judge(&plan::MembersInput {
            topology: &self.topology,
            instances,
            platform_id: &self.platform_id,
            // `reconcile_once` runs only while the store is this platform's.
            store_trusted: true,
            terminating: &self.terminating,
            draining: &draining,
            frozen: &self.frozen,
            adopting: &self.adopting,
            deployed: &deployed,
            unseen: &unseen,
        });
        for gone in judgement.gone {
            let Some(m) = self.topology.cluster(&gone.cluster_id).and_then(|c| c.members.get(&gone.member_id)).cloned()
            else {
                continue;
            };
            if gone.foreign {
                // Another platform's member: not ours to stop.
                warn!(member_id = %m.member_id, reason = %gone.reason, "the store names a member of another platform; forgetting it, leaving it running");
                self.forget(&m, &gone.reason).await;
                continue;
            }
            if let Some(kind) = gone.failure {
                self.member_failed(&m.cluster_id, &m.member_id, gone.reason.clone(), kind);
            }
            // Let the driver clean up what is left (the record, a stopped container).
            if let Some(driver) = self.driver_of(&m) {
                let _ = driver.terminate(&m.member_id, Duration::from_secs(1)).await;
            }
            warn!(member_id = %m.member_id, reason = %gone.reason, "member is gone");
            self.forget(&m, &gone.reason).await;
        }
        for (cluster_id, member_id) in judgement.orphans {
            self.reap(cluster_id, member_id, instances).await;
        }
        for member in judgement.adopt {
            self.adopt(member, deployments).await;
        }
        for (cluster_id, member_id) in judgement.not_adoptable {
            if self.not_adoptable.insert(member_id.clone()) {
                warn!(%member_id, %cluster_id, "not adopting a member: no deployed application has its cluster; it is left running");
            }
        }
    }

    /// Terminates an instance of this platform that no member names, in a task of its
    /// own like a member's; there is nothing to forget when it reports.
    async fn reap(&mut self, cluster_id: String, member_id: String, instances: &HashMap<String, Listed>) {
        warn!(%member_id, "terminating an orphan member no topology names");
        let owners: Vec<Arc<dyn Driver>> =
            instances.get(&member_id).and_then(|l| self.drivers.get(l.provider).cloned()).into_iter().collect();
        self.terminating.insert(member_id.clone());
        let (report, grace) = (self.stopped.0.clone(), self.config.terminate_grace);
        tokio::spawn(async move {
            let mut result = Ok(());
            for driver in owners {
                result = result.and(driver.terminate(&member_id, grace).await);
            }
            let reason = "orphan".to_string();
            let _ = report.send(Stopped { cluster_id, member_id, reason, result });
        });
    }

    /// Records a running member the operator asked to adopt, in its deployed cluster.
    async fn adopt(&mut self, mut member: Member, deployments: &[Deployment]) {
        let found = deployments.iter().find_map(|d| {
            d.clusters.iter().find(|c| c.cluster_id == member.cluster_id).map(|c| (d.clone(), c.clone()))
        });
        let Some((deployment, spec)) = found else { return };
        // Taken as running its cluster's revision (the driver does not say).
        if let Some(n) = spec.revision {
            member.properties.push(Property { name: stratos_model::REVISION_PROPERTY.into(), value: n.to_string() });
        }
        let Some(inputs) = self.tenant_inputs(deployment.tenant_id).await else { return };
        self.ensure_cluster(&deployment, &spec, &inputs.defs).await;
        let Some(cluster) = self.topology.cluster_mut(&member.cluster_id) else { return };
        cluster.members.insert(member.member_id.clone(), member.clone());
        self.changes.clusters.insert(member.cluster_id.clone());
        self.adopting.remove(&member.member_id);
        info!(member_id = %member.member_id, cluster_id = %member.cluster_id, "adopted a running member the store did not record (--adopt-members)");
        let member_ref = MemberRef::from(&member);
        self.publish(&MemberCreatedEvent { member: member.clone() }).await;
        self.publish(&MemberActivatedEvent {
            member: member_ref,
            default_private_ip: member.default_private_ip.clone(),
            ports: member.ports.clone(),
        })
        .await;
        self.update_cluster_status(&member.cluster_id).await;
    }

    async fn expire_pending_and_draining(&mut self) {
        let now = Instant::now();
        let overdue = plan::overdue(
            self.topology.members(),
            &plan::TimeoutInput {
                now,
                activation_timeout: self.config.activation_timeout,
                pending_since: &self.pending_since,
                draining: &self.draining,
                terminating: &self.terminating,
                frozen: &self.frozen,
            },
        );
        self.pending_since.extend(overdue.first_seen.into_iter().map(|id| (id, now)));
        for (cluster_id, member_id) in overdue.late {
            let reason = format!(
                "member {member_id} did not activate within {}s (its ports never answered)",
                self.config.activation_timeout.as_secs()
            );
            self.member_failed(&cluster_id, &member_id, reason.clone(), Failure::Start);
            self.terminate(&cluster_id, &member_id, &reason).await;
        }
        for (cluster_id, member_id) in overdue.drained {
            self.terminate(&cluster_id, &member_id, "drain timed out").await;
        }
    }

    /// Asks a member's agent to drain; it is terminated once it is ready (or the drain times out).
    async fn drain(&mut self, member_id: &str) {
        if self.draining.contains_key(member_id) {
            return;
        }
        self.draining.insert(member_id.to_string(), Instant::now() + self.config.drain_timeout);
        info!(member_id, "draining member");
        self.publish(&InstanceCleanupMemberEvent { member_id: member_id.to_string() }).await;
    }

    /// Brings a deployed application's clusters to their desired size: each cluster's
    /// plan (`plan::plan_cluster`), executed.
    async fn converge(&mut self, deployment: &Deployment) {
        let Some(inputs) = self.tenant_inputs(deployment.tenant_id).await else { return };
        let defs = &inputs.defs;
        let app_policy = defs.application_policies.get(&deployment.application_policy_id);
        let drivers: HashSet<&str> = self.drivers.keys().copied().collect();
        let unreachable = self.unreachable_slots(deployment.tenant_id, defs);
        for spec in &deployment.clusters {
            if !self.owns(deployment, &spec.cluster_id) || self.frozen.contains(&spec.cluster_id) {
                continue;
            }
            self.cluster_min.insert(spec.cluster_id.clone(), spec.min);
            if app_policy.is_some() {
                self.ensure_cluster(deployment, spec, defs).await;
            }
            if !plan::dependencies_active(deployment, spec, &self.topology) {
                continue;
            }
            let latest = inputs
                .rollouts
                .get(&deployment.application_id)
                .filter(|(r, _)| r.deployed_at == deployment.deployed_at);
            let revision =
                stratos_model::effective_revision(spec, deployment.deployed_at, latest.map(|(r, o)| (r, o.as_ref())));
            let pinned_revision = match revision {
                Some(n) => Some(self.revisions.get(&self.store, deployment.tenant_id, &spec.cluster_id, n).await),
                None => None,
            };
            let missing_cartridge = format!("cartridge {:?} no longer exists", spec.cartridge_type);
            let cartridge = match &pinned_revision {
                Some(Ok(r)) => Ok(&r.cartridge),
                Some(Err(e)) => Err(e.as_str()),
                None => defs.cartridges.get(&spec.cartridge_type).ok_or(missing_cartridge.as_str()),
            };
            let pace = match latest {
                Some((r, None)) if r.cluster(&spec.cluster_id).is_some() => {
                    plan::restart::Pace { max_surge: r.max_surge, max_unavailable: r.max_unavailable }
                }
                _ => plan::restart::Pace::ONE_AT_A_TIME,
            };
            let leaving = |id: &str| self.draining.contains_key(id) || self.terminating.contains(id);
            let ctx = plan::ClusterContext {
                defs,
                app_policy_id: &deployment.application_policy_id,
                app_policy,
                drivers: &drivers,
                history: &self.history,
                now: Instant::now(),
                frozen: &self.frozen,
                unreachable: &unreachable,
                restarts: &inputs.restarts,
                pinned: plan::rollout::Pinned { revision, cartridge, pace },
            };
            let planned = plan::plan_cluster(
                &ctx,
                spec,
                inputs.scales.get(&spec.cluster_id),
                self.topology.cluster(&spec.cluster_id),
                &leaving,
            );
            let pinned = pinned_revision.and_then(Result::ok);
            self.execute(deployment, spec, defs, pinned.as_deref(), planned).await;
        }
        if let Some((rollout, None)) =
            inputs.rollouts.get(&deployment.application_id).filter(|(r, _)| r.deployed_at == deployment.deployed_at)
        {
            self.judge_rollout(deployment, rollout).await;
        }
    }

    /// Ends a progressing rollout that is complete or failed (`plan::rollout::judge`):
    /// its outcome is recorded; a failed one's clusters go back to the revisions they came
    /// from at the next reconcile (`model::effective_revision`).
    async fn judge_rollout(&mut self, deployment: &Deployment, rollout: &stratos_model::Rollout) {
        let now = Instant::now();
        let now_ms = now_millis();
        let started = now.checked_sub(Duration::from_millis(now_ms.saturating_sub(rollout.started_at)));
        let scales = self.tenant_inputs.get(&deployment.tenant_id).map(|i| i.scales.clone()).unwrap_or_default();
        let leaving = |id: &str| self.draining.contains_key(id) || self.terminating.contains(id);
        let mut progress = Vec::new();
        for c in &rollout.clusters {
            let Some(spec) = deployment.clusters.iter().find(|s| s.cluster_id == c.cluster_id) else { continue };
            if self.frozen.contains(&spec.cluster_id) {
                return;
            }
            let failures = self
                .history
                .get(&spec.cluster_id)
                .filter(|f| started.is_none_or(|s| f.last_at >= s))
                .map(|f| (f.count, f.message.as_str()));
            progress.push(plan::rollout::Progress {
                cluster_id: &c.cluster_id,
                to: c.to,
                live: self
                    .topology
                    .cluster(&c.cluster_id)
                    .map(|cl| cl.members.values().filter(|m| plan::scale::is_live(m, &leaving)).collect())
                    .unwrap_or_default(),
                desired: plan::scale::desired(spec, scales.get(&spec.cluster_id)),
                failures,
            });
        }
        let (end, reason) = match plan::rollout::judge(rollout, &progress, now_ms) {
            plan::rollout::Verdict::Progressing => return,
            plan::rollout::Verdict::Complete => (stratos_model::RolloutEnd::Complete, None),
            plan::rollout::Verdict::Failed(why) => (stratos_model::RolloutEnd::Failed, Some(why)),
        };
        let outcome = stratos_model::RolloutOutcome {
            application_id: rollout.application_id.clone(),
            number: rollout.number,
            end,
            reason,
            finished_at: now_ms,
        };
        match self.store.put_record(deployment.tenant_id, &outcome).await {
            Ok(()) if end == stratos_model::RolloutEnd::Complete => {
                info!(application_id = %rollout.application_id, rollout = rollout.number, "rollout complete")
            }
            Ok(()) => warn!(application_id = %rollout.application_id, rollout = rollout.number,
                reason = outcome.reason.as_deref().unwrap_or_default(), "rollout failed; going back to the revisions it came from"),
            Err(e) => error!(error = %e, application_id = %rollout.application_id, "cannot record a rollout's outcome"),
        }
    }

    /// Carries out a cluster's plan: new members recorded (started once saved), drains
    /// asked for, its error kept.
    async fn execute(
        &mut self,
        deployment: &Deployment,
        spec: &ClusterSpec,
        defs: &stratos_model::Definitions,
        pinned: Option<&stratos_model::Revision>,
        planned: plan::ClusterPlan,
    ) {
        for creation in planned.create {
            if let Some(member) = self.create_member(deployment, spec, &creation, defs, pinned) {
                self.to_launch.push(member);
            }
        }
        for id in planned.drain {
            self.drain(&id).await;
        }
        if let Some(failure) = planned.failure {
            self.record_failure(&spec.cluster_id, failure, Failure::Configuration, None);
        }
        if let Some(note) = planned.note {
            if let Some(c) = self.topology.cluster_mut(&spec.cluster_id) {
                if c.error.as_deref() != Some(note.as_str()) {
                    c.error = Some(note);
                    self.changes.clusters.insert(spec.cluster_id.clone());
                }
            }
        }
    }

    /// Whether `deployment` owns cluster `cluster_id`; a clash is logged once.
    fn owns(&mut self, deployment: &Deployment, cluster_id: &str) -> bool {
        let Some((tenant, app)) = self.owners.get(cluster_id) else { return true };
        if *tenant == deployment.tenant_id && *app == deployment.application_id {
            return true;
        }
        if self.id_clashes.insert(format!("{}/{}/{cluster_id}", deployment.tenant_id, deployment.application_id)) {
            error!(
                cluster_id,
                application_id = %deployment.application_id,
                tenant_id = deployment.tenant_id,
                owner = %app,
                owner_tenant_id = tenant,
                "two deployments name one cluster id; only the first is converged (undeploy the other)"
            );
        }
        false
    }

    /// A tenant's definitions and cluster sizes, read on first use in this reconcile.
    async fn tenant_inputs(&mut self, tenant: i64) -> Option<Arc<TenantInputs>> {
        if let Some(inputs) = self.tenant_inputs.get(&tenant) {
            return Some(inputs.clone());
        }
        let defs = match self.store.load_definitions(tenant).await {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "cannot read definitions");
                return None;
            }
        };
        let (scales, unreadable) = match self.store.list_records::<ClusterScale>(tenant).await {
            Ok(listed) => (listed.records.into_iter().map(|s| (s.cluster_id.clone(), s)).collect(), listed.unreadable),
            Err(e) => {
                error!(error = %e, "cannot read cluster sizes");
                return None;
            }
        };
        let (restarts, unreadable): (_, Vec<Unreadable>) = match self.store.list_records::<ClusterRestart>(tenant).await
        {
            Ok(listed) => (
                listed.records.into_iter().map(|r| (r.cluster_id, r.requested_at)).collect(),
                unreadable.into_iter().chain(listed.unreadable).collect(),
            ),
            Err(e) => {
                error!(error = %e, "cannot read cluster restarts");
                return None;
            }
        };
        let (rollouts, unreadable) = match crate::revisions::latest_rollouts(&self.store, tenant).await {
            Ok((rollouts, bad)) => (rollouts, unreadable.into_iter().chain(bad).collect()),
            Err(e) => {
                error!(error = %e, "cannot read rollouts");
                return None;
            }
        };
        let inputs = Arc::new(TenantInputs { defs, scales, restarts, unreadable, rollouts });
        self.tenant_inputs.insert(tenant, inputs.clone());
        Some(inputs)
    }

    async fn ensure_cluster(&mut self, deployment: &Deployment, spec: &ClusterSpec, defs: &stratos_model::Definitions) {
        if self.topology.cluster(&spec.cluster_id).is_some() {
            return;
        }
        let multi = defs.cartridges.get(&spec.cartridge_type).is_some_and(|c| c.multi_tenant);
        let ports: Vec<Port> = defs
            .cartridges
            .get(&spec.cartridge_type)
            .map(|c| {
                c.port_mapping
                    .iter()
                    .map(|p| Port { protocol: p.protocol, value: p.port, proxy: p.proxy_port })
                    .collect()
            })
            .unwrap_or_default();
        if !self.topology.services.contains_key(&spec.cartridge_type) {
            let service_type = if multi { ServiceType::MultiTenant } else { ServiceType::SingleTenant };
            self.topology.services.insert(
                spec.cartridge_type.clone(),
                Service {
                    service_name: spec.cartridge_type.clone(),
                    service_type,
                    ports: ports.clone(),
                    clusters: BTreeMap::new(),
                },
            );
            self.changes.services.insert(spec.cartridge_type.clone());
            self.publish(&ServiceCreatedEvent { service_name: spec.cartridge_type.clone(), service_type, ports }).await;
        }
        let cluster = Cluster {
            cluster_id: spec.cluster_id.clone(),
            service_name: spec.cartridge_type.clone(),
            app_id: deployment.application_id.clone(),
            alias: spec.alias.clone(),
            tenant_id: deployment.tenant_id,
            host_names: spec.host_names.clone(),
            autoscale_policy_name: spec.autoscaling_policy.clone(),
            deployment_policy_name: spec.deployment_policy.clone(),
            status: ClusterStatus::Created,
            error: None,
            created_at: now_millis(),
            members: BTreeMap::new(),
        };
        if let Some(service) = self.topology.services.get_mut(&spec.cartridge_type) {
            service.clusters.insert(spec.cluster_id.clone(), cluster.clone());
        }
        self.changes.clusters.insert(spec.cluster_id.clone());
        info!(cluster_id = %spec.cluster_id, "cluster created");
        self.publish(&ClusterCreatedEvent { cluster }).await;
    }

    /// Records a member in the topology (not yet started).
    /// `None` only if the plan named what is not there (the planner checked it).
    fn create_member(
        &mut self,
        deployment: &Deployment,
        spec: &ClusterSpec,
        creation: &plan::Creation,
        defs: &stratos_model::Definitions,
        pinned: Option<&stratos_model::Revision>,
    ) -> Option<(Member, MemberSpec, Arc<dyn Driver>)> {
        let (np_id, partition_id) = &creation.slot;
        let provider = &creation.provider;
        let driver = self.drivers.get(provider.as_str()).cloned()?;
        // The pinned revision's cartridge (the live one for deployments made before revisions).
        let cartridge = match pinned {
            Some(r) => &r.cartridge,
            None => defs.cartridges.get(&spec.cartridge_type)?,
        };
        let artifact_repository = pinned.map_or(&spec.artifact_repository, |r| &r.artifact_repository);
        let mut properties = vec![Property { name: "provider".into(), value: provider.clone() }];
        if let Some(r) = pinned {
            properties.push(Property { name: stratos_model::REVISION_PROPERTY.into(), value: r.number.to_string() });
        }
        let iaas = cartridge.iaas(provider)?;
        let member_id = new_member_id(&spec.cluster_id);
        let slot = plan::slots::lowest_free(
            self.topology
                .cluster(&spec.cluster_id)
                .into_iter()
                .flat_map(|c| c.members.values())
                .filter_map(plan::slots::slot_of),
        );
        properties.push(Property { name: plan::slots::SLOT_PROPERTY.into(), value: slot.to_string() });
        let member = Member {
            service_name: spec.cartridge_type.clone(),
            cluster_id: spec.cluster_id.clone(),
            member_id: member_id.clone(),
            network_partition_id: np_id.clone(),
            partition_id: partition_id.clone(),
            status: MemberStatus::Created,
            default_private_ip: None,
            default_public_ip: None,
            ports: Vec::new(),
            init_time: now_millis(),
            properties,
        };
        if let Some(c) = self.topology.cluster_mut(&spec.cluster_id) {
            c.members.insert(member_id.clone(), member.clone());
        }
        self.changes.clusters.insert(spec.cluster_id.clone());
        let member_spec = MemberSpec {
            member_id: member_id.clone(),
            cluster_id: spec.cluster_id.clone(),
            service_name: spec.cartridge_type.clone(),
            app_id: deployment.application_id.clone(),
            tenant_id: deployment.tenant_id,
            network_partition_id: np_id.clone(),
            partition_id: partition_id.clone(),
            command: iaas.command.clone(),
            image: iaas.image_id.clone(),
            ports: cartridge
                .port_mapping
                .iter()
                .map(|p| PortSpec { protocol: p.protocol, port: p.port, proxy_port: p.proxy_port })
                .collect(),
            broker_url: self.config.broker_url.clone(),
            bus_credentials: self
                .config
                .member_credentials
                .as_ref()
                .map(|s| s.member_credentials(&spec.cluster_id, &member_id)),
            bus_ca_cert: self.config.bus_ca_cert.clone(),
            artifact_repository: artifact_repository.clone(),
            platform_id: self.platform_id.clone(),
            env: self.member_env(iaas, cartridge),
            limits: iaas.limits(&cartridge.property),
            volumes: iaas.volumes.clone(),
            placement: placement_properties(defs, np_id, partition_id),
            slot: Some(slot),
            persistent_volumes: cartridge.persistence.as_ref().map(|p| p.volume.clone()).unwrap_or_default(),
        };
        Some((member, member_spec, driver))
    }

    /// The environment of a member's agent and app: the cartridge's `env.*` properties, then
    /// what the platform decides (the health checks; local repositories only if allowed).
    fn member_env(
        &self,
        iaas: &stratos_model::IaasProvider,
        cartridge: &stratos_model::Cartridge,
    ) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = iaas
            .property
            .iter()
            .filter_map(|p| p.name.strip_prefix("env.").map(|k| (k.to_string(), p.value.clone())))
            .collect();
        let checks = serde_json::to_string(&cartridge.health_checks()).expect("health checks serialise");
        env.insert("STRATOS_HEALTH_CHECKS".into(), checks);
        env.remove("STRATOS_ALLOW_LOCAL_REPOS");
        if self.config.allow_local_repos {
            env.insert("STRATOS_ALLOW_LOCAL_REPOS".into(), "true".into());
        }
        env
    }

    /// Starts a recorded member through its driver.
    async fn launch(&mut self, member: Member, member_spec: MemberSpec, driver: Arc<dyn Driver>) -> bool {
        let member_id = member.member_id.clone();
        match driver.start(&member_spec).await {
            Ok(instance) => {
                let ports: Vec<Port> = instance
                    .ports
                    .iter()
                    .map(|p| Port { protocol: p.protocol, value: p.host_port, proxy: p.proxy_port })
                    .collect();
                let mut initialized = None;
                if let Some(m) =
                    self.topology.cluster_mut(&member.cluster_id).and_then(|c| c.members.get_mut(&member_id))
                {
                    m.default_private_ip = Some(instance.address.clone());
                    m.ports = ports.clone();
                    if m.status < MemberStatus::Initialized {
                        m.status = MemberStatus::Initialized;
                    }
                    initialized = Some(MemberRef::from(&*m));
                }
                self.changes.clusters.insert(member.cluster_id.clone());
                if let Some(member) = initialized {
                    self.publish(&MemberInitializedEvent { member, default_private_ip: Some(instance.address), ports })
                        .await;
                }
                true
            }
            Err(e) => {
                self.member_failed(&member.cluster_id, &member.member_id, e.to_string(), Failure::Start);
                self.forget(&member, &e.to_string()).await;
                false
            }
        }
    }

    /// Drains every member of an undeploying application; deletes the deployment once none is left.
    async fn undeploy(&mut self, deployment: &Deployment) {
        let mut remaining = 0;
        // A cluster id another deployment owns is not this one's to drain.
        let owned: Vec<ClusterSpec> =
            deployment.clusters.iter().filter(|s| self.owns(deployment, &s.cluster_id)).cloned().collect();
        // Nor is a frozen one, until the document about it is fixed: the undeploy waits.
        if owned.iter().any(|s| self.frozen.contains(&s.cluster_id)) {
            return;
        }
        for spec in &owned {
            let Some(cluster) = self.topology.cluster_mut(&spec.cluster_id) else { continue };
            if cluster.status != ClusterStatus::Terminating {
                cluster.status = ClusterStatus::Terminating;
                self.changes.clusters.insert(spec.cluster_id.clone());
            }
            let members: Vec<Member> = cluster.members.values().cloned().collect();
            remaining += members.len();
            for m in members {
                if m.status < MemberStatus::Active {
                    // Nothing to drain yet: stop it now.
                    self.terminate(&spec.cluster_id, &m.member_id, "application undeployed").await;
                } else if m.status == MemberStatus::Active {
                    self.drain(&m.member_id).await;
                }
            }
            if self.topology.cluster(&spec.cluster_id).is_some_and(|c| c.members.is_empty()) {
                self.remove_cluster(&spec.cluster_id).await;
            }
        }
        let left = owned.iter().any(|s| self.topology.cluster(&s.cluster_id).is_some());
        if remaining == 0 && !left {
            // The topology without the application is saved before the deployment goes.
            self.flush().await;
            if let Err(e) =
                self.store.delete_record::<Deployment>(deployment.tenant_id, &deployment.application_id).await
            {
                return error!(error = %e, "cannot delete the deployment");
            }
            info!(application_id = %deployment.application_id, "application undeployed");
            self.publish(&ApplicationUndeployedEvent {
                application_id: deployment.application_id.clone(),
                tenant_id: deployment.tenant_id,
            })
            .await;
        }
    }

    async fn remove_cluster(&mut self, cluster_id: &str) {
        for service in self.topology.services.values_mut() {
            if let Some(c) = service.clusters.remove(cluster_id) {
                self.changes.clusters.insert(cluster_id.to_string());
                self.history.forget(cluster_id);
                info!(cluster_id, "cluster removed");
                let event =
                    ClusterRemovedEvent { service_name: c.service_name.clone(), cluster_id: cluster_id.to_string() };
                self.publish(&ClusterStatusClusterTerminatedEvent {
                    app_id: c.app_id,
                    service_name: c.service_name,
                    cluster_id: cluster_id.to_string(),
                })
                .await;
                self.publish(&event).await;
                break;
            }
        }
        let changes = &mut self.changes;
        self.topology.services.retain(|name, s| {
            let keep = !s.clusters.is_empty();
            if !keep {
                changes.services.insert(name.clone());
            }
            keep
        });
    }

    /// Clusters whose deployment vanished (deleted from the store by hand) are drained too.
    async fn remove_clusters_without_deployment(&mut self, deployments: &[Deployment]) {
        let wanted: std::collections::HashSet<&str> =
            deployments.iter().flat_map(|d| d.clusters.iter().map(|c| c.cluster_id.as_str())).collect();
        let stray: Vec<(String, Vec<Member>)> = self
            .topology
            .services
            .values()
            .flat_map(|s| s.clusters.values())
            .filter(|c| !wanted.contains(c.cluster_id.as_str()) && !self.frozen.contains(&c.cluster_id))
            .map(|c| (c.cluster_id.clone(), c.members.values().cloned().collect()))
            .collect();
        for (cluster_id, members) in stray {
            for m in &members {
                self.terminate(&cluster_id, &m.member_id, "its application is no longer deployed").await;
            }
            if self.topology.cluster(&cluster_id).is_some_and(|c| c.members.is_empty()) {
                self.remove_cluster(&cluster_id).await;
            }
        }
    }
}

/// `<cluster>.<12 hex digits>`: unique across restarts of this and other processes.
/// A placement's properties as a driver reads them: the network partition's, its
/// partition's over them.
fn placement_properties(
    defs: &stratos_model::Definitions,
    np_id: &str,
    partition_id: &str,
) -> BTreeMap<String, String> {
    let Some(np) = defs.network_partitions.get(np_id) else { return BTreeMap::new() };
    let partition = np.partition(partition_id).map(|p| p.property.as_slice()).unwrap_or_default();
    np.property.iter().chain(partition).map(|p| (p.name.clone(), p.value.clone())).collect()
}

fn new_member_id(cluster_id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut x = (nanos as u64)
        ^ ((std::process::id() as u64) << 32)
        ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spreads the bits so ids do not look sequential.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{cluster_id}.{:012x}", x & 0xFFFF_FFFF_FFFF)
}

/// How long each step of a reconcile took, for the log of a slow one.
struct Phases {
    started: Instant,
    /// When the last phase ended.
    last: Instant,
    took: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn start() -> Phases {
        let now = Instant::now();
        Phases { started: now, last: now, took: Vec::new() }
    }

    fn done(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.took.push((phase, now - self.last));
        self.last = now;
    }

    /// Since the start, whichever phase the reconcile got to.
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (phase, took)) in self.took.iter().enumerate() {
            write!(f, "{}{phase} {} ms", if i == 0 { "" } else { ", " }, took.as_millis())?;
        }
        Ok(())
    }
}
