//! The controller and the autoscaler at work on the `simulated` driver (members
//! without processes), on a real embedded broker and a real SQLite store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stratos_bus::events::MemberCreatedEvent;
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker};
use stratos_cloud::Driver;
use stratos_cloud::{CloudController, ControllerConfig, SimulatedDriver};
use stratos_model::topology::{Cluster, MemberStatus};
use stratos_model::{
    ApplicationMonitorStatus, ClusterScale, ClusterSpec, Deployment, DeploymentStatus, GroupSpec, Kind, MonitorStatus,
    TerminationBehaviour, SUPER_TENANT,
};
use stratos_store::{Record, ScalingHistory, Store};

struct World {
    store: Store,
    driver: Arc<SimulatedDriver>,
    broker: EmbeddedBroker,
    load: Arc<AtomicU64>,
    controller: tokio::task::JoinHandle<Result<(), stratos_cloud::ControllerError>>,
    _dir: tempfile::TempDir,
}

async fn world(min: u32, max: u32, partition_max: u32) -> World {
    world_with(min, max, partition_max, |_| {}).await
}

async fn world_with(min: u32, max: u32, partition_max: u32, configure: impl FnOnce(&mut ControllerConfig)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db")).await.unwrap();
    let t = SUPER_TENANT;
    let defs = [
        (
            Kind::NetworkPartition,
            "np",
            json!({"id": "np", "provider": "simulated", "partitions": [{"id": "a"}, {"id": "b"}]}),
        ),
        (
            Kind::Cartridge,
            "sim",
            json!({"type": "sim", "category": "framework", "iaasProvider": [{"type": "simulated"}]}),
        ),
        (
            Kind::DeploymentPolicy,
            "dp",
            json!({"id": "dp", "networkPartitions": [{"id": "np", "partitionAlgo": "round-robin",
            "partitions": [{"id": "a", "partitionMax": partition_max}, {"id": "b", "partitionMax": partition_max}]}]}),
        ),
        (Kind::AutoscalingPolicy, "as", json!({"id": "as", "loadThresholds": {"loadAverage": {"threshold": 50}}})),
        (
            Kind::ApplicationPolicy,
            "ap",
            json!({"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np"]}),
        ),
        (
            Kind::Application,
            "app",
            json!({"applicationId": "app", "components": {"cartridges": [{"type": "sim", "cartridgeMin": min, "cartridgeMax": max,
            "subscribableInfo": {"alias": "web", "autoscalingPolicy": "as", "deploymentPolicy": "dp"}}]}}),
        ),
    ];
    for (kind, id, body) in defs {
        store.put(t, kind.name(), id, &body).await.unwrap();
    }
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let load = Arc::new(AtomicU64::new(10));
    let model_load = load.clone();
    let driver_bus = Bus::connect(&broker.platform_url(), "simulated-driver").await.unwrap();
    let driver = SimulatedDriver::start(
        driver_bus,
        Duration::from_millis(50),
        Duration::from_millis(200),
        Arc::new(move |_, _| (model_load.load(Ordering::Relaxed) as f64, 30.0)),
    )
    .await;
    let driver = Arc::new(driver);
    let mut config = ControllerConfig::new(broker.url());
    config.reconcile_interval = Duration::from_millis(200);
    configure(&mut config);
    let controller = CloudController::new(
        store.clone(),
        Bus::connect(&broker.platform_url(), "cc").await.unwrap(),
        vec![driver.clone() as Arc<dyn Driver>],
        config,
    );
    let controller = tokio::spawn(controller.run());
    World { store, driver, broker, load, controller, _dir: dir }
}

fn cluster(alias: &str, min: u32, max: u32, depends_on: &[&str]) -> ClusterSpec {
    ClusterSpec {
        cluster_id: format!("app.{alias}"),
        alias: alias.into(),
        cartridge_type: "sim".into(),
        min,
        max,
        desired: min,
        deployment_policy: "dp".into(),
        autoscaling_policy: "as".into(),
        host_names: vec![],
        artifact_repository: None,
        depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
        revision: None,
    }
}

