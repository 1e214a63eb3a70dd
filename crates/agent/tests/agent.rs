//! The agent as a real process (this test binary, re-executed) against the embedded
//! broker, running real apps (`python3 -m http.server`), observed on the bus.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stratos_bus::events::*;
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker, MemberRef, Subscription};
use stratos_test_kit::free_port;
use stratos_test_kit::http::get;

const CHILD: &str = "STRATOS_AGENT_TEST_CHILD";
const WAIT: Duration = Duration::from_secs(30);
const CLUSTER: &str = "app1.web";

/// Not a test: the body of the agent processes the tests start (this binary re-executed
/// with STRATOS_AGENT_TEST_CHILD=1), reading the environment like `stratos agent`.
#[test]
fn agent_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: stratos_agent::AgentConfig,
    }
    let cli = Cli::parse_from(["agent"]);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,stratos_agent=debug,rumqttc=warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let code = match runtime.block_on(stratos_agent::run(cli.agent)) {
        Ok(()) => 0,
        Err(e) => {
            // With its causes, as `stratos agent` prints it.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("error: {text}");
            1
        }
    };
    drop(runtime);
    std::process::exit(code);
}

fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap()
}

fn member(id: &str) -> MemberRef {
    MemberRef {
        service_name: "web".into(),
        cluster_id: CLUSTER.into(),
        member_id: id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
    }
}

