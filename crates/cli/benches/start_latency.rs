//! Start latency (a benchmark, not a test): from a driver's `start` of a member to the
//! member's agent announcing it Active (its app answers on its port), one member at a
//! time, on the real Docker Engine and on the local driver, side by side in one run:
//!
//! - `docker scratch`: a `FROM scratch` image carrying a shell (test-kit's), the cartridge
//!   `stratos sample-http` through the bundled agent;
//! - `docker debian php`: the php-web example's image (`stratos image build
//!   examples/php-web/cartridge-php.json`), its cartridge's own `php -S` command;
//! - `local`: a process running `stratos sample-http` under the agent.
//!
//! Each start is followed by the member's termination (not timed) before the next.
//! `cargo bench -p stratos --bench start_latency`; `START_LATENCY_RUNS` starts per row
//! (50). A Docker row is skipped, and says why, when the engine or the image is missing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_bus::{AnyEvent, Bus, EmbeddedBroker, Subscription};
use stratos_cloud::docker::{DockerConfig, DockerDriver};
use stratos_cloud::driver::{MemberSpec, PortSpec};
use stratos_cloud::{Driver, LocalDriver};
use stratos_model::Protocol;
use stratos_test_kit::docker as dk;
use support::BIN;

/// The Debian php image of the php-web example, and its cartridge's command.
const PHP_IMAGE: &str = "stratos/php-web-php:bookworm";
const PHP_COMMAND: &str = "echo '<?php echo \"ok\";' > /tmp/index.php && exec php -S 0.0.0.0:${PORT} -t /tmp";

/// A member gives up this long after its start.
const GIVE_UP: Duration = Duration::from_secs(60);

struct Row {
    name: &'static str,
    driver: Arc<dyn Driver>,
    image: Option<String>,
    command: Vec<String>,
}

fn spec(row: &Row, platform_id: &str, member_id: &str, broker: &EmbeddedBroker) -> MemberSpec {
    MemberSpec {
        member_id: member_id.into(),
        cluster_id: "bench.web".into(),
        service_name: "web".into(),
        app_id: "bench".into(),
        tenant_id: -1234,
        network_partition_id: "np".into(),
        partition_id: "p1".into(),
        command: row.command.clone(),
        image: row.image.clone(),
        ports: vec![PortSpec { protocol: Protocol::Http, port: 8000, proxy_port: 0 }],
        broker_url: broker.url(),
        bus_credentials: Some(broker.member_credentials("bench.web", member_id)),
        bus_ca_cert: None,
        artifact_repository: None,
        env: BTreeMap::new(),
        platform_id: platform_id.into(),
        limits: stratos_model::Limits { nano_cpus: Some(1_000_000_000), memory_bytes: Some(256 << 20) },
        volumes: vec![],
        placement: BTreeMap::new(),
        slot: None,
        persistent_volumes: vec![],
    }
}

/// Waits for `member_id`'s `InstanceActivatedEvent`.
async fn activated(events: &mut Subscription, member_id: &str) -> bool {
    events
        .wait_for(GIVE_UP, |e| match e {
            AnyEvent::InstanceActivatedEvent(a) if a.member.member_id == member_id => Some(()),
            _ => None,
        })
        .await
        .is_some()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn measure(row: &Row, runs: usize, platform_id: &str, broker: &EmbeddedBroker, events: &mut Subscription) {
    let mut took = Vec::with_capacity(runs);
    let mut failed = 0;
    for i in 0..runs {
        let member_id = format!("{platform_id}-{}-{i}", row.name.replace(' ', "-"));
        let spec = spec(row, platform_id, &member_id, broker);
        let started = Instant::now();
        match row.driver.start(&spec).await {
            Ok(_) if activated(events, &member_id).await => took.push(started.elapsed().as_secs_f64() * 1000.0),
            Ok(_) => failed += 1,
            Err(e) => {
                eprintln!("  {}: {e}", row.name);
                failed += 1;
            }
        }
        let _ = row.driver.terminate(&member_id, Duration::from_millis(200)).await;
    }
    took.sort_by(f64::total_cmp);
    if took.is_empty() {
        println!("| {} | 0 / {runs} | | | | |", row.name);
        return;
    }
    let mean = took.iter().sum::<f64>() / took.len() as f64;
    println!(
        "| {} | {} / {runs} | {:.0} | {:.0} | {:.0} | {:.0} |{}",
        row.name,
        took.len(),
        percentile(&took, 50.0),
        percentile(&took, 99.0),
        mean,
        took[took.len() - 1],
        if failed > 0 { format!(" {failed} never active") } else { String::new() }
    );
}

fn main() {
    let runs: usize = std::env::var("START_LATENCY_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let platform_id = format!("bench{}", std::process::id());
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let bus = runtime.block_on(Bus::connect(&broker.platform_url(), "start-latency")).unwrap();
    let mut events = runtime.block_on(bus.subscribe_to::<stratos_bus::events::InstanceActivatedEvent>()).unwrap();

    let sample_http: Vec<String> =
        ["stratos", "sample-http", "--port", "${PORT}", "--bind", "0.0.0.0"].map(String::from).to_vec();
    let mut rows = Vec::new();
    match dk::try_docker(&["info", "--format", "{{.ServerVersion}}"]) {
        Ok(_) => {
            let docker = DockerDriver::new(DockerConfig::default(), Path::new(BIN), &dir.path().join("bundle"))
                .unwrap()
                .with_platform_id(Some(platform_id.clone()));
            docker.set_bus(broker.clone());
            let docker: Arc<dyn Driver> = Arc::new(docker);
            rows.push(Row {
                name: "docker scratch",
                driver: docker.clone(),
                image: Some(dk::shell_image()),
                command: sample_http.clone(),
            });
            if dk::try_docker(&["image", "inspect", PHP_IMAGE]).is_ok() {
                rows.push(Row {
                    name: "docker debian php",
                    driver: docker,
                    image: Some(PHP_IMAGE.into()),
                    command: ["sh", "-c", PHP_COMMAND].map(String::from).to_vec(),
                });
            } else {
                eprintln!("no {PHP_IMAGE}: `stratos image build examples/php-web/cartridge-php.json` makes it");
            }
        }
        Err(e) => eprintln!("no Docker Engine ({e}): the docker rows are skipped"),
    }
    let local = LocalDriver::new(dir.path().join("members"), vec![BIN.to_string(), "agent".into()]);
    local.prepare().unwrap();
    rows.push(Row { name: "local", driver: Arc::new(local), image: None, command: sample_http });

    println!("| driver | active | p50 (ms) | p99 (ms) | mean (ms) | max (ms) |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        runtime.block_on(measure(row, runs, &platform_id, &broker, &mut events));
    }
    // The tenant network the docker rows made.
    if let Ok(nets) = dk::try_docker(&["network", "ls", "-q", "--filter", &format!("name={platform_id}")]) {
        for net in nets.split_whitespace() {
            let _ = dk::try_docker(&["network", "rm", net]);
        }
    }
}
