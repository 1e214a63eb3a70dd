//! The running load balancer: [`start`] subscribes the topology and starts the tasks
//! that follow it; [`Lb`] is their handle.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use stratos_bus::Bus;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::LbConfig;
use crate::error::{Error, Result};
use crate::routing::RoutingTable;
use crate::shared::Shared;
use crate::stats::{self, MemberSnapshot};
use crate::{checks, member_pool, pool, watch, workers};

/// A running load balancer. Dropping it stops the listeners and background tasks
/// (connections already accepted finish on their own).
pub struct Lb {
    shared: Arc<Shared>,
    watcher: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the load balancer on `bus`: it subscribes the topology (the retained
/// `CompleteTopologyEvent` arrives first), binds proxy ports as they appear, checks
/// members and publishes in-flight counts.
pub async fn start(bus: Bus, config: LbConfig) -> Result<Lb> {
    start_with_metrics(bus, config, None).await
}

/// [`start`], counting requests per cluster into `metrics`.
pub async fn start_with_metrics(bus: Bus, config: LbConfig, metrics: Option<stratos_metrics::LbMetrics>) -> Result<Lb> {
    let subscribe = |filter: &'static str| {
        let bus = &bus;
        async move { bus.subscribe(filter).await.map_err(|source| Error::Subscribe { filter, source }) }
    };
    let topology = subscribe("topology/#").await?;
    let tenants = subscribe("tenant/#").await?;
    let (version, _) = tokio_watch::channel(0);
    let shared = Arc::new(Shared {
        pools: per_worker(|| pool::Pool::new(config.connect_timeout)),
        member_pools: per_worker(|| member_pool::MemberPool::new(config.connect_timeout, config.response_limit())),
        config,
        table: RwLock::new(Arc::new(RoutingTable::default())),
        registry: stats::Registry::with_metrics(metrics),
        bound: RwLock::new(BTreeMap::new()),
        version,
    });
    info!(
        listen = %shared.config.listen_address,
        algorithm = ?shared.config.algorithm,
        sticky = shared.config.sticky,
        "load balancer started; waiting for the topology"
    );
    let watcher = tokio::spawn(watch::run(shared.clone(), topology, tenants));
    let mut tasks = vec![tokio::spawn(checks::publish_in_flight(shared.clone(), bus))];
    if !shared.config.active_check_interval.is_zero() {
        tasks.push(tokio::spawn(checks::active_checks(shared.clone())));
    }
    Ok(Lb { shared, watcher: Some(watcher), tasks })
}

/// One pool per worker, made by `make`, whose sweeper runs on that worker.
fn per_worker<P, S>(make: impl Fn() -> (Arc<P>, S)) -> Vec<Arc<P>>
where
    S: std::future::Future<Output = ()> + Send + 'static,
{
    (0..workers::workers().len())
        .map(|worker| {
            let (pool, sweeper) = make();
            workers::workers().spawn(worker, sweeper);
            pool
        })
        .collect()
}

/// Runs the load balancer until the event bus goes away.
pub async fn run(bus: Bus, config: LbConfig) -> Result<()> {
    start(bus, config).await?.wait().await
}

/// [`run`], counting requests per cluster into `metrics`.
pub async fn run_with_metrics(bus: Bus, config: LbConfig, metrics: Option<stratos_metrics::LbMetrics>) -> Result<()> {
    start_with_metrics(bus, config, metrics).await?.wait().await
}

impl Lb {
    /// Where the listener of `proxy_port` is bound, once it is.
    pub fn addr_for_port(&self, proxy_port: u16) -> Option<SocketAddr> {
        self.shared.bound.read().unwrap().get(&proxy_port).copied()
    }

    /// Waits up to `timeout` for the listener of `proxy_port`.
    pub async fn wait_for_port(&self, proxy_port: u16, timeout: Duration) -> Option<SocketAddr> {
        self.wait_until(timeout, |lb| lb.addr_for_port(proxy_port)).await
    }

    /// Waits up to `timeout` until `check` returns something, re-checking on every table
    /// change.
    pub async fn wait_until<T>(&self, timeout: Duration, mut check: impl FnMut(&Lb) -> Option<T>) -> Option<T> {
        let mut changes = self.shared.version.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(t) = check(self) {
                    return t;
                }
                // A lost change is caught by the periodic re-check.
                let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
            }
        })
        .await
        .ok()
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.shared.table()
    }

    /// Every member the load balancer has counters for.
    pub fn members(&self) -> Vec<MemberSnapshot> {
        stats::snapshot(&self.shared.table(), &self.shared.registry, Instant::now())
    }

    /// One member's counters.
    pub fn member(&self, member_id: &str) -> Option<MemberSnapshot> {
        self.members().into_iter().find(|m| m.member_id == member_id)
    }

    /// Runs until the topology subscription ends (the event bus is gone).
    pub async fn wait(mut self) -> Result<()> {
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.await;
        }
        Err(Error::BusLost)
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(w) = &self.watcher {
            w.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}
