//! Prometheus metrics end to end: the real `stratos up` with a scrape token, an
//! application of two local members, requests through the built-in load balancer;
//! `GET /api/metrics` read as Prometheus reads it (a text-format parser) carries the
//! series every component exposes, with the figures of what happened. Anonymous and
//! wrong-token scrapes are 401, a tenant admin's 403; the proxy port does not serve
//! metrics. `stratos top --once` shows the cluster and its members.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use support::{cluster_host, eventually, free_port, get_host, http_get, http_get_with, Platform, Sandbox, SlowHttpApp};

const SCRAPE_TOKEN: &str = "scrape-token-for-prometheus-0123456789";
const PASSWORD: &str = "a tenant admin's password 42";

/// Scrapes `/api/metrics` with `token` and parses it; the status when it is not 200.
fn scrape(platform: &Platform, token: Option<&str>) -> Result<Scrape, (u16, String)> {
    let (status, body) = http_get_with(platform.api_port, "/api/metrics", token).expect("GET /api/metrics");
    if status != 200 {
        return Err((status, body));
    }
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Ok(Scrape::parse(lines).unwrap_or_else(|e| panic!("/api/metrics does not parse ({e}):\n{body}")))
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => f64::NAN,
    }
}

/// The samples named `name` whose labels include every pair of `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The one sample's value (0 when there is none), summed if several match.
fn sum(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels).into_iter().map(value).sum()
}

/// POST /api/tokens: a token for `username`.
fn login(port: u16, username: &str, password: &str) -> String {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/tokens HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"));
    value["token"].as_str().unwrap_or_else(|| panic!("no token in {answer}")).to_string()
}

