//! Cartridge: a service runtime type (a web server, a TCP service, a legacy app).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::health_check::{HealthCheck, ResolvedHealthCheck};
use crate::property::{check_properties, Property};
use crate::{Definition, Definitions, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cartridge {
    /// The cartridge type; its id, referenced by applications.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    #[serde(rename = "type")]
    pub cartridge_type: String,
    /// `framework`, `data`, `application`, `load-balancer`, ...
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Domain under which clusters of this cartridge get their host names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Shared (in-container) multi-tenancy: one cluster serves many tenants.
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub multi_tenant: bool,
    /// `public` or `private`; Stratos 4.1 spells the field `loadBalancingIPType`.
    #[serde(
        default,
        rename = "loadBalancingIPType",
        alias = "loadBalancingIpType",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancing_ip_type: Option<String>,
    #[serde(default)]
    pub port_mapping: Vec<PortMapping>,
    /// How each IaaS runs a member of this cartridge.
    #[serde(default)]
    pub iaas_provider: Vec<IaasProvider>,
    #[serde(default, alias = "properties")]
    pub property: Vec<Property>,
    /// How the agent checks every port of a member (a port's own `healthCheck` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Where the artifacts go in a member (Apache Stratos 4.1's `deployment`); kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<ArtifactDeployment>,
    /// Metadata keys a member of this cartridge reads from the metadata service (4.1); kept as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_keys: Vec<String>,
    /// Volumes a member needs (4.1's `persistence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// Apache Stratos 4.1's `DeploymentBean`: the artifact directories of a member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDeployment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dir: Vec<String>,
}

/// Apache Stratos 4.1's `PersistenceBean`: whether a member needs volumes, and which.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Persistence {
    #[serde(rename = "isRequired", alias = "required", default, deserialize_with = "crate::lenient::bool")]
    pub is_required: bool,
    #[serde(default, alias = "volumes", skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<PersistentVolume>,
}

/// One volume of [`Persistence`] (4.1's `VolumeBean`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolume {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    /// Size in gigabytes (4.1 gives it as a string: `"10"`).
    #[serde(default, deserialize_with = "crate::lenient::opt_u32", skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Where the volume is mounted in the member: an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_path: Option<String>,
    /// The device the IaaS attaches it as (`/dev/sdc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub remove_on_termination: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// An existing volume to attach instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
}

/// Apache Stratos 4.1's `NetworkInterfaceBean`: a network a VM member is attached to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floating_networks: Vec<FloatingNetwork>,
}

/// 4.1's `FloatingNetworkBean`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FloatingNetwork {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "networkUuid", skip_serializing_if = "Option::is_none")]
    pub network_uuid: Option<String>,
    #[serde(default, rename = "floatingIP", alias = "floatingIp", skip_serializing_if = "Option::is_none")]
    pub floating_ip: Option<String>,
}

