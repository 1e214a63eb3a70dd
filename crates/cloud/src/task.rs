//! One-off tasks (`stratos application run APP -- CMD`): the member a task runs in,
//! decided here (pure), run by the driver (`Driver::run_task`).
//!
//! A task member is of the cluster's cartridge as deployed: the cartridge's image and
//! `env.*` properties, the cluster's ids, in the place of one of the cluster's members
//! (the first by id), or the first partition of its deployment policy when it has
//! none. It has no slot and so no persistent volumes (a volume belongs to the member
//! of its slot, which may be writing it), no agent (nothing fetches the artifact
//! repository; the command runs as the image, or the local machine, has it), no bus
//! credentials, no ports; no topology holds it, so no load balancer routes to it and no
//! autoscaler counts it.

use std::collections::BTreeMap;

use stratos_model::topology::Cluster;
use stratos_model::{ClusterSpec, Definitions, Deployment};

use crate::driver::MemberSpec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    #[error("cartridge {0:?} is not defined")]
    NoCartridge(String),
    #[error("deployment policy {0:?} is not defined")]
    NoPolicy(String),
    #[error("the deployment policy {0:?} names no partition")]
    NoPartition(String),
    #[error("network partition {0:?} is not defined or has no provider")]
    NoProvider(String),
    #[error("cartridge {cartridge:?} has no iaasProvider of type {provider:?}")]
    NoIaas { cartridge: String, provider: String },
}

/// The driver (provider) to run it on, and the task member's spec.
pub fn task_spec(
    deployment: &Deployment,
    spec: &ClusterSpec,
    cluster: Option<&Cluster>,
    defs: &Definitions,
    platform_id: &str,
    task_id: &str,
) -> Result<(String, MemberSpec), TaskError> {
    let cartridge =
        defs.cartridges.get(&spec.cartridge_type).ok_or_else(|| TaskError::NoCartridge(spec.cartridge_type.clone()))?;
    let (np_id, partition_id) = match cluster.and_then(|c| c.members.values().next()) {
        Some(m) => (m.network_partition_id.clone(), m.partition_id.clone()),
        None => {
            let policy = defs
                .deployment_policies
                .get(&spec.deployment_policy)
                .ok_or_else(|| TaskError::NoPolicy(spec.deployment_policy.clone()))?;
            let np = policy
                .network_partitions
                .first()
                .filter(|np| !np.partitions.is_empty())
                .ok_or_else(|| TaskError::NoPartition(spec.deployment_policy.clone()))?;
            (np.id.clone(), np.partitions[0].id.clone())
        }
    };
    let np = defs.network_partitions.get(&np_id).ok_or_else(|| TaskError::NoProvider(np_id.clone()))?;
    let provider = np
        .partition(&partition_id)
        .and_then(|p| np.provider_of(p))
        .or(np.provider.as_deref())
        .ok_or_else(|| TaskError::NoProvider(np_id.clone()))?
        .to_string();
    let iaas = cartridge
        .iaas(&provider)
        .ok_or_else(|| TaskError::NoIaas { cartridge: spec.cartridge_type.clone(), provider: provider.clone() })?;
    let env: BTreeMap<String, String> = iaas
        .property
        .iter()
        .filter_map(|p| p.name.strip_prefix("env.").map(|k| (k.to_string(), p.value.clone())))
        .collect();
    let partition = np.partition(&partition_id).map(|p| p.property.as_slice()).unwrap_or_default();
    let placement = np.property.iter().chain(partition).map(|p| (p.name.clone(), p.value.clone())).collect();
    let member = MemberSpec {
        member_id: format!("{}.task-{task_id}", spec.cluster_id),
        cluster_id: spec.cluster_id.clone(),
        service_name: spec.cartridge_type.clone(),
        app_id: deployment.application_id.clone(),
        tenant_id: deployment.tenant_id,
        network_partition_id: np_id,
        partition_id,
        command: Vec::new(),
        image: iaas.image_id.clone(),
        ports: Vec::new(),
        broker_url: String::new(),
        bus_credentials: None,
        bus_ca_cert: None,
        artifact_repository: None,
        env,
        platform_id: platform_id.to_string(),
        limits: iaas.limits(&cartridge.property),
        volumes: iaas.volumes.clone(),
        placement,
        slot: None,
        persistent_volumes: Vec::new(),
    };
    Ok((provider, member))
}

/// A task id: 12 hex digits from the clock, the process and a counter, mixed.
pub fn new_task_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut x = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:012x}", x & 0xFFFF_FFFF_FFFF)
}
