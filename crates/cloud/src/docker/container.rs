//! A member's container as the engine is asked to create it: who it runs as, what it
//! may do and use, what it sees. Pure (the tests read the security settings here).

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};

use super::bundle::{Bundle, MOUNT};
use crate::driver::MemberSpec;

/// What every member's container gets, whatever its cartridge says.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// The uid and gid members run as (no account needed in the image).
    pub uid: u32,
    pub gid: u32,
    /// Processes (and threads) a member may have: a fork bomb stops there.
    pub pids_limit: i64,
    /// Limits for cartridges that set none.
    pub default_nano_cpus: i64,
    pub default_memory_bytes: i64,
    /// Size of the member's writable `/work` (and `/tmp`), in memory.
    pub work_size: String,
}

impl Default for Confinement {
    fn default() -> Self {
        Confinement {
            uid: DEFAULT_UID,
            gid: DEFAULT_UID,
            pids_limit: 512,
            default_nano_cpus: 1_000_000_000,
            default_memory_bytes: 512 << 20,
            work_size: "256m".into(),
        }
    }
}

/// Members' uid and gid by default: high, outside the local driver's range
/// (1900000-1999999) and the usual subordinate id ranges, so it is nobody's on the host.
pub const DEFAULT_UID: u32 = 2_000_000;

/// Where the member runs (its agent's working directory: `app.log`, artifacts).
pub const WORK: &str = "/work";
/// The bus CA's copy in the container, when the bus speaks TLS.
pub const BUS_CA: &str = "/etc/stratos-bus-ca.pem";

/// The container of `spec`, running the bundled agent with `env` on `network`.
pub fn create_body(
    spec: &MemberSpec,
    image: &str,
    bundle: &Bundle,
    confinement: &Confinement,
    network: &str,
    env: Vec<String>,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let mut binds = vec![format!("{}:{MOUNT}:ro", bundle.dir.display())];
    // The driver's readable copy of the CA (`DockerDriver::readable_ca`).
    if let Some(ca) = &spec.bus_ca_cert {
        binds.push(format!("{}:{BUS_CA}:ro", ca.display()));
    }
    binds.extend(
        spec.volumes.iter().map(|v| format!("{}:{}:{}", v.source, v.target, if v.read_only { "ro" } else { "rw" })),
    );
    let tmpfs = format!(
        "rw,nosuid,nodev,size={},uid={},gid={},mode=0700",
        confinement.work_size, confinement.uid, confinement.gid
    );
    let host_config = HostConfig {
        binds: Some(binds),
        network_mode: Some(network.to_string()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        pids_limit: Some(confinement.pids_limit),
        memory: Some(spec.limits.memory_bytes.unwrap_or(confinement.default_memory_bytes)),
        // No swap beyond the limit: the limit is the member's memory.
        memory_swap: Some(spec.limits.memory_bytes.unwrap_or(confinement.default_memory_bytes)),
        nano_cpus: Some(spec.limits.nano_cpus.unwrap_or(confinement.default_nano_cpus)),
        tmpfs: Some(HashMap::from([(WORK.to_string(), tmpfs.clone()), ("/tmp".to_string(), tmpfs)])),
        // An init reaps what the app leaves behind and passes signals on to the agent.
        init: Some(true),
        // The controller replaces members; the engine must not restart them behind it.
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        privileged: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(bundle.command(&["agent"])),
        cmd: Some(Vec::new()),
        user: Some(format!("{}:{}", confinement.uid, confinement.gid)),
        working_dir: Some(WORK.to_string()),
        env: Some(env),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_confined() {
        let spec: MemberSpec = serde_json::from_value(serde_json::json!({
            "memberId": "m1", "clusterId": "a.w", "serviceName": "php", "appId": "a", "tenantId": 3,
            "networkPartitionId": "np", "partitionId": "p", "command": [], "image": "php", "ports": [],
            "brokerUrl": "", "artifactRepository": null, "env": {}, "platformId": "plat",
            "limits": {"nanoCpus": 500000000},
            "volumes": [{"source": "/srv/data", "target": "/data", "readOnly": true}]
        }))
        .unwrap();
        let bundle = Bundle::prepare_for_test("/var/lib/stratos/bundle");
        let body = create_body(&spec, "php", &bundle, &Confinement::default(), "net", vec![], HashMap::new());
        let host = body.host_config.unwrap();
        assert_eq!(body.user.as_deref(), Some("2000000:2000000"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!((host.pids_limit, host.nano_cpus, host.memory), (Some(512), Some(500_000_000), Some(512 << 20)));
        assert_eq!(
            host.binds.unwrap(),
            ["/var/lib/stratos/bundle:/.stratos:ro".to_string(), "/srv/data:/data:ro".to_string()]
        );
        assert_eq!(host.network_mode.as_deref(), Some("net"));
        assert!(host.tmpfs.unwrap()["/work"].contains("uid=2000000"));
    }
}
