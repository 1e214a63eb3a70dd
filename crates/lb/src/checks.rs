//! Background work: active health checks, and publishing in-flight request counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_bus::events::now_millis;
use stratos_bus::Bus;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::shared::Shared;
use crate::stats::{in_flight_events, snapshot, MemberStats, MEMBER_EVENTS_EVERY};

/// Every interval, connects to each routable member; a member that does not accept is ejected.
pub(crate) async fn active_checks(shared: Arc<Shared>) {
    let interval = shared.config.active_check_interval;
    let timeout = interval.min(shared.config.connect_timeout).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let table = shared.table();
        let mut targets: BTreeMap<String, (Arc<MemberStats>, String)> = BTreeMap::new();
        for (_, m) in table.endpoints() {
            targets.insert(format!("{}@{}", m.member_id, m.authority()), (m.stats.clone(), m.authority()));
        }
        drop(table);
        let mut checks = JoinSet::new();
        for (_, (stats, authority)) in targets {
            checks.spawn(async move {
                let result = tokio::time::timeout(timeout, TcpStream::connect(&authority)).await;
                (stats, authority, result)
            });
        }
        while let Some(done) = checks.join_next().await {
            let Ok((stats, authority, result)) = done else { continue };
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!(member_id = %stats.member_id, %authority, error = %e, "active check failed");
                    shared.eject(&stats, "active check: cannot connect");
                }
                Err(_) => shared.eject(&stats, "active check: connect timed out"),
            }
        }
    }
}

/// Every interval, publishes `InFlightRequestsEvent`s: per cluster and network partition,
/// and every [`MEMBER_EVENTS_EVERY`] intervals per member.
pub(crate) async fn publish_in_flight(shared: Arc<Shared>, bus: Bus) {
    let mut tick = tokio::time::interval(shared.config.publish_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    for round in 0u64.. {
        tick.tick().await;
        let table = shared.table();
        let members = snapshot(&table, &shared.registry, Instant::now());
        let events = in_flight_events(&table, &members, now_millis(), round % MEMBER_EVENTS_EVERY == 0);
        crate::stats::set_in_flight_metrics(&table, &events);
        drop(table);
        for event in events {
            if let Err(e) = bus.publish(&event).await {
                warn!(error = %e, "cannot publish in-flight requests");
                break;
            }
        }
    }
}
