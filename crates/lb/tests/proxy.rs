//! The load balancer over real sockets: routing, errors, sticky sessions, health,
//! hostile clients, in-flight events and TCP.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use stratos_bus::events::{AnyEvent, CompleteTenantEvent, TenantCreatedEvent};
use stratos_bus::Bus;
use stratos_lb::{Algorithm, LbConfig};
use stratos_model::topology::{MemberStatus, ServiceType};
use stratos_model::{Protocol, Tenant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_tenant_path_with_clear_errors() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let t5 = Backend::start("T5").await;
    let t6 = Backend::start("T6").await;
    let topo = topology(
        &[("php", ServiceType::SingleTenant), ("mt", ServiceType::MultiTenant)],
        vec![
            cluster(
                "app1.php",
                -1234,
                &["app1.php.stratos.test", "www.example.test"],
                vec![http_member("app1.php", "a", a.port())],
            ),
            cluster("app2.php", -1234, &["app2.php.stratos.test"], vec![http_member("app2.php", "b", b.port())]),
            cluster(
                "app3.php",
                -1234,
                &["app3.php.stratos.test"],
                vec![member("app3.php", "c", MemberStatus::Starting, vec![port(Protocol::Http, 1, HTTP_PORT)])],
            ),
            cluster("t5.mt", 5, &["mt.stratos.test"], vec![http_member("t5.mt", "t5", t5.port())]),
            cluster("t6.mt", 6, &["mt.stratos.test"], vec![http_member("t6.mt", "t6", t6.port())]),
        ],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(HTTP_PORT);
    let client = client();

    let r = get(&client, addr, "app1.php.stratos.test", "/index.php?x=1", None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "A"));
    assert_eq!(r.header("x-seen-path"), "/index.php");
    assert_eq!(r.header("x-seen-host"), "app1.php.stratos.test");
    assert_eq!(r.header("x-seen-forwarded-for"), "127.0.0.1");
    assert_eq!(r.header("x-seen-forwarded-proto"), "http");
    assert_eq!(r.header("x-seen-forwarded-host"), "app1.php.stratos.test");
    // Case and port do not matter.
    let r = get(&client, addr, "WWW.Example.TEST:8280", "/", None).await.unwrap();
    assert_eq!(r.body, "A");
    assert_eq!(r.header("x-seen-forwarded-host"), "WWW.Example.TEST:8280");
    assert_eq!(get(&client, addr, "app2.php.stratos.test", "/", None).await.unwrap().body, "B");

    // Tenant path prefixes, kept when forwarding.
    let r = get(&client, addr, "mt.stratos.test", "/t/6/page", None).await.unwrap();
    assert_eq!((r.body.as_str(), r.header("x-seen-path")), ("T6", "/t/6/page"));
    assert_eq!(get(&client, addr, "mt.stratos.test", "/t/5/", None).await.unwrap().body, "T5");
    assert_eq!(get(&client, addr, "127.0.0.1", "/t/6/", None).await.unwrap().body, "T6");
    // A tenant domain, once the tenant is announced.
    let acme = Tenant { tenant_id: 6, tenant_domain: "acme.test".into(), active: true, email: None, created_at: 0 };
    env.bus.publish(&TenantCreatedEvent { tenant: acme }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&client, addr, "lb.stratos.test", "/t/acme.test/x", None).await.unwrap();
        if r.status == StatusCode::OK {
            assert_eq!(r.body, "T6");
            break;
        }
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(Instant::now() < deadline, "tenant domain never routed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Unknown host: 404 naming it.
    let r = get(&client, addr, "nobody.stratos.test", "/", None).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("nobody.stratos.test"), "{}", r.body);
    assert_eq!(r.header("content-type"), "application/json");
    // No active member: 503 naming the cluster.
    let r = get(&client, addr, "app3.php.stratos.test", "/", None).await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("app3.php"), "{}", r.body);
    // No Host at all, and a bad one: 400.
    let raw_answer = raw(addr, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(5)).await;
    assert!(raw_answer.starts_with("HTTP/1.0 400") || raw_answer.starts_with("HTTP/1.1 400"), "{raw_answer}");
    let r = get(&client, addr, "bad host!", "/", None).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // HTTP/2 with prior knowledge (h2c).
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    for (authority, expected) in [("app1.php.stratos.test", "A"), ("app2.php.stratos.test", "B")] {
        let request =
            Request::builder().uri(format!("http://{authority}:{HTTP_PORT}/h2")).body(Empty::<Bytes>::new()).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-seen-host"], format!("{authority}:{HTTP_PORT}").as_str());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, expected);
    }
}

