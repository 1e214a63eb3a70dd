//! Fixtures and scenarios shared by the SQLite and PostgreSQL tests: every
//! scenario runs unchanged against both back ends.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use serde_json::{json, Value};
use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::{Definitions, Kind, Protocol, Tenant, SUPER_TENANT};
use stratos_store::{Store, StoreError};

/// The tenant whose definitions the restart scenarios write.
pub const TENANT: i64 = 7;

/// One definition of every kind, as JSON.
pub fn definitions_json() -> Vec<(Kind, Value)> {
    vec![
        (
            Kind::NetworkPartition,
            json!({"id": "local-np", "provider": "local", "partitions": [{"id": "p1", "partitionMax": 4}]}),
        ),
        (
            Kind::DeploymentPolicy,
            json!({"id": "local-only", "networkPartitions": [
                {"id": "local-np", "partitionAlgo": "one-after-another", "partitions": [{"id": "p1", "partitionMax": 4}]}
            ]}),
        ),
        (
            Kind::AutoscalingPolicy,
            json!({"id": "economy", "loadThresholds": {"requestsInFlight": {"threshold": 80.0}, "memoryConsumption": {"threshold": 70.5}}}),
        ),
        (
            Kind::ApplicationPolicy,
            json!({"id": "one-np", "algorithm": "one-after-another", "networkPartitions": ["local-np"]}),
        ),
        (
            Kind::Cartridge,
            json!({"type": "php", "category": "framework", "displayName": "PHP ✓",
                   "portMapping": [{"protocol": "http", "port": 8080, "proxyPort": 80}],
                   "iaasProvider": [{"type": "local", "command": ["php", "-S", "0.0.0.0:8080"]}]}),
        ),
        (
            Kind::CartridgeGroup,
            json!({"name": "web-group", "cartridges": ["php"], "groupScalingEnabled": true,
                   "groups": [{"name": "inner", "cartridges": ["php"]}],
                   "dependencies": {"startupOrders": [{"aliases": ["cartridge.a", "cartridge.b"]}]}}),
        ),
        (
            Kind::Application,
            json!({"applicationId": "shop", "components": {"cartridges": [{
                "type": "php", "cartridgeMin": 1, "cartridgeMax": 3,
                "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "local-only"}
            }]}}),
        ),
    ]
}

pub fn definitions() -> Definitions {
    let mut defs = Definitions::default();
    for (kind, value) in definitions_json() {
        defs.insert_json(kind, value).expect("fixture definitions parse");
    }
    defs
}

/// The id a definition is stored under.
pub fn definition_id(kind: Kind, value: &Value) -> String {
    value[kind.id_field()].as_str().expect("fixture has its id").to_owned()
}

pub fn topology() -> Topology {
    let member = Member {
        service_name: "php".into(),
        cluster_id: "shop.web.php".into(),
        member_id: "shop.web.php-1".into(),
        network_partition_id: "local-np".into(),
        partition_id: "p1".into(),
        status: MemberStatus::Active,
        default_private_ip: Some("127.0.0.1".into()),
        default_public_ip: None,
        ports: vec![Port { protocol: Protocol::Http, value: 8080, proxy: 80 }],
        init_time: 1_700_000_000_123,
        properties: vec![],
    };
    let cluster = Cluster {
        cluster_id: "shop.web.php".into(),
        service_name: "php".into(),
        app_id: "shop".into(),
        alias: "web".into(),
        tenant_id: TENANT,
        host_names: vec!["web.shop.stratos.local".into()],
        autoscale_policy_name: "economy".into(),
        deployment_policy_name: "local-only".into(),
        status: ClusterStatus::Active,
        error: None,
        created_at: 0,
        members: BTreeMap::from([(member.member_id.clone(), member)]),
    };
    let service = Service {
        service_name: "php".into(),
        service_type: ServiceType::SingleTenant,
        ports: vec![Port { protocol: Protocol::Http, value: 8080, proxy: 80 }],
        clusters: BTreeMap::from([(cluster.cluster_id.clone(), cluster)]),
    };
    Topology { services: BTreeMap::from([("php".to_owned(), service)]) }
}

