//! The `simulated` driver, for scale tests, and the engine of the `mock` IaaS
//! (`mock_iaas.rs`): a member is a task that acts as its agent would (started,
//! activated after a delay, health stats every interval, draining on request). No
//! process, no port: nothing can be routed to it (its address is
//! `network-partition/partition/service` and its ports are 0, which the load balancer
//! skips).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratos_bus::events::{
    InstanceActivatedEvent, InstanceCleanupMemberEvent, InstanceMaintenanceModeEvent, InstanceReadyToShutdownEvent,
    InstanceStartedEvent, MemberHealthStatEvent,
};
use stratos_bus::{now_millis, AnyEvent, Bus, MemberRef};
use tokio::task::JoinHandle;

use crate::driver::{AllocatedPort, BoxFuture, Driver, DriverError, Instance, InstanceState, MemberSpec};

/// The synthetic load a simulated member reports: (load average, memory %).
pub type LoadModel = Arc<dyn Fn(&MemberRef, u64) -> (f64, f64) + Send + Sync>;

/// What a simulated member reports at one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub load_average: Option<f64>,
    pub memory_consumption: Option<f64>,
    /// Report nothing at all (a member gone silent, which the health service declares
    /// faulty); a reading of no value is still sent, and keeps the member alive.
    pub silent: bool,
}

/// Where simulated members' statistics come from: a [`LoadModel`], or the mock IaaS's patterns.
pub trait StatsSource: Send + Sync + 'static {
    /// What `member` reports at `now` (milliseconds since the Unix epoch).
    fn reading(&self, member: &MemberRef, now: u64) -> Reading;
    /// A member was started (before it activates).
    fn member_started(&self, _member: &MemberRef) {}
    /// A member was terminated.
    fn member_ended(&self, _member: &MemberRef) {}
}

/// A [`LoadModel`] as a [`StatsSource`]: both figures, always.
struct LoadModelSource(LoadModel);

impl StatsSource for LoadModelSource {
    fn reading(&self, member: &MemberRef, now: u64) -> Reading {
        let (load_average, memory) = (self.0)(member, now);
        Reading { load_average: Some(load_average), memory_consumption: Some(memory), silent: false }
    }
}

/// Each member's instance and the task that plays its agent.
type Members = Arc<Mutex<HashMap<String, (Instance, JoinHandle<()>)>>>;

pub struct SimulatedDriver {
    /// The provider name: `simulated`, or `mock`.
    name: &'static str,
    bus: Bus,
    start_delay: Duration,
    stats_every: Duration,
    stats: Arc<dyn StatsSource>,
    members: Members,
    /// Partitions whose members start but never activate.
    stuck: Mutex<HashSet<String>>,
}

impl SimulatedDriver {
    /// Members activate `start_delay` after they start and report `load` every `stats_every`.
    pub async fn start(bus: Bus, start_delay: Duration, stats_every: Duration, load: LoadModel) -> SimulatedDriver {
        Self::start_with("simulated", bus, start_delay, stats_every, Arc::new(LoadModelSource(load))).await
    }

    /// A driver named `name` whose members report what `stats` says every `stats_every`.
    pub async fn start_with(
        name: &'static str,
        bus: Bus,
        start_delay: Duration,
        stats_every: Duration,
        stats: Arc<dyn StatsSource>,
    ) -> SimulatedDriver {
        let members: Members = Default::default();
        // Drain requests are answered as an agent would: maintenance, then ready to shut down.
        if let Ok(mut cleanup) = bus.subscribe_to::<InstanceCleanupMemberEvent>().await {
            let (bus, members) = (bus.clone(), members.clone());
            tokio::spawn(async move {
                while let Some(AnyEvent::InstanceCleanupMemberEvent(e)) = cleanup.recv().await {
                    let member = members.lock().unwrap().get(&e.member_id).map(|(i, _)| member_ref(i));
                    if let Some(member) = member {
                        let _ = bus.publish(&InstanceMaintenanceModeEvent { member: member.clone() }).await;
                        let _ = bus.publish(&InstanceReadyToShutdownEvent { member }).await;
                    }
                }
            });
        }
        SimulatedDriver { name, bus, start_delay, stats_every, stats, members, stuck: Default::default() }
    }

