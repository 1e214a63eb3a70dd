//! The load balancer extensions with the real HAProxy and nginx (Debian's
//! /usr/sbin/haproxy and /usr/sbin/nginx): topology on an embedded broker, real
//! backends, requests through the proxy across reloads.
//!
//! A missing proxy fails these tests (with how to install it) unless
//! STRATOS_SKIP_PROXIES=1.

// The load balancer's test harness (members, topologies, raw HTTP), shared rather than copied.
#[path = "../../lb/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratos_test_kit::free_port;

use stratos_bus::events::{CompleteTopologyEvent, InFlightRequestsEvent, MemberActivatedEvent, TenantCreatedEvent};
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker};
use stratos_lb::routing;
use stratos_lb::stats::Registry;
use stratos_lb_extension::{self as extension, plan, Extension, ExtensionConfig, Kind, RenderOptions, StreamModule};
use stratos_model::topology::{MemberStatus, ServiceType, Topology};
use stratos_model::{Protocol, Tenant};
use support::{cluster, init_tracing, member, member_ref, port, ready_to_shutdown, terminated, topology, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "app.stratos.test";
const IDLE_HOST: &str = "idle.stratos.test";

/// Whether `kind` can be tested here; a missing proxy fails unless STRATOS_SKIP_PROXIES=1.
fn available(kind: Kind) -> bool {
    let binary = kind.default_binary();
    if binary.exists() {
        return true;
    }
    if std::env::var("STRATOS_SKIP_PROXIES").as_deref() == Ok("1") {
        eprintln!("skipping: {} is not installed (STRATOS_SKIP_PROXIES=1)", binary.display());
        return false;
    }
    panic!(
        "{} is not installed: apt-get install -y haproxy nginx (or set STRATOS_SKIP_PROXIES=1 to skip these tests)",
        binary.display()
    );
}

fn http_member(
    cluster_id: &str,
    member_id: &str,
    status: MemberStatus,
    value: u16,
    proxy: u16,
) -> stratos_model::topology::Member {
    member(cluster_id, member_id, status, vec![port(Protocol::Http, value, proxy)])
}

/// `app.php` (host [`HOST`]) with members `a` and `b`; `idle.php` ([`IDLE_HOST`]) with a
/// member that is still starting.
fn two_member_topology(a: u16, b: u16, proxy: u16) -> Topology {
    topology(
        &[("php", ServiceType::SingleTenant)],
        vec![
            cluster(
                "app.php",
                -1234,
                &[HOST],
                vec![
                    http_member("app.php", "a", MemberStatus::Active, a, proxy),
                    http_member("app.php", "b", MemberStatus::Active, b, proxy),
                ],
            ),
            cluster(
                "idle.php",
                -1234,
                &[IDLE_HOST],
                vec![http_member("idle.php", "c", MemberStatus::Starting, 1, proxy)],
            ),
        ],
    )
}

struct Setup {
    _broker: EmbeddedBroker,
    bus: Bus,
    ext: Extension,
    _run_dir: tempfile::TempDir,
    proxy: SocketAddr,
}

/// A broker with `topology` published (retained), and the extension of `kind` on it,
/// routing `members`.
async fn setup(kind: Kind, topology: Topology, proxy_port: u16, members: &[&str], stats: Duration) -> Setup {
    init_tracing();
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let bus = Bus::connect(&broker.platform_url(), &format!("ext-test-{kind}")).await.unwrap();
    bus.publish(&CompleteTopologyEvent { topology }).await.unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let config = ExtensionConfig {
        stats_interval: stats,
        debounce: Duration::from_millis(100),
        ..ExtensionConfig::new(kind, run_dir.path())
    };
    let ext_bus = Bus::connect(&broker.platform_url(), &format!("ext-under-test-{kind}")).await.unwrap();
    let ext = extension::start(ext_bus, config).await.unwrap();
    let want: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    ext.wait_for(Duration::from_secs(20), |s| s.members == want)
        .await
        .unwrap_or_else(|| panic!("{kind} routes {want:?} within 20 s; status {:?}", ext.status()));
    Setup { _broker: broker, bus, ext, _run_dir: run_dir, proxy: SocketAddr::from(([127, 0, 0, 1], proxy_port)) }
}

/// One GET on a new connection (`Connection: close`): (status, body).
async fn fresh_get(addr: SocketAddr, host: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or(format!("no status in {response:?}"))?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| "timed out".to_string())?
}

