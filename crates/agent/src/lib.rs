//! The cartridge agent: the entry point of every member (`stratos agent`).
//!
//! It deploys the member's artifacts (git), starts the app, reports the member's
//! lifecycle on the bus (`InstanceStartedEvent`, then `InstanceActivatedEvent` once every
//! port answers and has passed its health check once), checks that the app keeps answering (`InstanceUnhealthyEvent` after the
//! cartridge's `failureThreshold` of failed health checks in a row), ships the app's output
//! (`LogEvent`, and `app.log` in the member directory), publishes health stats, and drains
//! the member on request
//! (`InstanceCleanupMemberEvent` → `InstanceMaintenanceModeEvent` → the controller's
//! `MemberMaintenanceModeEvent`, on which load balancers stop routing to the member, and a
//! grace → cleanup → `InstanceReadyToShutdownEvent` → exit 0).
//!
//! The IaaS driver starts it in the member's directory with the `STRATOS_*` environment
//! that [`AgentConfig`] documents, in a process group of its own; the app runs in that
//! same group, so the driver stops the whole member by signalling the group.

mod app;
mod error;
mod git;
mod logs;
mod probe;
mod tracker;
pub mod usage;
mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratos_bus::events::{
    InstanceActivatedEvent, InstanceCleanupClusterEvent, InstanceCleanupMemberEvent, InstanceMaintenanceModeEvent,
    InstanceReadyToShutdownEvent, InstanceStartFailedEvent, InstanceStartedEvent, InstanceUnhealthyEvent,
    MemberHealthStatEvent, MemberMaintenanceModeEvent,
};
use stratos_bus::{now_millis, AnyEvent, Bus, BusError, Credentials, Event, MemberRef};
use stratos_model::duration::{self, VALUE_NAME as DURATION};
use stratos_model::{HealthCheck, Protocol, ResolvedHealthCheck};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{sleep, Instant};
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::app::{describe, App};
pub use crate::error::AgentError;
use crate::git::GitOptions;
use crate::logs::LogSink;
use crate::watch::{PortCheck, Watch};

/// How long the agent keeps trying to reach the broker at start.
const CONNECT_FOR: Duration = Duration::from_secs(60);
/// How long the app has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the cleanup command may run.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the agent repeats its lifecycle state, so that a restarted broker or
/// controller converges (the events are idempotent).
const REPUBLISH_EVERY: Duration = Duration::from_secs(30);
/// How long a draining member waits for the controller to announce its maintenance mode
/// (`MemberMaintenanceModeEvent`, which takes it out of the load balancers' rotation).
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(5);
/// How often the ports are probed until they answer.
const PROBE_EVERY: Duration = Duration::from_millis(150);
/// The artifacts' directory, in the member directory.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// The app's output, in the member directory.
pub const APP_LOG: &str = "app.log";

