//! The built-in load balancer: a reverse proxy driven by the topology on the event bus.
//!
//! Layers, outermost first:
//! - [`watch`]: subscribes `topology/#` (and `tenant/#` for tenant domains), patches its
//!   view of the topology on every event and swaps in a new [`routing::RoutingTable`]
//!   atomically; listeners follow the table's proxy ports. Requests already routed keep
//!   the table (and member) they started with, so a member leaving drains.
//! - [`listeners`]: one accept loop per proxy port; each connection is served on one of
//!   the [`workers`] (a thread per CPU) as HTTP or TCP ([`tcp`]: `copy_bidirectional`).
//!   HTTP/1.1 takes the forwarding path of [`h1`] (requests parsed in place and relayed
//!   over plain keep-alive sockets to members); h2c, and HTTP/1 requests that path does
//!   not take, go to hyper ([`http`], over the worker's [`pool`]).
//! - [`checks`]: active TCP checks that eject members, and the in-flight counts
//!   published as `health/InFlightRequestsEvent`.
//! - Pure logic, unit-tested: [`routing`] (topology → table), [`balance`] (algorithms,
//!   sticky sessions, back-off) and [`stats`] (counters kept by member id).
//!
//! [`extension`] runs HAProxy or nginx instead, configured from the same routing table.

pub mod balance;
mod bodies;
mod bus_auth;
mod checks;
pub mod extension;
mod h1;
mod http;
mod idle;
mod listeners;
mod pool;
pub mod routing;
pub mod stats;
mod tcp;
mod upgrade;
mod watch;
mod workers;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use stratos_bus::Bus;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use balance::Algorithm;
pub use bus_auth::{check_broker_url, BusAuth};
pub use routing::RoutingTable;
pub use stats::MemberSnapshot;

/// The load balancer's settings (each a flag of `stratos lb` and `stratos up`).
#[derive(Debug, Clone, clap::Args)]
pub struct LbConfig {
    /// Address the load balancer's proxy ports listen on.
    #[arg(long = "lb-listen", env = "STRATOS_LB_LISTEN", default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
    /// How a cluster's members share requests.
    #[arg(long = "lb-algorithm", env = "STRATOS_LB_ALGORITHM", value_enum, default_value_t = Algorithm::LeastOutstanding)]
    pub algorithm: Algorithm,
    /// Pin clients to a member with the STRATOS_STICKY cookie.
    #[arg(long = "lb-sticky", env = "STRATOS_LB_STICKY")]
    pub sticky: bool,
    /// A client must send a request's headers within this time (slowloris guard), e.g. 10s, 500ms.
    #[arg(long = "lb-header-timeout", value_parser = parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
    #[arg(long = "lb-max-header-bytes", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Time allowed to connect to a member.
    #[arg(long = "lb-connect-timeout", value_parser = parse_duration, default_value = "3s")]
    pub connect_timeout: Duration,
    /// A member must start its response within this time of having the whole request,
    /// and not pause longer inside one: else the client gets 504 (or, mid-response, its
    /// connection closes). A slow member is not ejected for it. 0s: no limit.
    #[arg(long = "lb-response-timeout", value_parser = parse_duration, default_value = "60s")]
    pub response_timeout: Duration,
    /// How often each cluster's in-flight request count is published on the bus (each
    /// member's every fifth time). Every second, so that the autoscaler sees a load step
    /// at once.
    #[arg(long = "lb-publish-interval", value_parser = parse_duration, default_value = "1s")]
    pub publish_interval: Duration,
    /// How long a failing member gets no requests; doubles on repeated failures.
    #[arg(long = "lb-eject-for", value_parser = parse_duration, default_value = "10s")]
    pub eject_for: Duration,
    /// The longest ejection.
    #[arg(long = "lb-max-eject-for", value_parser = parse_duration, default_value = "60s")]
    pub max_eject_for: Duration,
    /// How often every routable member is checked with a TCP connect (0s: never).
    #[arg(long = "lb-check-interval", value_parser = parse_duration, default_value = "5s")]
    pub active_check_interval: Duration,
    /// Bind every proxy port on an OS-chosen port instead (tests; see [`Lb::addr_for_port`]).
    #[arg(skip)]
    pub ephemeral_ports: bool,
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            algorithm: Algorithm::LeastOutstanding,
            sticky: false,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(60),
            publish_interval: Duration::from_secs(1),
            eject_for: Duration::from_secs(10),
            max_eject_for: Duration::from_secs(60),
            active_check_interval: Duration::from_secs(5),
            ephemeral_ports: false,
        }
    }
}

impl LbConfig {
    /// The response timeout, if there is one.
    pub(crate) fn response_limit(&self) -> Option<Duration> {
        (!self.response_timeout.is_zero()).then_some(self.response_timeout)
    }
}

/// Parses `10s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, ""), |i| s.split_at(i));
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// What every part of the running load balancer shares.
pub(crate) struct Shared {
    pub config: LbConfig,
    table: RwLock<Arc<RoutingTable>>,
    pub registry: stats::Registry,
    /// Connections to members, one pool per worker (by index): a worker's requests use
    /// only connections it drives.
    pub pools: Vec<Arc<pool::Pool>>,
    /// Plain keep-alive connections to members for [`h1`], one pool per worker.
    pub member_pools: Vec<Arc<h1::MemberPool>>,
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
pub async fn start(bus: Bus, config: LbConfig) -> anyhow::Result<Lb> {
    let topology = bus.subscribe("topology/#").await.context("subscribing to topology events")?;
    let tenants = bus.subscribe("tenant/#").await.context("subscribing to tenant events")?;
    let (version, _) = tokio_watch::channel(0);
    let shared = Arc::new(Shared {
        pools: per_worker(|| pool::Pool::new(config.connect_timeout)),
        member_pools: per_worker(|| h1::MemberPool::new(config.connect_timeout, config.response_limit())),
        config,
        table: RwLock::new(Arc::new(RoutingTable::default())),
        registry: stats::Registry::default(),
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
pub async fn run(bus: Bus, config: LbConfig) -> anyhow::Result<()> {
    start(bus, config).await?.wait().await
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
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.await;
        }
        anyhow::bail!("the load balancer lost its event bus subscription")
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lb: LbConfig,
    }

    #[test]
    fn flag_defaults_match_default() {
        let parsed = Cli::parse_from(["lb"]).lb;
        let default = LbConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
        let parsed =
            Cli::parse_from(["lb", "--lb-algorithm", "round-robin", "--lb-sticky", "--lb-header-timeout", "1500ms"]).lb;
        assert_eq!(parsed.algorithm, Algorithm::RoundRobin);
        assert!(parsed.sticky);
        assert_eq!(parsed.header_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