    /// Members placed in this partition from now on start but never activate, like
    /// those of an IaaS zone whose instances never become reachable.
    pub fn never_activate_in(&self, partition_id: &str) {
        self.stuck.lock().unwrap().insert(partition_id.to_string());
    }

    /// A constant load for every member.
    pub fn constant(load_average: f64, memory: f64) -> LoadModel {
        Arc::new(move |_, _| (load_average, memory))
    }
}

fn member_ref(i: &Instance) -> MemberRef {
    // The simulated instance carries the member's placement in its address: "np/partition/service".
    let mut parts = i.address.splitn(3, '/');
    MemberRef {
        network_partition_id: parts.next().unwrap_or_default().to_string(),
        partition_id: parts.next().unwrap_or_default().to_string(),
        service_name: parts.next().unwrap_or_default().to_string(),
        cluster_id: i.cluster_id.clone(),
        member_id: i.member_id.clone(),
    }
}

impl Driver for SimulatedDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start<'a>(&'a self, spec: &'a MemberSpec) -> BoxFuture<'a, Result<Instance, DriverError>> {
        Box::pin(async move {
            let instance = Instance {
                member_id: spec.member_id.clone(),
                cluster_id: spec.cluster_id.clone(),
                state: InstanceState::Running,
                address: format!("{}/{}/{}", spec.network_partition_id, spec.partition_id, spec.service_name),
                ports: spec
                    .ports
                    .iter()
                    .map(|p| AllocatedPort {
                        protocol: p.protocol,
                        port: p.port,
                        host_port: 0,
                        proxy_port: p.proxy_port,
                    })
                    .collect(),
                started_at: now_millis(),
                platform_id: Some(spec.platform_id.clone()),
                network_partition_id: spec.network_partition_id.clone(),
                partition_id: spec.partition_id.clone(),
            };
            let member = member_ref(&instance);
            self.stats.member_started(&member);
            let (bus, delay, every, stats) = (self.bus.clone(), self.start_delay, self.stats_every, self.stats.clone());
            let stuck = self.stuck.lock().unwrap().contains(&spec.partition_id);
            let task = tokio::spawn(async move {
                let _ = bus.publish(&InstanceStartedEvent { member: member.clone() }).await;
                if stuck {
                    return std::future::pending().await;
                }
                tokio::time::sleep(delay).await;
                let _ = bus.publish(&InstanceActivatedEvent { member: member.clone() }).await;
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let now = now_millis();
                    let reading = stats.reading(&member, now);
                    if reading.silent {
                        continue;
                    }
                    let stat = MemberHealthStatEvent {
                        member: member.clone(),
                        load_average: reading.load_average,
                        memory_consumption: reading.memory_consumption,
                        timestamp: now,
                    };
                    let _ = bus.publish(&stat).await;
                }
            });
            self.members.lock().unwrap().insert(spec.member_id.clone(), (instance.clone(), task));
            Ok(instance)
        })
    }

    fn terminate<'a>(&'a self, member_id: &'a str, _grace: Duration) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let removed = self.members.lock().unwrap().remove(member_id);
            if let Some((instance, task)) = removed {
                task.abort();
                self.stats.member_ended(&member_ref(&instance));
            }
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, DriverError>> {
        Box::pin(async move { Ok(self.members.lock().unwrap().values().map(|(i, _)| i.clone()).collect()) })
    }

    fn inspect<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<Option<Instance>, DriverError>> {
        Box::pin(async move { Ok(self.members.lock().unwrap().get(member_id).map(|(i, _)| i.clone())) })
    }
}
