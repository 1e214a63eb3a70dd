//! The cloud controller: owns the topology and reconciles it, with the members
//! the drivers report, against the deployments in the store.
//!
//! Invariants:
//! - A member enters the topology (and the store) before its driver starts it, so
//!   a crash between the two leaves a member to replace, never an unknown process.
//! - A running instance no member of the topology names is an orphan and is terminated.
//! - Agents' events move a member forward; the drivers' listing tells when it is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_bus::events::*;
use stratos_bus::{now_millis, AnyEvent, Bus, MemberRef};
use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::{
    ApplicationPolicy, ClusterScale, ClusterSpec, Deployment, DeploymentStatus, NetworkPartition, Property,
};
use stratos_store::Store;
use tracing::{error, info, warn};

use crate::driver::{Driver, Instance, InstanceState, MemberSpec, PortSpec};
use stratos_model::placement::{Placement, Slot};

/// Most often the topology is saved and its snapshot published.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Where members' agents reach the bus.
    pub broker_url: String,
    /// How often desired and actual state are compared.
    pub reconcile_interval: Duration,
    /// A member that does not activate in this time is replaced.
    pub activation_timeout: Duration,
    /// How long a draining member may take before it is terminated anyway.
    pub drain_timeout: Duration,
    /// Grace between SIGTERM (or its IaaS equivalent) and a forced stop.
    pub terminate_grace: Duration,
}

impl ControllerConfig {
    pub fn new(broker_url: impl Into<String>) -> Self {
        ControllerConfig {
            broker_url: broker_url.into(),
            reconcile_interval: Duration::from_secs(1),
            activation_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(20),
            terminate_grace: Duration::from_secs(10),
        }
    }
}

/// Repeated start failures of a cluster, for back-off and for `application status`.
struct Failures {
    count: u32,
    last_error: String,
    retry_at: Instant,
}

pub struct CloudController {
    store: Store,
    bus: Bus,
    drivers: HashMap<&'static str, Arc<dyn Driver>>,
    config: ControllerConfig,
    topology: Topology,
    dirty: bool,
    /// Members being drained, with the time they must be gone by.
    draining: HashMap<String, Instant>,
    /// When each member of this controller's life was first seen not yet active.
    pending_since: HashMap<String, Instant>,
    failures: HashMap<String, Failures>,
    /// Each cluster's minimum, from its deployment: it is Active from that many active members.
    cluster_min: HashMap<String, u32>,
    /// The deployments as last read, for the termination behaviour of their applications.
    deployments: Vec<Deployment>,
    /// Clusters that served and have no active member left.
    down: std::collections::HashSet<String>,
    /// Clusters to take down (with the cluster whose failure asks for it).
    takedown: Vec<(String, String)>,
    /// Members recorded in this reconcile, to start once the record is saved.
    to_launch: Vec<(Member, MemberSpec, Arc<dyn Driver>)>,
}

impl CloudController {
    pub fn new(store: Store, bus: Bus, drivers: Vec<Arc<dyn Driver>>, config: ControllerConfig) -> Self {
        CloudController {
            store,
            bus,
            drivers: drivers.into_iter().map(|d| (d.name(), d)).collect(),
            config,
            topology: Topology::default(),
            dirty: false,
            draining: HashMap::new(),
            pending_since: HashMap::new(),
            failures: HashMap::new(),
            cluster_min: HashMap::new(),
            deployments: Vec::new(),
            down: Default::default(),
            takedown: Vec::new(),
            to_launch: Vec::new(),
        }
    }