/// The agent's settings: the environment the IaaS driver sets (each also a flag).
#[derive(Debug, Clone, clap::Args)]
pub struct AgentConfig {
    /// The member this agent runs.
    #[arg(long, env = "STRATOS_MEMBER_ID")]
    pub member_id: String,
    /// The member's cluster.
    #[arg(long, env = "STRATOS_CLUSTER_ID")]
    pub cluster_id: String,
    /// The member's service (cartridge type).
    #[arg(long, env = "STRATOS_SERVICE_NAME")]
    pub service_name: String,
    /// The application the cluster belongs to.
    #[arg(long, env = "STRATOS_APP_ID")]
    pub app_id: String,
    /// The tenant that owns the member.
    #[arg(long, env = "STRATOS_TENANT_ID", allow_negative_numbers = true, default_value_t = stratos_model::SUPER_TENANT)]
    pub tenant_id: i64,
    /// The member's network partition.
    #[arg(long, env = "STRATOS_NETWORK_PARTITION_ID")]
    pub network_partition_id: String,
    /// The member's partition.
    #[arg(long, env = "STRATOS_PARTITION_ID")]
    pub partition_id: String,
    /// The event bus: mqtt://HOST:PORT.
    #[arg(long, env = "STRATOS_BROKER")]
    pub broker: String,
    /// The member's username on the event bus, issued by the controller when it started the member.
    /// Its password comes from STRATOS_BUS_PASSWORD only (a command line is readable by every user).
    #[arg(long, env = "STRATOS_BUS_USERNAME")]
    pub bus_username: Option<String>,
    // The member's bus password: from STRATOS_BUS_PASSWORD, never a flag.
    #[arg(skip = BusPassword::from_env())]
    pub bus_password: Option<BusPassword>,
    /// The app's command, a JSON array: ["python3","-m","http.server","40123"].
    // A fully qualified `Vec` makes clap take one value, parsed as a whole.
    #[arg(long, env = "STRATOS_COMMAND", value_parser = parse_command)]
    pub command: ::std::vec::Vec<String>,
    /// The app's ports, a JSON array: [{"protocol":"http","port":8080,"hostPort":40123}]. The member is
    /// activated once every hostPort (except UDP ones) accepts TCP connections on --host.
    #[arg(long, env = "STRATOS_PORTS", value_parser = parse_ports, default_value = "[]")]
    pub ports: ::std::vec::Vec<PortMapping>,
    /// Where the app's ports are probed.
    #[arg(long, env = "STRATOS_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// A git repository cloned into ./artifacts (the app then runs there) and pulled on ArtifactUpdatedEvent:
    /// https://, http://, ssh://, git:// or scp-style git@host:path.
    #[arg(long, env = "STRATOS_ARTIFACT_REPO")]
    pub artifact_repo: Option<String>,
    /// How long a clone or a pull may take before git (and what it started) is killed; a
    /// clone that times out fails the member's start.
    #[arg(long, env = "STRATOS_GIT_TIMEOUT", value_name = DURATION, value_parser = duration::positive, default_value = "1m")]
    pub git_timeout: Duration,
    /// Also clone local paths and file:// repositories (the platform's --allow-local-repos).
    #[arg(long, env = "STRATOS_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,
    /// The app's health checks, a JSON array with one entry per declared port:
    /// [{"port":8080,"kind":"http","path":"/","intervalSeconds":5,"timeoutSeconds":2,"failureThreshold":3}]
    /// (kinds: http, tcp with optional "send"/"expect", tls, none). A port without an entry gets its
    /// protocol's default: http → GET /, https → TLS hello, tcp → connect, udp → none.
    #[arg(long, env = "STRATOS_HEALTH_CHECKS", value_parser = parse_health_checks, default_value = "[]")]
    pub health_checks: ::std::vec::Vec<ResolvedHealthCheck>,
    /// A command (JSON array) run, for up to 30 s, when the member is cleaned up, before the app is stopped.
    #[arg(long, env = "STRATOS_CLEANUP_COMMAND", value_parser = parse_command)]
    pub cleanup_command: Option<::std::vec::Vec<String>>,
    /// Time between health stats. (Its variable is not STRATOS_HEALTH_INTERVAL, the
    /// platform's health service's, which members inherit from `stratos up`.)
    #[arg(long, env = "STRATOS_HEALTH_STATS_INTERVAL", value_name = DURATION, value_parser = duration::positive, default_value = "15s")]
    pub health_interval: Duration,
    /// How long the app has to listen on its ports before the start counts as failed.
    #[arg(long, env = "STRATOS_ACTIVATION_TIMEOUT", value_name = DURATION, value_parser = duration::positive, default_value = "5m")]
    pub activation_timeout: Duration,
    /// How long the app keeps serving, when the member is cleaned up, after the controller
    /// announced its maintenance mode: for load balancers to stop routing to it.
    #[arg(long, env = "STRATOS_DRAIN_GRACE", value_name = DURATION, value_parser = duration::parse, default_value = "1s")]
    pub drain_grace: Duration,
    #[command(flatten)]
    pub usage: UsageConfig,
}

/// How the agent measures its member (the health stats' load and memory).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct UsageConfig {
    /// Where the member's CPU and memory figures come from: its container's cgroup, or the app's
    /// process tree (auto: the cgroup inside a container, the process tree elsewhere).
    #[arg(long = "usage-source", env = "STRATOS_USAGE_SOURCE", value_enum, default_value_t = usage::SourceChoice::Auto)]
    pub source: usage::SourceChoice,
    /// The member's CPU limit in cores (0.5, 2), which a load of 100% stands for when the cgroup
    /// has none of its own (default: one core).
    #[arg(long = "cpu-limit", env = "STRATOS_CPU_LIMIT", value_parser = parse_cores)]
    pub cpu_limit: Option<f64>,
}

