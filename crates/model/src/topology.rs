//! The topology: services → clusters → members, as the cloud controller sees them.
//! Field names follow Apache Stratos 4.1's topology events.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Property, Protocol};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// Keyed by service name (the cartridge type).
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_name: String,
    pub service_type: ServiceType,
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Keyed by cluster id.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    SingleTenant,
    MultiTenant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster_id: String,
    pub service_name: String,
    pub app_id: String,
    /// The subscription alias within the application.
    pub alias: String,
    pub tenant_id: i64,
    pub host_names: Vec<String>,
    pub autoscale_policy_name: String,
    pub deployment_policy_name: String,
    pub status: ClusterStatus,
    /// Why the cluster cannot reach its desired size, while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the controller created it (ms since the Unix epoch; 0 in topologies
    /// saved before it was kept). Of two clusters claiming one host name, the
    /// load balancer routes to the earlier.
    #[serde(default)]
    pub created_at: u64,
    /// Keyed by member id.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClusterStatus {
    Created,
    Active,
    Inactive,
    Terminating,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub service_name: String,
    pub cluster_id: String,
    pub member_id: String,
    pub network_partition_id: String,
    pub partition_id: String,
    pub status: MemberStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_private_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_public_ip: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Milliseconds since the Unix epoch when the member was created.
    pub init_time: u64,
    #[serde(default)]
    pub properties: Vec<Property>,
}

/// A member's life, in order; `In_Maintenance` and `ReadyToShutdown` drain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MemberStatus {
    Created,
    Initialized,
    Starting,
    Active,
    #[serde(rename = "In_Maintenance")]
    InMaintenance,
    ReadyToShutdown,
    Suspended,
    Terminated,
}

impl MemberStatus {
    /// Whether the load balancer may send new requests to the member.
    pub fn serves_traffic(self) -> bool {
        self == MemberStatus::Active
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub protocol: Protocol,
    /// Where the member listens.
    pub value: u32,
    /// Where the load balancer exposes it (0: not exposed).
    pub proxy: u32,
}

impl Topology {
    pub fn cluster(&self, cluster_id: &str) -> Option<&Cluster> {
        self.services.values().find_map(|s| s.clusters.get(cluster_id))
    }

    pub fn cluster_mut(&mut self, cluster_id: &str) -> Option<&mut Cluster> {
        self.services.values_mut().find_map(|s| s.clusters.get_mut(cluster_id))
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.services.values().flat_map(|s| s.clusters.values()).flat_map(|c| c.members.values())
    }
}
