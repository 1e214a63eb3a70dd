//! The IaaS driver boundary: start, terminate, list and inspect members.
//! Nothing here assumes processes: a driver may run containers or VMs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratos_model::Protocol;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a driver needs to start one member. Its `Debug` shows `env`'s names only,
/// and `env` is never serialised: it carries the application's secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSpec {
    pub member_id: String,
    pub cluster_id: String,
    pub service_name: String,
    pub app_id: String,
    pub tenant_id: i64,
    pub network_partition_id: String,
    pub partition_id: String,
    /// What the cartridge runs; `${PORT}` and `${PORT_<port>}` stand for the allocated ports.
    pub command: Vec<String>,
    /// The image, for drivers that boot one.
    pub image: Option<String>,
    pub ports: Vec<PortSpec>,
    /// Where the member's agent reaches the event bus.
    pub broker_url: String,
    /// The member's own bus credentials, for its agent only (`STRATOS_BUS_USERNAME` /
    /// `STRATOS_BUS_PASSWORD`); never stored or serialised.
    #[serde(skip)]
    pub bus_credentials: Option<stratos_bus::Credentials>,
    /// The CA file the member's agent trusts for a `mqtts://` broker
    /// (`STRATOS_BUS_CA_CERT`); `None`: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_ca_cert: Option<std::path::PathBuf>,
    pub artifact_repository: Option<String>,
    /// Extra environment for the agent and the cartridge: the cartridge's `env.*`
    /// properties, the platform's settings, then the application's configuration
    /// (`stratos config`), secrets opened.
    #[serde(default, skip_serializing)]
    pub env: BTreeMap<String, String>,
    /// The platform (store) that made the member: the driver records it where it
    /// lists the member, and gives it to the member as `STRATOS_PLATFORM_ID`.
    pub platform_id: String,
    /// CPU and memory limits (container drivers).
    #[serde(default)]
    pub limits: stratos_model::Limits,
    /// What is mounted into the member (container drivers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<stratos_model::Volume>,
    /// The network partition's properties, its partition's over them (`dockerHost`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placement: BTreeMap<String, String>,
    /// The member's slot in its cluster (`plan::slots`): its persistent volumes are the slot's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// The cartridge's persistent volumes (`persistence.volume`), made per slot by the
    /// drivers that offer them (`local`, `docker`); none without a slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persistent_volumes: Vec<stratos_model::PersistentVolume>,
}

impl std::fmt::Debug for MemberSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSpec")
            .field("member_id", &self.member_id)
            .field("cluster_id", &self.cluster_id)
            .field("service_name", &self.service_name)
            .field("app_id", &self.app_id)
            .field("tenant_id", &self.tenant_id)
            .field("network_partition_id", &self.network_partition_id)
            .field("partition_id", &self.partition_id)
            .field("command", &self.command)
            .field("image", &self.image)
            .field("ports", &self.ports)
            .field("broker_url", &self.broker_url)
            .field("bus_ca_cert", &self.bus_ca_cert)
            .field("artifact_repository", &self.artifact_repository)
            // Names only: the values may be secrets.
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("platform_id", &self.platform_id)
            .field("limits", &self.limits)
            .field("volumes", &self.volumes)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    pub protocol: Protocol,
    /// The port the cartridge declares.
    pub port: u32,
    /// The load balancer's port for it.
    pub proxy_port: u32,
}

/// A member as the driver sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub member_id: String,
    pub cluster_id: String,
    pub state: InstanceState,
    /// Where the member is reached.
    pub address: String,
    /// Declared port → where it is reached on `address`.
    pub ports: Vec<AllocatedPort>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    /// The platform that made it; `None` for members started before platform ids.
    /// A controller adopts or terminates only its own platform's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_id: Option<String>,
    /// Where the member was placed, as its driver recorded it (empty when unknown):
    /// a member adopted without its record in the store keeps its partition.
    #[serde(default)]
    pub network_partition_id: String,
    #[serde(default)]
    pub partition_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocatedPort {
    pub protocol: Protocol,
    pub port: u32,
    pub host_port: u32,
    pub proxy_port: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum InstanceState {
    Running,
    /// Gone; `code` when the driver knows how it ended.
    Exited {
        code: Option<i32>,
        detail: String,
    },
}

/// What a driver could list: its members where it could look, and the places it could
/// not reach (an engine that does not answer), whose members are then neither listed
/// nor to be judged gone from this listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub instances: Vec<Instance>,
    pub unreachable: Vec<Unreachable>,
}

/// A place of a driver (a Docker Engine) that did not answer its listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// As [`Driver::place_of`] names it.
    pub place: String,
    pub reason: String,
}

/// What a driver's error says why; each driver has its own (`local::LocalError`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot start member {member_id}: {source}")]
    Start { member_id: String, source: Cause },
    #[error("cannot terminate member {member_id}: {source}")]
    Terminate { member_id: String, source: Cause },
    #[error("cannot list members: {0}")]
    List(Cause),
    #[error("cannot run a command in member {member_id}: {reason}")]
    Exec { member_id: String, reason: String },
    #[error("cannot {action} volume {volume}: {reason}")]
    Volume { action: &'static str, volume: String, reason: String },
    #[error("cannot run the task: {0}")]
    Task(String),
}