fn parse_cores(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(cores) if cores.is_finite() && cores > 0.0 => Ok(cores),
        _ => Err(format!("{s:?} is not a number of cores above 0 (0.5, 2)")),
    }
}

/// The member's bus password, from `STRATOS_BUS_PASSWORD`. `Debug` never shows it.
#[derive(Clone)]
pub struct BusPassword(String);

impl BusPassword {
    pub const ENV: &'static str = "STRATOS_BUS_PASSWORD";

    fn from_env() -> Option<BusPassword> {
        std::env::var(Self::ENV).ok().filter(|p| !p.is_empty()).map(BusPassword)
    }
}

impl std::fmt::Debug for BusPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One of the app's ports (`STRATOS_PORTS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(default = "http")]
    pub protocol: String,
    /// The port the cartridge defines.
    pub port: u16,
    /// Where the app actually listens on the host (the same as `port` when absent).
    #[serde(default)]
    pub host_port: Option<u16>,
}

fn http() -> String {
    "http".into()
}

/// A port's protocol as the cartridge names it; unknown ones are taken for TCP.
fn protocol_of(name: &str) -> Protocol {
    match name.to_ascii_lowercase().as_str() {
        "http" => Protocol::Http,
        "https" => Protocol::Https,
        "udp" => Protocol::Udp,
        _ => Protocol::Tcp,
    }
}

impl PortMapping {
    /// The port probed for activation; `None` for UDP, which cannot be probed.
    pub fn probe_port(&self) -> Option<u16> {
        (!self.protocol.eq_ignore_ascii_case("udp")).then_some(self.host_port.unwrap_or(self.port))
    }
}

fn parse_command(s: &str) -> Result<Vec<String>, String> {
    let command: Vec<String> =
        serde_json::from_str(s).map_err(|e| format!("expected a JSON array of strings ({e})"))?;
    if command.first().is_none_or(|p| p.is_empty()) {
        return Err("the command is empty".into());
    }
    Ok(command)
}

fn parse_health_checks(s: &str) -> Result<Vec<ResolvedHealthCheck>, String> {
    serde_json::from_str(s).map_err(|e| {
        format!("expected a JSON array of {{\"port\":8080,\"kind\":\"http\",\"path\":\"/\",\"intervalSeconds\":5,\"timeoutSeconds\":2,\"failureThreshold\":3}} ({e})")
    })
}

fn parse_ports(s: &str) -> Result<Vec<PortMapping>, String> {
    serde_json::from_str(s).map_err(|e| {
        format!("expected a JSON array of {{\"protocol\":\"http\",\"port\":8080,\"hostPort\":40123}} ({e})")
    })
}

impl AgentConfig {
    /// Every probed port with its check: the one given for it, else its protocol's default.
    pub fn port_checks(&self) -> Vec<PortCheck> {
        self.ports
            .iter()
            .filter_map(|p| {
                let host_port = p.probe_port()?;
                let declared = u32::from(p.port);
                let check = self
                    .health_checks
                    .iter()
                    .find(|c| c.port == declared)
                    .cloned()
                    .unwrap_or_else(|| HealthCheck::resolve(declared, protocol_of(&p.protocol), None, None));
                Some(PortCheck { host_port, check })
            })
            .collect()
    }

    fn git_options(&self) -> GitOptions {
        GitOptions { timeout: self.git_timeout, allow_local: self.allow_local_repos }
    }

    pub fn member_ref(&self) -> MemberRef {
        MemberRef {
            service_name: self.service_name.clone(),
            cluster_id: self.cluster_id.clone(),
            member_id: self.member_id.clone(),
            network_partition_id: self.network_partition_id.clone(),
            partition_id: self.partition_id.clone(),
        }
    }
}

/// Runs the agent in the current directory (the member's) until the member ends.
///
/// `Ok(())` (exit 0): the member was cleaned up (`InstanceReadyToShutdownEvent` sent), or the
/// agent was stopped by SIGTERM/SIGINT. `Err` (exit non-zero): the app could not start
/// (`InstanceStartFailedEvent` sent), or it exited on its own after activation, or the bus
/// could not be reached.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let span = info_span!("agent", member_id = %cfg.member_id);
    Agent::new(cfg).run().instrument(span).await
}