fn http_server(port: u16) -> Vec<String> {
    ["python3", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"].map(String::from).to_vec()
}

/// An agent process in a process group of its own, as the local driver starts it.
struct Agent {
    child: Child,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    status: Option<ExitStatus>,
}

struct Spec<'a> {
    broker: String,
    member_id: &'a str,
    command: Vec<String>,
    ports: Vec<u16>,
    env: Vec<(&'a str, String)>,
}

impl<'a> Spec<'a> {
    fn new(broker: &EmbeddedBroker, member_id: &'a str, command: Vec<String>, ports: Vec<u16>) -> Spec<'a> {
        Spec { broker: broker.url(), member_id, command, ports, env: Vec::new() }
            .credentials(&broker.member_credentials(CLUSTER, member_id))
    }

    /// The member's own bus credentials, as the controller gives them.
    fn credentials(self, credentials: &stratos_bus::Credentials) -> Spec<'a> {
        self.env("STRATOS_BUS_USERNAME", &credentials.username).env("STRATOS_BUS_PASSWORD", &credentials.password)
    }

    fn env(mut self, name: &'a str, value: impl Into<String>) -> Spec<'a> {
        self.env.push((name, value.into()));
        self
    }

    fn start(self) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let log = File::create(dir.join("agent.log")).unwrap();
        let ports: Vec<_> =
            self.ports.iter().map(|p| serde_json::json!({"protocol": "http", "port": 8080, "hostPort": p})).collect();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "agent_process", "--nocapture", "--test-threads=1"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .env(CHILD, "1")
            .env_remove("STRATOS_ARTIFACT_REPO")
            .env_remove("STRATOS_CLEANUP_COMMAND")
            .env_remove("STRATOS_HOST")
            .env_remove("STRATOS_HEALTH_CHECKS")
            .env_remove("STRATOS_GIT_TIMEOUT")
            .env_remove("STRATOS_ALLOW_LOCAL_REPOS")
            .env("STRATOS_MEMBER_ID", self.member_id)
            .env("STRATOS_CLUSTER_ID", CLUSTER)
            .env("STRATOS_SERVICE_NAME", "web")
            .env("STRATOS_APP_ID", "app1")
            .env("STRATOS_TENANT_ID", "-1234")
            .env("STRATOS_NETWORK_PARTITION_ID", "np1")
            .env("STRATOS_PARTITION_ID", "p1")
            .env("STRATOS_BROKER", &self.broker)
            .env("STRATOS_COMMAND", serde_json::to_string(&self.command).unwrap())
            .env("STRATOS_PORTS", serde_json::to_string(&ports).unwrap())
            .env("STRATOS_HEALTH_STATS_INTERVAL", "1s");
        if let Some(first) = self.ports.first() {
            cmd.env("PORT", first.to_string());
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().unwrap();
        Agent { child, dir, _tmp: tmp, status: None }
    }
}

impl Agent {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the agent to exit.
    fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            assert!(Instant::now() < deadline, "the agent did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether any process of the member (the agent's process group) is still running.
    fn group_alive(&self) -> bool {
        stratos_procfs::group_alive(self.pid())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// The app's process: the agent's child.
    fn app_pid(&self) -> i32 {
        let pids = stratos_procfs::children(self.pid());
        assert_eq!(pids.len(), 1, "the agent should have one child, the app: {pids:?}");
        pids[0] as i32
    }

    /// Polls the agent's log until it holds `text`.
    async fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in agent.log within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.status.is_none() {
            // SAFETY: kill(2) on the agent's own process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        if std::thread::panicking() || std::env::var_os("STRATOS_TEST_SHOW_AGENT_LOG").is_some() {
            eprintln!("---- agent.log of {} ----\n{}", self.dir.display(), self.log());
        }
    }
}

async fn observe(broker: &EmbeddedBroker, name: &str) -> (Bus, Subscription) {
    let bus = Bus::connect(&broker.platform_url(), &format!("test-{name}")).await.unwrap();
    let sub = bus.subscribe("#").await.unwrap();
    (bus, sub)
}

async fn expect<T>(sub: &mut Subscription, what: &str, pick: impl FnMut(AnyEvent) -> Option<T>) -> T {
    match sub.wait_for(WAIT, pick).await {
        Some(t) => t,
        None => panic!("no {what} within {WAIT:?}"),
    }
}

/// The next lifecycle event (`instance/status/*`) of `member_id`.
async fn next_status(sub: &mut Subscription, member_id: &str) -> AnyEvent {
    expect(sub, "lifecycle event", |ev| {
        let m = match &ev {
            AnyEvent::InstanceStartedEvent(e) => &e.member,
            AnyEvent::InstanceActivatedEvent(e) => &e.member,
            AnyEvent::InstanceMaintenanceModeEvent(e) => &e.member,
            AnyEvent::InstanceReadyToShutdownEvent(e) => &e.member,
            AnyEvent::InstanceStartFailedEvent(e) => &e.member,
            _ => return None,
        };
        (m.member_id == member_id).then_some(ev)
    })
    .await
}

async fn expect_started_and_activated(sub: &mut Subscription, member_id: &str) {
    let started = next_status(sub, member_id).await;
    assert_eq!(started, AnyEvent::InstanceStartedEvent(InstanceStartedEvent { member: member(member_id) }));
    let activated = next_status(sub, member_id).await;
    assert_eq!(activated, AnyEvent::InstanceActivatedEvent(InstanceActivatedEvent { member: member(member_id) }));
}

async fn expect_start_failed(sub: &mut Subscription, member_id: &str) -> String {
    loop {
        match next_status(sub, member_id).await {
            AnyEvent::InstanceStartFailedEvent(e) => return e.error,
            AnyEvent::InstanceStartedEvent(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// GET `path` from 127.0.0.1:`port`: (status code, body).
fn accepts(port: u16) -> bool {
    stratos_test_kit::net::accepts(port, Duration::from_millis(500))
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Stratos Test",
            "-c",
            "user.email=test@stratos.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_logs_health_and_cleanup() {
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "lifecycle").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-life", http_server(port), vec![port]).start();

    expect_started_and_activated(&mut sub, "m-life").await;
    assert!(accepts(port), "activated, so the app listens");

    // The app's output: python logs every request on stderr.
    let (code, _) = get(port, "/hello-agent").await.unwrap();
    assert_eq!(code, 404);
    let log = expect(&mut sub, "LogEvent of the request", |ev| match ev {
        AnyEvent::LogEvent(e) if e.line.contains("GET /hello-agent") => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(log.member, member("m-life"));
    assert_eq!((log.stream.as_str(), log.tenant_id), ("stderr", -1234));
    assert!(log.timestamp > 0);
    let app_log = std::fs::read_to_string(agent.dir.join("app.log")).unwrap();
    assert!(app_log.contains("GET /hello-agent"), "app.log: {app_log}");

    let health = expect(&mut sub, "MemberHealthStatEvent", |ev| match ev {
        AnyEvent::MemberHealthStatEvent(e) if e.member.member_id == "m-life" => Some(e),
        _ => None,
    })
    .await;
    let memory = health.memory_consumption.expect("memory");
    assert!(memory > 0.0 && memory <= 100.0, "memory {memory}");
    let load = health.load_average.expect("load");
    assert!(load >= 0.0 && load.is_finite(), "load {load}");

    // Another member's cleanup is not ours.
    bus.publish(&InstanceCleanupMemberEvent { member_id: "someone-else".into() }).await.unwrap();
    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-life".into() }).await.unwrap();
    let maintenance = next_status(&mut sub, "m-life").await;
    assert!(matches!(maintenance, AnyEvent::InstanceMaintenanceModeEvent(_)), "{maintenance:?}");
    let ready = next_status(&mut sub, "m-life").await;
    assert!(matches!(ready, AnyEvent::InstanceReadyToShutdownEvent(_)), "{ready:?}");

    let status = agent.exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!accepts(port), "the app still listens");
    assert!(!agent.group_alive(), "a process of the member survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cleanup_runs_the_cleanup_command() {
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "cluster").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-cluster", http_server(port), vec![port])
        .env("STRATOS_CLEANUP_COMMAND", r#"["sh","-c","echo cleaned > cleaned.txt; echo cleanup-ran"]"#)
        .start();
    expect_started_and_activated(&mut sub, "m-cluster").await;

    bus.publish(&InstanceCleanupClusterEvent { cluster_id: "other.cluster".into() }).await.unwrap();
    bus.publish(&InstanceCleanupClusterEvent { cluster_id: CLUSTER.into() }).await.unwrap();
    assert!(matches!(next_status(&mut sub, "m-cluster").await, AnyEvent::InstanceMaintenanceModeEvent(_)));
    expect(&mut sub, "the cleanup command's output", |ev| match ev {
        AnyEvent::LogEvent(e) if e.line == "cleanup-ran" && e.stream == "stdout" => Some(()),
        _ => None,
    })
    .await;
    assert!(matches!(next_status(&mut sub, "m-cluster").await, AnyEvent::InstanceReadyToShutdownEvent(_)));
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
    assert_eq!(std::fs::read_to_string(agent.dir.join("cleaned.txt")).unwrap(), "cleaned\n");
    assert!(!agent.group_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_app() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "sigterm").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-term", http_server(port), vec![port]).start();
    expect_started_and_activated(&mut sub, "m-term").await;

    // SAFETY: kill(2) on the agent process alone; the agent must stop the app itself.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGTERM) };
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!accepts(port));
    assert!(!agent.group_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_exits_after_activation_ends_the_agent() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "crash").await;
    let port = free_port();
    let script = format!(
        "import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\ntime.sleep(2)\nsys.exit(4)"
    );
    // The app listens but never answers: a bare connect is its health check, or it would
    // never activate.
    let mut agent = Spec::new(&broker, "m-crash", vec!["python3".into(), "-c".into(), script], vec![port])
        .env("STRATOS_HEALTH_CHECKS", fast_checks(8080, 3, serde_json::json!({"kind": "tcp"})))
        .start();
    expect_started_and_activated(&mut sub, "m-crash").await;
    expect(&mut sub, "the agent's note of the exit", |ev| match ev {
        AnyEvent::LogEvent(e) if e.member.member_id == "m-crash" && e.line.contains("app exited with status 4") => {
            Some(())
        }
        _ => None,
    })
    .await;
    let status = agent.exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(!agent.group_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_fails_the_start() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "missing").await;
    let mut agent = Spec::new(&broker, "m-missing", vec!["no-such-program-xyz".into()], vec![free_port()]).start();
    let error = expect_start_failed(&mut sub, "m-missing").await;
    assert_eq!(error, "cannot start `no-such-program-xyz`: No such file or directory");
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_exits_at_once_fails_the_start() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "exit3").await;
    let command = ["python3", "-c", "import sys; print('cannot bind: no luck', file=sys.stderr); sys.exit(3)"];
    let mut agent = Spec::new(&broker, "m-exit", command.map(String::from).to_vec(), vec![free_port()]).start();
    let error = expect_start_failed(&mut sub, "m-exit").await;
    assert!(error.contains("exited with status 3"), "{error}");
    assert!(error.contains("cannot bind: no luck"), "the last stderr lines: {error}");
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_never_listens_fails_the_start() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "deaf").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-deaf", vec!["sleep".into(), "60".into()], vec![port])
        .env("STRATOS_ACTIVATION_TIMEOUT", "1s")
        .start();
    let error = expect_start_failed(&mut sub, "m-deaf").await;
    assert_eq!(error, format!("the app did not listen on port {port} within 1 s"));
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
    assert!(!agent.group_alive(), "the app was not stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_listens_but_fails_its_health_check_is_never_activated() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "sick").await;
    let port = free_port();
    // http.server answers 404 for a missing file; the check wants a 200.
    let checks = fast_checks(8080, 3, serde_json::json!({"path": "/ready", "expectedStatuses": [200]}));
    let mut agent = Spec::new(&broker, "m-sick", http_server(port), vec![port])
        .env("STRATOS_HEALTH_CHECKS", checks)
        .env("STRATOS_ACTIVATION_TIMEOUT", "3s")
        .start();
    // Started, then failed: an activation in between is "unexpected".
    let error = expect_start_failed(&mut sub, "m-sick").await;
    assert!(
        error.starts_with(&format!("the app listens on port {port} but did not pass its health check within 3 s")),
        "{error}"
    );
    assert!(error.contains("404"), "{error}");
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_waits_for_the_broker() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let url = format!("mqtt://{addr}");
    let secret = stratos_bus::PlatformSecret::generate().unwrap();
    let mut agent =
        Spec { broker: url, member_id: "m-wait", command: http_server(port), ports: vec![port], env: vec![] }
            .credentials(&secret.member_credentials(CLUSTER, "m-wait"))
            .start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent gave up on the broker");
    assert!(!accepts(port), "the app started before the bus was reached");
    let broker = EmbeddedBroker::start_with_secret(addr, secret).unwrap();
    // As `stratos up` admits the members of its stored topology (the agent is refused until then).
    broker.admit_members([(CLUSTER, "m-wait")]);
    let (bus, mut sub) = observe(&broker, "wait").await;
    // Events published before the observer subscribed are gone; the app listening shows the agent went on.
    let deadline = Instant::now() + WAIT;
    while !accepts(port) {
        assert!(Instant::now() < deadline, "the app never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect(&mut sub, "health stats", |ev| match ev {
        AnyEvent::MemberHealthStatEvent(e) if e.member.member_id == "m-wait" => Some(()),
        _ => None,
    })
    .await;
    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-wait".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!agent.group_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_cloned_and_updated() {
    let source = tempfile::tempdir().unwrap();
    git(source.path(), &["init", "-q"]);
    std::fs::write(source.path().join("index.html"), "v1\n").unwrap();
    git(source.path(), &["add", "index.html"]);
    git(source.path(), &["commit", "-q", "-m", "v1"]);

    let broker = broker();
    let (bus, mut sub) = observe(&broker, "artifacts").await;
    let port = free_port();
    let command = ["python3", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"];
    let repo = source.path().to_str().unwrap().to_string();
    let mut agent = Spec::new(&broker, "m-git", command.map(String::from).to_vec(), vec![port])
        .env("STRATOS_ARTIFACT_REPO", &repo)
        .env("STRATOS_ALLOW_LOCAL_REPOS", "true")
        .start();
    expect_started_and_activated(&mut sub, "m-git").await;
    assert_eq!(get(port, "/index.html").await.unwrap(), (200, "v1\n".to_string()));
    assert!(agent.dir.join("artifacts/.git").is_dir());
    assert!(agent.dir.join("app.log").is_file(), "app.log goes to the member directory");
    assert!(!agent.dir.join("artifacts/app.log").exists());

    std::fs::write(source.path().join("index.html"), "v2\n").unwrap();
    git(source.path(), &["commit", "-q", "-a", "-m", "v2"]);
    // Another cluster's update is not ours.
    bus.publish(&ArtifactUpdatedEvent { cluster_id: "other.cluster".into(), tenant_id: -1234, repo_url: repo.clone() })
        .await
        .unwrap();
    bus.publish(&ArtifactUpdatedEvent { cluster_id: CLUSTER.into(), tenant_id: -1234, repo_url: repo }).await.unwrap();
    let pulled = expect(&mut sub, "the outcome of git pull", |ev| match ev {
        AnyEvent::LogEvent(e) if e.member.member_id == "m-git" && e.line.contains("git pull") => Some(e.line),
        _ => None,
    })
    .await;
    assert!(pulled.contains("now at"), "{pulled}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = get(port, "/index.html").await.unwrap();
        if got == (200, "v2\n".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "still {got:?} after the update");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-git".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!agent.group_alive());
}

/// Checks every second, 1 s to answer, `threshold` failures in a row.
fn fast_checks(port: u32, threshold: u32, extra: serde_json::Value) -> String {
    let mut check = serde_json::json!({
        "port": port, "kind": "http", "path": "/", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": threshold
    });
    check.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::json!([check]).to_string()
}

async fn expect_unhealthy(sub: &mut Subscription, member_id: &str) -> String {
    expect(sub, "InstanceUnhealthyEvent", |ev| match ev {
        AnyEvent::InstanceUnhealthyEvent(e) if e.member.member_id == member_id => Some(e.reason),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_app_is_reported_unhealthy_and_then_recovered() {
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "frozen").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-frozen", http_server(port), vec![port])
        .env("STRATOS_HEALTH_CHECKS", fast_checks(8080, 3, serde_json::json!({})))
        .start();
    expect_started_and_activated(&mut sub, "m-frozen").await;
    agent.wait_log("health checks started").await;

    // Frozen, the app's listen backlog still completes TCP handshakes: only a read tells.
    let app = agent.app_pid();
    signal(app, libc::SIGSTOP);
    assert!(accepts(port), "the kernel still accepts connections for a stopped process");
    // The report and the agent's note in the member's log go out on two topics:
    // either may arrive first, so both are awaited together.
    let (mut reason, mut noted) = (None, false);
    expect(&mut sub, "the unhealthy report and the agent's note in the member's log", |ev| {
        match ev {
            AnyEvent::InstanceUnhealthyEvent(e) if e.member.member_id == "m-frozen" => reason = Some(e.reason),
            AnyEvent::LogEvent(e) if e.member.member_id == "m-frozen" && e.line.contains("unhealthy: port 8080") => {
                noted = true
            }
            _ => {}
        }
        (reason.is_some() && noted).then_some(())
    })
    .await;
    let reason = reason.unwrap();
    assert!(reason.contains("port 8080 failed 3 health checks in a row"), "{reason}");
    assert!(reason.contains(&format!("GET http://127.0.0.1:{port}/ did not answer within 1 s")), "{reason}");

    signal(app, libc::SIGCONT);
    expect(&mut sub, "the recovery in the member's log", |ev| match ev {
        AnyEvent::LogEvent(e) if e.member.member_id == "m-frozen" && e.line.contains("port 8080 answers again") => {
            Some(())
        }
        _ => None,
    })
    .await;

    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-frozen".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!agent.group_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_answers_again_before_the_threshold_is_not_reported() {
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "hiccup").await;
    let port = free_port();
    let mut agent = Spec::new(&broker, "m-hiccup", http_server(port), vec![port])
        .env("STRATOS_HEALTH_CHECKS", fast_checks(8080, 4, serde_json::json!({})))
        .start();
    expect_started_and_activated(&mut sub, "m-hiccup").await;
    agent.wait_log("health checks started").await;

    let app = agent.app_pid();
    signal(app, libc::SIGSTOP);
    agent.wait_log("health check failed").await;
    signal(app, libc::SIGCONT);
    // As many checks pass after the failure as would have reached the threshold.
    let failed_at = agent.log().rfind("health check failed").unwrap();
    let deadline = Instant::now() + WAIT;
    while agent.log()[failed_at..].matches("health check passed").count() < 4 {
        assert!(Instant::now() < deadline, "the checks did not pass again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reported = sub
        .wait_for(Duration::from_secs(1), |ev| match ev {
            AnyEvent::InstanceUnhealthyEvent(e) if e.member.member_id == "m-hiccup" => Some(e.reason),
            _ => None,
        })
        .await;
    assert_eq!(reported, None, "a member that answered again within its threshold was reported");

    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-hiccup".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
}

/// A line-oriented TCP service: answers `PONG` to `PING`.
fn pong_server(port: u16) -> Vec<String> {
    let script = format!(
        r#"
import socketserver
class Pong(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"PING":
                self.wfile.write(b"+PONG\r\n")
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", {port}), Pong).serve_forever()
"#
    );
    vec!["python3".into(), "-c".into(), script]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_app_behind_a_tcp_request_check_is_reported() {
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "pong").await;
    let port = free_port();
    let checks = serde_json::json!([{
        "port": 8080, "kind": "tcp", "send": "PING\n", "expect": "PONG",
        "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2
    }]);
    let mut agent = Spec::new(&broker, "m-pong", pong_server(port), vec![port])
        .env("STRATOS_HEALTH_CHECKS", checks.to_string())
        .start();
    expect_started_and_activated(&mut sub, "m-pong").await;
    agent.wait_log("health checks started").await;
    // Answering PONG, it passes.
    agent.wait_log("health check passed").await;

    signal(agent.app_pid(), libc::SIGSTOP);
    let reason = expect_unhealthy(&mut sub, "m-pong").await;
    assert!(reason.contains(&format!("tcp 127.0.0.1:{port} did not answer within 1 s")), "{reason}");

    signal(agent.app_pid(), libc::SIGCONT);
    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-pong".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_repositories_and_git_helpers_are_refused() {
    let source = tempfile::tempdir().unwrap();
    git(source.path(), &["init", "-q"]);
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "local-repo").await;
    let cases = [
        ("m-file", format!("file://{}", source.path().display()), "--allow-local-repos"),
        ("m-path", source.path().display().to_string(), "--allow-local-repos"),
        ("m-fd", "fd::17".to_string(), "git remote helpers (fd::) are not allowed"),
        ("m-ext", "ext::sh".to_string(), "git remote helpers (ext::) are not allowed"),
    ];
    for (member_id, repo, why) in cases {
        let mut agent = Spec::new(&broker, member_id, http_server(free_port()), vec![free_port()])
            .env("STRATOS_ARTIFACT_REPO", &repo)
            .start();
        let error = expect_start_failed(&mut sub, member_id).await;
        assert!(error.starts_with(&format!("cannot deploy the artifacts: repository {repo:?} refused")), "{error}");
        assert!(error.contains(why), "{error}");
        assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
        assert!(!agent.dir.join("artifacts").exists(), "{repo}: git ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_clone_is_killed_and_fails_the_start() {
    // A git daemon that takes the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            conns.push(conn);
        }
    });
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "hang").await;
    let started = Instant::now();
    let mut agent = Spec::new(&broker, "m-hang", http_server(free_port()), vec![free_port()])
        .env("STRATOS_ARTIFACT_REPO", format!("git://127.0.0.1:{silent_port}/repo.git"))
        .env("STRATOS_GIT_TIMEOUT", "2s")
        .start();
    let error = expect_start_failed(&mut sub, "m-hang").await;
    assert_eq!(error, "cannot deploy the artifacts: git clone did not finish within 2 s and was killed");
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(1));
    assert!(!agent.group_alive(), "git (or what it started) outlived the agent");
    eprintln!("the hanging clone failed the start after {:?}", started.elapsed());
    held.abort();
}

/// Python's HTTP server behind TLS, with a self-signed certificate made in `dir` by openssl.
fn tls_server(port: u16, dir: &Path) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let script = format!(
        r#"
import http.server, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("{dir}/cert.pem", "{dir}/key.pem")
server = http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#,
        dir = dir.display()
    );
    vec!["python3".into(), "-c".into(), script]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_tls_app_is_reported() {
    let certs = tempfile::tempdir().unwrap();
    let broker = broker();
    let (bus, mut sub) = observe(&broker, "tls").await;
    let port = free_port();
    let checks = serde_json::json!([{ "port": 8080, "kind": "tls", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2 }]);
    let mut agent = Spec::new(&broker, "m-tls", tls_server(port, certs.path()), vec![port])
        .env("STRATOS_HEALTH_CHECKS", checks.to_string())
        .start();
    expect_started_and_activated(&mut sub, "m-tls").await;
    // The server answers the agent's hello (and then drops the handshake it never finishes).
    agent.wait_log("health check passed").await;

    signal(agent.app_pid(), libc::SIGSTOP);
    let reason = expect_unhealthy(&mut sub, "m-tls").await;
    assert!(reason.contains(&format!("a TLS hello to 127.0.0.1:{port} did not answer within 1 s")), "{reason}");

    signal(agent.app_pid(), libc::SIGCONT);
    bus.publish(&InstanceCleanupMemberEvent { member_id: "m-tls".into() }).await.unwrap();
    assert_eq!(agent.exit(Duration::from_secs(20)).code(), Some(0));
}

/// A member's load is its own CPU use (its app's process tree), not the machine's: side by
/// side on one machine, a member whose app burns CPU reports about one core (100%) and an
/// idle one about 0%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_member_reports_about_one_core_and_an_idle_one_about_none() {
    let broker = broker();
    let (_bus, mut sub) = observe(&broker, "usage").await;
    let busy_loop = ["sh", "-c", "while :; do :; done"].map(String::from).to_vec();
    let sleep = ["sleep", "600"].map(String::from).to_vec();
    let _busy = Spec::new(&broker, "m-busy", busy_loop, vec![]).env("STRATOS_USAGE_SOURCE", "process-tree").start();
    let _idle = Spec::new(&broker, "m-idle", sleep, vec![]).env("STRATOS_USAGE_SOURCE", "process-tree").start();

    let (mut busy, mut idle) = (Vec::new(), Vec::new());
    while busy.len() < 4 || idle.len() < 4 {
        let (id, load) = expect(&mut sub, "health stats of both members", |ev| match ev {
            AnyEvent::MemberHealthStatEvent(e) => Some((e.member.member_id, e.load_average)),
            _ => None,
        })
        .await;
        match id.as_str() {
            "m-busy" => busy.push(load.expect("a load figure")),
            "m-idle" => idle.push(load.expect("a load figure")),
            _ => {}
        }
    }
    // The first figure covers the start; the rest a steady state. The loop gets a whole
    // core on an idle machine, and less on one shared with other work (two cores, builds
    // beside): about 100% then, never much more; at least a share, whatever the machine.
    let median = |v: &[f64]| {
        let mut v = v[1..].to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!("busy member: {busy:?}; idle member: {idle:?}");
    assert!((25.0..=115.0).contains(&median(&busy)), "busy: {busy:?}");
    assert!(idle[1..].iter().all(|&l| l < 5.0), "idle: {idle:?}");
}