async fn deploy(store: &Store, min: u32, max: u32) {
    deploy_clusters(store, vec![cluster("web", min, max, &[])], None).await
}

async fn deploy_clusters(store: &Store, clusters: Vec<ClusterSpec>, behaviour: Option<TerminationBehaviour>) {
    let deployment = Deployment {
        application_id: "app".into(),
        tenant_id: SUPER_TENANT,
        application_policy_id: "ap".into(),
        status: DeploymentStatus::Deployed,
        deployed_at: 0,
        clusters,
        termination_behaviour: behaviour,
        groups: vec![],
    };
    store.put_record(SUPER_TENANT, &deployment).await.unwrap();
}

/// (active members, members per partition a / b) once `pred` holds, or panics after `timeout`.
async fn wait_for(
    store: &Store,
    timeout: Duration,
    what: &str,
    pred: impl Fn(usize, usize, usize) -> bool,
) -> (usize, usize, usize) {
    let deadline = Instant::now() + timeout;
    loop {
        let topology = store.load_topology().await.unwrap();
        let members: Vec<_> = topology.members().filter(|m| m.status == MemberStatus::Active).collect();
        let a = members.iter().filter(|m| m.partition_id == "a").count();
        let b = members.len() - a;
        if pred(members.len(), a, b) {
            return (members.len(), a, b);
        }
        assert!(Instant::now() < deadline, "{what}: still {} active ({a} in a, {b} in b)", members.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_members_are_placed_round_robin_and_scaled_in() {
    let w = world(300, 400, 200).await;
    deploy(&w.store, 300, 400).await;
    let started = Instant::now();
    let (n, a, b) = wait_for(&w.store, Duration::from_secs(60), "300 members activate", |n, _, _| n == 300).await;
    println!("300 simulated members active in {:?}", started.elapsed());
    assert_eq!((n, a, b), (300, 150, 150), "round-robin spreads evenly");
    // The autoscaler's word lowers the size: members drain and go, evenly.
    let scale = ClusterScale { cluster_id: "app.web".into(), desired: 250, drain_first: vec![], updated_at: 0 };
    // Below min is not allowed: min 300 holds.
    w.store.put_record(SUPER_TENANT, &scale).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(&w.store, Duration::from_secs(1), "min holds", |n, _, _| n == 300).await;
    // Undeploy: everything goes.
    let mut d: Deployment = w.store.get_record(SUPER_TENANT, "app").await.unwrap().unwrap();
    d.status = DeploymentStatus::Undeploying;
    w.store.put_record(SUPER_TENANT, &d).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.store.get_record::<Deployment>(SUPER_TENANT, "app").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "undeploy did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.store.load_topology().await.unwrap().members().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_out_to_the_required_size_and_back_in_one_member_at_a_time() {
    let w = world(2, 6, 2).await;
    let health_bus = Bus::connect(&w.broker.platform_url(), "health").await.unwrap();
    let health = stratos_health::HealthConfig {
        window: Duration::from_secs(3),
        interval: Duration::from_millis(300),
        fault_after: Duration::from_secs(60),
    };
    tokio::spawn(stratos_health::run(health_bus, health));
    start_autoscaler(&w, Duration::from_millis(600)).await;
    deploy(&w.store, 2, 6).await;
    wait_for(&w.store, Duration::from_secs(20), "min members", |n, _, _| n == 2).await;

    // Load 90 per member against a threshold of 50 with min 2: ceil(2·90/50) = 4 members.
    w.load.store(90, Ordering::Relaxed);
    let (n, a, b) = wait_for(&w.store, Duration::from_secs(30), "scale out to 4", |n, _, _| n >= 4).await;
    assert_eq!((n, a, b), (4, 2, 2), "four members, round-robin, each partition at its max of 2");
    // It stays there under a constant load.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for(&w.store, Duration::from_secs(1), "steady at 4", |n, _, _| n == 4).await;

    // The load falls: the cluster shrinks, one member per three evaluations, to min.
    w.load.store(5, Ordering::Relaxed);
    wait_for(&w.store, Duration::from_secs(30), "one fewer", |n, _, _| n == 3).await;
    wait_for(&w.store, Duration::from_secs(30), "back to min", |n, _, _| n == 2).await;
    let history = w.store.get_record::<ScalingHistory>(SUPER_TENANT, "app.web").await.unwrap().unwrap();
    let actions: Vec<&str> = history.decisions.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"scale-up") && actions.contains(&"scale-down"), "{actions:?}");
    // The window still held the low samples at first, so the cluster may have grown in two steps.
    let up = history.decisions.iter().rfind(|e| e["action"] == "scale-up").unwrap();
    assert_eq!(up["decision"]["votes"][0]["factor"], "load-average", "{up}");
    assert_eq!(up["desired"], 4);
}

/// Member ids of a cluster that are active.
async fn active_members(store: &Store, cluster_id: &str) -> Vec<String> {
    let topology = store.load_topology().await.unwrap();
    topology
        .cluster(cluster_id)
        .map(|c| c.members.values().filter(|m| m.status == MemberStatus::Active).map(|m| m.member_id.clone()).collect())
        .unwrap_or_default()
}

async fn wait_active(store: &Store, cluster_id: &str, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let members = active_members(store, cluster_id).await;
        if pred(&members) {
            return members;
        }
        assert!(Instant::now() < deadline, "{what}: {cluster_id} has {members:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_going_down_takes_its_dependents_down_and_they_restart_in_order() {
    for (behaviour, dependents_restart) in
        [(TerminationBehaviour::TerminateDependents, true), (TerminationBehaviour::TerminateNone, false)]
    {
        let w = world(1, 1, 5).await;
        // db ← web: web starts once db is active.
        deploy_clusters(&w.store, vec![cluster("db", 1, 1, &[]), cluster("web", 1, 1, &["db"])], Some(behaviour)).await;
        let db = wait_active(&w.store, "app.db", "db up", |m| m.len() == 1).await;
        let web = wait_active(&w.store, "app.web", "web up", |m| m.len() == 1).await;

        // db's only member dies.
        w.driver.terminate(&db[0], Duration::from_secs(1)).await.unwrap();
        let new_db = wait_active(&w.store, "app.db", "db replaced", |m| m.len() == 1 && m[0] != db[0]).await;
        let new_web = wait_active(&w.store, "app.web", "web back", |m| m.len() == 1).await;
        assert_ne!(new_db, db);
        if dependents_restart {
            assert_ne!(new_web, web, "{behaviour:?}: web depends on db and restarts after it");
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(active_members(&w.store, "app.web").await, web, "{behaviour:?}: web keeps running");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_activates_is_replaced_in_another_partition() {
    let w = world_with(1, 1, 5, |c| c.activation_timeout = Duration::from_millis(600)).await;
    // Partition a takes members but none ever activates.
    w.driver.never_activate_in("a");
    let watcher = Bus::connect(&w.broker.platform_url(), "watcher").await.unwrap();
    let mut created = watcher.subscribe_to::<MemberCreatedEvent>().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    deploy(&w.store, 1, 1).await;

    // Round-robin puts the first member in a; after the activation timeout and the
    // back-off (2 s), the replacement goes to b instead of a again.
    let (_, a, b) =
        wait_for(&w.store, Duration::from_secs(20), "a member active in b", |n, _, b| n == 1 && b == 1).await;
    assert_eq!((a, b), (0, 1));
    let mut partitions = Vec::new();
    while let Ok(Some(AnyEvent::MemberCreatedEvent(e))) =
        tokio::time::timeout(Duration::from_millis(300), created.recv()).await
    {
        partitions.push(e.member.partition_id);
    }
    assert_eq!(partitions, ["a", "b"], "one try in a, then b");
    let topology = w.store.load_topology().await.unwrap();
    let cluster = topology.cluster("app.web").unwrap();
    assert_eq!(cluster.error, None, "the activation clears the error");
    assert_eq!(cluster.members.len(), 1, "the stuck member is gone: {:?}", cluster.members.keys());
}

/// A controller that starts on a store another one wrote adopts its members (on the
/// same driver) instead of replacing them; from per-cluster documents and, once,
/// from the single document of earlier builds, which it migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_adopts_the_saved_topology_and_migrates_the_old_record() {
    let w = world(3, 3, 3).await;
    deploy(&w.store, 3, 3).await;
    let before = wait_active(&w.store, "app.web", "3 active", |m| m.len() == 3).await;
    assert_eq!(
        w.store.list_records::<Cluster>(SUPER_TENANT).await.unwrap().records.len(),
        1,
        "one document per cluster"
    );
    assert_eq!(w.store.get(SUPER_TENANT, "topology", "current").await.unwrap(), None, "no whole-topology document");

    let restart = |w: &World, name: &str| {
        let mut config = ControllerConfig::new(w.broker.url());
        config.reconcile_interval = Duration::from_millis(200);
        let (store, driver, url, name) = (w.store.clone(), w.driver.clone(), w.broker.platform_url(), name.to_string());
        tokio::spawn(async move {
            let bus = Bus::connect(&url, &name).await.unwrap();
            CloudController::new(store, bus, vec![driver as Arc<dyn Driver>], config).run().await
        })
    };
    // Adopted from per-cluster documents: nothing replaced after a few reconciles.
    w.controller.abort();
    let second = restart(&w, "cc2");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(active_members(&w.store, "app.web").await, before, "the same members, adopted");

    // As an earlier build would have left it: the whole topology in one document.
    second.abort();
    let _ = second.await;
    let saved = w.store.load_topology().await.unwrap();
    w.store.save_topology(&Default::default()).await.unwrap();
    w.store.put(SUPER_TENANT, "topology", "current", &serde_json::to_value(&saved).unwrap()).await.unwrap();
    let _third = restart(&w, "cc3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.store.get(SUPER_TENANT, "topology", "current").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the old document was not migrated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.store.list_records::<Cluster>(SUPER_TENANT).await.unwrap().records.len(), 1, "migrated per cluster");
    assert_eq!(active_members(&w.store, "app.web").await, before, "the same members, after the migration");
}

/// `group <alias> <status>` / `application <status>` for the monitors' status events.
fn status_change(e: AnyEvent) -> Option<String> {
    Some(match e {
        AnyEvent::GroupActivatedEvent(e) => format!("group {} Active", e.group_alias),
        AnyEvent::GroupInactivatedEvent(e) => format!("group {} Inactive", e.group_alias),
        AnyEvent::GroupTerminatingEvent(e) => format!("group {} Terminating", e.group_alias),
        AnyEvent::ApplicationActivatedEvent(_) => "application Active".into(),
        AnyEvent::ApplicationInactivatedEvent(_) => "application Inactive".into(),
        AnyEvent::ApplicationTerminatingEvent(_) => "application Terminating".into(),
        _ => return None,
    })
}

/// The autoscaler on `w`'s store and broker, evaluating every `interval` without
/// prediction; summaries older than 2 s do not vote.
async fn start_autoscaler(w: &World, interval: Duration) {
    let autoscaler = stratos_autoscaler::AutoscalerConfig {
        interval,
        scale_down_after: 3,
        use_prediction: false,
        freshness: Duration::from_secs(2),
        ..Default::default()
    };
    tokio::spawn(stratos_autoscaler::run(
        w.store.clone(),
        Bus::connect(&w.broker.platform_url(), "as").await.unwrap(),
        autoscaler,
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_application_monitors_roll_up_and_announce_their_status() {
    let w = world(1, 1, 5).await;
    start_autoscaler(&w, Duration::from_millis(400)).await;
    let watcher = Bus::connect(&w.broker.platform_url(), "watcher").await.unwrap();
    let mut events = watcher.subscribe("application/#").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // web; backend { db; cache }.
    let mut deployment = Deployment {
        application_id: "app".into(),
        tenant_id: SUPER_TENANT,
        application_policy_id: "ap".into(),
        status: DeploymentStatus::Deployed,
        deployed_at: 1,
        clusters: vec![cluster("web", 1, 1, &[]), cluster("db", 1, 1, &[]), cluster("cache", 1, 1, &[])],
        termination_behaviour: None,
        groups: vec![GroupSpec {
            alias: "backend".into(),
            name: "backend".into(),
            min: 1,
            max: 1,
            scaling_enabled: false,
            clusters: vec!["db".into(), "cache".into()],
            groups: vec![],
        }],
    };
    w.store.put_record(SUPER_TENANT, &deployment).await.unwrap();
    // The group is active before the application around it.
    let mut order = Vec::new();
    while !order.contains(&"application Active".to_string()) {
        let e = events.wait_for(Duration::from_secs(20), status_change).await;
        order.push(e.unwrap_or_else(|| panic!("the application never became active: {order:?}")));
    }
    assert_eq!(order, ["group backend Active", "application Active"]);
    let record = w.store.get_record::<ApplicationMonitorStatus>(SUPER_TENANT, "app").await.unwrap().unwrap();
    assert_eq!(record.status, MonitorStatus::Active, "{record:?}");
    assert_eq!(record.groups["backend"], MonitorStatus::Active, "{record:?}");

    // db's only member dies: backend and the application are inactive until it is replaced.
    let db = active_members(&w.store, "app.db").await;
    w.driver.terminate(&db[0], Duration::from_secs(1)).await.unwrap();
    let mut order = Vec::new();
    while order.last().map(String::as_str) != Some("application Active") {
        let e = events.wait_for(Duration::from_secs(20), status_change).await;
        order.push(e.unwrap_or_else(|| panic!("the application did not recover: {order:?}")));
    }
    assert_eq!(order, ["group backend Inactive", "application Inactive", "group backend Active", "application Active"]);

    // Undeployed: both terminate; the record goes with the deployment.
    deployment.status = DeploymentStatus::Undeploying;
    w.store.put_record(SUPER_TENANT, &deployment).await.unwrap();
    let mut order = Vec::new();
    while order.len() < 2 {
        let e = events.wait_for(Duration::from_secs(20), status_change).await;
        order.push(e.unwrap_or_else(|| panic!("no terminating: {order:?}")));
    }
    assert_eq!(order, ["group backend Terminating", "application Terminating"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.store.get_record::<ApplicationMonitorStatus>(SUPER_TENANT, "app").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the status record outlived the deployment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.store.get_record::<Deployment>(SUPER_TENANT, "app").await.unwrap().is_none());
}

/// A deployment of `app` with one cluster of id `cluster_id`.
async fn deploy_as(store: &Store, app: &str, cluster_id: &str, desired: u32, max: u32, deployed_at: u64) {
    let mut spec = cluster("z", desired, max, &[]);
    spec.cluster_id = cluster_id.into();
    let deployment = Deployment {
        application_id: app.into(),
        tenant_id: SUPER_TENANT,
        application_policy_id: "ap".into(),
        status: DeploymentStatus::Deployed,
        deployed_at,
        clusters: vec![spec],
        termination_behaviour: None,
        groups: vec![],
    };
    store.put_record(SUPER_TENANT, &deployment).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_naming_one_cluster_id_never_take_it_past_its_max() {
    // As a store written before the manager refused it: apps `x.y` (alias z) and `x`
    // (alias y.z) both name cluster x.y.z. Converging both ran it to 22 members.
    let w = world(1, 3, 10).await;
    deploy_as(&w.store, "x.y", "x.y.z", 2, 3, 1).await;
    deploy_as(&w.store, "x", "x.y.z", 3, 3, 2).await;
    wait_active(&w.store, "x.y.z", "the first deployment's 2 members", |m| m.len() == 2).await;
    // For a dozen reconciles: the first deployment's size, never more.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        let topology = w.store.load_topology().await.unwrap();
        let members = topology.cluster("x.y.z").map_or(0, |c| c.members.len());
        assert!(members <= 2, "cluster x.y.z has {members} members; its owner wants 2 (max 3)");
        assert_eq!(topology.cluster("x.y.z").unwrap().app_id, "x.y");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Undeploying the other one leaves the owner's members alone, and it goes.
    let mut other: Deployment = w.store.get_record(SUPER_TENANT, "x").await.unwrap().unwrap();
    other.status = DeploymentStatus::Undeploying;
    w.store.put_record(SUPER_TENANT, &other).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.store.get_record::<Deployment>(SUPER_TENANT, "x").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the other deployment was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active_members(&w.store, "x.y.z").await.len(), 2, "the owner's members were drained");
}

/// A deployment document that cannot be read freezes its cluster: not taken for
/// undeployed (a cluster without a deployment has its members terminated), no member
/// created or terminated, while the other applications converge; readable again, it
/// is converged again (here: undeployed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_deployment_freezes_its_cluster() {
    let w = world(1, 3, 10).await;
    deploy_as(&w.store, "frozen", "frozen.z", 2, 3, 1).await;
    let before = wait_active(&w.store, "frozen.z", "2 active", |m| m.len() == 2).await;
    let mut good: Deployment = w.store.get_record(SUPER_TENANT, "frozen").await.unwrap().unwrap();
    // JSON, but no deployment; and the autoscaler's word to grow it, which must wait.
    let bad = json!({"applicationId": "frozen", "clusters": 2});
    w.store.put(SUPER_TENANT, Deployment::COLLECTION, "frozen", &bad).await.unwrap();
    let scale = ClusterScale { cluster_id: "frozen.z".into(), desired: 3, drain_first: vec![], updated_at: 0 };
    w.store.put_record(SUPER_TENANT, &scale).await.unwrap();
    // Reconciles go on: two more applications are converged after it, one after the other.
    for (app, at) in [("second", 2), ("third", 3)] {
        deploy_as(&w.store, app, &format!("{app}.z"), 1, 1, at).await;
        wait_active(&w.store, &format!("{app}.z"), "another application's member", |m| m.len() == 1).await;
    }
    assert_eq!(active_members(&w.store, "frozen.z").await, before, "the frozen cluster's members changed");
    let running: Vec<String> = w
        .driver
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.cluster_id == "frozen.z")
        .map(|i| i.member_id)
        .collect();
    assert_eq!(running.len(), 2, "the frozen cluster's instances: {running:?}");

    // Readable again, as undeploying: it thaws and goes.
    good.status = DeploymentStatus::Undeploying;
    w.store.put_record(SUPER_TENANT, &good).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.store.get_record::<Deployment>(SUPER_TENANT, "frozen").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the thawed deployment was not undeployed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_member_is_suspended_at_once_and_replaced() {
    use stratos_bus::events::InstanceUnhealthyEvent;
    let w = world(2, 2, 5).await;
    deploy(&w.store, 2, 2).await;
    let before = wait_active(&w.store, "app.web", "two members up", |m| m.len() == 2).await;
    let topology = w.store.load_topology().await.unwrap();
    let victim = topology.cluster("app.web").unwrap().members[&before[0]].clone();
    // What the member's agent says once its app failed its checks (sent with the
    // platform's credentials: this connection also watches the topology, and the late
    // repeat below must reach the controller, which a terminated member's could not).
    let agent = Bus::connect(&w.broker.platform_url(), "agent-of-victim").await.unwrap();
    let mut events = agent.subscribe("topology/#").await.unwrap();
    let unhealthy = InstanceUnhealthyEvent {
        member: stratos_bus::MemberRef::from(&victim),
        reason:
            "port 80 failed 3 health checks in a row (every 1 s): GET http://127.0.0.1:80/ did not answer within 1 s"
                .into(),
    };
    agent.publish(&unhealthy).await.unwrap();

    let suspended = events
        .wait_for(Duration::from_secs(10), |e| match e {
            AnyEvent::MemberSuspendedEvent(s) if s.member.member_id == victim.member_id => Some(s),
            _ => None,
        })
        .await
        .expect("MemberSuspendedEvent");
    assert_eq!(suspended.reason, unhealthy.reason);
    let terminated = events
        .wait_for(Duration::from_secs(10), |e| match e {
            AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == victim.member_id => Some(t),
            _ => None,
        })
        .await
        .expect("MemberTerminatedEvent");
    assert_eq!(terminated.reason, format!("unhealthy: {}", unhealthy.reason));
    let after = wait_active(&w.store, "app.web", "replaced", |m| m.len() == 2 && !m.contains(&victim.member_id)).await;
    assert!(after.contains(&before[1]), "the healthy member stays: {after:?}");

    // The agent's repeat, arriving late, changes nothing.
    agent.publish(&unhealthy).await.unwrap();
    let again = events
        .wait_for(Duration::from_secs(2), |e| match e {
            AnyEvent::MemberSuspendedEvent(s) => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(again, None, "a repeat suspended a member");
    assert_eq!(active_members(&w.store, "app.web").await.len(), 2);
}

/// The cluster's error as stored, once `pred` holds for it.
async fn wait_cluster_error(store: &Store, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let topology = store.load_topology().await.unwrap();
        let error = topology.cluster("app.web").and_then(|c| c.error.clone()).unwrap_or_default();
        if pred(&error) {
            return error;
        }
        assert!(Instant::now() < deadline, "{what}: the cluster's error is {error:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_keeps_failing_its_health_checks_backs_its_cluster_off_and_says_why() {
    // An app that never passes its checks: each member activates, is reported unhealthy
    // and replaced. The activations must not reset the back-off, and the cluster shows why.
    use stratos_bus::events::InstanceUnhealthyEvent;
    let w = world(1, 1, 5).await;
    deploy(&w.store, 1, 1).await;
    let agent = Bus::connect(&w.broker.platform_url(), "agent-of-every-member").await.unwrap();
    let mut seen: Vec<String> = Vec::new();
    for round in 1..=2u32 {
        let active =
            wait_active(&w.store, "app.web", "a new member active", |m| m.len() == 1 && !seen.contains(&m[0])).await;
        let topology = w.store.load_topology().await.unwrap();
        let member = topology.cluster("app.web").unwrap().members[&active[0]].clone();
        seen.push(member.member_id.clone());
        let reason = "port 80 failed 3 health checks in a row: GET / answered 500".to_string();
        agent.publish(&InstanceUnhealthyEvent { member: stratos_bus::MemberRef::from(&member), reason }).await.unwrap();
        let counted = format!("({round} member failure(s) in a row; next try in {}s)", 2u32 << (round - 1));
        let error = wait_cluster_error(&w.store, "the failure is counted", |e| e.contains(&counted)).await;
        assert!(error.contains(&format!("member {} unhealthy", member.member_id)), "{error}");
        assert!(error.contains("GET / answered 500"), "{error}");
    }
    // The third member activates: the streak and its reason stay on the cluster.
    wait_active(&w.store, "app.web", "the third member active", |m| m.len() == 1 && !seen.contains(&m[0])).await;
    let error = wait_cluster_error(&w.store, "the reason stays", |_| true).await;
    assert!(error.contains("2 member failure(s) in a row"), "an activation cleared the streak: {error:?}");
}
