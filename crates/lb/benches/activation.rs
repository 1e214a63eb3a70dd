//! How soon a member that activates serves: from `MemberActivatedEvent` published on the
//! bus to the first request the load balancer routes to it, under continuous keep-alive
//! load, over many activations (the target: under 50 ms at p99).
//!
//! `cargo bench -p stratos-lb --bench activation [-- ACTIVATIONS]` (default 300)
//!
//! Real parts: the embedded MQTT broker, the load balancer as `stratos lb` runs it, real
//! HTTP backends and clients on loopback. Each round one member activates (a fresh
//! backend) and, once it has served, the previous one goes (ready to shut down, then
//! terminated), so the cluster stays at two members while its membership churns.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use stratos_lb::LbConfig;
use stratos_model::topology::ServiceType;
use support::*;

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(rounds));
}

async fn run(rounds: usize) {
    // The load balancer logs every membership change; a figure per round is enough here.
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let stay = Backend::start("stay").await;
    let mut previous = Backend::start("m0").await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster(
            "app.web",
            -1234,
            &["web.test"],
            vec![http_member("app.web", "stay", stay.port()), http_member("app.web", "m0", previous.port())],
        )],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(HTTP_PORT);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let client = client();
                while !stop.load(Ordering::Relaxed) {
                    match get(&client, addr, "web.test", "/", None).await {
                        Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let id = format!("m{round}");
        let new = Backend::start(&id).await;
        let published = Instant::now();
        env.bus.publish(&activated("app.web", &id, new.port())).await.unwrap();
        let deadline = published + Duration::from_secs(10);
        let first = loop {
            if let Some(at) = new.first_hit() {
                break at;
            }
            assert!(Instant::now() < deadline, "member {id} never got a request");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(first.saturating_duration_since(published));
        let old = format!("m{}", round - 1);
        env.bus.publish(&ready_to_shutdown("app.web", &old)).await.unwrap();
        env.wait_routable(&old, false).await;
        env.bus.publish(&terminated("app.web", &old)).await.unwrap();
        previous.stop();
        previous = new;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n{rounds} activations in {:.1} s under 4 keep-alive clients ({} requests ok, {} failed)",
        started.elapsed().as_secs_f64(),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!("MemberActivatedEvent -> first routed request, ms:");
    println!("{:>8} {:>8} {:>8} {:>8} {:>8}", "min", "p50", "p90", "p99", "max");
    println!(
        "{:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        ms(samples[0]),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(*samples.last().unwrap())
    );
}
