//! Health-stat processing: sliding windows over requests in flight, load
//! average and memory consumption; their average, gradient and second
//! derivative per cluster and member; member fault detection.

mod state;
mod window;

use std::time::Duration;

use stratos_bus::{now_millis, AnyEvent, Bus, BusError, MemberRef};
use tracing::{info, warn};

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

/// Consumes `health/*` and member lifecycle events; publishes
/// `summarized-health-stats/*` every interval and `health/MemberFaultEvent`s.
pub async fn run(bus: Bus, config: HealthConfig) -> Result<(), BusError> {
    let mut health = bus.subscribe("health/#").await?;
    let mut topology = bus.subscribe("topology/#").await?;
    let mut state = HealthState::new(config.window.as_secs_f64(), config.fault_after.as_secs_f64());
    let mut tick = tokio::time::interval(config.interval);
    info!(window = ?config.window, interval = ?config.interval, "health-stat processing started");
    loop {
        tokio::select! {
            Some(event) = health.recv() => take_stats(&mut state, event),
            Some(event) = topology.recv() => match event {
                AnyEvent::MemberActivatedEvent(e) => state.member_activated(e.member, secs(now_millis())),
                AnyEvent::CompleteTopologyEvent(e) => {
                    for m in e.topology.members().filter(|m| m.status.serves_traffic()) {
                        state.member_known(MemberRef::from(m), secs(now_millis()));
                    }
                }
                AnyEvent::MemberMaintenanceModeEvent(e) => state.member_gone(&e.member.member_id),
                AnyEvent::MemberReadyToShutdownEvent(e) => state.member_gone(&e.member.member_id),
                AnyEvent::MemberTerminatedEvent(e) => state.member_gone(&e.member.member_id),
                _ => {}
            },
            _ = tick.tick() => {
                // Statistics received but not yet taken in count first: a member is
                // not silent because this service is behind.
                while let Some(event) = health.try_recv() {
                    take_stats(&mut state, event);
                }
                let now = now_millis();
                for summary in state.summaries(secs(now), now) {
                    if let Err(e) = bus.publish(&summary).await {
                        warn!(error = %e, "cannot publish a health summary");
                    }
                }
                let faults = state.faults(secs(now));
                if faults.held > 0 {
                    warn!(
                        silent = faults.held,
                        "many members silent at once: held back, not all reported as faulty (the bus or \
                         this service is likelier at fault than they are)"
                    );
                }
                for fault in faults.events {
                    warn!(member_id = %fault.member.member_id, reason = %fault.reason, "member fault");
                    if let Err(e) = bus.publish(&fault).await {
                        warn!(error = %e, "cannot publish a member fault");
                    }
                }
            }
        }
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