/// Tenants out of numeric order, and with ids whose text order differs from their numeric order.
pub fn tenants() -> Vec<Tenant> {
    [(12, "twelve.example.com"), (TENANT, "example.com"), (3, "three.example.org")]
        .into_iter()
        .map(|(id, domain)| Tenant {
            tenant_id: id,
            tenant_domain: domain.into(),
            active: id != 3,
            email: Some(format!("admin@{domain}")),
            created_at: 1_700_000_000_000 + id as u64,
        })
        .collect()
}

/// put/get/list/delete, upsert, ordering, tenant and collection isolation.
pub async fn round_trip(store: &Store) {
    let (a, b) = (101, 202);
    let c = "cartridge";

    assert_eq!(store.get(a, c, "php").await.unwrap(), None, "empty store has no document");
    assert!(store.list(a, c).await.unwrap().is_empty());
    assert!(store.list_all_tenants(c).await.unwrap().is_empty());
    assert!(!store.delete(a, c, "php").await.unwrap(), "deleting a missing document reports false");

    let v1 = json!({"type": "php", "category": "framework", "rev": 1});
    store.put(a, c, "php", &v1).await.unwrap();
    assert_eq!(store.get(a, c, "php").await.unwrap(), Some(v1.clone()));

    // Upsert replaces, it does not add a second row.
    let v2 = json!({
        "type": "php", "category": "framework", "rev": 2,
        "nested": {"list": [1, 2.5, -3, "ünïcødé ✓ \"quoted\" \\ back"], "null": null, "t": true},
        "big": u64::MAX, "small": i64::MIN, "tenth": 0.1
    });
    store.put(a, c, "php", &v2).await.unwrap();
    assert_eq!(store.get(a, c, "php").await.unwrap(), Some(v2.clone()), "upsert replaces the body");
    assert_eq!(store.list(a, c).await.unwrap(), vec![v2.clone()], "upsert keeps one document");

    // Ordered by id, bytewise (uppercase before lowercase) on both back ends.
    for id in ["zeta", "alpha", "Mid", "beta"] {
        store.put(a, c, id, &json!({"type": id})).await.unwrap();
    }
    let ids: Vec<Value> = store.list(a, c).await.unwrap().into_iter().map(|v| v["type"].clone()).collect();
    assert_eq!(ids, vec![json!("Mid"), json!("alpha"), json!("beta"), json!("php"), json!("zeta")]);

    // Tenant isolation: B's document of the same collection and id is its own.
    assert_eq!(store.get(b, c, "php").await.unwrap(), None, "tenant B cannot see tenant A's document");
    assert!(store.list(b, c).await.unwrap().is_empty(), "tenant B lists none of tenant A's documents");
    assert!(!store.delete(b, c, "php").await.unwrap(), "tenant B cannot delete tenant A's document");
    let vb = json!({"type": "php", "owner": "b"});
    store.put(b, c, "php", &vb).await.unwrap();
    assert_eq!(store.get(b, c, "php").await.unwrap(), Some(vb.clone()));
    assert_eq!(store.get(a, c, "php").await.unwrap(), Some(v2.clone()), "B's write leaves A's document alone");
    assert_eq!(store.list(b, c).await.unwrap(), vec![vb.clone()]);

    // Collection isolation.
    assert_eq!(store.get(a, "application", "php").await.unwrap(), None);
    assert!(store.list(a, "application").await.unwrap().is_empty());

    // Across tenants: ordered by tenant (numerically, negative first) then id.
    let sup = json!({"type": "php", "owner": "super"});
    store.put(SUPER_TENANT, c, "php", &sup).await.unwrap();
    let all = store.list_all_tenants(c).await.unwrap();
    let keys: Vec<(i64, Value)> = all.iter().map(|(t, v)| (*t, v["type"].clone())).collect();
    assert_eq!(
        keys,
        vec![
            (SUPER_TENANT, json!("php")),
            (a, json!("Mid")),
            (a, json!("alpha")),
            (a, json!("beta")),
            (a, json!("php")),
            (a, json!("zeta")),
            (b, json!("php")),
        ]
    );
    assert_eq!(all[4].1, v2);
    assert_eq!(all[6].1, vb);

    // Delete: true once, then false; other tenants untouched.
    assert!(store.delete(a, c, "php").await.unwrap(), "delete reports the document existed");
    assert!(!store.delete(a, c, "php").await.unwrap(), "second delete reports nothing to delete");
    assert_eq!(store.get(a, c, "php").await.unwrap(), None);
    assert_eq!(store.get(b, c, "php").await.unwrap(), Some(vb));
    assert_eq!(store.get(SUPER_TENANT, c, "php").await.unwrap(), Some(sup));
    assert_eq!(store.list(a, c).await.unwrap().len(), 4);
}