    /// Runs until the process ends: reacts to agents' events, reconciles on a timer.
    pub async fn run(mut self) -> Result<(), String> {
        self.topology = self.store.load_topology().await.map_err(|e| e.to_string())?;
        let mut status = self.bus.subscribe("instance/status/#").await.map_err(|e| e.to_string())?;
        let mut apps = self.bus.subscribe("application/#").await.map_err(|e| e.to_string())?;
        let mut faults = self.bus.subscribe_to::<MemberFaultEvent>().await.map_err(|e| e.to_string())?;
        info!(members = self.topology.members().count(), "cloud controller started; adopting the stored topology");
        let mut last_flush = Instant::now();
        let mut tick = tokio::time::interval(self.config.reconcile_interval);
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = status.recv() => self.on_instance_event(event).await,
                Some(_) = apps.recv() => self.reconcile().await,
                Some(AnyEvent::MemberFaultEvent(fault)) = faults.recv() => {
                    // A member that stopped reporting is replaced, like one whose process died.
                    let reason = format!("faulty: {}", fault.reason);
                    warn!(member_id = %fault.member.member_id, %reason, "replacing a faulty member");
                    self.terminate(&fault.member.cluster_id, &fault.member.member_id, &reason).await;
                }
                _ = tick.tick() => self.reconcile().await,
                _ = flush_tick.tick() => {}
            }
            // Bursts of agent events are written and announced together: the
            // per-member events went out already; the snapshot can lag a little.
            if last_flush.elapsed() >= FLUSH_EVERY {
                self.flush().await;
                last_flush = Instant::now();
            }
        }
    }

    /// Saves and announces the topology when it changed.
    async fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        if let Err(e) = self.store.save_topology(&self.topology).await {
            error!(error = %e, "cannot save the topology");
            return;
        }
        self.dirty = false;
        self.publish(&CompleteTopologyEvent { topology: self.topology.clone() }).await;
    }

    async fn publish<E: Event>(&self, event: &E) {
        if let Err(e) = self.bus.publish(event).await {
            warn!(topic = E::TOPIC, error = %e, "cannot publish");
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
                    self.failures.remove(&e.member.cluster_id);
                    let m = self.member_mut(&e.member).cloned();
                    if let Some(cluster) = self.topology.cluster_mut(&e.member.cluster_id) {
                        cluster.error = None;
                    }
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
            AnyEvent::InstanceStartFailedEvent(e) => {
                warn!(member_id = %e.member.member_id, error = %e.error, "member failed to start");
                self.record_failure(
                    &e.member.cluster_id,
                    format!("member {} failed to start: {}", e.member.member_id, e.error),
                );
                self.terminate(&e.member.cluster_id, &e.member.member_id, &format!("start failed: {}", e.error)).await;
            }
            _ => {}
        }
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
        self.dirty = true;
        true
    }

    fn record_failure(&mut self, cluster_id: &str, error: String) {
        let f = self.failures.entry(cluster_id.to_string()).or_insert(Failures {
            count: 0,
            last_error: String::new(),
            retry_at: Instant::now(),
        });
        f.count += 1;
        f.last_error = error;
        let backoff = Duration::from_secs((1u64 << f.count.min(6)).min(60));
        f.retry_at = Instant::now() + backoff;
        let message = format!("{} ({} failed start(s); next try in {}s)", f.last_error, f.count, backoff.as_secs());
        if let Some(cluster) = self.topology.cluster_mut(cluster_id) {
            cluster.error = Some(message);
            self.dirty = true;
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
        self.dirty = true;
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

    /// Terminates a member through its driver and removes it from the topology.
    async fn terminate(&mut self, cluster_id: &str, member_id: &str, reason: &str) {
        let Some(member) = self.topology.cluster(cluster_id).and_then(|c| c.members.get(member_id)).cloned() else {
            return;
        };
        if let Some(driver) = self.driver_of(&member) {
            if let Err(e) = driver.terminate(member_id, self.config.terminate_grace).await {
                // Keep the member: the next reconcile tries again.
                error!(member_id, error = %e, "cannot terminate member");
                return;
            }
        }
        self.forget(&member, reason).await;
    }

    /// Removes a member that no longer runs, and says so.
    async fn forget(&mut self, member: &Member, reason: &str) {
        if let Some(cluster) = self.topology.cluster_mut(&member.cluster_id) {
            cluster.members.remove(&member.member_id);
        }
        self.draining.remove(&member.member_id);
        self.pending_since.remove(&member.member_id);
        self.dirty = true;
        info!(member_id = %member.member_id, cluster_id = %member.cluster_id, reason, "member terminated");
        self.publish(&MemberTerminatedEvent { member: MemberRef::from(member), reason: reason.to_string() }).await;
        self.update_cluster_status(&member.cluster_id).await;
    }

    fn driver_of(&self, member: &Member) -> Option<Arc<dyn Driver>> {
        let provider = stratos_model::property(&member.properties, "provider")?;
        self.drivers.get(provider).cloned()
    }

    /// Compares desired with actual state and acts on every difference.
    pub async fn reconcile(&mut self) {
        let deployments = match self.store.list_all_tenants("deployment").await {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(_, v)| match serde_json::from_value::<Deployment>(v) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        error!(error = %e, "unreadable deployment in the store");
                        None
                    }
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                error!(error = %e, "cannot read deployments; skipping this reconcile");
                return;
            }
        };
        self.deployments = deployments.clone();
        let instances = self.list_instances().await;
        self.collect_gone_members(&instances).await;
        self.terminate_orphans(&instances).await;
        self.take_down().await;
        self.expire_pending_and_draining().await;
        for deployment in &deployments {
            match deployment.status {
                DeploymentStatus::Deployed => self.converge(deployment).await,
                DeploymentStatus::Undeploying => self.undeploy(deployment).await,
            }
        }
        self.remove_clusters_without_deployment(&deployments).await;
        self.launch_recorded().await;
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
        for (member, member_spec, driver) in std::mem::take(&mut self.to_launch) {
            if failed_clusters.contains(&member.cluster_id) {
                self.forget(&member, "not started: an earlier start failed").await;
                continue;
            }
            self.publish(&MemberCreatedEvent { member: member.clone() }).await;
            let cluster_id = member.cluster_id.clone();
            if !self.launch(member, member_spec, driver).await {
                failed_clusters.insert(cluster_id);
            }
        }
    }

    async fn list_instances(&self) -> Option<HashMap<String, Instance>> {
        let mut all = HashMap::new();
        for driver in self.drivers.values() {
            match driver.list().await {
                Ok(list) => all.extend(list.into_iter().map(|i| (i.member_id.clone(), i))),
                Err(e) => {
                    // Without a full listing nothing may be judged gone or orphaned.
                    error!(driver = driver.name(), error = %e, "cannot list members");
                    return None;
                }
            }
        }
        Some(all)
    }

    /// Members whose instance exited or vanished are removed (and replaced by `converge`).
    async fn collect_gone_members(&mut self, instances: &Option<HashMap<String, Instance>>) {
        let Some(instances) = instances else { return };
        let members: Vec<Member> = self.topology.members().cloned().collect();
        for m in members {
            let reason = match instances.get(&m.member_id).map(|i| &i.state) {
                Some(InstanceState::Running) => continue,
                Some(InstanceState::Exited { detail, .. }) => detail.clone(),
                None => "no instance of the member exists".to_string(),
            };
            if m.status < MemberStatus::Active && !self.draining.contains_key(&m.member_id) {
                self.record_failure(
                    &m.cluster_id,
                    format!("member {} stopped before activating: {reason}", m.member_id),
                );
            }
            // Let the driver clean up what is left (the record, a stopped container).
            if let Some(driver) = self.driver_of(&m) {
                let _ = driver.terminate(&m.member_id, Duration::from_secs(1)).await;
            }
            warn!(member_id = %m.member_id, %reason, "member is gone");
            self.forget(&m, &reason).await;
        }
    }

    async fn terminate_orphans(&mut self, instances: &Option<HashMap<String, Instance>>) {
        let Some(instances) = instances else { return };
        let known: std::collections::HashSet<String> = self.topology.members().map(|m| m.member_id.clone()).collect();
        for instance in instances.values() {
            if known.contains(&instance.member_id) {
                continue;
            }
            warn!(member_id = %instance.member_id, "terminating an orphan member no topology names");
            for driver in self.drivers.values() {
                if let Ok(Some(_)) = driver.inspect(&instance.member_id).await {
                    let _ = driver.terminate(&instance.member_id, self.config.terminate_grace).await;
                }
            }
        }
    }

    async fn expire_pending_and_draining(&mut self) {
        let now = Instant::now();
        let members: Vec<Member> = self.topology.members().cloned().collect();
        for m in members {
            if m.status < MemberStatus::Active {
                let since = *self.pending_since.entry(m.member_id.clone()).or_insert(now);
                if now.duration_since(since) > self.config.activation_timeout {
                    let reason = format!(
                        "member {} did not activate within {}s (its ports never answered)",
                        m.member_id,
                        self.config.activation_timeout.as_secs()
                    );
                    self.record_failure(&m.cluster_id, reason.clone());
                    self.terminate(&m.cluster_id, &m.member_id, &reason).await;
                    continue;
                }
            }
            if let Some(deadline) = self.draining.get(&m.member_id) {
                if now > *deadline {
                    self.terminate(&m.cluster_id, &m.member_id, "drain timed out").await;
                }
            }
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

    /// Brings a deployed application's clusters to their desired size.
    async fn converge(&mut self, deployment: &Deployment) {
        let tenant = deployment.tenant_id;
        let defs = match self.store.load_definitions(tenant).await {
            Ok(d) => d,
            Err(e) => return error!(error = %e, "cannot read definitions"),
        };
        let Some(app_policy) = defs.application_policies.get(&deployment.application_policy_id).cloned() else {
            return self.fail_all(
                deployment,
                format!("application policy {:?} no longer exists", deployment.application_policy_id),
            );
        };
        let scales: HashMap<String, ClusterScale> = match self.store.list(tenant, "cluster-scale").await {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|v| serde_json::from_value::<ClusterScale>(v).ok())
                .map(|s| (s.cluster_id.clone(), s))
                .collect(),
            Err(e) => return error!(error = %e, "cannot read cluster sizes"),
        };
        for spec in &deployment.clusters {
            self.cluster_min.insert(spec.cluster_id.clone(), spec.min);
            self.ensure_cluster(deployment, spec, &defs).await;
            if !self.dependencies_active(deployment, spec) {
                continue;
            }
            self.scale_cluster(deployment, spec, scales.get(&spec.cluster_id), &app_policy, &defs).await;
        }
    }

    fn fail_all(&mut self, deployment: &Deployment, error: String) {
        for spec in &deployment.clusters {
            self.record_failure(&spec.cluster_id, error.clone());
        }
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
            members: BTreeMap::new(),
        };
        if let Some(service) = self.topology.services.get_mut(&spec.cartridge_type) {
            service.clusters.insert(spec.cluster_id.clone(), cluster.clone());
        }
        self.dirty = true;
        info!(cluster_id = %spec.cluster_id, "cluster created");
        self.publish(&ClusterCreatedEvent { cluster }).await;
    }

    /// Startup order: a cluster starts once the clusters it depends on are active.
    fn dependencies_active(&self, deployment: &Deployment, spec: &ClusterSpec) -> bool {
        spec.depends_on.iter().all(|alias| {
            let id = stratos_model::cluster_id(&deployment.application_id, alias);
            self.topology.cluster(&id).is_some_and(|c| c.status == ClusterStatus::Active)
        })
    }

    async fn scale_cluster(
        &mut self,
        deployment: &Deployment,
        spec: &ClusterSpec,
        scale: Option<&ClusterScale>,
        app_policy: &ApplicationPolicy,
        defs: &stratos_model::Definitions,
    ) {
        let Some(policy) = defs.deployment_policies.get(&spec.deployment_policy) else {
            return self.record_failure(
                &spec.cluster_id,
                format!("deployment policy {:?} no longer exists", spec.deployment_policy),
            );
        };
        let nps: HashMap<String, NetworkPartition> =
            defs.network_partitions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let placement = Placement::new(app_policy.algorithm, &app_policy.network_partitions, policy, &nps);
        let Some(cluster) = self.topology.cluster(&spec.cluster_id) else { return };
        let live: Vec<Member> = cluster
            .members
            .values()
            .filter(|m| m.status < MemberStatus::InMaintenance && !self.draining.contains_key(&m.member_id))
            .cloned()
            .collect();
        let desired = scale.map_or(spec.desired, |s| s.desired).clamp(spec.min, spec.max.max(spec.min));
        let mut counts: HashMap<Slot, u32> = HashMap::new();
        for m in &live {
            *counts.entry((m.network_partition_id.clone(), m.partition_id.clone())).or_insert(0) += 1;
        }
        if (live.len() as u32) < desired {
            if self.failures.get(&spec.cluster_id).is_some_and(|f| Instant::now() < f.retry_at) {
                return;
            }
            for _ in live.len() as u32..desired {
                let Some(slot) = placement.next(&counts) else {
                    let msg = format!(
                        "cannot place more members: every partition is full ({} member(s) at most)",
                        placement.capacity()
                    );
                    if let Some(c) = self.topology.cluster_mut(&spec.cluster_id) {
                        if c.error.as_deref() != Some(msg.as_str()) {
                            c.error = Some(msg);
                            self.dirty = true;
                        }
                    }
                    break;
                };
                *counts.entry(slot.clone()).or_insert(0) += 1;
                match self.create_member(deployment, spec, &slot, &nps, defs) {
                    Some(member) => self.to_launch.push(member),
                    None => break,
                }
            }
        } else if (live.len() as u32) > desired {
            let mut excess = live.len() as u32 - desired;
            // The autoscaler's choice first (the least loaded members).
            for id in scale.map(|s| s.drain_first.clone()).unwrap_or_default() {
                if excess == 0 {
                    break;
                }
                if let Some(m) = live.iter().find(|m| m.member_id == id) {
                    if let Some(count) = counts.get_mut(&(m.network_partition_id.clone(), m.partition_id.clone())) {
                        *count -= 1;
                    }
                    self.drain(&id).await;
                    excess -= 1;
                }
            }
            for _ in 0..excess {
                let Some(slot) = placement.next_to_remove(&counts) else { break };
                // Within the slot: a member not yet active first, then the newest.
                let victim = live
                    .iter()
                    .filter(|m| (m.network_partition_id.clone(), m.partition_id.clone()) == slot)
                    .filter(|m| !self.draining.contains_key(&m.member_id))
                    .max_by_key(|m| (m.status != MemberStatus::Active, m.init_time))
                    .map(|m| m.member_id.clone());
                if let Some(count) = counts.get_mut(&slot) {
                    *count -= 1;
                }
                if let Some(id) = victim {
                    self.drain(&id).await;
                }
            }
        }
    }

    /// Records a member in the topology (not yet started).
    fn create_member(
        &mut self,
        deployment: &Deployment,
        spec: &ClusterSpec,
        slot: &Slot,
        nps: &HashMap<String, NetworkPartition>,
        defs: &stratos_model::Definitions,
    ) -> Option<(Member, MemberSpec, Arc<dyn Driver>)> {
        let (np_id, partition_id) = slot;
        let provider = nps
            .get(np_id)
            .and_then(|np| np.partition(partition_id).and_then(|p| np.provider_of(p)).map(str::to_string))
            .unwrap_or_default();
        let Some(driver) = self.drivers.get(provider.as_str()).cloned() else {
            self.record_failure(
                &spec.cluster_id,
                format!(
                    "network partition {np_id:?} uses provider {provider:?}, which this platform has no driver for"
                ),
            );
            return None;
        };
        let Some(cartridge) = defs.cartridges.get(&spec.cartridge_type) else {
            self.record_failure(&spec.cluster_id, format!("cartridge {:?} no longer exists", spec.cartridge_type));
            return None;
        };
        let Some(iaas) = cartridge.iaas(&provider) else {
            self.record_failure(
                &spec.cluster_id,
                format!("cartridge {:?} has no iaasProvider of type {provider:?}", spec.cartridge_type),
            );
            return None;
        };
        let member_id = new_member_id(&spec.cluster_id);
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
            properties: vec![Property { name: "provider".into(), value: provider.clone() }],
        };
        if let Some(c) = self.topology.cluster_mut(&spec.cluster_id) {
            c.members.insert(member_id.clone(), member.clone());
        }
        self.dirty = true;
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
            artifact_repository: spec.artifact_repository.clone(),
            env: iaas
                .property
                .iter()
                .filter_map(|p| p.name.strip_prefix("env.").map(|k| (k.to_string(), p.value.clone())))
                .collect(),
        };
        Some((member, member_spec, driver))
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
                self.dirty = true;
                if let Some(member) = initialized {
                    self.publish(&MemberInitializedEvent { member, default_private_ip: Some(instance.address), ports })
                        .await;
                }
                true
            }
            Err(e) => {
                self.record_failure(&member.cluster_id, e.to_string());
                self.forget(&member, &e.to_string()).await;
                false
            }
        }
    }

    /// Drains every member of an undeploying application; deletes the deployment once none is left.
    async fn undeploy(&mut self, deployment: &Deployment) {
        let mut remaining = 0;
        for spec in &deployment.clusters {
            let Some(cluster) = self.topology.cluster_mut(&spec.cluster_id) else { continue };
            if cluster.status != ClusterStatus::Terminating {
                cluster.status = ClusterStatus::Terminating;
                self.dirty = true;
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
        let left = deployment.clusters.iter().any(|s| self.topology.cluster(&s.cluster_id).is_some());
        if remaining == 0 && !left {
            // The topology without the application is saved before the deployment goes.
            self.flush().await;
            if let Err(e) = self.store.delete(deployment.tenant_id, "deployment", &deployment.application_id).await {
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
                self.dirty = true;
                self.failures.remove(cluster_id);
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
        self.topology.services.retain(|_, s| !s.clusters.is_empty());
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
            .filter(|c| !wanted.contains(c.cluster_id.as_str()))
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
fn new_member_id(cluster_id: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
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
