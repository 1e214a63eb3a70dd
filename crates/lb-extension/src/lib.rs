//! Load balancer extensions: HAProxy or nginx as the load balancer, configured from the
//! topology (`stratos lb-extension --kind haproxy|nginx`), as Apache Stratos' LB
//! extensions did.
//!
//! The extension follows `topology/#` and `tenant/#` like the built-in load balancer
//! (the same [`routing::apply_event`](stratos_lb::routing::apply_event) and
//! [`RoutingTable`](stratos_lb::routing::RoutingTable): the routing plan the two share,
//! and nothing else of the proxy's), and after a burst of events settles
//! (`--debounce`) it:
//! 1. turns the table into a [`plan::Plan`] and renders the proxy's configuration
//!    ([`haproxy::render`], [`nginx::render`]: pure functions);
//! 2. writes it atomically next to `--config`, checks it with the proxy's own validator
//!    ([`validate`]) and, if valid, renames it over `--config`; an invalid one is kept
//!    as `<config>.rejected`, logged with the validator's output, and the previous
//!    configuration stays in service;
//! 3. reloads the proxy gracefully ([`proxy`]: HAProxy master-worker + SIGUSR2, nginx
//!    + SIGHUP) and waits until the local status port answers the new generation.
//!
//! Every `--stats-interval` it reads requests in flight from the proxy (HAProxy's
//! stats socket, `show stat`: `scur` + `qcur` per server; nginx's `stub_status`, see
//! [`nginx`] for how the total is attributed) and publishes `InFlightRequestsEvent`s as
//! the built-in load balancer does. The proxy is stopped (SIGTERM) when the extension
//! stops.

mod controller;
mod error;
pub mod haproxy;
pub mod nginx;
pub mod plan;
pub mod proxy;

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stratos_bus::Bus;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use nginx::StreamModule;
pub use proxy::validate;
use stratos_model::duration::{self, VALUE_NAME as DURATION};

/// Which proxy the extension runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Haproxy,
    Nginx,
}

impl Kind {
    /// Where Debian installs it.
    pub fn default_binary(self) -> PathBuf {
        PathBuf::from(match self {
            Kind::Haproxy => "/usr/sbin/haproxy",
            Kind::Nginx => "/usr/sbin/nginx",
        })
    }

    fn config_file(self) -> &'static str {
        match self {
            Kind::Haproxy => "haproxy.cfg",
            Kind::Nginx => "nginx.conf",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Haproxy => "haproxy",
            Kind::Nginx => "nginx",
        })
    }
}

/// The extension's settings (the flags of `stratos lb-extension`).
#[derive(Debug, Clone, clap::Args)]
pub struct ExtensionConfig {
    /// The proxy to run.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Where to write the generated configuration [default: <run-dir>/haproxy.cfg or nginx.conf].
    #[arg(long = "config")]
    pub config: Option<PathBuf>,
    /// The proxy's executable [default: /usr/sbin/haproxy or /usr/sbin/nginx].
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Address the proxy ports listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// How often requests in flight are read from the proxy and published, e.g. 5s.
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "5s")]
    pub stats_interval: Duration,
    /// Directory for the proxy's pid file, stats socket, logs and temporary files [default: .stratos/lb-<kind>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Local port (127.0.0.1) of the proxy's status endpoint: the configuration generation
    /// and, for nginx, stub_status. 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    pub status_port: u16,
    /// Quiet time after a topology event before the configuration is regenerated, so a
    /// burst of events costs one reload.
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "200ms")]
    pub debounce: Duration,
    /// How long a reload may take to be in service before it counts as failed.
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "10s")]
    pub reload_timeout: Duration,
}

impl ExtensionConfig {
    /// The defaults of the flags, for `kind` with its files in `run_dir`.
    pub fn new(kind: Kind, run_dir: impl Into<PathBuf>) -> ExtensionConfig {
        ExtensionConfig {
            kind,
            config: None,
            binary: None,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            stats_interval: Duration::from_secs(5),
            run_dir: Some(run_dir.into()),
            status_port: 0,
            debounce: Duration::from_millis(200),
            reload_timeout: Duration::from_secs(10),
        }
    }
}

