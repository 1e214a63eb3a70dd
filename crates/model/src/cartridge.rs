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
