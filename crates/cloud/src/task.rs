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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{member, topology, CLUSTER};
    use stratos_model::topology::MemberStatus;

    fn de<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a definition")
    }

    fn defs() -> Definitions {
        let mut defs = Definitions::default();
        defs.cartridges.insert(
            "web".into(),
            de(serde_json::json!({"type": "web", "category": "framework",
                "portMapping": [{"protocol": "http", "port": 80, "proxyPort": 8280}],
                "persistence": {"isRequired": true, "volume": [{"id": "d", "size": 1, "mappingPath": "/d"}]},
                "iaasProvider": [
                    {"type": "local", "command": ["serve"], "property": [{"name": "env.GREETING", "value": "hi"}, {"name": "other", "value": "x"}]},
                    {"type": "docker", "imageId": "img:1"}]})),
        );
        defs.network_partitions.insert(
            "np1".into(),
            de(serde_json::json!({"id": "np1", "provider": "local",
                "partitions": [{"id": "a"}, {"id": "b", "provider": "docker", "property": [{"name": "dockerHost", "value": "tcp://h:2375"}]}]})),
        );
        defs.deployment_policies.insert(
            "dp".into(),
            de(
                serde_json::json!({"id": "dp", "networkPartitions": [{"id": "np1", "partitionAlgo": "one-after-another",
                "partitions": [{"id": "a", "partitionMax": 2}, {"id": "b", "partitionMax": 5}]}]}),
            ),
        );
        defs
    }

    fn deployment() -> Deployment {
        de(serde_json::json!({
            "applicationId": "app", "tenantId": 3, "applicationPolicyId": "ap", "status": "deployed", "deployedAt": 0,
            "clusters": [{"clusterId": CLUSTER, "alias": "web", "cartridgeType": "web", "min": 1, "max": 2, "desired": 1,
                          "deploymentPolicy": "dp", "autoscalingPolicy": "asp", "hostNames": []}]
        }))
    }

    #[test]
    fn a_task_takes_the_cartridge_and_a_members_place_but_no_slot() {
        let (d, defs) = (deployment(), defs());
        let members = [member("m1", "np1", "b", MemberStatus::Active, 0)];
        let topology = topology(&members);
        let (provider, spec) = task_spec(&d, &d.clusters[0], topology.cluster(CLUSTER), &defs, "plat", "abc").unwrap();
        assert_eq!(provider, "docker");
        assert_eq!(spec.member_id, format!("{CLUSTER}.task-abc"));
        assert_eq!((spec.partition_id.as_str(), spec.image.as_deref()), ("b", Some("img:1")));
        assert_eq!(spec.placement.get("dockerHost").map(String::as_str), Some("tcp://h:2375"));
        assert_eq!((spec.slot, spec.persistent_volumes.len(), spec.ports.len()), (None, 0, 0));
        assert!(spec.bus_credentials.is_none() && spec.artifact_repository.is_none());
        assert_eq!((spec.tenant_id, spec.app_id.as_str(), spec.platform_id.as_str()), (3, "app", "plat"));
    }

    #[test]
    fn without_members_a_task_goes_to_the_policys_first_partition() {
        let (d, defs) = (deployment(), defs());
        let (provider, spec) = task_spec(&d, &d.clusters[0], None, &defs, "plat", "abc").unwrap();
        assert_eq!((provider.as_str(), spec.partition_id.as_str()), ("local", "a"));
        assert_eq!(spec.env.get("GREETING").map(String::as_str), Some("hi"));
        assert!(!spec.env.contains_key("other"));
    }

    #[test]
    fn a_missing_definition_says_which() {
        let (d, mut defs) = (deployment(), defs());
        defs.cartridges.clear();
        assert_eq!(
            task_spec(&d, &d.clusters[0], None, &defs, "p", "t").unwrap_err(),
            TaskError::NoCartridge("web".into())
        );
    }

    #[test]
    fn task_ids_differ() {
        assert_ne!(new_task_id(), new_task_id());
        assert_eq!(new_task_id().len(), 12);
    }
}
