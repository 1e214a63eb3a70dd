//! The supervisor of `stratos up`: every long-running component (cloud controller, health,
//! autoscaler, load balancer, Mosquitto provisioner) runs as a task it owns, and the first
//! one to end (with an error, a panic, or even `Ok`: none is meant to end) ends the
//! platform with that component's name and error. Nothing is restarted in the process: a
//! component's state (the controller's topology, the load balancer's listeners, the
//! autoscaler's windows) is rebuilt from the store and the bus only by a fresh start, which
//! a service manager (systemd `Restart=on-failure`) gives, and every component converges
//! again from the store then.

use std::future::Future;

use tokio::task::{JoinError, JoinSet};

/// The components running under supervision.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<(&'static str, Result<anyhow::Result<()>, JoinError>)>,
}

impl Supervisor {
    /// Runs `component` as a task of its own under the name `name`.
    pub fn spawn<E>(&mut self, name: &'static str, component: impl Future<Output = Result<(), E>> + Send + 'static)
    where
        E: Into<anyhow::Error> + 'static,
    {
        // The component runs in its own task, so a panic in it is caught there and seen
        // here as a JoinError, with the component's name still known.
        let task = tokio::spawn(async move { component.await.map_err(Into::into) });
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Waits for the first component to end, and says which and how.
    pub async fn first_end(&mut self) -> anyhow::Error {
        let Some(ended) = self.tasks.join_next().await else {
            return anyhow::anyhow!("no component was running");
        };
        let error = match ended {
            Ok((name, Ok(Ok(())))) => anyhow::anyhow!("the {name} stopped without an error"),
            Ok((name, Ok(Err(e)))) => e.context(format!("the {name} failed")),
            Ok((name, Err(join))) => anyhow::anyhow!("the {name} {}", describe(join)),
            // The watching task itself is never aborted nor panics.
            Err(join) => anyhow::anyhow!("a component {}", describe(join)),
        };
        tracing::error!(error = format!("{error:#}"), "a component of the platform ended: stopping the platform");
        error
    }
}

fn describe(join: JoinError) -> String {
    if !join.is_panic() {
        return "was cancelled".into();
    }
    let payload = join.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_component_to_fail_is_named_with_its_error() {
        let mut supervisor = Supervisor::default();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        supervisor.spawn("load balancer", async move {
            let _ = wait.await;
            Ok::<(), std::io::Error>(())
        });
        supervisor.spawn("autoscaler", async { Err::<(), _>(std::io::Error::other("the store is gone")) });
        let error = format!("{:#}", supervisor.first_end().await);
        assert_eq!(error, "the autoscaler failed: the store is gone");
        drop(release);
        assert_eq!(format!("{}", supervisor.first_end().await), "the load balancer stopped without an error");
    }

    #[tokio::test]
    async fn a_panic_is_an_end_with_its_message() {
        let mut supervisor = Supervisor::default();
        supervisor.spawn("health service", async {
            if std::env::var_os("PATH").is_some() {
                panic!("window of {} s", 60);
            }
            Ok::<(), std::io::Error>(())
        });
        assert_eq!(format!("{}", supervisor.first_end().await), "the health service panicked: window of 60 s");
        assert!(supervisor.tasks.is_empty());
        assert_eq!(format!("{}", supervisor.first_end().await), "no component was running");
    }
}
