//! php-web under load (a benchmark, not a test): the README's php-web example at `stratos
//! up`'s default settings (15 s evaluations over 60 s windows, three evaluations in a row
//! before a member is removed), on the local driver (its `web` members run `stratos
//! sample-http`) and on the docker driver (PHP's built-in server, `php -S`, in Debian
//! containers), under `wrk -t2 -c200 -d60s` sent through the load balancer to the `web`
//! cluster (cartridgeMin 2, cartridgeMax 10, the `economy` policy: 80 requests in flight,
//! a load average of 70 %, 80 % memory).
//!
//! Per driver: wrk's throughput and errors; the most members the cluster reached; what
//! requests in flight alone ask: ceil(mean in flight / 80), the mean of the load
//! balancer's in-flight counts for the cluster while the load ran (as it publishes them
//! on the bus); what each factor voted in the autoscaler's decisions recorded while the
//! load ran (a decision that changes nothing is recorded once, so `-` when none was); and
//! the seconds from the end of the load until the cluster is back at its cartridgeMin.
//!
//! PHP's built-in server ends every response by closing its connection, so the load
//! balancer closes the client's too, and wrk counts each such end as a read error: with
//! the docker row, its error count is about its response count.
//!
//! Needs `wrk`, and for the docker row the example's images, which it builds when missing
//! (`stratos image build`, minutes the first time). The load balancer listens on the
//! example's port 8280, so nothing else may.
//!
//! `cargo bench -p stratos --bench php_web_load`; `PHP_WEB_DRIVERS=local` (or `docker`)
//! runs one row, `PHP_WEB_SECONDS` sets the load's length (60).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stratos_bus::AnyEvent;
use support::{EventLog, Platform, Sandbox, BIN};

/// How long after the load the cluster may take to come back to its minimum.
const GIVE_UP: Duration = Duration::from_secs(420);
const MIN: usize = 2;

struct Driver {
    name: &'static str,
    /// The example's files to add, in order (kind, file).
    files: &'static [(&'static str, &'static str)],
    application: &'static str,
    policy: &'static str,
}

const COMMON: &[(&str, &str)] = &[
    ("cartridge", "cartridge-php.json"),
    ("cartridge", "cartridge-python-api.json"),
    ("autoscaling-policy", "autoscaling-policy-economy.json"),
];

const LOCAL: Driver = Driver {
    name: "local",
    files: &[
        ("network-partition", "network-partition-np-local-1.json"),
        ("network-partition", "network-partition-np-local-2.json"),
        ("deployment-policy", "deployment-policy-web-bursting.json"),
        ("application-policy", "application-policy-burst-local.json"),
        ("application", "application-php-web.json"),
    ],
    application: "php-web",
    policy: "burst-local",
};

const DOCKER: Driver = Driver {
    name: "docker",
    files: &[
        ("network-partition", "network-partition-np-docker-1.json"),
        ("deployment-policy", "deployment-policy-web-docker.json"),
        ("application-policy", "application-policy-docker.json"),
        ("application", "application-php-web-docker.json"),
    ],
    application: "php-web-docker",
    policy: "docker",
};

struct Row {
    driver: &'static str,
    requests_per_s: f64,
    errors: String,
    reached: usize,
    /// The load balancer's mean in-flight count for the cluster while the load ran.
    mean_in_flight: f64,
    /// The largest `required` of each factor's votes while the load ran, if any decision was recorded.
    votes: Option<(u32, u32, u32)>,
    back_to_min: Option<Duration>,
}

/// Requests in flight per member, the example's `economy` policy.
const IN_FLIGHT_THRESHOLD: f64 = 80.0;

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/php-web").join(file)
}

fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The `web` cluster's members (any state but terminated).
fn web_members(platform: &Platform, cluster: &str) -> usize {
    support::cluster_members(platform, cluster).len()
}

