//! Rollout (a benchmark, not a test): a real platform (`stratos up`, the local driver,
//! members that are `stratos sample-http` processes naming their version, the built-in
//! load balancer) with one cluster of `ROLLOUT_MEMBERS` (10) members, under continuous
//! keep-alive load (`ROLLOUT_CLIENTS`, 8 clients). From one run it prints:
//!
//! - steady state: the requests' p50/p99/max over `ROLLOUT_STEADY` (10s) before the update;
//! - the rollout: the time `stratos application update` takes to replace every member
//!   (one at a time: a surge of one, none unavailable), and the p50/p99/max of the
//!   requests sent meanwhile; failed requests (there should be none) and the answers by
//!   version.
//!
//! `cargo bench -p stratos --bench rollout` (release; on a quiet machine).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, Load, Platform, Sandbox, SlowHttpApp, QUICK_SCALING};

const APP: &str = "bench";
const ALIAS: &str = "web";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cartridge_dir(root: &Path, proxy_port: u16, version: &str) -> PathBuf {
    let mut c = support::slow_http_cartridge("slow-http", proxy_port, 0);
    c["iaasProvider"][0]["property"]
        .as_array_mut()
        .expect("properties")
        .push(json!({ "name": "env.SAMPLE_HTTP_VERSION", "value": version }));
    let dir = root.join(version);
    std::fs::create_dir_all(&dir).expect("a directory");
    std::fs::write(dir.join("cartridge.json"), serde_json::to_vec_pretty(&c).expect("JSON")).expect("written");
    dir
}

/// (p50, p99, max) of the latencies of requests sent in `[from, to)` after the load started.
fn percentiles(
    latencies: &[(Duration, Duration)],
    from: Duration,
    to: Duration,
) -> (Duration, Duration, Duration, usize) {
    let mut took: Vec<Duration> = latencies.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, d)| *d).collect();
    took.sort();
    if took.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    }
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    (at(0.50), at(0.99), *took.last().expect("one"), took.len())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let members: u32 = env_or("ROLLOUT_MEMBERS", 10);
    let clients: usize = env_or("ROLLOUT_CLIENTS", 8);
    let steady = Duration::from_secs(env_or("ROLLOUT_STEADY", 10));
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    let proxy_port = free_port();
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms: 0,
        threshold: 1_000_000.0,
        min: members,
        max: members,
        nps: &[("np1", members * 2 + 2)],
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    let v1 = cartridge_dir(sandbox.path(), proxy_port, "v1");
    platform.ok(&["apply", "-f", v1.to_str().expect("UTF-8")]);
    let deployed = Instant::now();
    app.deploy(&platform);
    eprintln!("{members} members deployed in {:.1}s", deployed.elapsed().as_secs_f64());
    support::eventually(Duration::from_secs(120), "every member active", || {
        let active = support::cluster_members(&platform, &format!("{APP}.{ALIAS}"))
            .iter()
            .filter(|m| m["status"] == "Active")
            .count();
        if active == members as usize {
            Ok(())
        } else {
            Err(format!("{active} active"))
        }
    });

    let load = Load::start(proxy_port, &support::cluster_host(APP, ALIAS), clients);
    std::thread::sleep(steady);
    let v2 = cartridge_dir(sandbox.path(), proxy_port, "v2");
    let from = load.started().elapsed();
    let started = Instant::now();
    let out = platform.cli(&["application", "update", APP, "-f", v2.to_str().expect("UTF-8"), "--deadline", "10m"]);
    let took = started.elapsed();
    let to = load.started().elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert!(out.success(), "the update failed\n{out}");

    let (s50, s99, smax, sn) = percentiles(&report.latencies, Duration::ZERO, from);
    let (r50, r99, rmax, rn) = percentiles(&report.latencies, from, to);
    let versions: Vec<String> = report.versions.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    println!("rollout of {members} members (local driver, {clients} keep-alive clients, surge 1, unavailable 0)");
    println!("  rollout time          {:.1} s", took.as_secs_f64());
    println!("  steady state          p50 {}  p99 {}  max {}  ({sn} requests)", ms(s50), ms(s99), ms(smax));
    println!("  during the rollout    p50 {}  p99 {}  max {}  ({rn} requests)", ms(r50), ms(r99), ms(rmax));
    println!("  failed requests       {} {:?}", report.failed, report.failures.iter().take(3).collect::<Vec<_>>());
    println!("  answers by version    {}", versions.join(", "));
}
