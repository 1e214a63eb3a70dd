//! The cloud controller on the `simulated` driver at scale: time for every member of
//! N clusters (10 members each) to become active, the controller's reconcile cost
//! (mean and longest, over the run), and the process's peak memory (a high-water mark:
//! run the sizes smallest first, or one per process). Real embedded broker, real
//! SQLite store. Progress is followed on the bus (as the load balancer does): polling
//! the store would cost as much as what is measured; the end is checked in the store.
//!
//! `cargo bench -p stratos-cloud --bench controller_scale [-- 1000 10000]`
//!
//! With STRATOS_BENCH_AUTOSCALER=1 the health service and the autoscaler run in the
//! same process too: members report load every 15 s, the autoscaler evaluates every
//! 10 s, and once all members are active the run goes on for three more evaluation
//! cycles and at least 90 s; the cycles' mean and longest duration are printed as
//! well, and how many members the health service reported faulty (members silent
//! but held back as a mass silence are logged as warnings).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker};
use stratos_cloud::{CloudController, ControllerConfig, Driver, SimulatedDriver};
use stratos_model::topology::MemberStatus;
use stratos_model::{ClusterSpec, Deployment, DeploymentStatus, Kind, SUPER_TENANT};
use stratos_store::Store;

/// The allocator of the `stratos` binary, so that the memory measured is what it would hold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The process's peak resident memory (MiB).
fn rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// A line of /proc/self/status in MiB (`VmRSS:` now, `VmHWM:` the peak).
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Where the memory goes: resident memory now and at its peak, at a milestone of the run (stderr).
fn milestone(what: &str, started: Instant) {
    eprintln!(
        "  [{:>6.1} s] {what}: RSS {:.0} MiB, peak {:.0} MiB",
        started.elapsed().as_secs_f64(),
        proc_status_mib("VmRSS:"),
        proc_status_mib("VmHWM:")
    );
}