fn build_images() {
    let out = Command::new(BIN)
        .args(["image", "build"])
        .arg(example("cartridge-php.json"))
        .arg(example("cartridge-python-api.json"))
        .output()
        .expect("stratos image build runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
    assert!(out.status.success(), "stratos image build failed");
}

/// Runs `wrk` against the cluster's host while counting its members every second: wrk's
/// requests per second, its errors line (if any), and the most members seen.
fn wrk(platform: &Platform, cluster: &str, host: &str, seconds: u64) -> (f64, String, usize) {
    let child = Command::new("wrk")
        .args(["-t2", "-c200", &format!("-d{seconds}s"), "-H", &format!("Host: {host}"), "http://127.0.0.1:8280/"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk runs (apt-get install wrk)");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let mut reached = 0;
    let out = loop {
        if let Ok(out) = rx.recv_timeout(Duration::from_secs(1)) {
            break out.expect("wrk ends");
        }
        reached = reached.max(web_members(platform, cluster));
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rate = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let errors: Vec<&str> =
        text.lines().filter(|l| l.contains("Socket errors") || l.contains("Non-2xx")).map(str::trim).collect();
    (rate, if errors.is_empty() { "none".into() } else { errors.join("; ") }, reached)
}

/// The largest `required` each factor voted in the decisions recorded between `from` and
/// `to` (ms); `None` if none was.
fn voted(platform: &Platform, cluster: &str, from: u64, to: u64) -> Option<(u32, u32, u32)> {
    let out = platform.ok(&["cluster", "scaling-history", cluster, "--last", "200", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let decisions: Vec<&serde_json::Value> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["timestamp"].as_u64().is_some_and(|t| t >= from && t <= to))
        .collect();
    if decisions.is_empty() {
        return None;
    }
    let max = |factor: &str| {
        decisions
            .iter()
            .flat_map(|e| e["decision"]["votes"].as_array().cloned().unwrap_or_default())
            .filter(|v| v["factor"] == factor)
            .filter_map(|v| v["required"].as_u64())
            .max()
            .unwrap_or(0) as u32
    };
    Some((max("requests-in-flight"), max("load-average"), max("memory-consumption")))
}

/// The mean of the load balancer's in-flight counts for `cluster` (the cluster's own,
/// not its members') published between `from` and `to` (ms).
fn mean_in_flight(events: &EventLog, cluster: &str, from: u64, to: u64) -> f64 {
    let counts: Vec<f64> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AnyEvent::InFlightRequestsEvent(e)
                if e.cluster_id == cluster && e.member_id.is_none() && e.timestamp >= from && e.timestamp <= to =>
            {
                Some(e.in_flight)
            }
            _ => None,
        })
        .collect();
    if counts.is_empty() {
        0.0
    } else {
        counts.iter().sum::<f64>() / counts.len() as f64
    }
}

fn run(driver: &Driver, seconds: u64) -> Row {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    for (kind, file) in COMMON.iter().chain(driver.files) {
        platform.ok(&[kind, "add", example(file).to_str().unwrap()]);
    }
    let out =
        platform.cli(&["application", "deploy", driver.application, "--policy", driver.policy, "--timeout", "300s"]);
    assert!(out.success(), "deploy failed\n{out}\n{}", platform.proc.describe());
    let cluster = format!("{}.web", driver.application);
    let host = support::cluster_host(driver.application, "web");
    eprintln!("{}: deployed; {} web members; wrk -c200 for {seconds} s", driver.name, web_members(&platform, &cluster));

    let events = EventLog::subscribe(&platform, &["health/#"]);
    let load_from = millis_now();
    let (requests_per_s, errors, mut reached) = wrk(&platform, &cluster, &host, seconds);
    let (ended, load_to) = (Instant::now(), millis_now());
    eprintln!("{}: load over: {requests_per_s:.0} req/s, errors {errors}; reached {reached}", driver.name);
    let back_to_min = loop {
        let now = web_members(&platform, &cluster);
        reached = reached.max(now);
        if now <= MIN {
            break Some(ended.elapsed());
        }
        if ended.elapsed() > GIVE_UP {
            break None;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let votes = voted(&platform, &cluster, load_from, load_to);
    let mean_in_flight = mean_in_flight(&events, &cluster, load_from, load_to);
    let _ = platform.cli(&["application", "undeploy", driver.application, "--timeout", "120s"]);
    Row { driver: driver.name, requests_per_s, errors, reached, mean_in_flight, votes, back_to_min }
}

fn main() {
    let seconds: u64 = std::env::var("PHP_WEB_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let only = std::env::var("PHP_WEB_DRIVERS").ok();
    let drivers: Vec<&Driver> =
        [&LOCAL, &DOCKER].into_iter().filter(|d| only.as_deref().is_none_or(|o| o.contains(d.name))).collect();
    if drivers.iter().any(|d| d.name == "docker") {
        build_images();
    }
    let rows: Vec<Row> = drivers.iter().map(|d| run(d, seconds)).collect();
    println!();
    println!("php-web `web` cluster (min {MIN}, max 10) under wrk -t2 -c200 -d{seconds}s, stratos up defaults");
    println!(
        "{:<8} {:>8} {:>8} {:>14} {:>13} {:>22} {:>12}  wrk errors",
        "driver", "req/s", "reached", "mean in flight", "in-flight asks", "votes in-flight/load/mem", "back to min"
    );
    for r in rows {
        let asks = (r.mean_in_flight / IN_FLIGHT_THRESHOLD).ceil().max(MIN as f64);
        let votes = r.votes.map_or_else(|| "-".to_string(), |(f, l, m)| format!("{f}/{l}/{m}"));
        println!(
            "{:<8} {:>8.0} {:>8} {:>14.1} {:>13} {:>22} {:>12}  {}",
            r.driver,
            r.requests_per_s,
            r.reached,
            r.mean_in_flight,
            asks,
            votes,
            r.back_to_min.map_or_else(|| format!("> {} s", GIVE_UP.as_secs()), |d| format!("{:.0} s", d.as_secs_f64())),
            r.errors
        );
    }
    println!("(in-flight asks: ceil(mean in flight / {IN_FLIGHT_THRESHOLD}), at least cartridgeMin; votes: the most members each factor asked for in the decisions recorded while the load ran)");
}
