//! The built-in load balancer, nginx and HAProxy side by side, on this machine, in one run:
//!
//! `cargo bench -p stratos-lb --bench compare`
//!
//! Four backends (this program again, as child processes: a hyper HTTP/1.1 server
//! answering `member <name>`) form one cluster, published as the topology on an
//! embedded broker. Each proxy follows that topology: the built-in load balancer as a
//! child process (this program, running `stratos_lb::run` as `stratos lb` does), nginx
//! and HAProxy started by the extension (`stratos_lb_extension`, so the same routing,
//! rendered by its configuration generators). Against each, `wrk --latency -t2` with
//! keep-alive, 64 then 256 connections, for 10 s (STRATOS_BENCH_SECONDS to change);
//! the proxy's CPU time (utime + stime of its process tree, from /proc, over the run)
//! and its peak RSS (VmHWM, summed over its processes) are measured. Skipped when wrk
//! is not installed. STRATOS_BENCH_ONLY=built-in (or nginx, haproxy) runs one proxy only.
//! The proxies take turns for STRATOS_BENCH_ROUNDS rounds (3) and the table shows each
//! figure's median, since this machine's speed drifts by ±15% between runs.

use std::convert::Infallible;
use std::net::TcpStream as StdStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use stratos_bus::events::CompleteTopologyEvent;
use stratos_bus::{Bus, EmbeddedBroker};
use stratos_lb::LbConfig;
use stratos_lb_extension::{self as extension, ExtensionConfig, Kind};
use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::Protocol;
use stratos_test_kit::proc::{tree_cpu_seconds as cpu_seconds, tree_peak_rss_mib as peak_rss_mib};
use stratos_test_kit::process::ChildGuard;
use stratos_test_kit::{free_port, wait_listening};

const ROLE: &str = "STRATOS_BENCH_ROLE";
const HOST: &str = "bench.stratos.test";
const BACKENDS: usize = 4;

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("backend") => return backend(),
        Ok("lb") => return builtin_lb(),
        _ => {}
    }
    if Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        println!("compare: skipped, wrk is not installed (apt-get install -y wrk)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(compare());
}

/// A backend: `member <name>` for every request, on 127.0.0.1:$PORT.
fn backend() {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    let body = Bytes::from(format!("member {}\n", std::env::var("NAME").unwrap()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

/// The built-in load balancer, as `stratos lb --broker $BROKER` runs it.
fn builtin_lb() {
    let broker = std::env::var("BROKER").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let bus = Bus::connect(&broker, &format!("bench-lb-{}", std::process::id())).await.unwrap();
        let _ = stratos_lb::run(bus, LbConfig::default()).await;
    });
}

/// Waits until a request for [`HOST`] through the proxy reaches a backend.
async fn wait_routed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = stratos_lb_extension::proxy::local_get_host(port, "/", HOST).await {
            if body.starts_with("member") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the proxy on {port} does not route {HOST} after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn topology(backends: &[u16], proxy: u16) -> Topology {
    let members = backends
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let member_id = format!("m{i}");
            let member = Member {
                service_name: "php".into(),
                cluster_id: "bench.php".into(),
                member_id: member_id.clone(),
                network_partition_id: "np1".into(),
                partition_id: "p1".into(),
                status: MemberStatus::Active,
                default_private_ip: Some("127.0.0.1".into()),
                default_public_ip: None,
                ports: vec![Port { protocol: Protocol::Http, value: port.into(), proxy: proxy.into() }],
                init_time: 0,
                properties: vec![],
            };
            (member_id, member)
        })
        .collect();
    let cluster = Cluster {
        cluster_id: "bench.php".into(),
        service_name: "php".into(),
        app_id: "bench".into(),
        alias: "php".into(),
        tenant_id: -1234,
        host_names: vec![HOST.into()],
        autoscale_policy_name: "a".into(),
        deployment_policy_name: "d".into(),
        status: ClusterStatus::Active,
        error: None,
        created_at: 0,
        members,
    };
    let service = Service {
        service_name: "php".into(),
        service_type: ServiceType::SingleTenant,
        ports: vec![],
        clusters: [("bench.php".to_string(), cluster)].into(),
    };
    Topology { services: [("php".to_string(), service)].into() }
}

struct Row {
    proxy: &'static str,
    connections: u32,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    requests: u64,
    cpu_s: f64,
    rss_mib: f64,
}

/// `1.23ms`, `456.00us`, `1.01s` → milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// (requests/s, p50 ms, p99 ms, errors, requests) from `wrk --latency`.
fn parse_wrk(out: &str) -> Option<(f64, f64, f64, u64, u64)> {
    let words_after = |prefix: &str| out.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(str::trim);
    let rps: f64 = words_after("Requests/sec:")?.parse().ok()?;
    let p50 = millis(words_after("50%")?)?;
    let p99 = millis(words_after("99%")?)?;
    let requests: u64 = out.lines().find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()?;
    let mut errors = 0;
    if let Some(socket) = words_after("Socket errors:") {
        errors += socket.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
    }
    if let Some(non2xx) = words_after("Non-2xx or 3xx responses:") {
        errors += non2xx.parse::<u64>().unwrap_or(0);
    }
    Some((rps, p50, p99, errors, requests))
}