/// The manager's retained tenant snapshot: a load balancer started after the tenants
/// were created routes their domains, and a newer snapshot replaces the older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_load_balancer_learns_tenant_domains_from_the_snapshot() {
    let t5 = Backend::start("T5").await;
    let topo = topology(
        &[("mt", ServiceType::MultiTenant)],
        vec![cluster("t5.mt", 5, &["mt.stratos.test"], vec![http_member("t5.mt", "t5", t5.port())])],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let five =
        |domain: &str| Tenant { tenant_id: 5, tenant_domain: domain.into(), active: true, email: None, created_at: 0 };
    env.bus.publish(&CompleteTenantEvent { tenants: vec![five("five.test")] }).await.unwrap();

    let late_bus = Bus::connect(&env.broker.platform_url(), "late-lb").await.unwrap();
    let late = stratos_lb::start(late_bus, LbConfig { ephemeral_ports: true, ..LbConfig::default() }).await.unwrap();
    let client = client();
    for lb in [&env.lb, &late] {
        let addr = lb
            .wait_until(Duration::from_secs(10), |lb| {
                let routed = lb.table().route_http(HTTP_PORT, "lb.stratos.test", "/t/five.test/").is_some();
                lb.addr_for_port(HTTP_PORT).filter(|_| routed)
            })
            .await
            .expect("the tenant's domain is routed");
        let r = get(&client, addr, "lb.stratos.test", "/t/five.test/x", None).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "T5"));
    }

    // The tenant's domain changed: the old one no longer routes, the new one does.
    env.bus.publish(&CompleteTenantEvent { tenants: vec![five("cinq.test")] }).await.unwrap();
    let addr = late
        .wait_until(Duration::from_secs(10), |lb| {
            let table = lb.table();
            let moved = table.route_http(HTTP_PORT, "lb.stratos.test", "/t/cinq.test/").is_some()
                && table.route_http(HTTP_PORT, "lb.stratos.test", "/t/five.test/").is_none();
            lb.addr_for_port(HTTP_PORT).filter(|_| moved)
        })
        .await
        .expect("the newer snapshot replaces the older");
    let r = get(&client, addr, "lb.stratos.test", "/t/five.test/x", None).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&client, addr, "lb.stratos.test", "/t/cinq.test/x", None).await.unwrap().body, "T5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_pin_a_client_until_its_member_leaves() {
    let backends = [Backend::start("m1").await, Backend::start("m2").await, Backend::start("m3").await];
    let members = backends.iter().map(|b| http_member("app.web", &b.name, b.port())).collect();
    let topo = topology(&[("web", ServiceType::SingleTenant)], vec![cluster("app.web", -1234, &["web.test"], members)]);
    let config = LbConfig { sticky: true, algorithm: Algorithm::RoundRobin, ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let addr = env.addr(HTTP_PORT);
    let client = client();

    // Without the cookie, requests spread (and each answer offers a cookie).
    let mut spread = BTreeSet::new();
    for _ in 0..6 {
        let r = get(&client, addr, "web.test", "/", None).await.unwrap();
        assert_eq!(r.header("set-cookie"), format!("STRATOS_STICKY={}; Path=/; HttpOnly", r.body));
        spread.insert(r.body);
    }
    assert_eq!(spread.len(), 3, "round-robin without cookie: {spread:?}");

    let first = get(&client, addr, "web.test", "/", None).await.unwrap();
    let pinned = first.body.clone();
    let cookie = first.header("set-cookie").split(';').next().unwrap().to_string();
    for _ in 0..20 {
        let r = get(&client, addr, "web.test", "/", Some(&format!("theme=dark; {cookie}"))).await.unwrap();
        assert_eq!(r.body, pinned, "sticky request went elsewhere");
        assert_eq!(r.header("set-cookie"), "", "no new cookie while the member stays");
    }

    env.bus.publish(&ready_to_shutdown("app.web", &pinned)).await.unwrap();
    env.wait_routable(&pinned, false).await;
    let r = get(&client, addr, "web.test", "/", Some(&cookie)).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.body, pinned);
    assert_eq!(r.header("set-cookie"), format!("STRATOS_STICKY={}; Path=/; HttpOnly", r.body), "cookie replaced");
    let new_cookie = r.header("set-cookie").split(';').next().unwrap().to_string();
    for _ in 0..5 {
        assert_eq!(get(&client, addr, "web.test", "/", Some(&new_cookie)).await.unwrap().body, r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_member_is_ejected_and_requests_still_succeed() {
    let good = Backend::start("good").await;
    let bad_port = refused_port().await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster(
            "app.web",
            -1234,
            &["web.test"],
            vec![http_member("app.web", "good", good.port()), http_member("app.web", "bad", bad_port)],
        )],
    );
    // Passive checks only: no active check interferes.
    let config =
        LbConfig { algorithm: Algorithm::RoundRobin, active_check_interval: Duration::ZERO, ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let addr = env.addr(HTTP_PORT);
    let client = client();
    for _ in 0..20 {
        let r = get(&client, addr, "web.test", "/", None).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "good"));
    }
    let bad = env.lb.member("bad").unwrap();
    assert!(bad.ejected, "{bad:?}");
    assert_eq!(bad.requests, 1, "tried once, then ejected: {bad:?}");
    assert_eq!(good.hits(), 20);

    // With no other member to retry on, a refused connection is a 502 naming the member.
    let bad_only = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("app.web", -1234, &["web.test"], vec![http_member("app.web", "bad", bad_port)])],
    );
    env.bus.publish(&stratos_bus::events::CompleteTopologyEvent { topology: bad_only }).await.unwrap();
    env.wait_routable("good", false).await;
    let r = get(&client, addr, "web.test", "/", None).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("bad") && r.body.contains("app.web"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_eject_a_dead_member_without_traffic() {
    let good = Backend::start("good").await;
    let bad_port = refused_port().await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster(
            "app.web",
            -1234,
            &["web.test"],
            vec![http_member("app.web", "good", good.port()), http_member("app.web", "bad", bad_port)],
        )],
    );
    let config = LbConfig { active_check_interval: Duration::from_millis(200), ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let ejected = env
        .lb
        .wait_until(Duration::from_secs(5), |lb| lb.member("bad").filter(|m| m.ejected))
        .await
        .expect("the dead member is ejected by the active check");
    assert_eq!(ejected.requests, 0);
    assert!(!env.lb.member("good").unwrap().ejected);
    let client = client();
    for _ in 0..5 {
        assert_eq!(get(&client, env.addr(HTTP_PORT), "web.test", "/", None).await.unwrap().body, "good");
    }
    assert_eq!(env.lb.member("bad").unwrap().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_4xx() {
    let a = Backend::start("A").await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("app.web", -1234, &["web.test"], vec![http_member("app.web", "a", a.port())])],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(HTTP_PORT);
    let wait = Duration::from_secs(5);

    let huge = format!("GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let answer = raw(addr, huge.as_bytes(), wait).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw(addr, format!("GET / HTTP/1.1\r\nHost: web.test\r\n{many}\r\n").as_bytes(), wait).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = raw(addr, b"GET / HTTP/1.1\r\nHost: web.test\r\nno colon here\r\n\r\n", wait).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(addr, b"\x01\x02 garbage\r\n\r\n", wait).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(addr, b"GET / HTTP/1.1\r\nHost: we b.test\r\nConnection: close\r\n\r\n", wait).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The proxy is still fine.
    assert_eq!(get(&client(), addr, "web.test", "/", None).await.unwrap().body, "A");
    assert_eq!(a.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out_without_disturbing_others() {
    let a = Backend::start("A").await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("app.web", -1234, &["web.test"], vec![http_member("app.web", "a", a.port())])],
    );
    let config = LbConfig { header_timeout: Duration::from_secs(1), ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let addr = env.addr(HTTP_PORT);

    // A partial head, then nothing; and a connection that never says anything.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: ").await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let slow_end = tokio::spawn(async move {
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut out)).await;
        (r.is_ok(), started.elapsed(), String::from_utf8_lossy(&out).into_owned())
    });
    let silent_end = tokio::spawn(async move {
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut out)).await;
        (r.is_ok(), started.elapsed())
    });

    // Meanwhile another client is served normally.
    let client = client();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let r = get(&client, addr, "web.test", "/", None).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        served += 1;
    }
    assert!(served > 10, "only {served} requests served beside the slow clients");

    let (closed, after, answer) = slow_end.await.unwrap();
    assert!(closed, "the slow client's connection was not closed");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(4), "closed after {after:?}");
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    assert!(answer.ends_with(r#"{"error":"the request head did not arrive in time"}"#), "{answer}");
    let (closed, after) = silent_end.await.unwrap();
    assert!(closed, "the silent client's connection was not closed");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(4), "closed after {after:?}");
    println!("slow client closed after {after:?}; {served} requests served meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_without_a_408() {
    let a = Backend::start("A").await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("app.web", -1234, &["web.test"], vec![http_member("app.web", "a", a.port())])],
    );
    let config = LbConfig { header_timeout: Duration::from_millis(500), ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let mut conn = TcpStream::connect(env.addr(HTTP_PORT)).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = conn.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    // Idle between requests: the connection closes quietly, like any keep-alive timeout.
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "an idle connection was answered: {}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() >= Duration::from_millis(400), "closed after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_counts_are_published() {
    let slow = Backend::start("slow").await;
    slow.delay_ms.store(1500, Ordering::SeqCst);
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("app.web", -1234, &["web.test"], vec![http_member("app.web", "slow-1", slow.port())])],
    );
    let config = LbConfig { publish_interval: Duration::from_millis(200), ..LbConfig::default() };
    let env = Env::start(topo, config).await;
    let mut health = env.bus.subscribe("health/#").await.unwrap();
    let addr = env.addr(HTTP_PORT);

    // Idle first: zeros, with the cluster id and network partition.
    let idle = health
        .wait_for(Duration::from_secs(5), |e| match e {
            AnyEvent::InFlightRequestsEvent(e) if e.member_id.is_none() => Some(e),
            _ => None,
        })
        .await
        .expect("a cluster in-flight event");
    assert_eq!((idle.cluster_id.as_str(), idle.network_partition_id.as_str()), ("app.web", "np1"));

    let requests: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move {
                let client = client();
                get(&client, addr, "web.test", "/", None).await.unwrap().status
            })
        })
        .collect();
    let (mut cluster_peak, mut member_peak) = (0.0f64, 0.0f64);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (cluster_peak < 5.0 || member_peak < 5.0) && Instant::now() < deadline {
        if let Some(AnyEvent::InFlightRequestsEvent(e)) =
            tokio::time::timeout(Duration::from_millis(500), health.recv()).await.ok().flatten()
        {
            assert_eq!(e.cluster_id, "app.web");
            assert_eq!(e.network_partition_id, "np1");
            match e.member_id.as_deref() {
                None => cluster_peak = cluster_peak.max(e.in_flight),
                Some("slow-1") => member_peak = member_peak.max(e.in_flight),
                Some(other) => panic!("event for unknown member {other}"),
            }
        }
    }
    assert_eq!((cluster_peak, member_peak), (5.0, 5.0), "in flight seen on the bus");
    for r in requests {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    // The proxy counts a request done once it has written the last byte, which the
    // client may read a moment earlier.
    let deadline = Instant::now() + Duration::from_secs(2);
    while env.lb.member("slow-1").unwrap().in_flight != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.lb.member("slow-1").unwrap().in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ports_splice_connections_to_members() {
    let (e1, _t1) = tcp_echo("e1").await;
    let (e2, _t2) = tcp_echo("e2").await;
    let tcp_member = |id: &str, p: u16| member("db.echo", id, MemberStatus::Active, vec![port(Protocol::Tcp, p, 9000)]);
    let topo = topology(
        &[("echo", ServiceType::SingleTenant)],
        vec![cluster("db.echo", -1234, &[], vec![tcp_member("e1", e1.port()), tcp_member("e2", e2.port())])],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(9000);

    // Two connections at once: least connections puts them on different members.
    let mut seen = BTreeSet::new();
    let mut open = Vec::new();
    for i in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let msg = format!("hello {i}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (name, echoed) = answer.split_once(':').unwrap();
        assert_eq!(echoed, msg);
        seen.insert(name.to_string());
        open.push(s);
    }
    assert_eq!(seen, BTreeSet::from(["e1".to_string(), "e2".to_string()]));
    let in_flight: u64 = env.lb.members().iter().map(|m| m.in_flight).sum();
    assert_eq!(in_flight, 2, "open connections count as in flight");
    drop(open);
    let drained = env
        .lb
        .wait_until(Duration::from_secs(5), |lb| lb.members().iter().all(|m| m.in_flight == 0).then_some(()))
        .await;
    assert!(drained.is_some(), "closed connections still counted");
}
