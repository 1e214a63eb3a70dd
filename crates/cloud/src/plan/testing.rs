//! Builders for the planner's unit tests.

use std::collections::BTreeMap;

use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Service, ServiceType, Topology};
use stratos_model::{ClusterScale, ClusterSpec, Property};

use crate::driver::{Instance, InstanceState};

pub const CLUSTER: &str = "app.web";

// Placements are built as the model's own tests build them.
pub use stratos_model::placement::testing::{plan as placement, slot};

pub fn spec(min: u32, max: u32, desired: u32) -> ClusterSpec {
    ClusterSpec {
        cluster_id: CLUSTER.into(),
        alias: "web".into(),
        cartridge_type: "web".into(),
        min,
        max,
        desired,
        deployment_policy: "dp".into(),
        autoscaling_policy: "asp".into(),
        host_names: vec![],
        artifact_repository: None,
        depends_on: vec![],
        revision: None,
    }
}

pub fn scale(desired: u32, drain_first: &[&str]) -> ClusterScale {
    ClusterScale {
        cluster_id: CLUSTER.into(),
        desired,
        drain_first: drain_first.iter().map(|s| s.to_string()).collect(),
        updated_at: 0,
    }
}

pub fn active() -> MemberStatus {
    MemberStatus::Active
}

pub fn member(id: &str, np: &str, p: &str, status: MemberStatus, init_time: u64) -> Member {
    Member {
        service_name: "web".into(),
        cluster_id: CLUSTER.into(),
        member_id: id.into(),
        network_partition_id: np.into(),
        partition_id: p.into(),
        status,
        default_private_ip: None,
        default_public_ip: None,
        ports: vec![],
        init_time,
        properties: vec![Property { name: "provider".into(), value: "local".into() }],
    }
}

/// One service `web` with cluster [`CLUSTER`] holding `members`.
pub fn topology(members: &[Member]) -> Topology {
    let cluster = Cluster {
        cluster_id: CLUSTER.into(),
        service_name: "web".into(),
        app_id: "app".into(),
        alias: "web".into(),
        tenant_id: -1234,
        host_names: vec![],
        autoscale_policy_name: "asp".into(),
        deployment_policy_name: "dp".into(),
        status: ClusterStatus::Active,
        error: None,
        created_at: 0,
        members: members.iter().map(|m| (m.member_id.clone(), m.clone())).collect(),
    };
    let mut topology = Topology::default();
    topology.services.insert(
        "web".into(),
        Service {
            service_name: "web".into(),
            service_type: ServiceType::SingleTenant,
            ports: vec![],
            clusters: BTreeMap::from([(CLUSTER.to_string(), cluster)]),
        },
    );
    topology
}

pub fn instance(id: &str, cluster: &str, platform: Option<&str>, state: InstanceState) -> Instance {
    Instance {
        member_id: id.into(),
        cluster_id: cluster.into(),
        state,
        address: "127.0.0.1".into(),
        ports: vec![],
        started_at: 0,
        platform_id: platform.map(str::to_string),
        network_partition_id: "np1".into(),
        partition_id: String::new(),
    }
}
