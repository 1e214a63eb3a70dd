//! Follows the topology on the bus and keeps the routing table and listeners current.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stratos_bus::events::AnyEvent;
use stratos_bus::Subscription;
use stratos_model::topology::Topology;
use tracing::{debug, info, warn};

use crate::listeners::Listeners;
use crate::routing::{apply_event, build, RoutingTable};
use crate::shared::Shared;

/// Most events applied before one rebuild, when they arrive in a burst.
const BATCH: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, mut topology_events: Subscription, mut tenant_events: Subscription) {
    let mut topology = Topology::default();
    let mut tenants: BTreeMap<i64, String> = BTreeMap::new();
    let mut listeners = Listeners::default();
    let mut retry_binds = tokio::time::interval(Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            event = topology_events.recv() => event,
            event = tenant_events.recv() => event,
            _ = retry_binds.tick() => {
                listeners.reconcile(&shared).await;
                continue;
            }
        };
        let Some(event) = event else {
            warn!("event bus subscription ended; the load balancer stops");
            return;
        };
        let mut changed = apply(&mut topology, &mut tenants, &event);
        // Apply what else is already queued before rebuilding, so a burst costs one rebuild.
        for _ in 0..BATCH {
            match tokio::time::timeout(Duration::ZERO, topology_events.recv()).await {
                Ok(Some(event)) => changed |= apply(&mut topology, &mut tenants, &event),
                _ => break,
            }
        }
        if !changed {
            continue;
        }
        let table = Arc::new(build(&topology, &tenants, &shared.registry));
        let old = shared.swap_table(table.clone());
        log_changes(&old, &table);
        shared.registry.retain(&table);
        listeners.reconcile(&shared).await;
        shared.version.send_modify(|v| *v += 1);
    }
}

fn apply(topology: &mut Topology, tenants: &mut BTreeMap<i64, String>, event: &AnyEvent) -> bool {
    let changed = apply_event(topology, tenants, event);
    debug!(topic = %event.topic(), changed, "topology event");
    changed
}

fn log_changes(old: &RoutingTable, new: &RoutingTable) {
    let (before, after) = (old.routable_members(), new.routable_members());
    for (member_id, cluster_id) in &after {
        if !before.contains_key(member_id) {
            let address: Vec<String> =
                new.endpoints().filter(|(_, m)| m.member_id == *member_id).map(|(_, m)| m.authority()).collect();
            info!(%member_id, %cluster_id, ?address, "member added: routing requests to it");
        }
    }
    for (member_id, cluster_id) in &before {
        if !after.contains_key(member_id) {
            let in_flight = old.endpoints().find(|(_, m)| m.member_id == *member_id).map(|(_, m)| m.stats.in_flight());
            info!(%member_id, %cluster_id, ?in_flight, "member removed: no new requests, those in flight finish");
        }
    }
    for warning in &new.warnings {
        if !old.warnings.contains(warning) {
            warn!("{warning}");
        }
    }
}