/// Writes definitions (tenant [`TENANT`]), the topology and the tenants.
pub async fn write_everything(store: &Store) {
    for (kind, value) in definitions_json() {
        store.put(TENANT, kind.name(), &definition_id(kind, &value), &value).await.unwrap();
    }
    store.save_topology(&topology()).await.unwrap();
    for t in tenants() {
        store.put_tenant(&t).await.unwrap();
    }
}

/// Checks what [`write_everything`] wrote.
pub async fn check_everything(store: &Store) {
    let defs = store.load_definitions(TENANT).await.unwrap();
    assert_eq!(defs, definitions(), "definitions survive");
    assert_eq!(defs.cartridges["php"].display_name.as_deref(), Some("PHP ✓"));
    assert_eq!(store.load_definitions(TENANT + 1).await.unwrap(), Definitions::default(), "other tenant has none");
    assert_eq!(store.load_topology().await.unwrap(), topology(), "topology survives");
    let mut expected = tenants();
    expected.sort_by_key(|t| t.tenant_id);
    let got = store.tenants().await.unwrap();
    assert_eq!(got, expected, "tenants survive, ordered by id");
    assert_eq!(got.iter().map(|t| t.tenant_id).collect::<Vec<_>>(), vec![3, TENANT, 12]);
}

/// A fresh store has an empty topology, no tenants and no definitions.
pub async fn check_empty(store: &Store) {
    assert_eq!(store.load_topology().await.unwrap(), Topology::default());
    assert!(store.tenants().await.unwrap().is_empty());
    assert_eq!(store.load_definitions(TENANT).await.unwrap(), Definitions::default());
}

/// A stored document that is JSON but not a valid definition / topology / tenant:
/// the typed helpers fail with an error naming collection and id.
pub async fn invalid_typed_documents(store: &Store) {
    let tenant = 55;
    store.put(tenant, "cartridge", "good", &json!({"type": "good", "category": "framework"})).await.unwrap();
    store.put(tenant, "cartridge", "broken", &json!({"type": "broken"})).await.unwrap();
    let err = store.load_definitions(tenant).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidDocument { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cartridge/broken") && msg.contains("tenant 55") && msg.contains("category"), "{msg}");

    store.put(SUPER_TENANT, "topology", "current", &json!({"services": 42})).await.unwrap();
    let msg = store.load_topology().await.unwrap_err().to_string();
    assert!(msg.contains("topology/current"), "{msg}");

    store.put(SUPER_TENANT, "tenant", "9", &json!({"tenantId": "nine"})).await.unwrap();
    let msg = store.tenants().await.unwrap_err().to_string();
    assert!(msg.contains("tenant/9"), "{msg}");
}

/// Environment variable that turns the `child_writer` test into the writing child.
pub const CHILD_URL: &str = "STRATOS_STORE_TEST_CHILD_URL";
const CHILD_DONE: &str = "stratos-store child wrote everything";

/// Body of each test binary's `child_writer` test: a no-op in a normal run;
/// in the child process, writes everything and exits the process at once,
/// without dropping the store (no close, no checkpoint, no destructors).
pub async fn child_writer() {
    let Ok(url) = std::env::var(CHILD_URL) else { return };
    let store = Store::open(&url).await.expect("child opens the store");
    write_everything(&store).await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{CHILD_DONE}").unwrap();
    out.flush().unwrap();
    std::process::exit(0);
}

/// Runs this test binary again, only its `child_writer` test, writing to `url`;
/// returns once that process has exited.
pub fn write_in_child_process(url: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(&exe)
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains(CHILD_DONE), "child did not run the writer:\n{stdout}\n{stderr}");
}