async fn run(members: usize) {
    let clusters = members / 10;
    let begun = Instant::now();
    milestone("start", begun);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db")).await.unwrap();
    for (kind, id, body) in [
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
            "partitions": [{"id": "a", "partitionMax": 10}, {"id": "b", "partitionMax": 10}]}]}),
        ),
        (
            Kind::ApplicationPolicy,
            "ap",
            json!({"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np"]}),
        ),
    ] {
        store.put(SUPER_TENANT, kind.name(), id, &body).await.unwrap();
    }
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let driver = SimulatedDriver::start(
        Bus::connect(&broker.platform_url(), "sim").await.unwrap(),
        Duration::from_millis(100),
        if full_stack() { Duration::from_secs(15) } else { Duration::from_secs(3600) },
        SimulatedDriver::constant(10.0, 10.0),
    )
    .await;
    let cycles = Arc::new(stratos_model::DurationStats::default());
    if full_stack() {
        let policy = json!({"id": "as", "loadThresholds": {"loadAverage": {"threshold": 80}}});
        store.put(SUPER_TENANT, Kind::AutoscalingPolicy.name(), "as", &policy).await.unwrap();
        let health = stratos_health::HealthConfig::default();
        tokio::spawn(stratos_health::run(Bus::connect(&broker.platform_url(), "health").await.unwrap(), health));
        let autoscaler =
            stratos_autoscaler::AutoscalerConfig { interval: Duration::from_secs(10), ..Default::default() };
        let bus = Bus::connect(&broker.platform_url(), "autoscaler").await.unwrap();
        tokio::spawn(stratos_autoscaler::run_timed(store.clone(), bus, autoscaler, cycles.clone()));
    }
    let mut config = ControllerConfig::new(broker.url());
    config.reconcile_interval = Duration::from_millis(500);
    let controller = CloudController::new(
        store.clone(),
        Bus::connect(&broker.platform_url(), "cc").await.unwrap(),
        vec![Arc::new(driver) as Arc<dyn Driver>],
        config,
    );
    let stats = controller.stats();
    let watcher = Bus::connect(&broker.platform_url(), "bench").await.unwrap();
    // Only what it counts: the complete topology snapshots are tens of MB at 100k.
    let mut events = watcher.subscribe_to::<stratos_bus::events::MemberActivatedEvent>().await.unwrap();
    let mut terminated = watcher.subscribe_to::<stratos_bus::events::MemberTerminatedEvent>().await.unwrap();
    let mut faults = watcher.subscribe("health/MemberFaultEvent").await.unwrap();
    milestone("broker, store, health and autoscaler started", begun);
    tokio::spawn(controller.run());
    // One application per 100 clusters, like many tenants' applications.
    let started = Instant::now();
    for app in 0..clusters.div_ceil(100) {
        let specs = (0..100.min(clusters - app * 100))
            .map(|c| ClusterSpec {
                cluster_id: format!("app{app}.c{c}"),
                alias: format!("c{c}"),
                cartridge_type: "sim".into(),
                min: 10,
                max: 20,
                desired: 10,
                deployment_policy: "dp".into(),
                autoscaling_policy: "as".into(),
                host_names: vec![],
                artifact_repository: None,
                depends_on: vec![],
                revision: None,
            })
            .collect();
        let d = Deployment {
            application_id: format!("app{app}"),
            tenant_id: SUPER_TENANT,
            application_policy_id: "ap".into(),
            status: DeploymentStatus::Deployed,
            deployed_at: 0,
            clusters: specs,
            termination_behaviour: None,
            groups: vec![],
        };
        store.put(SUPER_TENANT, "deployment", &d.application_id, &serde_json::to_value(&d).unwrap()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut active: HashSet<String> = HashSet::new();
    let mut stored = 0;
    while Instant::now() < deadline {
        let wait = deadline.saturating_duration_since(Instant::now());
        let next = async {
            tokio::select! {
                e = events.recv() => e,
                e = terminated.recv() => e,
            }
        };
        match tokio::time::timeout(wait, next).await {
            Ok(Some(AnyEvent::MemberActivatedEvent(e))) => {
                active.insert(e.member.member_id);
            }
            Ok(Some(AnyEvent::MemberTerminatedEvent(e))) => {
                active.remove(&e.member.member_id);
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
        if active.len() == members {
            stored = wait_until_stored(&store, members, deadline).await;
            break;
        }
    }
    let elapsed = started.elapsed();
    milestone(&format!("{} members active", active.len()), begun);
    if full_stack() {
        // Three evaluation cycles of the whole population, and long enough for the
        // health service to call a member that stopped reporting faulty.
        let from = cycles.count();
        let settled = Instant::now() + STEADY;
        let mut seen = from;
        while (cycles.count() < from + 3 || Instant::now() < settled) && Instant::now() < deadline + STEADY {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if cycles.count() != seen {
                seen = cycles.count();
                milestone(
                    &format!("evaluation cycle {seen} (longest so far {:.0} ms)", cycles.max().as_secs_f64() * 1000.0),
                    begun,
                );
            }
        }
    }
    let mut faulty = HashSet::new();
    while let Some(e) = faults.try_recv() {
        if let AnyEvent::MemberFaultEvent(f) = e {
            faulty.insert(f.member.member_id);
        }
    }
    if stored == 0 {
        // Timed out: how far it got.
        stored = wait_until_stored(&store, members, Instant::now()).await;
    }
    let evaluation = if full_stack() {
        format!(
            "{:>11.1} {:>11.1} {:>7} {:>7}",
            cycles.mean().as_secs_f64() * 1000.0,
            cycles.max().as_secs_f64() * 1000.0,
            cycles.count(),
            faulty.len()
        )
    } else {
        String::new()
    };
    println!(
        "{members:>9} {clusters:>9} {:>12} {:>15.1} {:>11.1} {:>11.1} {:>10} {:>15.1} {evaluation}",
        format!("{stored}/{members}"),
        elapsed.as_secs_f64(),
        stats.mean().as_secs_f64() * 1000.0,
        stats.max().as_secs_f64() * 1000.0,
        stats.count(),
        rss_mib()
    );
}

/// How long the whole stack runs on once every member is active: over the health
/// service's fault delay (60 s) and one interval, so that members it heard nothing
/// from would be reported.
const STEADY: Duration = Duration::from_secs(90);

/// Active members in the store, once all of them are (the controller saves within
/// a flush of the last activation), or at the deadline.
async fn wait_until_stored(store: &Store, members: usize, deadline: Instant) -> usize {
    loop {
        let topology = store.load_topology().await.unwrap();
        let active = topology.members().filter(|m| m.status == MemberStatus::Active).count();
        if active == members || Instant::now() > deadline {
            return active;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() {
    // Warnings (a lost bus connection, a failed save) explain a slow run; RUST_LOG for more.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1_000, 10_000] } else { sizes };
    let (evaluation, evaluation_units) = if full_stack() {
        (
            format!("{:>11} {:>11} {:>7} {:>7}", "evaluation", "longest", "cycles", "faulty"),
            format!("{:>11} {:>11}", "mean (ms)", "(ms)"),
        )
    } else {
        (String::new(), String::new())
    };
    println!(
        "{:>9} {:>9} {:>12} {:>15} {:>11} {:>11} {:>10} {:>15} {evaluation}",
        "members", "clusters", "active", "all active (s)", "reconcile", "longest", "reconciles", "peak RSS (MiB)"
    );
    println!(
        "{:>9} {:>9} {:>12} {:>15} {:>11} {:>11} {:>10} {:>15} {evaluation_units}",
        "", "", "(stored)", "", "mean (ms)", "(ms)", "", ""
    );
    for members in sizes {
        // A fresh runtime per size: each run's tasks end with it.
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(run(members));
        runtime.shutdown_background();
    }
}

/// STRATOS_BENCH_AUTOSCALER=1: the health service and the autoscaler run too.
fn full_stack() -> bool {
    std::env::var("STRATOS_BENCH_AUTOSCALER").is_ok_and(|v| v == "1")
}
