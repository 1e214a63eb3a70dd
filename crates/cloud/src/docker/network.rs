//! One Docker network per tenant, made on demand: members of a tenant reach each
//! other and the host; Docker's isolation rules keep bridge networks apart, so one
//! tenant's member cannot reach (nor spoof an address on) another tenant's network.
//! A network of this platform that no container of it uses, and that no start made or
//! used lately, is removed (an engine's address pools hold a few dozen networks).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bollard::models::NetworkCreateRequest;
use bollard::Docker;

use super::error::{status, DockerError};
use super::labels;

/// A tenant's network on this platform: `stratos-<platform>-t<tenant>` (two platforms
/// sharing an engine keep their tenants apart too). Pure.
pub fn tenant_network(platform_id: &str, tenant_id: i64) -> String {
    let platform: String = platform_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("stratos-{platform}-t{tenant_id}")
}

/// The network's IPv4 gateway (this host's address on it), creating the network first
/// if it does not exist, labelled as the platform's and the tenant's.
pub async fn ensure(
    docker: &Docker,
    host: &str,
    name: &str,
    platform_id: &str,
    tenant_id: i64,
) -> Result<IpAddr, DockerError> {
    let network = match docker.inspect_network(name, None).await {
        Ok(network) => network,
        Err(e) if status(&e) == Some(404) => {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([
                    (labels::PLATFORM.to_string(), platform_id.to_string()),
                    (labels::TENANT.to_string(), tenant_id.to_string()),
                ])),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => tracing::info!(network = name, host, tenant_id, "tenant network created"),
                // Made meanwhile by another start: fine.
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(DockerError::engine(host, format!("create network {name:?}"))(e)),
            }
            docker
                .inspect_network(name, None)
                .await
                .map_err(DockerError::engine(host, format!("inspect network {name:?}")))?
        }
        Err(e) => return Err(DockerError::engine(host, format!("inspect network {name:?}"))(e)),
    };
    gateway_of(network, host, name)
}

/// An existing network's IPv4 gateway.
pub async fn gateway(docker: &Docker, host: &str, name: &str) -> Result<IpAddr, DockerError> {
    let network = docker
        .inspect_network(name, None)
        .await
        .map_err(DockerError::engine(host, format!("inspect network {name:?}")))?;
    gateway_of(network, host, name)
}

fn gateway_of(network: bollard::models::NetworkInspect, host: &str, name: &str) -> Result<IpAddr, DockerError> {
    network
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.gateway?.parse::<IpAddr>().ok())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| DockerError::NoGateway { network: name.to_string(), host: host.to_string() })
}

/// How long a network made or used by a start is kept with no container on it, by
/// default: the start's container is created after the network.
pub const KEEP_IDLE: Duration = Duration::from_secs(60);

/// The networks to remove: this platform's (`ours`) that no container uses and no start
/// ensured within `keep` of `now`. Pure.
pub fn idle(
    ours: &[String],
    used: &HashSet<String>,
    ensured: &HashMap<String, Instant>,
    now: Instant,
    keep: Duration,
) -> Vec<String> {
    ours.iter()
        .filter(|n| !used.contains(*n))
        .filter(|n| ensured.get(*n).is_none_or(|at| now.saturating_duration_since(*at) >= keep))
        .cloned()
        .collect()
}

/// This platform's networks on an engine (those `ensure` made, by their label).
pub async fn of_platform(docker: &Docker, host: &str, platform_id: &str) -> Result<Vec<String>, DockerError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{}={platform_id}", labels::PLATFORM)])]);
    let options = bollard::query_parameters::ListNetworksOptionsBuilder::default().filters(&filters).build();
    let networks = docker.list_networks(Some(options)).await.map_err(DockerError::engine(host, "list networks"))?;
    Ok(networks
        .into_iter()
        .filter(|n| n.labels.as_ref().and_then(|l| l.get(labels::PLATFORM)).map(String::as_str) == Some(platform_id))
        .filter_map(|n| n.name)
        .collect())
}

/// Removes a network; true if it is gone. One still in use (a container joined it
/// meanwhile) is left: the engine refuses, and that is fine.
pub async fn remove(docker: &Docker, host: &str, name: &str) -> bool {
    match docker.remove_network(name).await {
        Ok(()) => {
            tracing::info!(network = name, host, "tenant network removed: no member uses it");
            true
        }
        Err(e) if status(&e) == Some(404) => true,
        Err(e) => {
            tracing::debug!(network = name, host, error = %e, "network not removed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_idle_without_containers_and_past_its_last_start() {
        let now = Instant::now();
        let ours: Vec<String> = ["t1", "t2", "t3", "t4"].map(String::from).to_vec();
        let used = HashSet::from(["t1".to_string()]);
        let ensured =
            HashMap::from([("t2".to_string(), now - Duration::from_secs(5)), ("t3".to_string(), now - KEEP_IDLE)]);
        // t1 has a container; t2 was just made for a start; t3's start is long past; t4
        // was never seen by this run (left by an earlier one).
        assert_eq!(idle(&ours, &used, &ensured, now, KEEP_IDLE), ["t3", "t4"]);
    }

    #[test]
    fn names() {
        assert_eq!(super::tenant_network("a1b2-c3d4-e5f6-a7b8-c9d0", -1234), "stratos-a1b2c3d4e5f6-t-1234");
    }
}
