//! The extension's loop: topology events → (debounced) routing table → plan →
//! configuration → validate → reload; and the in-flight figures read from the proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use stratos_bus::events::{now_millis, AnyEvent};
use stratos_bus::{Bus, Subscription};
use stratos_model::topology::Topology;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::error::error_chain;
use crate::plan::{plan, Plan};
use crate::proxy::{self, ProxyProcess};
use crate::{haproxy, nginx, Error, Kind, Rejected, Resolved, Result, Status};
use stratos_lb::routing::{apply_event, build, RoutingTable};
use stratos_lb::stats::{in_flight_events, MemberSnapshot, Registry};

/// The configuration in service: what the in-flight figures are mapped with.
pub(crate) struct Applied {
    pub table: Arc<RoutingTable>,
    pub plan: Plan,
}

pub(crate) type AppliedSlot = Arc<RwLock<Option<Arc<Applied>>>>;

pub(crate) struct Controller {
    r: Resolved,
    proxy: ProxyProcess,
    topology: Topology,
    tenants: BTreeMap<i64, String>,
    registry: Registry,
    /// The last generation rendered.
    generation: u64,
    /// The configuration in service, rendered as generation 0 (to compare contents).
    in_service: String,
    warnings: BTreeSet<String>,
    status: watch::Sender<Status>,
    applied: AppliedSlot,
}

/// The configuration of `plan` for the proxy `r.kind`, and what it had to leave out.
fn render(r: &Resolved, plan: &Plan, generation: u64) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let text = match r.kind {
        Kind::Haproxy => haproxy::render(plan, &r.options(generation)),
        Kind::Nginx => nginx::render(plan, &r.options(generation), &mut warnings),
    };
    (text, warnings)
}

impl Controller {
    /// Writes and checks the initial configuration (no proxy ports) and starts the proxy on it.
    pub async fn start(r: Resolved, status: watch::Sender<Status>) -> Result<Controller> {
        let (text, _) = render(&r, &Plan::default(), 0);
        let candidate = candidate_path(&r);
        proxy::write_atomically(&candidate, &text)
            .map_err(Error::io(format!("cannot write {}", candidate.display())))?;
        if let Err(output) = proxy::validate(r.kind, &r.binary, &candidate, &r.run_dir).await {
            return Err(Error::Refused { kind: r.kind, path: candidate, output });
        }
        std::fs::rename(&candidate, &r.config).map_err(Error::io(format!(
            "cannot rename {} to {}",
            candidate.display(),
            r.config.display()
        )))?;
        let mut proxy = ProxyProcess::new(r.kind, r.binary.clone(), r.config.clone(), r.run_dir.clone(), r.status_port);
        proxy.start(0, r.reload_timeout).await?;
        Ok(Controller {
            r,
            proxy,
            topology: Topology::default(),
            tenants: BTreeMap::new(),
            registry: Registry::default(),
            generation: 0,
            in_service: text,
            warnings: BTreeSet::new(),
            status,
            applied: Arc::default(),
        })
    }

    pub fn pid(&self) -> Arc<AtomicU32> {
        self.proxy.pid.clone()
    }

    pub fn applied(&self) -> AppliedSlot {
        self.applied.clone()
    }

    pub async fn run(
        mut self,
        mut topology: Subscription,
        mut tenants: Subscription,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        loop {
            let mut changed = false;
            let woken = tokio::select! {
                _ = shutdown.changed() => Wake::Shutdown,
                exit = self.proxy.exited() => Wake::ProxyExited(exit),
                event = topology.recv() => Wake::Event(event.map(Box::new)),
                event = tenants.recv() => Wake::Event(event.map(Box::new)),
            };
            let mut bus_lost = false;
            match woken {
                Wake::Shutdown => {
                    self.proxy.stop().await;
                    return Ok(());
                }
                Wake::ProxyExited(exit) => {
                    self.restart(exit).await?;
                    continue;
                }
                Wake::Event(None) => bus_lost = true,
                Wake::Event(Some(event)) => changed |= self.apply(&event),
            }
            // Debounce: wait for a quiet spell (at most 10 debounce periods, at least 1 s).
            let until = Instant::now() + (self.r.debounce * 10).max(Duration::from_secs(1));
            while !bus_lost && Instant::now() < until {
                let event = tokio::select! {
                    event = topology.recv() => event,
                    event = tenants.recv() => event,
                    _ = tokio::time::sleep(self.r.debounce) => break,
                    _ = shutdown.changed() => break,
                };
                match event {
                    Some(event) => changed |= self.apply(&event),
                    None => bus_lost = true,
                }
            }
            if changed {
                self.reconfigure().await;
            }
            if bus_lost {
                warn!("event bus subscription ended; stopping the proxy");
                self.proxy.stop().await;
                return Err(Error::BusLost);
            }
        }
    }

