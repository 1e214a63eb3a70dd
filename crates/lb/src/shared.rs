//! What every part of the running load balancer shares: its settings, the routing
//! table in service, the members' counters, the member connection pools per worker and
//! the proxy ports bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::watch as tokio_watch;

use crate::config::LbConfig;
use crate::routing::RoutingTable;
use crate::{member_pool, pool, stats};

/// What every part of the running load balancer shares.
pub(crate) struct Shared {
    pub config: LbConfig,
    pub table: RwLock<Arc<RoutingTable>>,
    pub registry: stats::Registry,
    /// Connections to members, one pool per worker (by index): a worker's requests use
    /// only connections it drives.
    pub pools: Vec<Arc<pool::Pool>>,
    /// Plain keep-alive connections to members for [`crate::h1`], one pool per worker.
    pub member_pools: Vec<Arc<member_pool::MemberPool>>,
    /// Proxy port → the address its listener is bound to.
    pub bound: RwLock<BTreeMap<u16, SocketAddr>>,
    /// Bumped after every table swap and listener change.
    pub version: tokio_watch::Sender<u64>,
}

impl Shared {
    /// The current routing table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.read().unwrap().clone()
    }

    /// Swaps in a new table; returns the old one.
    pub fn swap_table(&self, table: Arc<RoutingTable>) -> Arc<RoutingTable> {
        std::mem::replace(&mut *self.table.write().unwrap(), table)
    }

    pub fn eject(&self, member: &stats::MemberStats, reason: &str) {
        if let Some(duration) = member.eject(Instant::now(), self.config.eject_for, self.config.max_eject_for) {
            tracing::warn!(
                member_id = %member.member_id,
                cluster_id = %member.cluster_id,
                ?duration,
                reason,
                "member ejected"
            );
        }
    }
}
