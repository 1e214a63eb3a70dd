//! Clusters the controller must leave as they are: those a stored document it cannot
//! read is about. Pure.
//!
//! An unreadable document is neither the record nor its absence: a cluster whose
//! topology document cannot be read would otherwise have no members (and its running
//! members would be orphans), one whose deployment cannot be read would be "no longer
//! deployed", one whose scale record cannot be read would fall back to its minimum.
//! So a frozen cluster gets no new member and loses none (not terminated, drained, nor
//! reaped as an orphan) until the document is fixed or removed; `application status`
//! names the document.

use std::collections::HashSet;

use stratos_model::topology::{Cluster, Topology};
use stratos_model::{ClusterRestart, ClusterScale, Deployment, Rollout, RolloutOutcome};
use stratos_store::Unreadable;

/// The ids of the clusters `unreadable` documents concern: a cluster's own topology
/// document, scale record or restart record names it; a deployment, every cluster of its application
/// (and tenant) in the topology. Documents of other kinds freeze no cluster.
pub fn frozen_clusters(topology: &Topology, unreadable: &[Unreadable]) -> HashSet<String> {
    let mut frozen = HashSet::new();
    for bad in unreadable {
        if bad.of::<Cluster>() || bad.of::<ClusterScale>() || bad.of::<ClusterRestart>() {
            frozen.insert(bad.id.clone());
        } else if bad.of::<Deployment>() || bad.of::<Rollout>() || bad.of::<RolloutOutcome>() {
            // A rollout's document is `<application>#<number>`: its application's clusters.
            let app = bad.id.split('#').next().unwrap_or_default();
            let clusters = topology.services.values().flat_map(|s| s.clusters.values());
            frozen.extend(
                clusters.filter(|c| c.tenant_id == bad.tenant && c.app_id == app).map(|c| c.cluster_id.clone()),
            );
        }
    }
    frozen
}

#[cfg(test)]
mod tests {
    use stratos_model::topology::{ClusterStatus, Service, ServiceType};
    use stratos_store::{Record, TopologyService};

    use super::*;

    fn cluster(tenant_id: i64, app_id: &str, alias: &str) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "clusterId": format!("{app_id}.{alias}"), "serviceName": "php", "appId": app_id, "alias": alias,
            "tenantId": tenant_id, "hostNames": [], "autoscalePolicyName": "a", "deploymentPolicyName": "d", "status": ClusterStatus::Active, "members": {}
        }))
        .expect("a cluster")
    }

    fn topology() -> Topology {
        let mut service = Service {
            service_name: "php".into(),
            service_type: ServiceType::SingleTenant,
            ports: vec![],
            clusters: Default::default(),
        };
        for c in
            [cluster(1, "shop", "web"), cluster(1, "shop", "db"), cluster(2, "shop", "web2"), cluster(1, "blog", "web")]
        {
            service.clusters.insert(c.cluster_id.clone(), c);
        }
        let mut t = Topology::default();
        t.services.insert("php".into(), service);
        t
    }

    fn bad<R: Record>(tenant: i64, id: &str) -> Unreadable {
        Unreadable { tenant, collection: R::COLLECTION.into(), id: id.into(), reason: "expected a map".into() }
    }

    fn ids(set: HashSet<String>) -> Vec<String> {
        let mut v: Vec<String> = set.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_unreadable_freezes_nothing() {
        assert!(frozen_clusters(&topology(), &[]).is_empty());
    }

    #[test]
    fn a_cluster_document_freezes_its_cluster_even_absent_from_the_topology() {
        let frozen =
            frozen_clusters(&topology(), &[bad::<Cluster>(-1234, "shop.web"), bad::<Cluster>(-1234, "gone.x")]);
        assert_eq!(ids(frozen), ["gone.x", "shop.web"]);
    }

    #[test]
    fn a_scale_record_freezes_its_cluster() {
        assert_eq!(ids(frozen_clusters(&topology(), &[bad::<ClusterScale>(1, "shop.db")])), ["shop.db"]);
    }

    #[test]
    fn a_deployment_freezes_its_applications_clusters_of_its_tenant_only() {
        let frozen = frozen_clusters(&topology(), &[bad::<Deployment>(1, "shop")]);
        assert_eq!(ids(frozen), ["shop.db", "shop.web"]);
    }

    #[test]
    fn other_documents_freeze_no_cluster() {
        assert!(frozen_clusters(&topology(), &[bad::<TopologyService>(-1234, "php")]).is_empty());
    }
}