/// What a renderer needs besides the plan.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Address of the proxy ports.
    pub listen: IpAddr,
    /// Local port of the status endpoint.
    pub status_port: u16,
    /// Absolute; holds the pid file, socket, logs and temporary files.
    pub run_dir: PathBuf,
    /// Answered on the status port, to see a reload take effect.
    pub generation: u64,
    pub nginx_stream: StreamModule,
}

/// A path or word in double quotes (both HAProxy and nginx read them).
pub(crate) fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// `ip:port`, with brackets around an IPv6 address (both proxies read that).
pub(crate) fn addr_with_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// The state of the extension, as it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The generation of the configuration in service (0: the initial one, no proxy ports).
    pub generation: u64,
    /// Members the configuration in service routes to.
    pub members: BTreeSet<String>,
    /// Proxy ports of the configuration in service.
    pub ports: BTreeSet<u16>,
    /// The latest configuration that could not be put in service, while the topology
    /// still asks for it.
    pub rejected: Option<Rejected>,
}

/// A configuration the validator refused or the proxy did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub generation: u64,
    /// The validator's (or the proxy's) output.
    pub reason: String,
}

/// Settings resolved at start: absolute paths, the status port, the binary's abilities.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub kind: Kind,
    pub binary: PathBuf,
    pub config: PathBuf,
    pub run_dir: PathBuf,
    pub listen: IpAddr,
    pub status_port: u16,
    pub stats_interval: Duration,
    pub debounce: Duration,
    pub reload_timeout: Duration,
    pub nginx_stream: StreamModule,
    /// Reloads and in-flight figures counted here, if the process serves metrics.
    pub metrics: Option<stratos_metrics::ExtensionMetrics>,
}

impl Resolved {
    pub fn options(&self, generation: u64) -> RenderOptions {
        RenderOptions {
            listen: self.listen,
            status_port: self.status_port,
            run_dir: self.run_dir.clone(),
            generation,
            nginx_stream: self.nginx_stream.clone(),
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(Error::io("cannot read the current directory"))?.join(path)
    })
}

async fn resolve(config: ExtensionConfig) -> Result<Resolved> {
    let kind = config.kind;
    let binary = config.binary.unwrap_or_else(|| kind.default_binary());
    if !binary.exists() {
        return Err(Error::NotInstalled { kind, path: binary });
    }
    let run_dir = absolute(&config.run_dir.unwrap_or_else(|| PathBuf::from(format!(".stratos/lb-{kind}"))))?;
    let text = run_dir.to_string_lossy();
    if text.chars().any(|c| matches!(c, '"' | '\\' | '$' | '\'' | '#' | ';' | '{' | '}') || c.is_control()) {
        return Err(Error::UnquotableRunDir(text.into_owned()));
    }
    std::fs::create_dir_all(&run_dir).map_err(Error::io(format!("cannot create {}", run_dir.display())))?;
    // nginx workers may run as another user (nobody, when started as root): they need
    // to reach the temporary directories under it.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755));
    }
    let config_path = absolute(&config.config.unwrap_or_else(|| run_dir.join(kind.config_file())))?;
    if let Some(dir) = config_path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    }
    let status_port = match config.status_port {
        0 => TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(Error::io("cannot find a free port for the status endpoint"))?
            .port(),
        port => port,
    };
    let nginx_stream = match kind {
        Kind::Haproxy => StreamModule::Missing,
        Kind::Nginx => {
            let out = tokio::process::Command::new(&binary)
                .arg("-V")
                .output()
                .await
                .map_err(Error::io(format!("cannot run {} -V", binary.display())))?;
            StreamModule::detect(&String::from_utf8_lossy(&out.stderr))
        }
    };
    Ok(Resolved {
        kind,
        binary,
        config: config_path,
        run_dir,
        listen: config.listen,
        status_port,
        stats_interval: config.stats_interval,
        debounce: config.debounce,
        reload_timeout: config.reload_timeout,
        nginx_stream,
        metrics: None,
    })
}