/// A topology of `services` × `clusters` per service, each cluster with `members` members.
pub fn topology_of(services: usize, clusters: usize, members: usize) -> Topology {
    let mut t = Topology::default();
    let template = topology();
    for s in 0..services {
        let mut service = template.services["php"].clone();
        service.service_name = format!("svc{s}");
        service.clusters.clear();
        for c in 0..clusters {
            let mut cluster = template.services["php"].clusters["shop.web.php"].clone();
            cluster.cluster_id = format!("app.c{s}-{c}");
            cluster.service_name = service.service_name.clone();
            let one = cluster.members.values().next().unwrap().clone();
            cluster.members = (0..members)
                .map(|m| {
                    let mut member = one.clone();
                    member.member_id = format!("{}.{m:012x}", cluster.cluster_id);
                    member.cluster_id = cluster.cluster_id.clone();
                    member.service_name = service.service_name.clone();
                    (member.member_id.clone(), member)
                })
                .collect();
            service.clusters.insert(cluster.cluster_id.clone(), cluster);
        }
        t.services.insert(service.service_name.clone(), service);
    }
    t
}

/// The topology is stored one document per cluster (and per service); saving changes
/// writes only the clusters named, deletes removed ones, and a reload assembles it.
pub async fn topology_per_cluster(store: &Store) {
    let mut t = topology_of(2, 3, 4);
    store.save_topology(&t).await.unwrap();
    assert_eq!(store.load_topology().await.unwrap(), t, "saved whole, loaded whole");
    assert_eq!(store.list(SUPER_TENANT, "topology-cluster").await.unwrap().len(), 6, "one document per cluster");
    let services = store.list(SUPER_TENANT, "topology-service").await.unwrap();
    assert_eq!(services.len(), 2, "one document per service");
    assert!(services[0].get("clusters").is_none(), "a service's document leaves its clusters out: {}", services[0]);

    // A marker in a cluster's stored document that the next save must leave alone.
    let untouched = "app.c0-1";
    let mut marked = t.cluster(untouched).unwrap().clone();
    marked.error = Some("marker: not rewritten".into());
    store.put(SUPER_TENANT, "topology-cluster", untouched, &serde_json::to_value(&marked).unwrap()).await.unwrap();

    // One member activated in c0-0; svc1 loses all its clusters, and so goes.
    let mut changes = stratos_store::TopologyChanges::default();
    let m = t.cluster_mut("app.c0-0").unwrap().members.values_mut().next().unwrap();
    m.status = MemberStatus::Starting;
    changes.clusters.insert("app.c0-0".into());
    for id in t.services["svc1"].clusters.keys() {
        changes.clusters.insert(id.clone());
    }
    t.services.remove("svc1");
    changes.services.insert("svc1".into());
    store.save_topology_changes(&t, &changes).await.unwrap();

    let mut expected = t.clone();
    *expected.cluster_mut(untouched).unwrap() = marked;
    assert_eq!(store.load_topology().await.unwrap(), expected, "only the changed clusters were written");
    assert_eq!(store.list(SUPER_TENANT, "topology-cluster").await.unwrap().len(), 3, "removed clusters deleted");
    assert_eq!(store.list(SUPER_TENANT, "topology-service").await.unwrap().len(), 1, "removed service deleted");

    // Nothing to save is no write at all.
    store.save_topology_changes(&t, &Default::default()).await.unwrap();
    // A whole save replaces everything, marker included.
    store.save_topology(&t).await.unwrap();
    assert_eq!(store.load_topology().await.unwrap(), t);
}