    fn apply(&mut self, event: &AnyEvent) -> bool {
        let changed = apply_event(&mut self.topology, &mut self.tenants, event);
        debug!(topic = %event.topic(), changed, "topology event");
        changed
    }

    /// The proxy died: start it again on the configuration in service.
    async fn restart(&mut self, exit: std::process::ExitStatus) -> Result<()> {
        error!(proxy = %self.r.kind, %exit, output = %self.proxy.diagnostics(), "the proxy exited; restarting it");
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=5 {
            tokio::time::sleep(delay).await;
            // The configuration file in service has the generation in service.
            let generation = self.status.borrow().generation;
            match self.proxy.start(generation, self.r.reload_timeout).await {
                Ok(()) => return Ok(()),
                Err(e) => error!(attempt, error = %error_chain(&e), "cannot restart the proxy"),
            }
            delay *= 2;
        }
        Err(Error::NotRestarted(self.r.kind))
    }

    /// Renders the topology; if the configuration differs from the one in service,
    /// validates it and reloads the proxy with it.
    async fn reconfigure(&mut self) {
        let table = Arc::new(build(&self.topology, &self.tenants, &self.registry));
        self.registry.retain(&table);
        let mut plan = plan(&table, &self.tenants);
        let (comparable, more) = render(&self.r, &plan, 0);
        plan.warnings.extend(more);
        let warnings: BTreeSet<String> = plan.warnings.iter().cloned().collect();
        for w in warnings.difference(&self.warnings) {
            warn!("{w}");
        }
        self.warnings = warnings;
        if comparable == self.in_service {
            // Back to what is in service (e.g. the member that broke it is gone).
            self.status.send_if_modified(|s| s.rejected.take().is_some());
            *self.applied.write().unwrap() = Some(Arc::new(Applied { table, plan }));
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let (text, _) = render(&self.r, &plan, generation);
        let candidate = candidate_path(&self.r);
        if let Err(e) = proxy::write_atomically(&candidate, &text) {
            error!(generation, file = %candidate.display(), error = %e, "cannot write the configuration");
            return self.reject(generation, format!("cannot write {}: {e}", candidate.display()));
        }
        if let Err(output) = proxy::validate(self.r.kind, &self.r.binary, &candidate, &self.r.run_dir).await {
            let kept = sibling(&self.r.config, ".rejected");
            let _ = std::fs::rename(&candidate, &kept);
            error!(
                generation,
                validator = %output,
                rejected = %kept.display(),
                "the generated configuration is invalid; the previous one stays in service"
            );
            return self.reject(generation, output);
        }
        if let Err(e) = std::fs::rename(&candidate, &self.r.config) {
            error!(generation, error = %e, "cannot put the configuration in place");
            return self.reject(generation, e.to_string());
        }
        let started = Instant::now();
        self.proxy.reload();
        if let Err(e) = self.proxy.wait_generation(generation, self.r.reload_timeout).await {
            error!(generation, error = %error_chain(&e), "the reload did not take effect; the previous configuration stays in service");
            return self.reject(generation, error_chain(&e));
        }
        let members: BTreeSet<String> = plan.members().into_iter().map(String::from).collect();
        // nginx without its stream module leaves TCP ports out (a warning says so).
        let tcp_served = self.r.kind == Kind::Haproxy || self.r.nginx_stream != crate::StreamModule::Missing;
        let tcp = plan.tcp.iter().map(|f| f.port).filter(|_| tcp_served);
        let ports: BTreeSet<u16> = plan.http.iter().map(|f| f.port).chain(tcp).collect();
        let before = self.status.borrow().members.clone();
        for m in members.difference(&before) {
            info!(member_id = %m, "member added: routing requests to it");
        }
        for m in before.difference(&members) {
            info!(member_id = %m, "member removed: no new requests, those in flight finish");
        }
        info!(proxy = %self.r.kind, generation, took = ?started.elapsed(), ports = ?ports, "configuration reloaded");
        if let Some(m) = &self.r.metrics {
            m.reloaded(true);
        }
        self.in_service = comparable;
        *self.applied.write().unwrap() = Some(Arc::new(Applied { table, plan }));
        self.status.send_replace(Status { generation, members, ports, rejected: None });
    }

    fn reject(&mut self, generation: u64, reason: String) {
        if let Some(m) = &self.r.metrics {
            m.reloaded(false);
        }
        self.status.send_modify(|s| s.rejected = Some(Rejected { generation, reason }));
    }
}

enum Wake {
    Shutdown,
    ProxyExited(std::process::ExitStatus),
    /// Boxed: events are large, the other variants small.
    Event(Option<Box<AnyEvent>>),
}

/// `<config><suffix>`, next to it.
fn sibling(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn candidate_path(r: &Resolved) -> std::path::PathBuf {
    sibling(&r.config, ".candidate")
}

/// Every interval, reads requests in flight from the proxy and publishes them.
pub(crate) async fn publish_in_flight(r: Resolved, applied: AppliedSlot, bus: Bus) {
    let mut tick = tokio::time::interval(r.stats_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(applied) = applied.read().unwrap().clone() else { continue };
        let events = match r.kind {
            Kind::Haproxy => haproxy_in_flight(&r, &applied).await,
            Kind::Nginx => nginx_in_flight(&r, &applied).await,
        };
        let events = match events {
            Ok(events) => {
                failing = false;
                if let Some(m) = &r.metrics {
                    let mut per_cluster: BTreeMap<&str, i64> = BTreeMap::new();
                    for e in events.iter().filter(|e| e.member_id.is_none()) {
                        *per_cluster.entry(e.cluster_id.as_str()).or_default() += e.in_flight as i64;
                    }
                    m.in_flight(per_cluster);
                }
                events
            }
            Err(e) => {
                // Once per outage: the socket is briefly away during a reload.
                if !failing {
                    warn!(proxy = %r.kind, error = %e, "cannot read requests in flight from the proxy");
                }
                failing = true;
                continue;
            }
        };
        for event in events {
            if let Err(e) = bus.publish(&event).await {
                warn!(error = %e, "cannot publish in-flight requests");
                break;
            }
        }
    }
}

/// `show stat` on the stats socket: `scur` + `qcur` of each server is its member's figure.
async fn haproxy_in_flight(
    r: &Resolved,
    applied: &Applied,
) -> Result<Vec<stratos_bus::events::InFlightRequestsEvent>, String> {
    let socket = r.run_dir.join("haproxy.sock");
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(&socket).await?;
        stream.write_all(b"show stat\n").await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| format!("{} did not answer within 2 s", socket.display()))?
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let rows = haproxy::parse_show_stat(&answer)?;
    let mut members: BTreeMap<&str, MemberSnapshot> = BTreeMap::new();
    for b in &applied.plan.backends {
        for s in &b.servers {
            members.entry(&s.member_id).or_insert_with(|| MemberSnapshot {
                member_id: s.member_id.clone(),
                cluster_id: b.cluster_id.clone(),
                network_partition_id: s.network_partition_id.clone(),
                in_flight: 0,
                requests: 0,
                ejected: false,
                routable: true,
            });
        }
    }
    for row in rows {
        let Some(server) =
            applied.plan.backend(&row.proxy).and_then(|b| b.servers.iter().find(|s| s.name == row.server))
        else {
            continue;
        };
        if let Some(m) = members.get_mut(server.member_id.as_str()) {
            m.in_flight += row.scur + row.qcur;
        }
    }
    let snapshots: Vec<MemberSnapshot> = members.into_values().collect();
    Ok(in_flight_events(&applied.table, &snapshots, now_millis(), true))
}

/// `stub_status`: the server-wide total, attributed to clusters (see [`nginx::cluster_in_flight`]).
async fn nginx_in_flight(
    r: &Resolved,
    applied: &Applied,
) -> Result<Vec<stratos_bus::events::InFlightRequestsEvent>, String> {
    let (code, body) = proxy::local_get(r.status_port, "/stub_status").await.map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("stub_status answered {code}"));
    }
    let status = nginx::parse_stub_status(&body)?;
    Ok(nginx::cluster_in_flight(status.in_flight(), &applied.plan, now_millis()))
}