/// A running extension: the proxy and the tasks that configure it and read its figures.
/// [`Extension::stop`] stops the proxy; dropping the handle sends it SIGTERM.
pub struct Extension {
    resolved: Resolved,
    status: watch::Receiver<Status>,
    shutdown: watch::Sender<bool>,
    pid: Arc<AtomicU32>,
    controller: Option<JoinHandle<Result<()>>>,
    stats: JoinHandle<()>,
}

/// Starts the proxy (with a configuration without proxy ports) and the tasks that
/// follow the topology on `bus` and publish in-flight figures. Fails when the proxy is
/// missing or does not start.
pub async fn start(bus: Bus, config: ExtensionConfig) -> Result<Extension> {
    start_with_metrics(bus, config, None).await
}

/// [`start`], counting reloads and in-flight figures into `metrics`.
pub async fn start_with_metrics(
    bus: Bus,
    config: ExtensionConfig,
    metrics: Option<stratos_metrics::ExtensionMetrics>,
) -> Result<Extension> {
    let resolved = Resolved { metrics, ..resolve(config).await? };
    let subscribe = |filter: &'static str| {
        let bus = &bus;
        async move { bus.subscribe(filter).await.map_err(|source| Error::Subscribe { filter, source }) }
    };
    let topology = subscribe("topology/#").await?;
    let tenants = subscribe("tenant/#").await?;
    let (status_tx, status) = watch::channel(Status::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let controller = controller::Controller::start(resolved.clone(), status_tx).await?;
    let pid = controller.pid();
    let applied = controller.applied();
    tracing::info!(
        proxy = %resolved.kind,
        config = %resolved.config.display(),
        status = %SocketAddr::from((Ipv4Addr::LOCALHOST, resolved.status_port)),
        "load balancer extension started; waiting for the topology"
    );
    let stats = tokio::spawn(controller::publish_in_flight(resolved.clone(), applied, bus));
    let controller = tokio::spawn(controller.run(topology, tenants, shutdown_rx));
    Ok(Extension { resolved, status, shutdown, pid, controller: Some(controller), stats })
}

/// Runs the extension until the event bus goes away.
pub async fn run(bus: Bus, config: ExtensionConfig) -> Result<()> {
    let mut extension = start(bus, config).await?;
    extension.finished().await
}

impl Extension {
    pub fn kind(&self) -> Kind {
        self.resolved.kind
    }

    /// The configuration file in service.
    pub fn config_path(&self) -> &Path {
        &self.resolved.config
    }

    pub fn run_dir(&self) -> &Path {
        &self.resolved.run_dir
    }

    /// The local status endpoint (`/stratos-generation`; nginx: `/stub_status`).
    pub fn status_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.resolved.status_port))
    }

    /// The proxy's master process (None while it is not running).
    pub fn proxy_pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|&p| p > 0)
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits up to `timeout` until `check` accepts the status; returns the status then.
    pub async fn wait_for(&self, timeout: Duration, mut check: impl FnMut(&Status) -> bool) -> Option<Status> {
        let mut changes = self.status.clone();
        tokio::time::timeout(timeout, async {
            loop {
                let status = changes.borrow_and_update().clone();
                if check(&status) {
                    return status;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .ok()
    }

    /// Resolves when the extension ends by itself (the event bus is gone, or the proxy
    /// cannot be restarted).
    pub async fn finished(&mut self) -> Result<()> {
        match self.controller.as_mut() {
            Some(controller) => {
                let result = controller.await;
                self.controller = None;
                result.unwrap_or_else(|e| Err(Error::Task(e)))
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the proxy (SIGTERM) and the extension's tasks.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(controller) = self.controller.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), controller).await;
        }
        self.stats.abort();
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
            proxy::send(self.pid.swap(0, Ordering::SeqCst), libc::SIGTERM);
        }
        self.stats.abort();
    }
}