fn wrk(port: u16, connections: u32, seconds: u64) -> String {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Host: {HOST}"),
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Warms the proxy up, then measures it at 64 and 256 connections.
fn measure(proxy: &'static str, pid: u32, port: u16, seconds: u64, rows: &mut Vec<Row>) {
    wrk(port, 64, 2);
    for connections in [64, 256] {
        let before = cpu_seconds(pid);
        let out = wrk(port, connections, seconds);
        let cpu_s = cpu_seconds(pid) - before;
        let rss_mib = peak_rss_mib(pid);
        let Some((requests_per_sec, p50_ms, p99_ms, errors, requests)) = parse_wrk(&out) else {
            panic!("cannot read wrk's output:\n{out}");
        };
        eprintln!("{proxy} c{connections}: {requests_per_sec:.0} req/s");
        rows.push(Row { proxy, connections, requests_per_sec, p50_ms, p99_ms, errors, requests, cpu_s, rss_mib });
    }
}

async fn compare() {
    let seconds: u64 = std::env::var("STRATOS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let me = std::env::current_exe().unwrap();
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let bus = Bus::connect(&broker.platform_url(), "bench").await.unwrap();

    let ports: Vec<u16> = (0..BACKENDS).map(|_| free_port()).collect();
    let _backends: Vec<ChildGuard> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let child = Command::new(&me)
                .env(ROLE, "backend")
                .env("PORT", port.to_string())
                .env("NAME", format!("m{i}"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            ChildGuard(child)
        })
        .collect();
    for &port in &ports {
        wait_listening(port, "a backend");
    }
    let proxy_port = free_port();
    bus.publish(&CompleteTopologyEvent { topology: topology(&ports, proxy_port) }).await.unwrap();

    // Comparing variants of one proxy is quicker without the others.
    let only = std::env::var("STRATOS_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    // This machine's speed drifts between runs: the proxies take turns, round after
    // round, and each figure is the median over the rounds.
    let rounds: usize = std::env::var("STRATOS_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let mut all = Vec::new();
    for round in 1..=rounds {
        eprintln!("round {round} of {rounds}");
        if wanted("built-in") {
            let lb = ChildGuard(
                Command::new(&me)
                    .env(ROLE, "lb")
                    .env("BROKER", broker.platform_url())
                    .env("RUST_LOG", "off")
                    .spawn()
                    .unwrap(),
            );
            wait_routed(proxy_port).await;
            let pid = lb.0.id();
            tokio::task::block_in_place(|| measure("built-in", pid, proxy_port, seconds, &mut all));
            drop(lb);
            wait_closed(proxy_port);
        }
        for (name, kind) in [("nginx", Kind::Nginx), ("haproxy", Kind::Haproxy)] {
            if !wanted(name) {
                continue;
            }
            if !kind.default_binary().exists() {
                if round == 1 {
                    println!("compare: {name} is not installed, left out (apt-get install -y {name})");
                }
                continue;
            }
            let run_dir = std::env::temp_dir().join(format!("stratos-bench-{name}-{}", std::process::id()));
            let ext_bus = Bus::connect(&broker.platform_url(), &format!("bench-{name}-{round}")).await.unwrap();
            let ext = extension::start(ext_bus, ExtensionConfig::new(kind, &run_dir)).await.unwrap();
            wait_routed(proxy_port).await;
            let pid = ext.proxy_pid().unwrap();
            tokio::task::block_in_place(|| measure(name, pid, proxy_port, seconds, &mut all));
            ext.stop().await;
            let _ = std::fs::remove_dir_all(PathBuf::from(&run_dir));
            wait_closed(proxy_port);
        }
    }
    let rows = medians(&all);

    println!();
    println!(
        "{BACKENDS} backends, one cluster; wrk -t2 --latency, keep-alive, {seconds} s per row; {} CPUs; \
         median of {rounds} round(s) taken in turns",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<9} {:>5} {:>11} {:>9} {:>9} {:>8} {:>10} {:>15} {:>14}",
        "proxy", "conns", "req/s", "p50 ms", "p99 ms", "errors", "CPU s", "CPU µs/request", "peak RSS MiB"
    );
    for r in &rows {
        println!(
            "{:<9} {:>5} {:>11.0} {:>9.2} {:>9.2} {:>8} {:>10.2} {:>15.1} {:>14.1}",
            r.proxy,
            r.connections,
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.cpu_s,
            if r.requests > 0 { r.cpu_s * 1e6 / r.requests as f64 } else { 0.0 },
            r.rss_mib
        );
    }
}

/// Per proxy and connection count, in order of first appearance: the median of each
/// figure over the rounds (each figure on its own, so a row may mix rounds).
fn medians(all: &[Row]) -> Vec<Row> {
    let mut keys: Vec<(&'static str, u32)> = Vec::new();
    for r in all {
        if !keys.contains(&(r.proxy, r.connections)) {
            keys.push((r.proxy, r.connections));
        }
    }
    keys.into_iter()
        .map(|(proxy, connections)| {
            let runs: Vec<&Row> = all.iter().filter(|r| r.proxy == proxy && r.connections == connections).collect();
            let median = |f: &dyn Fn(&Row) -> f64| {
                let mut v: Vec<f64> = runs.iter().map(|r| f(r)).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            Row {
                proxy,
                connections,
                requests_per_sec: median(&|r| r.requests_per_sec),
                p50_ms: median(&|r| r.p50_ms),
                p99_ms: median(&|r| r.p99_ms),
                errors: runs.iter().map(|r| r.errors).sum(),
                requests: median(&|r| r.requests as f64) as u64,
                cpu_s: median(&|r| r.cpu_s),
                rss_mib: median(&|r| r.rss_mib),
            }
        })
        .collect()
}

/// Waits until nothing listens on `port` any more (the proxy of the last turn is gone).
fn wait_closed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
