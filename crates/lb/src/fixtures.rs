//! Topologies for tests: members, clusters and services built in one line each. Shared
//! by this crate's tests and the extension's (feature `test-fixtures`, dev only), so
//! that both route the same sample topologies.

use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::Protocol;

pub fn port(protocol: Protocol, value: u32, proxy: u32) -> Port {
    Port { protocol, value, proxy }
}

pub fn member(cluster: &str, id: &str, status: MemberStatus, ip: &str, ports: Vec<Port>) -> Member {
    Member {
        service_name: "svc".into(),
        cluster_id: cluster.into(),
        member_id: id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
        status,
        default_private_ip: Some(ip.into()),
        default_public_ip: None,
        ports,
        init_time: 0,
        properties: vec![],
    }
}

pub fn cluster(id: &str, tenant_id: i64, hosts: &[&str], members: Vec<Member>) -> Cluster {
    Cluster {
        cluster_id: id.into(),
        service_name: "svc".into(),
        app_id: "app".into(),
        alias: "web".into(),
        tenant_id,
        host_names: hosts.iter().map(|h| h.to_string()).collect(),
        autoscale_policy_name: "a".into(),
        deployment_policy_name: "d".into(),
        status: ClusterStatus::Active,
        error: None,
        created_at: 0,
        members: members.into_iter().map(|m| (m.member_id.clone(), m)).collect(),
    }
}

pub fn topology(services: Vec<(&str, ServiceType, Vec<Port>, Vec<Cluster>)>) -> Topology {
    Topology {
        services: services
            .into_iter()
            .map(|(name, service_type, ports, clusters)| {
                let clusters = clusters
                    .into_iter()
                    .map(|mut c| {
                        c.service_name = name.into();
                        for m in c.members.values_mut() {
                            m.service_name = name.into();
                        }
                        (c.cluster_id.clone(), c)
                    })
                    .collect();
                (name.to_string(), Service { service_name: name.into(), service_type, ports, clusters })
            })
            .collect(),
    }
}
