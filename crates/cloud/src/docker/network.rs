//! One Docker network per tenant, made on demand: members of a tenant reach each
//! other and the host; Docker's isolation rules keep bridge networks apart, so one
//! tenant's member cannot reach (nor spoof an address on) another tenant's network.

use std::collections::HashMap;
use std::net::IpAddr;

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

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::tenant_network("a1b2-c3d4-e5f6-a7b8-c9d0", -1234), "stratos-a1b2c3d4e5f6-t-1234");
    }
}
