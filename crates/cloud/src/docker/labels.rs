//! What a member's container says about it: labels under `io.stratos.`, written at
//! create and read back by `list`, so the Docker Engine itself is the driver's record
//! (a controller killed with -9 finds its members there). Pure.

use std::collections::HashMap;

use crate::driver::{AllocatedPort, Instance, InstanceState, MemberSpec};

pub const PREFIX: &str = "io.stratos.";
pub const PLATFORM: &str = "io.stratos.platform";
pub const MEMBER: &str = "io.stratos.member";
pub const CLUSTER: &str = "io.stratos.cluster";
pub const APPLICATION: &str = "io.stratos.application";
pub const TENANT: &str = "io.stratos.tenant";
pub const NETWORK_PARTITION: &str = "io.stratos.network-partition";
pub const PARTITION: &str = "io.stratos.partition";
/// The allocated ports (JSON), and the Docker network the member is reached on.
pub const PORTS: &str = "io.stratos.ports";
pub const NETWORK: &str = "io.stratos.network";
pub const STARTED_AT: &str = "io.stratos.started-at";

/// A member's container's labels.
pub fn of_member(
    spec: &MemberSpec,
    network: &str,
    ports: &[AllocatedPort],
    started_at: u64,
) -> HashMap<String, String> {
    [
        (PLATFORM, spec.platform_id.clone()),
        (MEMBER, spec.member_id.clone()),
        (CLUSTER, spec.cluster_id.clone()),
        (APPLICATION, spec.app_id.clone()),
        (TENANT, spec.tenant_id.to_string()),
        (NETWORK_PARTITION, spec.network_partition_id.clone()),
        (PARTITION, spec.partition_id.clone()),
        (NETWORK, network.to_string()),
        (PORTS, serde_json::to_string(ports).expect("ports serialise")),
        (STARTED_AT, started_at.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The container's name: Docker's names are unique per engine, so a member started
/// twice (a retried create) is refused rather than run twice.
pub fn container_name(member_id: &str) -> String {
    let safe: String =
        member_id.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    format!("stratos-{safe}")
}

/// How a container is, from the engine's `State` (`running`, `exited`, ...) and
/// `Status` text (`Exited (3) 5 seconds ago`), as the controller judges it. A paused
/// container is alive (silent: the health service finds it faulty).
pub fn state_of(state: &str, status: &str) -> InstanceState {
    match state {
        "running" | "paused" | "restarting" => InstanceState::Running,
        "created" => InstanceState::Exited { code: None, detail: "the container was created but never started".into() },
        _ => {
            let code = exit_code(status);
            let detail = match code {
                Some(code) => format!("the container exited with code {code}"),
                None => format!("the container is {state}"),
            };
            InstanceState::Exited { code, detail }
        }
    }
}

/// `Exited (137) 2 minutes ago` → 137.
fn exit_code(status: &str) -> Option<i32> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

/// A member as its container's labels and state tell; `None` for a container without
/// a member label (not ours to judge).
pub fn instance(labels: &HashMap<String, String>, state: InstanceState, address: Option<String>) -> Option<Instance> {
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let member_id = labels.get(MEMBER)?.clone();
    Some(Instance {
        member_id,
        cluster_id: get(CLUSTER),
        state,
        address: address.unwrap_or_default(),
        ports: labels.get(PORTS).and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default(),
        started_at: labels.get(STARTED_AT).and_then(|s| s.parse().ok()).unwrap_or(0),
        platform_id: labels.get(PLATFORM).cloned(),
        network_partition_id: get(NETWORK_PARTITION),
        partition_id: get(PARTITION),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(state_of("running", "Up 3 seconds"), InstanceState::Running);
        assert_eq!(state_of("paused", "Up 3 seconds (Paused)"), InstanceState::Running);
        assert_eq!(
            state_of("exited", "Exited (3) 5 seconds ago"),
            InstanceState::Exited { code: Some(3), detail: "the container exited with code 3".into() }
        );
        assert_eq!(
            state_of("dead", "Dead"),
            InstanceState::Exited { code: None, detail: "the container is dead".into() }
        );
        assert!(matches!(state_of("created", "Created"), InstanceState::Exited { code: None, .. }));
    }

    #[test]
    fn names_are_docker_names() {
        assert_eq!(container_name("app.web-1/x"), "stratos-app.web-1_x");
    }

    #[test]
    fn labels_come_back_as_the_instance() {
        let spec = MemberSpec {
            member_id: "m1".into(),
            cluster_id: "app.web".into(),
            service_name: "php".into(),
            app_id: "app".into(),
            tenant_id: 7,
            network_partition_id: "np".into(),
            partition_id: "p1".into(),
            command: vec![],
            image: None,
            ports: vec![],
            broker_url: String::new(),
            bus_credentials: None,
            bus_ca_cert: None,
            artifact_repository: None,
            env: Default::default(),
            platform_id: "plat".into(),
            limits: Default::default(),
            volumes: vec![],
            placement: Default::default(),
            slot: None,
            persistent_volumes: vec![],
        };
        let ports = vec![AllocatedPort {
            protocol: stratos_model::Protocol::Http,
            port: 8080,
            host_port: 8080,
            proxy_port: 8280,
        }];
        let labels = of_member(&spec, "stratos-t7", &ports, 42);
        assert!(labels.keys().all(|k| k.starts_with(PREFIX)));
        let i = instance(&labels, InstanceState::Running, Some("172.18.0.2".into())).unwrap();
        assert_eq!(
            (i.member_id.as_str(), i.cluster_id.as_str(), i.platform_id.as_deref(), i.partition_id.as_str()),
            ("m1", "app.web", Some("plat"), "p1")
        );
        assert_eq!((i.ports, i.started_at, i.address.as_str()), (ports, 42, "172.18.0.2"));
        assert!(instance(&HashMap::new(), InstanceState::Running, None).is_none());
    }
}
