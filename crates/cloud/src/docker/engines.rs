//! The Docker Engines members run on: one client per `dockerHost`, made on first use
//! with the API version agreed with that engine (an older engine refuses a newer
//! client's paths).

use std::collections::BTreeMap;

use bollard::Docker;
use tokio::sync::Mutex;

use super::error::DockerError;

/// How long an engine may take to answer its first request.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long any request may take (a container's stop waits for its grace period).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The local engine's socket, where `dockerHost` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// `dockerHost` as a partition writes it: a socket path, `unix://`, `tcp://` or
/// `http://` URL. Pure.
pub fn normalize(host: &str) -> String {
    let host = host.trim();
    if host.starts_with('/') {
        format!("unix://{host}")
    } else {
        host.to_string()
    }
}

/// Clients by host.
#[derive(Default)]
pub struct Engines {
    clients: Mutex<BTreeMap<String, Docker>>,
}

impl Engines {
    /// The client of `host` (normalized), connected and versioned on first use.
    pub async fn get(&self, host: &str) -> Result<Docker, DockerError> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(host) {
            return Ok(client.clone());
        }
        let connect = |source| DockerError::Connect { host: host.to_string(), source };
        // A request to an engine gone silent ends in a minute rather than bollard's two.
        let client = Docker::connect_with_host(host).map_err(connect)?.with_timeout(REQUEST_TIMEOUT);
        let client = tokio::time::timeout(CONNECT_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| DockerError::Unreachable {
                host: host.to_string(),
                reason: format!("the Docker Engine at {host} did not answer within {}s", CONNECT_TIMEOUT.as_secs()),
            })?
            .map_err(connect)?;
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    /// The hosts used so far.
    pub async fn hosts(&self) -> Vec<String> {
        self.clients.lock().await.keys().cloned().collect()
    }

    /// Forgets a host's client (after a failure), so the next use connects again.
    pub async fn forget(&self, host: &str) {
        self.clients.lock().await.remove(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_urls() {
        assert_eq!(normalize("/run/docker2.sock"), "unix:///run/docker2.sock");
        assert_eq!(normalize("tcp://10.0.0.2:2375"), "tcp://10.0.0.2:2375");
    }
}