/// `n` requests for `host`: how many each answer (status and body) got.
async fn tally(addr: SocketAddr, host: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let key = match fresh_get(addr, host).await {
            Ok((200, body)) => body,
            Ok((code, _)) => code.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// A keep-alive HTTP/1.1 client on one connection at a time, that behaves as RFC 9112
/// §9.3.1 asks of clients: a GET on a *reused* connection that the server closed before
/// sending any byte of the answer (it closed the idle connection as the request
/// arrived, e.g. an old worker stopping) is sent again once, on a new connection.
struct KeepAlive {
    addr: SocketAddr,
    stream: Option<tokio::io::BufReader<TcpStream>>,
}

enum Exchange {
    Answer(u16, String),
    /// The connection closed before any byte of the answer.
    ClosedEarly,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, stream: None }
    }

    /// (status, body, whether the request was sent again).
    async fn get(&mut self, host: &str) -> Result<(u16, String, bool), String> {
        let reused = self.stream.is_some();
        match self.exchange(host).await? {
            Exchange::Answer(code, body) => Ok((code, body, false)),
            Exchange::ClosedEarly if reused => match self.exchange(host).await? {
                Exchange::Answer(code, body) => Ok((code, body, true)),
                Exchange::ClosedEarly => Err("a new connection closed without an answer".into()),
            },
            Exchange::ClosedEarly => Err("a new connection closed without an answer".into()),
        }
    }

    async fn exchange(&mut self, host: &str) -> Result<Exchange, String> {
        use tokio::io::AsyncBufReadExt;
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
            self.stream = Some(tokio::io::BufReader::new(stream));
        }
        let stream = self.stream.as_mut().unwrap();
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        if stream.get_mut().write_all(request.as_bytes()).await.is_err() {
            self.stream = None;
            return Ok(Exchange::ClosedEarly);
        }
        let mut head = Vec::new();
        let read = async {
            loop {
                let mut line = String::new();
                let n = stream.read_line(&mut line).await?;
                if n == 0 || line == "\r\n" {
                    return Ok::<_, std::io::Error>(n);
                }
                head.push(line);
            }
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), read).await.map_err(|_| "timed out".to_string())?;
        if head.is_empty() {
            // EOF or a reset before any byte of the answer.
            self.stream = None;
            return Ok(Exchange::ClosedEarly);
        }
        if !matches!(ended, Ok(n) if n > 0) {
            self.stream = None;
            return Err(format!("the answer was cut: {head:?}"));
        }
        let code: u16 = head[0]
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or(format!("bad status line {:?}", head[0]))?;
        let header = |name: &str| {
            head.iter().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
            })
        };
        let length: usize =
            header("content-length").and_then(|l| l.parse().ok()).ok_or(format!("no content-length in {head:?}"))?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.map_err(|e| format!("body cut: {e}"))?;
        let close = header("connection").is_some_and(|c| c.contains("close"));
        if close {
            self.stream = None;
        }
        Ok(Exchange::Answer(code, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Requests in a loop until stopped, half on new connections, half on keep-alive connections.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, host: &'static str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let retried = Arc::new(AtomicU64::new(0));
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let tasks = (0..workers)
            .map(|i| {
                let (stop, ok, retried, failures) = (stop.clone(), ok.clone(), retried.clone(), failures.clone());
                tokio::spawn(async move {
                    let mut keep_alive = KeepAlive::new(addr);
                    while !stop.load(Ordering::SeqCst) {
                        let answer = if i % 2 == 0 {
                            fresh_get(addr, host).await
                        } else {
                            keep_alive.get(host).await.map(|(code, body, again)| {
                                if again {
                                    retried.fetch_add(1, Ordering::SeqCst);
                                }
                                (code, body)
                            })
                        };
                        match answer {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok((code, body)) => failures.lock().unwrap().push(format!("{code} {body}")),
                            Err(e) => failures.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load { stop, ok, retried, failures, tasks }
    }

    /// Stops the load: (requests that succeeded, those sent again, the failures).
    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.ok.load(Ordering::SeqCst), self.retried.load(Ordering::SeqCst), self.failures.lock().unwrap().clone())
    }
}

fn alive(pid: u32) -> bool {
    stratos_test_kit::proc::stat(pid).is_some_and(|s| s.is_live())
}

async fn follows_the_topology(kind: Kind) {
    if !available(kind) {
        return;
    }
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let proxy_port = free_port();
    let s = setup(
        kind,
        two_member_topology(a.port(), b.port(), proxy_port),
        proxy_port,
        &["a", "b"],
        Duration::from_secs(5),
    )
    .await;
    let config = std::fs::read_to_string(s.ext.config_path()).unwrap();
    assert!(config.contains(&format!(":{proxy_port}")), "{config}");

    // Both members get requests for the cluster's host.
    let seen = tally(s.proxy, HOST, 20).await;
    assert!(seen.get("A").is_some_and(|&n| n > 0) && seen.get("B").is_some_and(|&n| n > 0), "{kind}: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), seen["A"] + seen["B"], "{kind}: {seen:?}");
    // An unknown host: 404. A cluster without an active member: 503.
    let (code, body) = fresh_get(s.proxy, "nobody.stratos.test").await.unwrap();
    assert_eq!(code, 404, "{kind}: {body}");
    assert!(body.contains("no cluster serves this host"), "{kind}: {body}");
    let (code, body) = fresh_get(s.proxy, IDLE_HOST).await.unwrap();
    assert_eq!(code, 503, "{kind}: {body}");
    assert!(body.contains("cluster idle.php has no active member"), "{kind}: {body}");
    // The host matches without its port and in any case.
    assert_eq!(fresh_get(s.proxy, &format!("APP.Stratos.TEST:{proxy_port}")).await.unwrap().0, 200);

    // `a` leaves while requests keep coming: none fails, and after the reload only `b` answers.
    let load = Load::start(s.proxy, HOST, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let generation = s.ext.status().generation;
    s.bus.publish(&terminated("app.php", "a")).await.unwrap();
    let status = s
        .ext
        .wait_for(Duration::from_secs(20), |st| st.generation > generation)
        .await
        .unwrap_or_else(|| panic!("{kind} reloads within 20 s: {:?}", s.ext.status()));
    assert_eq!(status.members, BTreeSet::from(["b".to_string()]));
    // Connections kept alive by the old workers close after their next answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_hits = a.hits();
    let b_hits = b.hits();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (ok, retried, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} requests failed across the reload: {failures:?}",
        failures.len(),
        ok + failures.len() as u64
    );
    assert!(ok > 50, "{kind}: only {ok} requests in the load loop");
    assert_eq!(a.hits(), a_hits, "{kind}: the removed member still gets requests");
    assert!(b.hits() > b_hits, "{kind}: b gets the traffic");
    eprintln!("{kind}: {ok} requests across the reload, 0 failed ({retried} sent again on a new connection after an idle keep-alive connection closed under them)");
    // Stopping `a` changes nothing: it gets no traffic.
    a.stop();
    assert_eq!(tally(s.proxy, HOST, 10).await, BTreeMap::from([("B".to_string(), 10)]));

    // A member whose address does not resolve makes an invalid configuration: rejected
    // with the validator's words, and the previous configuration keeps serving.
    let in_service = s.ext.status().generation;
    s.bus
        .publish(&MemberActivatedEvent {
            member: member_ref("app.php", "bad"),
            default_private_ip: Some("no-such-host.invalid".into()),
            ports: vec![port(Protocol::Http, 80, proxy_port)],
        })
        .await
        .unwrap();
    let status = s
        .ext
        .wait_for(Duration::from_secs(20), |st| st.rejected.is_some())
        .await
        .unwrap_or_else(|| panic!("{kind} rejects the configuration: {:?}", s.ext.status()));
    let rejected = status.rejected.clone().unwrap();
    assert!(rejected.reason.contains("no-such-host.invalid"), "{kind}: {}", rejected.reason);
    assert_eq!(status.generation, in_service, "the previous configuration stays in service");
    assert!(Path::new(&format!("{}.rejected", s.ext.config_path().display())).exists());
    assert!(!std::fs::read_to_string(s.ext.config_path()).unwrap().contains("no-such-host"));
    assert_eq!(tally(s.proxy, HOST, 5).await, BTreeMap::from([("B".to_string(), 5)]));
    // The bad member goes: the topology asks for the configuration in service again.
    s.bus.publish(&terminated("app.php", "bad")).await.unwrap();
    s.ext
        .wait_for(Duration::from_secs(20), |st| st.rejected.is_none())
        .await
        .unwrap_or_else(|| panic!("{kind} forgets the rejection: {:?}", s.ext.status()));

    // The last active member drains: the cluster answers 503.
    s.bus.publish(&ready_to_shutdown("app.php", "b")).await.unwrap();
    s.ext
        .wait_for(Duration::from_secs(20), |st| st.members.is_empty())
        .await
        .unwrap_or_else(|| panic!("{kind} removes b: {:?}", s.ext.status()));
    let (code, body) = fresh_get(s.proxy, HOST).await.unwrap();
    assert_eq!(code, 503, "{kind}: {body}");

    // Stopping the extension stops the proxy and its workers.
    let master = s.ext.proxy_pid().unwrap();
    let workers = extension::proxy::children(master);
    assert!(!workers.is_empty(), "{kind} has workers");
    s.ext.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (alive(master) || workers.iter().any(|w| alive(*w))) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(master), "{kind} master {master} still runs");
    assert!(workers.iter().all(|w| !alive(*w)), "{kind} workers {workers:?} still run");
    assert!(fresh_get(s.proxy, HOST).await.is_err(), "the proxy port is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_follows_the_topology() {
    follows_the_topology(Kind::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_follows_the_topology() {
    follows_the_topology(Kind::Nginx).await;
}

/// Slow requests in flight show on `health/#` as the cluster's (and for HAProxy, the member's) figure.
async fn reports_in_flight(kind: Kind) {
    if !available(kind) {
        return;
    }
    let a = Backend::start("A").await;
    a.delay_ms.store(2000, Ordering::SeqCst);
    let proxy_port = free_port();
    let topo = topology(
        &[("php", ServiceType::SingleTenant)],
        vec![cluster(
            "app.php",
            -1234,
            &[HOST],
            vec![http_member("app.php", "a", MemberStatus::Active, a.port(), proxy_port)],
        )],
    );
    let s = setup(kind, topo, proxy_port, &["a"], Duration::from_millis(200)).await;
    let mut health = s.bus.subscribe("health/#").await.unwrap();
    let requests: Vec<_> = (0..6).map(|_| tokio::spawn(fresh_get(s.proxy, HOST))).collect();
    let mut cluster_seen = None;
    let mut member_seen = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && (cluster_seen.is_none() || (kind == Kind::Haproxy && member_seen.is_none())) {
        let event = health
            .wait_for(Duration::from_secs(1), |e| match e {
                AnyEvent::InFlightRequestsEvent(e) if e.cluster_id == "app.php" && e.in_flight > 0.0 => Some(e),
                _ => None,
            })
            .await;
        match event {
            Some(InFlightRequestsEvent { member_id: None, in_flight, .. }) => cluster_seen = Some(in_flight),
            Some(InFlightRequestsEvent { member_id: Some(m), in_flight, .. }) if m == "a" => {
                member_seen = Some(in_flight)
            }
            _ => {}
        }
    }
    let cluster = cluster_seen.unwrap_or_else(|| panic!("{kind}: no in-flight figure above 0 for app.php"));
    assert!(cluster <= 6.0, "{kind}: {cluster} in flight, 6 sent");
    match kind {
        Kind::Haproxy => assert!(member_seen.is_some_and(|n| n > 0.0), "{kind}: no member figure"),
        Kind::Nginx => assert!(member_seen.is_none(), "nginx publishes cluster figures only"),
    }
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), (200, "A".to_string()));
    }
    eprintln!("{kind}: {cluster} requests in flight reported for app.php");
    s.ext.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_reports_in_flight_requests() {
    reports_in_flight(Kind::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reports_in_flight_requests() {
    reports_in_flight(Kind::Nginx).await;
}

/// Every feature of the routing table (tenant paths, several clusters on a port, an
/// empty cluster, TCP, IPv6 members) renders to a configuration the proxy accepts; a
/// broken file is refused with the validator's words.
async fn validator(kind: Kind) {
    if !available(kind) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let topo = topology(
        &[("php", ServiceType::SingleTenant), ("mt", ServiceType::MultiTenant), ("mysql", ServiceType::SingleTenant)],
        vec![
            cluster(
                "a.php",
                -1234,
                &["a.test", "www.a.test"],
                vec![http_member("a.php", "m1", MemberStatus::Active, 4001, p1)],
            ),
            cluster("b.php", -1234, &["b.test"], vec![http_member("b.php", "m2", MemberStatus::Starting, 4002, p1)]),
            cluster("t5.mt", 5, &["mt.test"], vec![http_member("t5.mt", "m3", MemberStatus::Active, 4003, p1)]),
            cluster(
                "t6.mt",
                6,
                &["mt.test"],
                vec![{
                    let mut m = http_member("t6.mt", "m4", MemberStatus::Active, 4004, p1);
                    m.default_private_ip = Some("::1".into());
                    m
                }],
            ),
            cluster(
                "db.mysql",
                -1234,
                &[],
                vec![member("db.mysql", "m5", MemberStatus::Active, vec![port(Protocol::Tcp, 3306, p2)])],
            ),
        ],
    );
    let mut tenants = BTreeMap::new();
    let created = AnyEvent::TenantCreatedEvent(TenantCreatedEvent {
        tenant: Tenant { tenant_id: 6, tenant_domain: "Acme.com".into(), active: true, email: None, created_at: 0 },
    });
    let mut t = Topology::default();
    routing::apply_event(&mut t, &mut tenants, &created);
    let table = routing::build(&topo, &tenants, &Registry::default());
    let plan = plan::plan(&table, &tenants);
    let nginx_v = std::process::Command::new(kind.default_binary()).arg("-V").output().unwrap();
    let options = RenderOptions {
        listen: "127.0.0.1".parse().unwrap(),
        status_port: free_port(),
        run_dir: dir.path().to_path_buf(),
        generation: 1,
        nginx_stream: StreamModule::detect(&String::from_utf8_lossy(&nginx_v.stderr)),
    };
    let mut warnings = Vec::new();
    let text = match kind {
        Kind::Haproxy => extension::haproxy::render(&plan, &options),
        Kind::Nginx => extension::nginx::render(&plan, &options, &mut warnings),
    };
    assert!(text.contains("acme"), "tenant domain routes:\n{text}");
    let file = dir.path().join("rich.cfg");
    std::fs::write(&file, &text).unwrap();
    let verdict = extension::validate(kind, &kind.default_binary(), &file, dir.path()).await;
    assert!(verdict.is_ok(), "{kind} refuses the rendered configuration: {verdict:?}\n{text}");
    if kind == Kind::Nginx && options.nginx_stream == StreamModule::Missing {
        eprintln!("nginx without the stream module here: TCP left out ({warnings:?})");
    }

    let broken = dir.path().join("broken.cfg");
    std::fs::write(&broken, "this is { not a proxy configuration\n").unwrap();
    let output = extension::validate(kind, &kind.default_binary(), &broken, dir.path()).await.unwrap_err();
    assert!(output.contains("broken.cfg"), "{kind} names the file: {output}");
    let missing = extension::validate(kind, Path::new("/nonexistent/proxy"), &file, dir.path()).await.unwrap_err();
    assert!(missing.contains("cannot run"), "{missing}");
}

#[tokio::test]
async fn haproxy_validates_rendered_configurations() {
    validator(Kind::Haproxy).await;
}

#[tokio::test]
async fn nginx_validates_rendered_configurations() {
    validator(Kind::Nginx).await;
}

/// A TCP proxy port passes bytes through to the cluster's member.
async fn proxies_tcp(kind: Kind) {
    if !available(kind) {
        return;
    }
    if kind == Kind::Nginx {
        let v = std::process::Command::new(kind.default_binary()).arg("-V").output().unwrap();
        if StreamModule::detect(&String::from_utf8_lossy(&v.stderr)) == StreamModule::Missing {
            eprintln!("skipping: nginx has no stream module here (apt-get install libnginx-mod-stream)");
            return;
        }
    }
    let (echo, _task) = support::tcp_echo("E").await;
    let proxy_port = free_port();
    let topo = topology(
        &[("mysql", ServiceType::SingleTenant)],
        vec![cluster(
            "db.mysql",
            -1234,
            &[],
            vec![member("db.mysql", "m1", MemberStatus::Active, vec![port(Protocol::Tcp, echo.port(), proxy_port)])],
        )],
    );
    let s = setup(kind, topo, proxy_port, &["m1"], Duration::from_secs(5)).await;
    let mut stream = TcpStream::connect(s.proxy).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"E:ping", "{kind}");
    s.ext.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_proxies_tcp() {
    proxies_tcp(Kind::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_proxies_tcp() {
    proxies_tcp(Kind::Nginx).await;
}

/// WebSocket upgrades pass through the external proxy to a member and back.
async fn tunnels_websockets(kind: Kind) {
    if !available(kind) {
        return;
    }
    let member = support::upgrading_member().await;
    let proxy_port = free_port();
    let topo = topology(
        &[("php", ServiceType::SingleTenant)],
        vec![cluster(
            "app.php",
            -1234,
            &[HOST],
            vec![http_member("app.php", "a", MemberStatus::Active, member, proxy_port)],
        )],
    );
    let s = setup(kind, topo, proxy_port, &["a"], Duration::from_secs(5)).await;
    let mut stream = TcpStream::connect(s.proxy).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    support::read_until(&mut stream, &mut got, b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{kind}: {head}");
    assert!(head.contains("upgrade: websocket"), "{kind}: {head}");
    for message in ["hello ", "world "] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        support::read_until(&mut stream, &mut got, message.to_ascii_uppercase().as_bytes()).await;
    }
    s.ext.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_tunnels_websockets() {
    tunnels_websockets(Kind::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_tunnels_websockets() {
    tunnels_websockets(Kind::Nginx).await;
}

#[tokio::test]
async fn a_missing_proxy_is_a_clear_error() {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let bus = Bus::connect(&broker.platform_url(), "ext-missing").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ExtensionConfig {
        binary: Some("/nonexistent/haproxy".into()),
        ..ExtensionConfig::new(Kind::Haproxy, dir.path())
    };
    let error = extension::start(bus, config).await.err().expect("no proxy, no extension");
    let text = format!("{error:#}");
    assert!(text.contains("apt-get install -y haproxy") && text.contains("--binary"), "{text}");
}