/// A topology an earlier build saved as one document is read as it is, then moved
/// into per-cluster documents once; it wins over per-cluster rows found beside it.
pub async fn topology_migration(store: &Store) {
    let stale = topology_of(1, 2, 1);
    store.save_topology(&stale).await.unwrap();
    let legacy = topology_of(2, 2, 3);
    let mut legacy = legacy;
    legacy.services.get_mut("svc0").unwrap().clusters.remove("app.c0-1");
    store.put(SUPER_TENANT, "topology", "current", &serde_json::to_value(&legacy).unwrap()).await.unwrap();

    assert_eq!(store.load_topology().await.unwrap(), legacy, "the whole document is read before migration");
    assert!(store.migrate_topology().await.unwrap(), "there was a document to migrate");
    assert_eq!(store.get(SUPER_TENANT, "topology", "current").await.unwrap(), None, "the whole document is gone");
    assert_eq!(store.load_topology().await.unwrap(), legacy, "migrated intact");
    let ids: Vec<String> = store
        .list(SUPER_TENANT, "topology-cluster")
        .await
        .unwrap()
        .iter()
        .map(|v| v["clusterId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["app.c0-0", "app.c1-0", "app.c1-1"], "a stale cluster row was dropped");
    assert!(!store.migrate_topology().await.unwrap(), "nothing left to migrate");
    assert_eq!(store.load_topology().await.unwrap(), legacy);
}

/// A batch writes and deletes together.
pub async fn batch_writes(store: &Store) {
    let t = 31;
    store.put(t, "thing", "old", &json!({"n": 0})).await.unwrap();
    let writes = vec![
        ("thing".to_owned(), "a".to_owned(), Some(json!({"n": 1}))),
        ("thing".to_owned(), "b".to_owned(), Some(json!({"n": 2}))),
        ("other".to_owned(), "a".to_owned(), Some(json!({"n": 3}))),
        ("thing".to_owned(), "old".to_owned(), None),
        ("thing".to_owned(), "never-was".to_owned(), None),
    ];
    store.write_batch(t, writes).await.unwrap();
    assert_eq!(store.list(t, "thing").await.unwrap(), vec![json!({"n": 1}), json!({"n": 2})]);
    assert_eq!(store.list(t, "other").await.unwrap(), vec![json!({"n": 3})]);
    store.write_batch(t, vec![("thing".into(), "a".into(), Some(json!({"n": 10})))]).await.unwrap();
    assert_eq!(store.get(t, "thing", "a").await.unwrap(), Some(json!({"n": 10})), "a batch replaces");
    store.write_batch(t, vec![]).await.unwrap();
}

/// A tenant's view: its own definitions, plus the platform's cartridges, network
/// partitions and public autoscaling policies; its own win on an id.
pub async fn platform_definitions_are_shared(store: &Store) {
    let tenant = 55;
    for (kind, value) in definitions_json() {
        store.put(SUPER_TENANT, kind.name(), &definition_id(kind, &value), &value).await.unwrap();
    }
    let mut public = definitions_json().into_iter().find(|(k, _)| *k == Kind::AutoscalingPolicy).unwrap().1;
    public["id"] = json!("public");
    public["isPublic"] = json!(true);
    store.put(SUPER_TENANT, "autoscaling-policy", "public", &public).await.unwrap();
    let mut own = definitions_json().into_iter().find(|(k, _)| *k == Kind::Cartridge).unwrap().1;
    own["category"] = json!("tenant's own");
    store.put(tenant, "cartridge", "php", &own).await.unwrap();

    let view = store.load_definitions(tenant).await.unwrap();
    assert_eq!(view.cartridges["php"].category, "tenant's own", "the tenant's own wins");
    assert!(view.network_partitions.contains_key("local-np"), "platform network partitions are shared");
    assert_eq!(view.autoscaling_policies.keys().collect::<Vec<_>>(), ["public"], "only public policies");
    assert!(
        view.deployment_policies.is_empty() && view.application_policies.is_empty() && view.applications.is_empty()
    );
    let own_only = store.load_own_definitions(tenant).await.unwrap();
    assert_eq!(own_only.cartridges.len(), 1);
    assert!(own_only.network_partitions.is_empty());
    let platform = store.load_definitions(SUPER_TENANT).await.unwrap();
    assert_eq!(platform.autoscaling_policies.len(), 2, "the platform sees its own, public or not");
    assert_eq!(platform.cartridges["php"].category, "framework");
}

/// A deployment of `application` for `tenant`, with one cluster.
pub fn deployment(tenant: i64, application: &str) -> stratos_model::Deployment {
    serde_json::from_value(json!({
        "applicationId": application, "tenantId": tenant, "applicationPolicyId": "one-np", "status": "deployed",
        "deployedAt": 1_700_000_000_000u64,
        "clusters": [{"clusterId": format!("{application}.web"), "alias": "web", "cartridgeType": "php",
            "min": 1, "max": 3, "desired": 1, "deploymentPolicy": "local-only", "autoscalingPolicy": "economy",
            "hostNames": [format!("{application}.web.stratos.local")]}]
    }))
    .expect("a deployment")
}

/// Typed records: put, get, list (in id order) and delete, each in its record's own
/// collection and tenant; records keyed by their document id alone get it back.
pub async fn typed_records(store: &Store) {
    use stratos_model::{ClusterScale, Deployment};
    use stratos_store::{Record, ScalingHistory};

    let (a, b) = (deployment(TENANT, "blog"), deployment(TENANT, "shop"));
    store.put_record(TENANT, &b).await.unwrap();
    store.put_record(TENANT, &a).await.unwrap();
    store.put_record(TENANT + 1, &deployment(TENANT + 1, "other")).await.unwrap();
    assert_eq!(store.get_record::<Deployment>(TENANT, "shop").await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_record::<Deployment>(TENANT, "other").await.unwrap(), None, "another tenant's");
    // The record is the document the raw API sees, in its type's collection.
    assert_eq!(
        store.get(TENANT, Deployment::COLLECTION, "shop").await.unwrap(),
        Some(serde_json::to_value(&b).unwrap())
    );
    let listed = store.list_records::<Deployment>(TENANT).await.unwrap();
    assert_eq!(listed.records, vec![a.clone(), b.clone()], "ordered by id");
    assert!(listed.unreadable.is_empty());
    let everywhere = store.list_records_all_tenants::<Deployment>().await.unwrap();
    assert_eq!(everywhere.records.iter().map(|d| d.tenant_id).collect::<Vec<_>>(), vec![TENANT, TENANT, TENANT + 1]);
    assert!(store.list_records::<ClusterScale>(TENANT).await.unwrap().records.is_empty(), "kinds do not mix");

    let scale =
        ClusterScale { cluster_id: "shop.web".into(), desired: 2, drain_first: vec!["m1".into()], updated_at: 5 };
    store.put_record(TENANT, &scale).await.unwrap();
    assert_eq!(store.get_record::<ClusterScale>(TENANT, "shop.web").await.unwrap(), Some(scale));

    let history = ScalingHistory { cluster_id: "shop.web".into(), decisions: vec![json!({"action": "scale-up"})] };
    store.put_record(TENANT, &history).await.unwrap();
    assert_eq!(
        store.get(TENANT, ScalingHistory::COLLECTION, "shop.web").await.unwrap(),
        Some(json!([{"action": "scale-up"}])),
        "stored as the bare array"
    );
    assert_eq!(
        store.get_record::<ScalingHistory>(TENANT, "shop.web").await.unwrap(),
        Some(history),
        "keyed again on reading"
    );

    assert!(store.delete_record::<Deployment>(TENANT, "blog").await.unwrap());
    assert!(!store.delete_record::<Deployment>(TENANT, "blog").await.unwrap(), "gone already");
    assert_eq!(store.list_records::<Deployment>(TENANT).await.unwrap().records, vec![b]);
}

/// A document that does not decode as its record (written with the raw API) is an
/// error naming tenant, collection and id with serde's reason: `get_record` returns
/// it, `list_records` returns it beside the good records, never drops it.
pub async fn unreadable_records(store: &Store) {
    use stratos_model::Deployment;
    use stratos_store::{Record, Unreadable};

    store.put_record(TENANT, &deployment(TENANT, "blog")).await.unwrap();
    store.put_record(TENANT, &deployment(TENANT, "shop")).await.unwrap();
    // JSON of the wrong shape (PostgreSQL's JSONB takes nothing else).
    store.put(TENANT, Deployment::COLLECTION, "shop", &json!({"applicationId": "shop", "clusters": 3})).await.unwrap();

    let err = store.get_record::<Deployment>(TENANT, "shop").await.unwrap_err();
    let StoreError::Unreadable(bad) = &err else { panic!("not an Unreadable: {err:?}") };
    assert_eq!((bad.tenant, bad.collection.as_str(), bad.id.as_str()), (TENANT, "deployment", "shop"));
    assert!(bad.is::<Deployment>("shop"));
    let msg = err.to_string();
    assert!(msg.contains("deployment/shop") && msg.contains(&format!("tenant {TENANT}")), "{msg}");
    assert!(msg.contains("tenantId") || msg.contains("invalid type"), "serde's reason: {msg}");

    let listed = store.list_records::<Deployment>(TENANT).await.unwrap();
    assert_eq!(listed.records.iter().map(|d| d.application_id.as_str()).collect::<Vec<_>>(), vec!["blog"]);
    assert_eq!(listed.unreadable.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), vec!["shop"]);
    let all = store.list_records_all_tenants::<Deployment>().await.unwrap();
    assert_eq!((all.records.len(), all.unreadable.len()), (1, 1));
    let first: Unreadable = store.list_records::<Deployment>(TENANT).await.unwrap().all().unwrap_err();
    assert_eq!(first.id, "shop");

    // A cluster's topology document: the rest of the topology reads, the cluster is
    // named; the strict reader fails naming it.
    store.save_topology(&topology()).await.unwrap();
    let cluster = "shop.web.php";
    store.put(SUPER_TENANT, "topology-cluster", cluster, &json!({"clusterId": cluster, "members": []})).await.unwrap();
    let (read, unreadable) = store.read_topology().await.unwrap();
    assert!(read.cluster(cluster).is_none());
    assert_eq!(read.services.len(), 1, "its service still reads");
    assert_eq!(unreadable.len(), 1);
    assert!(unreadable[0].is::<Cluster>(cluster), "{:?}", unreadable[0]);
    let msg = store.load_topology().await.unwrap_err().to_string();
    assert!(msg.contains(&format!("topology-cluster/{cluster}")), "{msg}");

    // Removing the document ends it.
    assert!(store.delete_record::<Deployment>(TENANT, "shop").await.unwrap());
    assert!(store.list_records::<Deployment>(TENANT).await.unwrap().unreadable.is_empty());
}

/// A snapshot of everything, imported into an empty store (`empty`), gives the same
/// snapshot there: every collection and tenant, record kinds this crate does not know
/// (an encrypted secret, a rollout), odd ids and bodies, as they were. An import into a
/// store holding a document is refused and writes nothing.
pub async fn snapshot_and_import(store: &Store, empty: &Store) {
    write_everything(store).await;
    store.create_platform_id(None).await.unwrap();
    // Kinds written by others, and odd ids and bodies: the snapshot is generic.
    let odd = json!({"ciphertext": "v1:AAECAwQ=", "nested": {"list": [1, 2.5, -3, "ünïcødé ✓ \"q\" \\"], "null": null}, "big": u64::MAX});
    store.put(TENANT, "config-secret", "shop/web/DB_PASSWORD", &odd).await.unwrap();
    store.put(TENANT + 1, "rollout", "shop 2", &json!({"revision": 2})).await.unwrap();
    store.put(SUPER_TENANT, "user", "admin", &json!({"passwordHash": "$argon2id$v=19$..."})).await.unwrap();
    store.put(-5, "Zeta", "", &json!([])).await.unwrap();

    let snapshot = store.snapshot().await.unwrap();
    let keys: Vec<(String, i64, String)> =
        snapshot.iter().map(|d| (d.collection.clone(), d.tenant, d.id.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by collection, tenant, id");
    assert_eq!(snapshot.len() as u64, store.document_count().await.unwrap(), "every document");
    assert!(keys.contains(&("config-secret".into(), TENANT, "shop/web/DB_PASSWORD".into())), "{keys:?}");
    assert!(keys.contains(&("Zeta".into(), -5, "".into())), "{keys:?}");
    let secret = snapshot.iter().find(|d| d.collection == "config-secret").unwrap();
    assert_eq!(secret.body, odd, "a body as stored");

    assert_eq!(empty.document_count().await.unwrap(), 0);
    assert_eq!(empty.import(snapshot.clone()).await.unwrap(), snapshot.len());
    assert_eq!(empty.snapshot().await.unwrap(), snapshot, "the import holds what the snapshot held");
    check_everything(empty).await;
    assert_eq!(empty.platform_id().await.unwrap(), store.platform_id().await.unwrap(), "the same platform id");

    // Into a store that is not empty (the source, or the restored one): refused, nothing written.
    for target in [store, empty] {
        let before = target.snapshot().await.unwrap();
        let fresh = vec![stratos_store::Document {
            collection: "cartridge".into(),
            tenant: 999,
            id: "new".into(),
            body: json!({"type": "new"}),
        }];
        let err = target.import(fresh).await.unwrap_err();
        assert!(matches!(err, StoreError::NotEmpty { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("holds") && msg.contains("empty store"), "{msg}");
        assert_eq!(target.snapshot().await.unwrap(), before, "a refused import writes nothing");
    }
}

/// A snapshot is one consistent state: a writer changes two documents of two tenants
/// and collections together (one batch each, the same counter in both) while
/// snapshots are taken; every snapshot has them equal. An import naming a document
/// twice is refused.
pub async fn snapshot_is_consistent(store: &Store) {
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 0..200u32 {
                // One transaction: both documents or neither.
                store
                    .write_batch(
                        1,
                        vec![
                            ("pair-a".into(), "x".into(), Some(json!({"n": n}))),
                            ("pair-b".into(), "y".into(), Some(json!({"n": n}))),
                        ],
                    )
                    .await
                    .unwrap();
                store.put(2, "noise", &format!("n{}", n % 7), &json!({"n": n})).await.unwrap();
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let snapshot = store.snapshot().await.unwrap();
        let n = |collection: &str| snapshot.iter().find(|d| d.collection == collection).map(|d| d.body["n"].clone());
        assert_eq!(n("pair-a"), n("pair-b"), "a snapshot saw half a transaction");
        seen.insert(n("pair-a").map(|v| v.to_string()).unwrap_or_default());
    }
    writer.await.unwrap();
    println!("{} distinct states seen by snapshots", seen.len());

    let twice = vec![
        stratos_store::Document { collection: "c".into(), tenant: 1, id: "a".into(), body: json!(1) },
        stratos_store::Document { collection: "c".into(), tenant: 1, id: "a".into(), body: json!(2) },
    ];
    let err = store.import(twice).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateDocument { .. }), "{err:?}");
}
