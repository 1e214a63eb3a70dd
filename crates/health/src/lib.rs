//! Health-stat processing: sliding windows over requests in flight, load
//! average and memory consumption; their average, gradient and second
//! derivative per cluster and member; member fault detection.

mod state;
mod window;

use std::time::{Duration, Instant};

use stratos_bus::events::{
    ClusterHealthSummaryEvent, CompleteTopologyEvent, MemberActivatedEvent, MemberFaultEvent,
    MemberMaintenanceModeEvent, MemberReadyToShutdownEvent, MemberSuspendedEvent, MemberTerminatedEvent,
};
use stratos_bus::{now_millis, AnyEvent, Bus, BusError, Event, MemberRef};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use state::{Faults, HealthState, LOAD_AVERAGE, MASS_SILENCE_MIN, MEMORY_CONSUMPTION, REQUESTS_IN_FLIGHT};
pub use window::{Summary, Window};

#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Window length.
    pub window: Duration,
    /// How often summaries are published.
    pub interval: Duration,
    /// Silence after which a member is faulty.
    pub fault_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window: Duration::from_secs(60),
            interval: Duration::from_secs(15),
            fault_after: Duration::from_secs(60),
        }
    }
}

fn secs(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

/// Consumes `health/*` and member lifecycle events; publishes one
/// `summarized-health-stats/ClusterHealthSummaryEvent` per cluster every interval,
/// and `health/MemberFaultEvent`s.
pub async fn run(bus: Bus, config: HealthConfig) -> Result<(), BusError> {
    run_with_metrics(bus, config, None).await
}

/// [`run`], counting statistics, summaries and faults into `metrics`.
pub async fn run_with_metrics(
    bus: Bus,
    config: HealthConfig,
    metrics: Option<stratos_metrics::HealthMetrics>,
) -> Result<(), BusError> {
    let count = |event: &AnyEvent| {
        if let Some(m) = &metrics {
            match event {
                AnyEvent::MemberHealthStatEvent(_) => m.stat("member"),
                AnyEvent::InFlightRequestsEvent(_) => m.stat("in-flight"),
                _ => {}
            }
        }
    };
    let mut health = bus.subscribe("health/#").await?;
    // The member lifecycle events that start or end a member's watch, and the
    // snapshot (for members active before this service started): not `topology/#`,
    // whose creations, initialisations and starts are 300k messages at 100k members.
    let filters: Vec<String> = [
        MemberActivatedEvent::FILTER,
        MemberMaintenanceModeEvent::FILTER,
        MemberReadyToShutdownEvent::FILTER,
        MemberSuspendedEvent::FILTER,
        MemberTerminatedEvent::FILTER,
        CompleteTopologyEvent::FILTER,
    ]
    .map(String::from)
    .to_vec();
    let mut topology = bus.subscribe_many(&filters).await?;
    let mut state = HealthState::new(config.window.as_secs_f64(), config.fault_after.as_secs_f64());
    let mut tick = tokio::time::interval(config.interval);
    // Publishing goes on in a task of its own: statistics keep being taken in while
    // an interval's summaries wait for room on the bus.
    let (outgoing, to_publish) = mpsc::channel::<Outgoing>(1);
    tokio::spawn(publish(bus.clone(), to_publish));
    info!(window = ?config.window, interval = ?config.interval, "health-stat processing started");
    loop {
        tokio::select! {
            Some(event) = health.recv() => {
                count(&event);
                take_stats(&mut state, event);
                // What else arrived meanwhile, in one go: at 100k members statistics
                // come in thousands per second.
                for _ in 0..INTAKE_BATCH {
                    let Some(event) = health.try_recv() else { break };
                    count(&event);
                    take_stats(&mut state, event);
                }
            }
            Some(event) = topology.recv() => match event {
                AnyEvent::MemberActivatedEvent(e) => state.member_activated(e.member, secs(now_millis())),
                AnyEvent::CompleteTopologyEvent(e) => {
                    let now = secs(now_millis());
                    for m in e.topology.members().filter(|m| m.status.serves_traffic()) {
                        // Most are watched already: their names are not copied.
                        if !state.watches(&m.member_id) {
                            state.member_known(MemberRef::from(m), now);
                        }
                    }
                }
                AnyEvent::MemberMaintenanceModeEvent(e) => state.member_gone(&e.member.member_id),
                AnyEvent::MemberReadyToShutdownEvent(e) => state.member_gone(&e.member.member_id),
                AnyEvent::MemberSuspendedEvent(e) => state.member_gone(&e.member.member_id),
                AnyEvent::MemberTerminatedEvent(e) => state.member_gone(&e.member.member_id),
                _ => {}
            },
            _ = tick.tick() => {
                let started = Instant::now();
                // Statistics received but not yet taken in count first: a member is
                // not silent because this service is behind.
                let mut backlog = 0usize;
                while let Some(event) = health.try_recv() {
                    count(&event);
                    take_stats(&mut state, event);
                    backlog += 1;
                }
                let now = now_millis();
                let summaries = state.summaries(secs(now), now);
                let faults = state.faults(secs(now));
                if faults.held > 0 {
                    warn!(
                        silent = faults.held,
                        "many members silent at once: held back, not all reported as faulty (the bus or \
                         this service is likelier at fault than they are)"
                    );
                }
                for fault in &faults.events {
                    warn!(member_id = %fault.member.member_id, reason = %fault.reason, "member fault");
                }
                if let Some(m) = &metrics {
                    let clusters = i64::try_from(summaries.len()).unwrap_or(i64::MAX);
                    m.summaries(summaries.len() as u64, clusters);
                    faults.events.iter().for_each(|_| m.fault());
                }
                debug!(
                    clusters = summaries.len(),
                    faults = faults.events.len(),
                    backlog,
                    took = ?started.elapsed(),
                    "health interval summarised"
                );
                let batch = Outgoing { summaries, faults: faults.events };
                if let Err(mpsc::error::TrySendError::Full(batch)) = outgoing.try_send(batch) {
                    warn!("the previous interval's summaries are still being published: intake waits for them");
                    let _ = outgoing.send(batch).await;
                }
            }
        }
    }
}

/// Statistics taken in per wake-up before the other events get a turn.
const INTAKE_BATCH: usize = 1024;

/// What one interval publishes.
struct Outgoing {
    summaries: Vec<ClusterHealthSummaryEvent>,
    faults: Vec<MemberFaultEvent>,
}

async fn publish(bus: Bus, mut batches: mpsc::Receiver<Outgoing>) {
    while let Some(batch) = batches.recv().await {
        let started = Instant::now();
        for summary in &batch.summaries {
            if let Err(e) = bus.publish(summary).await {
                warn!(error = %e, cluster_id = %summary.cluster_id, "cannot publish a health summary");
            }
        }
        for fault in &batch.faults {
            if let Err(e) = bus.publish(fault).await {
                warn!(error = %e, member_id = %fault.member.member_id, "cannot publish a member fault");
            }
        }
        debug!(summaries = batch.summaries.len(), took = ?started.elapsed(), "health summaries published");
    }
}

fn take_stats(state: &mut HealthState, event: AnyEvent) {
    match event {
        AnyEvent::MemberHealthStatEvent(e) => {
            state.member_stats(e.member, secs(e.timestamp), e.load_average, e.memory_consumption)
        }
        AnyEvent::InFlightRequestsEvent(e) if e.member_id.is_none() => {
            state.cluster_in_flight(&e.cluster_id, &e.network_partition_id, secs(e.timestamp), e.in_flight)
        }
        _ => {}
    }
}