impl Persistence {
    fn validate(&self, p: &mut Problems) {
        if self.is_required && self.volume.is_empty() {
            p.push("persistence.volume", "persistence is required but no volume is given");
        }
        let mut ids = std::collections::HashSet::new();
        for (i, v) in self.volume.iter().enumerate() {
            let at = format!("persistence.volume[{i}]");
            p.check_id(&format!("{at}.id"), &v.id);
            if !ids.insert(v.id.as_str()) {
                p.push(format!("{at}.id"), format!("duplicate volume id {:?}", v.id));
            }
            if v.size == Some(0) {
                p.push(format!("{at}.size"), "must be at least 1 (gigabytes)");
            }
            if v.size.is_none() && v.volume_id.is_none() && v.snapshot_id.is_none() {
                p.push(format!("{at}.size"), "missing: a new volume needs a size (or give volumeId or snapshotId)");
            }
            match v.mapping_path.as_deref() {
                Some(path) if !path.starts_with('/') => {
                    p.push(format!("{at}.mappingPath"), format!("{path:?} is not an absolute path"))
                }
                None => p.push(format!("{at}.mappingPath"), "missing: where the volume is mounted in the member"),
                _ => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
    Udp,
}

impl Protocol {
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    /// The port the member's process listens on.
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub port: u32,
    /// The port the load balancer exposes for it; 0 for none.
    #[serde(default, deserialize_with = "crate::lenient::u32")]
    pub proxy_port: u32,
    /// How the agent checks this port; over the cartridge's `healthCheck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IaasProvider {
    /// `local`, `docker`, `mock`, `kubernetes`, `simulated`, or another Stratos IaaS name.
    #[serde(rename = "type")]
    pub iaas_type: String,
    /// The image a member boots from (Docker, Kubernetes, VM IaaSes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The command the cartridge agent starts in the member (local and container drivers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// CPUs a member may use (container drivers): `0.5`, `2`, `500m`. Over the 4.1
    /// property `KUBERNETES_CONTAINER_CPU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory a member may use (container drivers): `256Mi`, `1Gi`, `512m`. Over the 4.1
    /// property `KUBERNETES_CONTAINER_MEMORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Host paths or Docker volumes mounted into members' containers (read-only by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::Volume>,
    #[serde(default, alias = "properties")]
    pub property: Vec<Property>,
    /// Networks a VM member is attached to (4.1's OpenStack `networkInterfaces`); kept as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}

impl Definition for Cartridge {
    const KIND: Kind = Kind::Cartridge;

    fn id(&self) -> &str {
        &self.cartridge_type
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("type", &self.cartridge_type);
        if self.category.trim().is_empty() {
            p.push("category", "must not be empty");
        }
        let mut ports = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, m) in self.port_mapping.iter().enumerate() {
            let at = format!("portMapping[{i}]");
            if !(1..=65535).contains(&m.port) {
                p.push(format!("{at}.port"), format!("{} is not a port (1-65535)", m.port));
            } else if !ports.insert(m.port) {
                p.push(format!("{at}.port"), format!("port {} is mapped twice", m.port));
            }
            if m.proxy_port > 65535 {
                p.push(format!("{at}.proxyPort"), format!("{} is not a port (0-65535)", m.proxy_port));
            }
            if let Some(name) = &m.name {
                if !names.insert(name.as_str()) {
                    p.push(format!("{at}.name"), format!("duplicate port name {name:?}"));
                }
            }
            if let Some(check) = &m.health_check {
                check.validate(&format!("{at}.healthCheck"), Some(m.protocol), p);
            }
        }
        if let Some(check) = &self.health_check {
            check.validate("healthCheck", None, p);
        }
        let mut timings = Problems::default();
        for (i, m) in self.port_mapping.iter().enumerate() {
            let resolved =
                HealthCheck::resolve(m.port, m.protocol, m.health_check.as_ref(), self.health_check.as_ref());
            let at = format!("portMapping[{i}].healthCheck");
            crate::health_check::check_timing(&resolved, m.health_check.as_ref(), &at, "healthCheck", &mut timings);
        }
        if let Some(check) = self.health_check.as_ref().filter(|_| self.port_mapping.is_empty()) {
            let resolved = HealthCheck::resolve(0, Protocol::Tcp, None, Some(check));
            crate::health_check::check_timing(&resolved, None, "healthCheck", "healthCheck", &mut timings);
        }
        // A cartridge-wide timeout too long for several ports is one problem.
        for problem in timings.0 {
            if !p.iter().any(|q| *q == problem) {
                p.0.push(problem);
            }
        }
        let mut iaases = std::collections::HashSet::new();
        for (i, iaas) in self.iaas_provider.iter().enumerate() {
            let at = format!("iaasProvider[{i}]");
            if iaas.iaas_type.trim().is_empty() {
                p.push(format!("{at}.type"), "must not be empty");
            } else if !iaases.insert(iaas.iaas_type.as_str()) {
                p.push(format!("{at}.type"), format!("IaaS {:?} is configured twice", iaas.iaas_type));
            }
            match iaas.iaas_type.as_str() {
                "local" if iaas.command.is_empty() => {
                    p.push(format!("{at}.command"), "the local driver needs the command that starts the cartridge")
                }
                "docker" | "kubernetes" if iaas.image_id.as_deref().is_none_or(str::is_empty) => {
                    p.push(format!("{at}.imageId"), format!("the {} driver needs an image", iaas.iaas_type))
                }
                _ => {}
            }
            if iaas.command.first().is_some_and(|c| c.trim().is_empty()) {
                p.push(format!("{at}.command[0]"), "the program must not be empty");
            }
            check_properties(&iaas.property, &format!("{at}.property"), p);
            iaas.validate_container(&at, p);
        }
        check_properties(&self.property, "property", p);
        crate::container::check_limit_properties(&self.property, p);
        if let Some(persistence) = &self.persistence {
            persistence.validate(p);
        }
        for (i, key) in self.metadata_keys.iter().enumerate() {
            if key.trim().is_empty() {
                p.push(format!("metadataKeys[{i}]"), "must not be empty");
            }
        }
    }

    fn check_references(&self, _defs: &Definitions, _p: &mut Problems) {}

    fn references(&self) -> Vec<(Kind, String)> {
        Vec::new()
    }
}

impl Cartridge {
    pub fn iaas(&self, iaas_type: &str) -> Option<&IaasProvider> {
        self.iaas_provider.iter().find(|i| i.iaas_type == iaas_type)
    }

    /// The check of every port, defaults filled in (`none` for those not checked).
    pub fn health_checks(&self) -> Vec<ResolvedHealthCheck> {
        self.port_mapping
            .iter()
            .map(|m| HealthCheck::resolve(m.port, m.protocol, m.health_check.as_ref(), self.health_check.as_ref()))
            .collect()
    }
}