/// What a command run in a member (`Driver::exec`) gives, as it comes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// Its exit code (`None`: killed by a signal); the last item.
    Exit(Option<i32>),
}

/// A running command's output; dropping it kills the command.
pub type ExecStream = tokio::sync::mpsc::Receiver<ExecOutput>;

/// An IaaS: where members run.
pub trait Driver: Send + Sync + 'static {
    /// The provider name network partitions use for it (`local`, `docker`, ...).
    fn name(&self) -> &'static str;
    fn start<'a>(&'a self, spec: &'a MemberSpec) -> BoxFuture<'a, Result<Instance, DriverError>>;
    /// Stops a member: gracefully first, forcefully after `grace`. Terminating a
    /// member that is already gone succeeds.
    fn terminate<'a>(&'a self, member_id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Every member this driver knows, running or exited (until terminated).
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, DriverError>>;
    fn inspect<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<Option<Instance>, DriverError>>;

    /// Runs `command` in the member's environment (`stratos member exec`), never with the
    /// member's bus credentials. Drivers whose members have no process (the mock IaaS, the
    /// simulated driver) do not offer it.
    fn exec<'a>(&'a self, member_id: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<ExecStream, DriverError>> {
        let _ = command;
        Box::pin(async move {
            Err(DriverError::Exec {
                member_id: member_id.to_string(),
                reason: format!("the {} driver's members have no process to run a command in", self.name()),
            })
        })
    }

    /// Runs `command` as a one-off task (`stratos application run`) in a new member of
    /// `spec` that no topology holds (no load balancer, no autoscaler), with the
    /// member's environment but no agent and no bus credentials; the stream ends with
    /// the command's exit code, and the task member is removed once it ends or the
    /// stream is dropped. `spec.slot` is `None`: a task has no persistent volumes.
    fn run_task<'a>(
        &'a self,
        spec: &'a MemberSpec,
        command: &'a [String],
    ) -> BoxFuture<'a, Result<ExecStream, DriverError>> {
        let _ = (spec, command);
        Box::pin(async move {
            Err(DriverError::Task(format!(
                "the {} driver does not run one-off tasks (local and docker do)",
                self.name()
            )))
        })
    }

    /// This platform's persistent volumes (`crate::volume`); none for drivers without them.
    fn list_volumes(&self) -> BoxFuture<'_, Result<Vec<crate::volume::SlotVolume>, DriverError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Removes a volume `list_volumes` gave (its data with it).
    fn remove_volume<'a>(&'a self, volume: &'a crate::volume::SlotVolume) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            Err(DriverError::Volume {
                action: "remove",
                volume: volume.name.clone(),
                reason: format!("the {} driver has no volumes", self.name()),
            })
        })
    }

    /// Lists each place it can reach and names those it cannot, so that one engine down
    /// does not stop members elsewhere from being judged. A driver that is one place
    /// lists all or nothing (`list`).
    fn list_reachable(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
        Box::pin(async move { Ok(Listing { instances: self.list().await?, unreachable: Vec::new() }) })
    }

    /// The place a member placed with `placement` (its network partition's and
    /// partition's properties) runs in, as [`Unreachable::place`] names it; `None` for a
    /// driver that is one place. A driver lists the places it is asked about from then on
    /// (after a restart, an engine whose members the store names is listed, or reported
    /// unreachable, before any member is started there).
    fn place_of(&self, placement: &BTreeMap<String, String>) -> Option<String> {
        let _ = placement;
        None
    }
}

/// Replaces `${PORT}` (the first allocated port) and `${PORT_<declared>}` in a command.
pub fn substitute_ports(command: &[String], ports: &[AllocatedPort]) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            let mut arg = arg.clone();
            for p in ports {
                arg = arg.replace(&format!("${{PORT_{}}}", p.port), &p.host_port.to_string());
            }
            if let Some(first) = ports.first() {
                arg = arg.replace("${PORT}", &first.host_port.to_string());
            }
            arg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_shows_and_serialises_no_environment_value() {
        let mut spec: MemberSpec = serde_json::from_value(serde_json::json!({
            "memberId": "m1", "clusterId": "a.w", "serviceName": "php", "appId": "a", "tenantId": 3,
            "networkPartitionId": "np", "partitionId": "p", "command": [], "image": null, "ports": [],
            "brokerUrl": "", "artifactRepository": null, "platformId": "plat"
        }))
        .unwrap();
        spec.env.insert("API_TOKEN".into(), "hunter2".into());
        let shown = format!("{spec:?}");
        assert!(shown.contains("API_TOKEN") && !shown.contains("hunter2"), "{shown}");
        let serialised = serde_json::to_string(&spec).unwrap();
        assert!(!serialised.contains("hunter2") && !serialised.contains("API_TOKEN"), "{serialised}");
    }

    #[test]
    fn ports_are_substituted() {
        let ports = vec![
            AllocatedPort { protocol: Protocol::Http, port: 8080, host_port: 40001, proxy_port: 8280 },
            AllocatedPort { protocol: Protocol::Tcp, port: 7000, host_port: 40002, proxy_port: 0 },
        ];
        let cmd: Vec<String> = ["serve", "--port=${PORT}", "${PORT_7000}", "${PORT_1}"].map(String::from).to_vec();
        assert_eq!(substitute_ports(&cmd, &ports), ["serve", "--port=40001", "40002", "${PORT_1}"]);
    }
}