struct Agent {
    cfg: AgentConfig,
    member: MemberRef,
}

/// What ended the member's main loop.
enum End {
    Cleanup(&'static str),
    Signal(&'static str),
}

impl Agent {
    fn new(cfg: AgentConfig) -> Agent {
        let member = cfg.member_ref();
        Agent { cfg, member }
    }

    async fn run(self) -> Result<(), AgentError> {
        let cfg = &self.cfg;
        let mut signals = Signals::new().map_err(AgentError::Signals)?;
        let member_dir = std::env::current_dir().map_err(AgentError::WorkingDirectory)?;
        info!(
            cluster_id = %cfg.cluster_id,
            service = %cfg.service_name,
            app_id = %cfg.app_id,
            command = ?cfg.command,
            dir = %member_dir.display(),
            "cartridge agent starting"
        );

        let bus = tokio::select! {
            biased;
            sig = signals.recv() => {
                info!(signal = sig, "stopped before reaching the event bus");
                return Ok(());
            }
            bus = connect(cfg) => bus?,
        };
        // What is addressed to this member and to its cluster; the broker refuses a member
        // anything wider.
        let mut notifier = bus
            .subscribe_many(&[
                format!("{}/{}/#", InstanceCleanupMemberEvent::PREFIX, cfg.member_id),
                format!("{}/{}/#", InstanceCleanupClusterEvent::PREFIX, cfg.cluster_id),
            ])
            .await?;
        let logs = LogSink::open(&member_dir.join(APP_LOG), bus.clone(), self.member.clone(), cfg.tenant_id)
            .map_err(|source| AgentError::AppLog { path: member_dir.join(APP_LOG), source })?;

        let app_dir = match &cfg.artifact_repo {
            None => member_dir.clone(),
            Some(repo) => {
                let dir = member_dir.join(ARTIFACTS_DIR);
                let deployed = tokio::select! {
                    biased;
                    sig = signals.recv() => {
                        info!(signal = sig, "stopped while deploying the artifacts");
                        return Ok(());
                    }
                    deployed = git::deploy(repo, &dir, cfg.git_options()) => deployed,
                };
                match deployed {
                    Ok(summary) => {
                        info!(%summary, "artifacts deployed");
                        logs.agent(&summary);
                        dir
                    }
                    Err(e) => return self.start_failed(&bus, &logs, format!("cannot deploy the artifacts: {e}")).await,
                }
            }
        };

        let mut app = match App::spawn(&cfg.command, &app_dir, &logs) {
            Ok(app) => app,
            Err(e) => return self.start_failed(&bus, &logs, e).await,
        };
        info!(pid = app.pid(), "app started");
        publish(&bus, &InstanceStartedEvent { member: self.member.clone() }).await;
        let _health = AbortOnDrop(tokio::spawn(
            health_loop(bus.clone(), self.member.clone(), app.pid(), cfg.health_interval, cfg.usage).in_current_span(),
        ));

        let ports: Vec<u16> = cfg.ports.iter().filter_map(PortMapping::probe_port).collect();
        let port_checks = cfg.port_checks();
        let failing_check = std::cell::Cell::new(None);
        let probe = wait_until_serving(&cfg.host, &ports, &port_checks, &failing_check);
        tokio::pin!(probe);
        let activation_timeout = cfg.activation_timeout;
        let deadline = sleep(activation_timeout);
        tokio::pin!(deadline);
        let mut activated = false;
        let mut republish = tokio::time::interval_at(Instant::now() + REPUBLISH_EVERY, REPUBLISH_EVERY);
        let git_lock = Arc::new(tokio::sync::Mutex::new(()));
        let mut notifier_open = true;
        // The app's health checks, from its activation on; the ports found unhealthy.
        let mut watch: Option<Watch> = None;
        let mut unhealthy: std::collections::BTreeMap<u32, String> = Default::default();

        let end = loop {
            tokio::select! {
                // Signals first: when the driver signals the whole group, the app's exit
                // must not be taken for a crash.
                biased;
                sig = signals.recv() => break End::Signal(sig),
                event = notifier.recv(), if notifier_open => match event {
                    None => notifier_open = false,
                    Some(AnyEvent::InstanceCleanupMemberEvent(e)) if e.member_id == cfg.member_id => {
                        break End::Cleanup("InstanceCleanupMemberEvent")
                    }
                    Some(AnyEvent::InstanceCleanupClusterEvent(e)) if e.cluster_id == cfg.cluster_id => {
                        break End::Cleanup("InstanceCleanupClusterEvent")
                    }
                    Some(AnyEvent::ArtifactUpdatedEvent(e)) if e.cluster_id == cfg.cluster_id => {
                        self.update_artifacts(&app_dir, &logs, &git_lock)
                    }
                    Some(_) => {}
                },
                status = app.wait() => {
                    let status = status.map_err(AgentError::WaitForApp)?;
                    app.drain(Duration::from_secs(1)).await;
                    if !activated {
                        let error = with_tail(
                            format!("`{}` {} before listening on {}", cfg.command[0], describe(status), ports_text(&ports)),
                            &logs,
                        );
                        return self.start_failed(&bus, &logs, error).await;
                    }
                    let ended = describe(status);
                    let message = format!("app {ended}");
                    warn!(%status, "{message}");
                    logs.agent(&message);
                    logs.flush(Duration::from_secs(5)).await;
                    // The last line, confirmed by the broker: the lines before it reached it too.
                    publish_confirmed(&bus, &logs.event("stderr", "[stratos-agent] the agent stops".into())).await;
                    bus.close().await;
                    return Err(AgentError::AppEnded(ended));
                }
                () = &mut probe, if !activated => {
                    activated = true;
                    info!(ports = %ports_text(&ports), "the app listens and passes its health checks; member activated");
                    publish(&bus, &InstanceActivatedEvent { member: self.member.clone() }).await;
                    watch = Some(Watch::start(&cfg.host, port_checks.clone()));
                }
                verdict = next_verdict(&mut watch) => {
                    if verdict.unhealthy {
                        warn!(port = verdict.port, reason = %verdict.reason, "the app is unhealthy");
                        logs.agent(&format!("unhealthy: {}", verdict.reason));
                        unhealthy.insert(verdict.port, verdict.reason.clone());
                        publish(&bus, &InstanceUnhealthyEvent { member: self.member.clone(), reason: verdict.reason }).await;
                    } else if unhealthy.remove(&verdict.port).is_some() {
                        info!(port = verdict.port, "{}", verdict.reason);
                        logs.agent(&verdict.reason);
                    }
                }
                () = &mut deadline, if !activated => {
                    let error = match failing_check.take() {
                        Some(reason) => format!(
                            "the app listens on {} but did not pass its health check within {} s: {reason}",
                            ports_text(&ports),
                            activation_timeout.as_secs()
                        ),
                        None => format!(
                            "the app did not listen on {} within {} s",
                            ports_text(&ports),
                            activation_timeout.as_secs()
                        ),
                    };
                    app.stop(STOP_GRACE).await;
                    app.drain(Duration::from_secs(1)).await;
                    return self.start_failed(&bus, &logs, with_tail(error, &logs)).await;
                }
                _ = republish.tick() => {
                    debug!(activated, "repeating the lifecycle state");
                    publish(&bus, &InstanceStartedEvent { member: self.member.clone() }).await;
                    if activated {
                        publish(&bus, &InstanceActivatedEvent { member: self.member.clone() }).await;
                    }
                    if let Some(reason) = unhealthy.values().next() {
                        publish(&bus, &InstanceUnhealthyEvent { member: self.member.clone(), reason: reason.clone() }).await;
                    }
                }
            }
        };

        // Stopping the app is not a failure to report.
        drop(watch);
        match end {
            End::Signal(sig) => {
                info!(signal = sig, "stopping the app");
                logs.agent(&format!("{sig} received; stopping the app"));
                let status = app.stop(STOP_GRACE).await;
                app.drain(Duration::from_secs(1)).await;
                info!(status = ?status, "app stopped");
                logs.flush(Duration::from_secs(2)).await;
                bus.close().await;
                sleep(Duration::from_millis(100)).await;
                Ok(())
            }
            End::Cleanup(why) => {
                info!(event = why, "cleaning up the member");
                // Load balancers stop routing to the member on the controller's announcement:
                // the app serves on until then (and a grace), or requests would meet a closed port.
                let announcements = bus.subscribe(&MemberMaintenanceModeEvent::topic_for(&cfg.member_id)).await;
                publish(&bus, &InstanceMaintenanceModeEvent { member: self.member.clone() }).await;
                self.wait_out_of_rotation(announcements.ok()).await;
                if let Some(command) = &cfg.cleanup_command {
                    run_cleanup_command(command, &app_dir, &logs).await;
                }
                let status = app.stop(STOP_GRACE).await;
                app.drain(Duration::from_secs(1)).await;
                let stopped = status.map(describe).unwrap_or_else(|| "ended".into());
                info!(status = %stopped, "app stopped; member ready to shut down");
                logs.agent(&format!("cleanup ({why}): app {stopped}"));
                logs.flush(Duration::from_secs(5)).await;
                publish_confirmed(&bus, &InstanceReadyToShutdownEvent { member: self.member.clone() }).await;
                bus.close().await;
                Ok(())
            }
        }
    }

    /// Waits until the controller announced the member's maintenance mode (at most
    /// [`ANNOUNCED_WITHIN`]), then for the drain grace.
    async fn wait_out_of_rotation(&self, announcements: Option<stratos_bus::Subscription>) {
        let started = Instant::now();
        let announced = match announcements {
            Some(mut sub) => sub
                .wait_for(ANNOUNCED_WITHIN, |e| match e {
                    AnyEvent::MemberMaintenanceModeEvent(e) if e.member.member_id == self.cfg.member_id => Some(()),
                    _ => None,
                })
                .await
                .is_some(),
            None => false,
        };
        if !announced {
            warn!(waited = ?started.elapsed(), "the controller did not announce the maintenance mode; stopping anyway");
        }
        sleep(self.cfg.drain_grace).await;
        info!(waited = ?started.elapsed(), announced, "out of rotation; stopping the app");
    }

    /// Pulls the artifacts in the background (one pull at a time).
    fn update_artifacts(&self, app_dir: &Path, logs: &LogSink, lock: &Arc<tokio::sync::Mutex<()>>) {
        if self.cfg.artifact_repo.is_none() {
            warn!("ignoring ArtifactUpdatedEvent: the member has no artifact repository");
            return;
        }
        let (dir, logs, lock, options) = (app_dir.to_path_buf(), logs.clone(), lock.clone(), self.cfg.git_options());
        tokio::spawn(
            async move {
                let _one_at_a_time = lock.lock().await;
                match git::pull(&dir, options).await {
                    Ok(summary) => {
                        info!(%summary, "artifacts updated");
                        logs.agent(&summary);
                    }
                    Err(e) => {
                        warn!(error = %e, "artifact update failed");
                        logs.agent(&format!("artifact update failed: {e}"));
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Reports a failed start and ends the agent with an error.
    async fn start_failed(&self, bus: &Bus, logs: &LogSink, error: String) -> Result<(), AgentError> {
        error!(%error, "the app could not start");
        logs.agent(&error);
        logs.flush(Duration::from_secs(5)).await;
        publish_confirmed(bus, &InstanceStartFailedEvent { member: self.member.clone(), error: error.clone() }).await;
        bus.close().await;
        Err(AgentError::StartFailed(error))
    }
}

/// The next health change, once the checks run.
async fn next_verdict(watch: &mut Option<Watch>) -> watch::Verdict {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Connects to the bus, retrying for up to a minute (the broker may be restarting).
async fn connect(cfg: &AgentConfig) -> Result<Bus, AgentError> {
    let client_id = format!("agent-{}", cfg.member_id);
    let credentials = match (&cfg.bus_username, &cfg.bus_password) {
        (Some(username), Some(password)) => {
            Some(Credentials { username: username.clone(), password: password.0.clone() })
        }
        (None, None) => None,
        _ => return Err(AgentError::HalfCredentials(BusPassword::ENV)),
    };
    let give_up = Instant::now() + CONNECT_FOR;
    let mut backoff = Duration::from_millis(200);
    loop {
        match Bus::connect_with(&cfg.broker, &client_id, credentials.clone()).await {
            Ok(bus) => return Ok(bus),
            Err(e @ BusError::BadUrl(_)) => return Err(e.into()),
            Err(e) if Instant::now() + backoff < give_up => {
                warn!(broker = %cfg.broker, error = %e, retry_in = ?backoff, "cannot reach the event bus yet");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(source) => return Err(AgentError::BusUnreachable { after: CONNECT_FOR, source }),
        }
    }
}

/// Publishes an event, giving up (with a warning) if the bus does not take it within 10 s.
async fn publish<E: Event>(bus: &Bus, event: &E) {
    match tokio::time::timeout(Duration::from_secs(10), bus.publish(event)).await {
        Ok(Ok(())) => debug!(topic = %event.topic(), "published"),
        Ok(Err(e)) => warn!(topic = %event.topic(), error = %e, "cannot publish"),
        Err(_) => warn!(topic = %event.topic(), "the event bus did not take the event within 10 s"),
    }
}

/// Publishes an event and waits (up to 10 s) until the broker delivers it back: then it, and
/// everything published before it on this connection, reached the broker. For last words.
async fn publish_confirmed<E: Event>(bus: &Bus, event: &E) {
    let body = serde_json::to_vec(event).ok();
    let subscription = bus.subscribe(&event.topic()).await;
    publish(bus, event).await;
    let confirmed = match subscription {
        Ok(mut sub) => sub
            .wait_for(Duration::from_secs(10), |ev| (ev.encode().ok().map(|(_, b, _)| b) == body).then_some(()))
            .await
            .is_some(),
        Err(_) => {
            sleep(Duration::from_millis(500)).await;
            false
        }
    };
    if !confirmed {
        warn!(topic = %event.topic(), "the broker did not confirm the event");
    }
}

/// Health stats every `every`: the member's own CPU use and memory, in percent ([`usage`]).
async fn health_loop(bus: Bus, member: MemberRef, app_pid: u32, every: Duration, usage: UsageConfig) {
    let mut sampler = usage::Sampler::new(usage::Source::choose(usage.source, app_pid), usage.cpu_limit);
    info!(source = %sampler.source().describe(), "health stats measure the member");
    // The first figures cover a short while, not an instant.
    sleep(every.min(Duration::from_millis(500))).await;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let figures = sampler.sample();
        let event = MemberHealthStatEvent {
            member: member.clone(),
            load_average: figures.load_average,
            memory_consumption: figures.memory_consumption,
            timestamp: now_millis(),
        };
        publish(&bus, &event).await;
    }
}

/// Returns once every port accepts a TCP connection on `host`.
/// Waits until every port accepts a connection, then until each passes its health check
/// once (the last failure kept in `failing`): a member is Active only once it passes the
/// checks that watch it from then on, so that a rolling restart, which drains an old
/// member once its replacement is Active, never trades a serving member for a failing one.
async fn wait_until_serving(
    host: &str,
    ports: &[u16],
    checks: &[PortCheck],
    failing: &std::cell::Cell<Option<String>>,
) {
    wait_for_ports(host, ports).await;
    for c in checks {
        while let Err(reason) = probe::probe(host, c.host_port, &c.check).await {
            failing.set(Some(reason));
            sleep(PROBE_EVERY).await;
        }
    }
    failing.set(None);
}

async fn wait_for_ports(host: &str, ports: &[u16]) {
    loop {
        let mut all = true;
        for &port in ports {
            let connect = tokio::net::TcpStream::connect((host, port));
            if !matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_))) {
                all = false;
                break;
            }
        }
        if all {
            return;
        }
        sleep(PROBE_EVERY).await;
    }
}

fn ports_text(ports: &[u16]) -> String {
    match ports {
        [] => "no port".into(),
        [one] => format!("port {one}"),
        many => format!("ports {}", many.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// `error`, with the last lines the app wrote on stderr.
fn with_tail(error: String, logs: &LogSink) -> String {
    let tail = logs.stderr_tail();
    if tail.is_empty() {
        return error;
    }
    let tail: Vec<String> = tail.into_iter().map(|l| logs::truncate(l, 300)).collect();
    format!("{error}; last lines on stderr: {}", tail.join(" / "))
}

/// Runs the cleanup command in `dir` for up to 30 s; its output goes with the app's.
async fn run_cleanup_command(command: &[String], dir: &Path, logs: &LogSink) {
    info!(command = ?command, "running the cleanup command");
    let mut hook = match App::spawn(command, dir, logs) {
        Ok(hook) => hook,
        Err(e) => {
            warn!(error = %e, "cleanup command");
            logs.agent(&format!("cleanup command: {e}"));
            return;
        }
    };
    let outcome = match tokio::time::timeout(CLEANUP_TIMEOUT, hook.wait()).await {
        Ok(Ok(status)) => describe(status),
        Ok(Err(e)) => format!("cannot be waited for: {e}"),
        Err(_) => {
            hook.stop(Duration::from_secs(2)).await;
            format!("did not finish within {} s and was stopped", CLEANUP_TIMEOUT.as_secs())
        }
    };
    hook.drain(Duration::from_secs(1)).await;
    info!(%outcome, "cleanup command done");
    logs.agent(&format!("cleanup command {outcome}"));
}

/// SIGTERM (the driver stopping the member) and SIGINT (Ctrl-C in a terminal).
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use stratos_model::HealthCheckKind;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentConfig,
    }

    #[test]
    fn flags_parse_like_the_environment() {
        let cli = Cli::try_parse_from([
            "agent",
            "--member-id=m1",
            "--cluster-id=c1",
            "--service-name=php",
            "--app-id=a1",
            "--tenant-id=-1234",
            "--network-partition-id=np1",
            "--partition-id=p1",
            "--broker=mqtt://127.0.0.1:1883",
            r#"--command=["python3","-m","http.server","40123"]"#,
            r#"--ports=[{"protocol":"http","port":8080,"hostPort":40123},{"protocol":"udp","port":53}]"#,
            r#"--cleanup-command=["sh","-c","echo bye"]"#,
        ])
        .unwrap();
        let cfg = cli.agent;
        assert_eq!(cfg.tenant_id, -1234);
        assert_eq!(cfg.command, ["python3", "-m", "http.server", "40123"]);
        assert_eq!(cfg.ports[0], PortMapping { protocol: "http".into(), port: 8080, host_port: Some(40123) });
        assert_eq!(cfg.ports.iter().filter_map(PortMapping::probe_port).collect::<Vec<_>>(), [40123]);
        assert_eq!(cfg.cleanup_command.unwrap(), ["sh", "-c", "echo bye"]);
        assert_eq!(cfg.health_interval, Duration::from_secs(15));
        assert_eq!(cfg.activation_timeout, Duration::from_secs(300));
        assert_eq!(cfg.drain_grace, Duration::from_secs(1));
        assert_eq!(cfg.host, "127.0.0.1");
        assert!(cfg.artifact_repo.is_none());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse_command("python3 -m http.server").is_err());
        assert!(parse_command("[]").is_err());
        assert!(parse_ports(r#"[{"port":"x"}]"#).is_err());
        assert_eq!(parse_ports(r#"[{"port":80}]"#).unwrap()[0].probe_port(), Some(80));
    }

    #[test]
    fn each_port_gets_its_check_or_its_protocol_default() {
        let cli = Cli::try_parse_from([
            "agent",
            "--member-id=m1",
            "--cluster-id=c1",
            "--service-name=php",
            "--app-id=a1",
            "--network-partition-id=np1",
            "--partition-id=p1",
            "--broker=mqtt://127.0.0.1:1883",
            r#"--command=["app"]"#,
            r#"--ports=[{"protocol":"http","port":8080,"hostPort":40001},{"protocol":"tcp","port":6379,"hostPort":40002},
                        {"protocol":"https","port":8443,"hostPort":40003},{"protocol":"udp","port":53}]"#,
            r#"--health-checks=[{"port":6379,"kind":"tcp","send":"PING\r\n","expect":"PONG","intervalSeconds":1}]"#,
        ])
        .unwrap();
        let checks = cli.agent.port_checks();
        let summary: Vec<(u16, HealthCheckKind, u32)> =
            checks.iter().map(|c| (c.host_port, c.check.kind, c.check.interval_seconds)).collect();
        assert_eq!(
            summary,
            [(40001, HealthCheckKind::Http, 5), (40002, HealthCheckKind::Tcp, 1), (40003, HealthCheckKind::Tls, 5)],
            "UDP is not checked"
        );
        assert_eq!(checks[1].check.expect.as_deref(), Some("PONG"));
        assert_eq!(checks[1].check.timeout_seconds, 2, "a field left out takes its default");
    }

    #[test]
    fn port_lists() {
        assert_eq!(ports_text(&[]), "no port");
        assert_eq!(ports_text(&[80]), "port 80");
        assert_eq!(ports_text(&[80, 443]), "ports 80, 443");
    }
}