#[test]
fn every_component_exposes_its_series_to_admins_and_the_scrape_token_only() {
    let sandbox = Sandbox::new();
    let token_file = sandbox.path().join("scrape-token");
    std::fs::write(&token_file, format!("{SCRAPE_TOKEN}\n")).unwrap();
    let token_arg = token_file.to_str().unwrap();
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let platform = Platform::start(
        &sandbox.path().join("data"),
        &[
            "--metrics-token-file",
            token_arg,
            "--metrics-listen",
            &metrics_listen,
            "--evaluation-interval",
            "1s",
            "--health-interval",
            "1s",
        ],
    );
    assert!(
        platform.proc.stdout().contains("/api/metrics"),
        "the banner names the metrics\n{}",
        platform.proc.describe()
    );

    let proxy_port = free_port();
    let app = SlowHttpApp {
        app: "shop",
        alias: "web",
        proxy_port,
        delay_ms: 0,
        threshold: 1000.0,
        min: 2,
        max: 2,
        nps: &[("np1", 4)],
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let cluster = "shop.web";
    let host = cluster_host("shop", "web");

    // Both members active in the controller's figures.
    let before = eventually(Duration::from_secs(60), "two Active members in the metrics", || {
        let s = scrape(&platform, Some(SCRAPE_TOKEN)).map_err(|e| format!("{e:?}"))?;
        let active =
            sum(&s, "stratos_cluster_members", &[("cluster", cluster), ("application", "shop"), ("status", "Active")]);
        if active == 2.0 {
            Ok(s)
        } else {
            Err(format!("{active} Active"))
        }
    });
    let sent_before = sum(&before, "stratos_lb_requests_total", &[("cluster", cluster)]);

    // Requests through the load balancer, counted one for one.
    const REQUESTS: usize = 25;
    for _ in 0..REQUESTS {
        let (status, body) =
            get_host(([127, 0, 0, 1], proxy_port).into(), &host, "/", Duration::from_secs(2), Duration::from_secs(10))
                .expect("a request through the load balancer");
        assert_eq!(status, 200, "{body}");
    }
    // The proxy port routes /metrics as any path, to a member, never to the platform's metrics.
    let (_, body) = get_host(
        ([127, 0, 0, 1], proxy_port).into(),
        &host,
        "/metrics",
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(!body.contains("stratos_"), "the proxy port served metrics: {body}");
    let (_, body) = get_host(
        ([127, 0, 0, 1], proxy_port).into(),
        "nobody.example",
        "/metrics",
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(!body.contains("stratos_"), "the proxy port served metrics: {body}");

    let s = eventually(Duration::from_secs(30), "the autoscaler's figures and the requests", || {
        let s = scrape(&platform, Some(SCRAPE_TOKEN)).map_err(|e| format!("{e:?}"))?;
        let decided = sum(&s, "stratos_autoscaler_decisions_total", &[]);
        let loads = samples(&s, "stratos_autoscaler_observed_load", &[("cluster", cluster)]).len();
        if decided > 0.0 && loads > 0 {
            Ok(s)
        } else {
            Err(format!("{decided} decisions, {loads} observed loads"))
        }
    });
    // One more request than sent here: the /metrics one, which a member answered.
    let sent = sum(&s, "stratos_lb_requests_total", &[("cluster", cluster)]) - sent_before;
    assert_eq!(sent, (REQUESTS + 1) as f64, "requests counted per cluster");
    let ok = sum(&s, "stratos_lb_requests_total", &[("cluster", cluster), ("code", "2xx")]);
    assert!(ok >= REQUESTS as f64, "2xx counted: {ok}");
    assert_eq!(sum(&s, "stratos_lb_errors_total", &[("cluster", cluster)]), 0.0, "no proxy errors");
    let latency = samples(&s, "stratos_lb_request_duration_seconds_count", &[("cluster", cluster)]);
    assert!(latency.first().is_some_and(|l| value(l) >= (REQUESTS + 1) as f64), "latency histogram: {latency:?}");
    assert!(sum(&s, "stratos_lb_unrouted_requests_total", &[]) >= 1.0, "the unknown host counted as unrouted");
    assert_eq!(samples(&s, "stratos_lb_requests_in_flight", &[("cluster", cluster)]).len(), 1, "in flight per cluster");
    // The controller: members as the topology holds them, the desired size, reconciles timed.
    assert_eq!(sum(&s, "stratos_cluster_members", &[("cluster", cluster), ("status", "Active")]), 2.0);
    assert_eq!(sum(&s, "stratos_cluster_desired_members", &[("cluster", cluster)]), 2.0);
    assert!(sum(&s, "stratos_controller_reconcile_duration_seconds_count", &[]) > 0.0, "reconciles timed");
    // The autoscaler: predicted beside observed per factor.
    let predicted = samples(&s, "stratos_autoscaler_predicted_load", &[("cluster", cluster)]);
    let observed = samples(&s, "stratos_autoscaler_observed_load", &[("cluster", cluster)]);
    assert_eq!(predicted.len(), observed.len(), "{predicted:?} / {observed:?}");
    assert!(samples(&s, "stratos_autoscaler_decisions_total", &[("direction", "none")]).iter().any(|d| value(d) > 0.0));
    // The health service and the bus, by component and event type; lag from timed events.
    assert!(sum(&s, "stratos_health_summaries_published_total", &[]) > 0.0);
    assert!(
        sum(&s, "stratos_bus_published_events_total", &[("component", "cloud"), ("event", "MemberActivatedEvent")])
            >= 2.0
    );
    assert!(
        sum(&s, "stratos_bus_received_events_total", &[("component", "health"), ("event", "MemberHealthStatEvent")])
            > 0.0
    );
    assert!(sum(&s, "stratos_bus_receive_lag_seconds_count", &[("component", "autoscaler")]) > 0.0);
    // No member id anywhere in a label: the cardinality is bounded.
    let members = support::cluster_members(&platform, cluster);
    for m in &members {
        let id = m["memberId"].as_str().unwrap();
        assert!(s.samples.iter().all(|x| x.labels.values().all(|v| v != id)), "a member id as a label: {id}");
    }
    // The API's own requests, by route template.
    // (Read in the text: prometheus-parse's label pattern drops values with braces.)
    let (_, text) = http_get_with(platform.api_port, "/api/metrics", Some(SCRAPE_TOKEN)).unwrap();
    let runtime = r#"stratos_api_requests_total{method="GET",route="/api/applications/{id}/runtime",status="200"}"#;
    assert!(text.contains(runtime), "{text}");

    // Who may scrape: the platform admin; not anonymous, not a wrong token, not a tenant's admin.
    scrape(&platform, Some(&platform.admin_token())).expect("the platform admin reads the metrics");
    assert_eq!(scrape(&platform, None).err().map(|e| e.0), Some(401), "anonymous");
    assert_eq!(scrape(&platform, Some("scrape-token-for-prometheus-012345678")).err().map(|e| e.0), Some(401));
    assert_eq!(http_get(platform.api_port, "/api/metrics").unwrap().0, 401);
    // The admin listener serves the same registry, with the token only.
    assert_eq!(http_get(metrics_port, "/metrics").unwrap().0, 401);
    let (status, text) = http_get_with(metrics_port, "/metrics", Some(SCRAPE_TOKEN)).unwrap();
    assert!(status == 200 && text.contains("stratos_cluster_members{"), "{status}: {text}");
    // The scrape token opens nothing else.
    assert_eq!(http_get_with(platform.api_port, "/api/applications", Some(SCRAPE_TOKEN)).unwrap().0, 401);
    platform.ok(&["tenant", "add", "acme.test"]);
    let admin = platform.admin_token();
    let add_user = ["user", "add", "acme-admin", "--role", "tenant-admin", "--tenant", "acme.test", "--password-stdin"];
    let api = platform.api();
    let args: Vec<&str> = add_user.iter().copied().chain(["--api", &api, "--token", &admin]).collect();
    let out = support::stratos_in(support::config_home(), &args, &format!("{PASSWORD}\n"));
    assert!(out.success(), "{out}");
    let tenant_admin = login(platform.api_port, "acme-admin", PASSWORD);
    assert_eq!(scrape(&platform, Some(&tenant_admin)).err().map(|e| e.0), Some(403), "a tenant admin");

    // `stratos top --once`: the cluster, its sizes and its members.
    let out = platform.ok(&["top", "shop", "--once"]);
    assert!(out.stdout.contains("APPLICATION shop") && out.stdout.contains(cluster), "{out}");
    assert!(out.stdout.contains("2/2 (2..2)"), "live/desired (min..max): {out}");
    for m in &members {
        assert!(out.stdout.contains(m["memberId"].as_str().unwrap()), "member in top: {out}");
    }
    let out = platform.ok(&["top", "--once"]);
    assert!(out.stdout.contains(cluster), "every deployed application: {out}");
}

/// A standalone `stratos lb` serves its own metrics on its admin listener, only with
/// the scrape token, and `--metrics-listen` without a token file is refused.
#[test]
fn a_standalone_load_balancer_serves_its_metrics_behind_the_token() {
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("data");
    let platform = Platform::start(&data, &[]);
    let token_file = sandbox.path().join("scrape-token");
    std::fs::write(&token_file, format!("{SCRAPE_TOKEN}\n")).unwrap();
    let (broker, password) = (platform.broker_url(), data.join("bus-password"));
    let out = support::stratos(&["lb", "--broker", &broker, "--metrics-listen", "127.0.0.1:1"]);
    assert!(!out.success() && out.stderr.contains("--metrics-token-file"), "no token, no listener: {out}");

    let port = free_port();
    let mut command = std::process::Command::new(support::BIN);
    command.args(["lb", "--broker", &broker, "--bus-password-file", password.to_str().unwrap()]).args([
        "--metrics-listen",
        &format!("127.0.0.1:{port}"),
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ]);
    let lb = support::spawn("stratos lb", command);
    support::wait_listening(port, "the load balancer's metrics listener");
    assert_eq!(http_get(port, "/metrics").unwrap().0, 401, "anonymous");
    assert_eq!(http_get_with(port, "/metrics", Some("not-the-scrape-token-at-all")).unwrap().0, 401);
    assert_eq!(http_get_with(port, "/other", Some(SCRAPE_TOKEN)).unwrap().0, 404);
    eventually(Duration::from_secs(20), "the load balancer's series", || {
        let (status, body) = http_get_with(port, "/metrics", Some(SCRAPE_TOKEN)).map_err(|e| e.to_string())?;
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let parsed = Scrape::parse(lines).map_err(|e| e.to_string())?;
        let received = sum(&parsed, "stratos_bus_received_events_total", &[("component", "lb")]);
        let unrouted = samples(&parsed, "stratos_lb_unrouted_requests_total", &[]).len();
        if status == 200 && received > 0.0 && unrouted == 1 && !body.contains("stratos_cluster_members") {
            Ok(())
        } else {
            Err(format!("{status}: {body}"))
        }
    });
    drop(lb);
    drop(platform.stop());
}
