//! Scale reaction (a benchmark, not a test): how long after the load rises a new member
//! serves its first request, with prediction and without (`stratos up --no-prediction`).
//!
//! The platform is the real `stratos up`, with quick intervals (evaluations every 2 s, health
//! summaries and load-balancer in-flight counts every second) or at its default settings
//! (evaluations and health summaries every 15 s over a 60 s window, in-flight counts every
//! second, and a surge of requests in flight evaluated at once); the cluster runs `stratos
//! sample-http --delay 200ms` behind the built-in load balancer and scales on requests in
//! flight, 4 per member, between 1 and 4 members. Load: keep-alive clients through the load
//! balancer, each with one request in flight at a time, so C clients keep about C requests in
//! flight and ask for ceil(C / 4) members.
//!
//! - step: 12 clients at once (3 members wanted);
//! - ramp: one client more every 20/12 s, up to 12 after 20 s.
//!
//! Measured from the moment the load starts (the first client of the ramp): the autoscaler's
//! first scale-up decision, and the first request served by the 2nd and the 3rd member.
//!
//! `cargo bench -p stratos --bench scale_reaction`; `SCALE_REACTION_RUNS=3` repeats each row,
//! `SCALE_REACTION_SETTINGS=defaults` (or `quick`) runs only those rows.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{cluster_host, free_port, Load, Platform, Sandbox, SlowHttpApp, QUICK_SCALING};

const APP: &str = "bench";
const ALIAS: &str = "web";
const CLIENTS: usize = 12;
const RAMP: Duration = Duration::from_secs(20);
/// A row gives up this long after its load started.
const GIVE_UP: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Step,
    Ramp,
}

struct Row {
    shape: Shape,
    prediction: bool,
    /// `stratos up`'s default intervals rather than [`QUICK_SCALING`].
    defaults: bool,
    decision: Option<Duration>,
    second: Option<Duration>,
    third: Option<Duration>,
    /// Members at the end (the load still on).
    members: usize,
    ok: u64,
    failed: u64,
}

fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn run(shape: Shape, prediction: bool, defaults: bool) -> Row {
    let sandbox = Sandbox::new();
    let mut flags: Vec<&str> = if defaults { Vec::new() } else { QUICK_SCALING.to_vec() };
    if !prediction {
        flags.push("--no-prediction");
    }
    let platform = Platform::start(sandbox.path(), &flags);
    let proxy_port = free_port();
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms: 200,
        threshold: 4.0,
        min: 1,
        max: 4,
        nps: &[("np1", 10)],
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let cluster = format!("{APP}.{ALIAS}");
    let first: Vec<String> = support::cluster_members(&platform, &cluster)
        .iter()
        .filter_map(|m| m["memberId"].as_str().map(str::to_owned))
        .collect();

    let started_ms = millis_now();
    let mut load = Load::start(proxy_port, &cluster_host(APP, ALIAS), if shape == Shape::Step { CLIENTS } else { 1 });
    let started = load.started();
    let (mut second, mut third) = (None, None);
    while started.elapsed() < GIVE_UP && third.is_none() {
        if shape == Shape::Ramp && load.clients() < CLIENTS {
            // Client k (1-based) joins at (k-1)/(CLIENTS-1) of the ramp.
            let due = 1 + (started.elapsed().as_secs_f64() / RAMP.as_secs_f64() * (CLIENTS - 1) as f64) as usize;
            let due = due.min(CLIENTS);
            if due > load.clients() {
                load.add_clients(due - load.clients());
            }
        }
        let report = load.report();
        let mut new: Vec<Duration> =
            report.served.iter().filter(|(m, _)| !first.contains(m)).map(|(_, (at, _))| *at).collect();
        new.sort();
        second = new.first().copied();
        third = new.get(1).copied();
        std::thread::sleep(Duration::from_millis(50));
    }
    let members = support::cluster_members(&platform, &cluster).len();
    let report = load.stop();
    let history = platform.ok(&["cluster", "scaling-history", &cluster, "--last", "100", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).unwrap_or_default();
    let decision = history.as_array().into_iter().flatten().find_map(|e| {
        let at = e["timestamp"].as_u64()?;
        (e["action"] == "scale-up" && at >= started_ms).then(|| Duration::from_millis(at - started_ms))
    });
    drop(platform);
    drop(sandbox);
    Row { shape, prediction, defaults, decision, second, third, members, ok: report.ok, failed: report.failed }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| format!("> {}", GIVE_UP.as_secs()), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn main() {
    let runs: usize = std::env::var("SCALE_REACTION_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    let mut rows = Vec::new();
    let rows_to_run = [
        (Shape::Step, true, false),
        (Shape::Step, false, false),
        (Shape::Ramp, true, false),
        (Shape::Ramp, false, false),
        (Shape::Step, true, true),
        (Shape::Ramp, true, true),
    ];
    let only = std::env::var("SCALE_REACTION_SETTINGS").ok();
    let wanted = |defaults: bool| only.as_deref().is_none_or(|o| (o == "defaults") == defaults);
    for (shape, prediction, defaults) in rows_to_run.into_iter().filter(|r| wanted(r.2)) {
        for _ in 0..runs {
            let row = run(shape, prediction, defaults);
            eprintln!(
                "{} {} {}: decision {}, 2nd member {}, 3rd member {}",
                if defaults { "defaults" } else { "quick" },
                if shape == Shape::Step { "step" } else { "ramp" },
                if prediction { "with prediction" } else { "without prediction" },
                secs(row.decision),
                secs(row.second),
                secs(row.third)
            );
            rows.push(row);
        }
    }
    println!();
    println!("Scale reaction: from the load's start to ... (threshold 4 in flight/member, 200 ms requests, 12 clients; quick: evaluation 2 s, health 1 s over 20 s, LB publish 1 s; defaults: evaluation 15 s, health 15 s over 60 s, LB publish 1 s, surges evaluated at once)");
    println!();
    println!("| settings | load | prediction | first scale-up decision | 2nd member serves | 3rd member serves | members at the end | requests ok / failed |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            if r.defaults { "defaults" } else { "quick" },
            if r.shape == Shape::Step { "step to 12 clients" } else { "ramp 1→12 clients over 20 s" },
            if r.prediction { "yes" } else { "no (--no-prediction)" },
            secs(r.decision),
            secs(r.second),
            secs(r.third),
            r.members,
            r.ok,
            r.failed
        );
    }
}
