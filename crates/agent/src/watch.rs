//! The app's health checks once the member is active: one task per checked port,
//! each probing on its interval and counting failures with a [`Tracker`]; the agent
//! hears only of changes (a port unhealthy, a port recovered).

use std::time::Duration;

use stratos_model::{HealthCheckKind, ResolvedHealthCheck};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tracing::{debug, info, Instrument};

use crate::probe::probe;
use crate::tracker::{Change, Tracker};

/// A port whose health changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The port the cartridge declares.
    pub port: u32,
    pub unhealthy: bool,
    /// What failed (for a port now unhealthy), or how many checks had failed (recovered).
    pub reason: String,
}

/// One port to check: where it listens, and how.
#[derive(Debug, Clone)]
pub struct PortCheck {
    pub host_port: u16,
    pub check: ResolvedHealthCheck,
}

/// The running checks; dropping it stops them.
pub struct Watch {
    verdicts: mpsc::Receiver<Verdict>,
    _tasks: JoinSet<()>,
}

impl Watch {
    /// Starts checking every port whose kind is not `none`; the first check of each
    /// comes one interval after now.
    pub fn start(host: &str, ports: Vec<PortCheck>) -> Watch {
        let (tx, verdicts) = mpsc::channel(16);
        let mut tasks = JoinSet::new();
        for port in ports.into_iter().filter(|p| p.check.kind != HealthCheckKind::None) {
            tasks.spawn(watch_port(host.to_string(), port, tx.clone()).in_current_span());
        }
        Watch { verdicts, _tasks: tasks }
    }

    /// The next change (pending forever when no port is checked).
    pub async fn next(&mut self) -> Verdict {
        match self.verdicts.recv().await {
            Some(v) => v,
            None => std::future::pending().await,
        }
    }
}

async fn watch_port(host: String, port: PortCheck, verdicts: mpsc::Sender<Verdict>) {
    let check = &port.check;
    let every = Duration::from_secs(check.interval_seconds.max(1).into());
    let mut tick = interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tracker = Tracker::new(check.failure_threshold);
    info!(
        port = check.port,
        host_port = port.host_port,
        kind = ?check.kind,
        every = ?every,
        timeout_s = check.timeout_seconds,
        failure_threshold = tracker.threshold(),
        "health checks started"
    );
    loop {
        tick.tick().await;
        let outcome = probe(&host, port.host_port, check).await;
        let change = tracker.record(outcome.is_ok());
        let verdict = match (change, outcome) {
            (Change::BecameUnhealthy, Err(error)) => Verdict {
                port: check.port,
                unhealthy: true,
                reason: format!(
                    "port {} failed {} health checks in a row (every {} s): {error}",
                    check.port,
                    tracker.failures(),
                    every.as_secs()
                ),
            },
            (Change::Recovered, _) => {
                Verdict { port: check.port, unhealthy: false, reason: format!("port {} answers again", check.port) }
            }
            (_, Err(error)) => {
                if tracker.is_unhealthy() {
                    debug!(port = check.port, %error, "health check failed again");
                } else {
                    info!(port = check.port, failures = tracker.failures(), threshold = tracker.threshold(), %error, "health check failed");
                }
                continue;
            }
            (_, Ok(())) => {
                debug!(port = check.port, "health check passed");
                continue;
            }
        };
        if verdicts.send(verdict).await.is_err() {
            return;
        }
    }
}
