//! Runs the real `stratos` binary: `stratos up` as a child process (killed when the
//! handle is dropped, even by a panic) and the client commands against it.

// Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod containers;
pub mod postgres;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The generic harness, shared with the other crates' tests.
pub use stratos_test_kit::http::{get_host, http_get, http_get_with};
pub use stratos_test_kit::load::{Load, LoadReport};
pub use stratos_test_kit::process::{signal_group, Proc};
pub use stratos_test_kit::{eventually, free_port, wait_listening};

pub const BIN: &str = env!("CARGO_BIN_EXE_stratos");

/// The php-web example definitions, in the order examples/README.md gives: (kind, file).
pub const PHP_WEB: &[(&str, &str)] = &[
    ("network-partition", "network-partition-np-local-1.json"),
    ("network-partition", "network-partition-np-local-2.json"),
    ("cartridge", "cartridge-php.json"),
    ("cartridge", "cartridge-python-api.json"),
    ("autoscaling-policy", "autoscaling-policy-economy.json"),
    ("deployment-policy", "deployment-policy-web-bursting.json"),
    ("application-policy", "application-policy-burst-local.json"),
    ("application", "application-php-web.json"),
];

/// Every kind of definition, with the field holding its id and the ids php-web defines.
pub const KINDS: &[(&str, &str, &[&str])] = &[
    ("network-partition", "id", &["np-local-1", "np-local-2"]),
    ("cartridge", "type", &["php", "python-api"]),
    ("autoscaling-policy", "id", &["economy"]),
    ("deployment-policy", "id", &["web-bursting"]),
    ("application-policy", "id", &["burst-local"]),
    ("application", "applicationId", &["php-web"]),
];

/// Settings a developer's shell may carry that would change what the binary does.
const STRATOS_ENV: &[&str] = &[
    "STRATOS_API",
    "STRATOS_API_LISTEN",
    "STRATOS_BROKER",
    "STRATOS_BUS_USERNAME",
    "STRATOS_BUS_PASSWORD",
    "STRATOS_BUS_PASSWORD_FILE",
    "STRATOS_MQTT_LISTEN",
    "STRATOS_DATA_DIR",
    "STRATOS_STORE",
    "STRATOS_MEMBER_USER",
    "STRATOS_MEMBER_UIDS",
    "STRATOS_MEMBER_PORTS",
    "STRATOS_ALLOW_LOCAL_REPOS",
    "STRATOS_TOKEN",
    "STRATOS_CA_CERT",
    "STRATOS_TLS_FINGERPRINT",
    "RUST_LOG",
];

/// The config directory (`XDG_CONFIG_HOME`) of every `stratos` this test process runs:
/// `stratos up` records its admin token file there and the client commands find it, as
/// on a real machine, without touching the developer's own `~/.config`.
pub fn config_home() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary config directory")).path()
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php-web")
}

/// Spawns a `stratos` (or any) command as a [`Proc`], without the developer's own
/// STRATOS_* settings and with this test process's config home.
pub fn spawn(label: &str, mut command: Command) -> Proc {
    for var in STRATOS_ENV {
        command.env_remove(var);
    }
    command.env("XDG_CONFIG_HOME", config_home());
    // Tables keep whole values when piped unless a width is asked for (tests that want one set it).
    command.env_remove("COLUMNS");
    // Logs must be plain without help: no NO_COLOR (stderr is a pipe, not a terminal).
    command.env_remove("NO_COLOR");
    Proc::spawn(label, command)
}

/// What a finished command printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// `args` with `--api API` added, before a `--` if there is one (after it comes a
/// command, as in `member exec M -- CMD`).
pub fn with_api<'a>(args: &[&'a str], api: &'a str) -> Vec<&'a str> {
    let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut all = args[..at].to_vec();
    all.extend(["--api", api]);
    all.extend_from_slice(&args[at..]);
    all
}

/// Runs `stratos ARGS` with a config directory of its own (`XDG_CONFIG_HOME=config`: its
/// own logins, no token from the environment) and `stdin` on its standard input.
pub fn stratos_in(config: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("STRATOS_TOKEN")
        .env_remove("STRATOS_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Runs `stratos ARGS` to its end (at most 60 s).
pub fn stratos(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    let mut proc = spawn(&format!("stratos {}", args.join(" ")), command);
    let status = proc
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("`stratos {}` did not finish within 60 s", args.join(" ")));
    Output { status, stdout: proc.stdout(), stderr: proc.stderr() }
}

/// `stratos up` running as a child process.
pub struct Platform {
    pub proc: Proc,
    pub api_port: u16,
    pub mqtt_port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
}

impl Platform {
    /// Starts `stratos up` on free ports with `data_dir` and `extra` arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Platform {
        // A port found free may be taken again before `stratos up` binds it: try other ports then.
        for attempt in 1..=3 {
            match Platform::start_on(data_dir, free_port(), free_port(), extra) {
                Ok(platform) => return platform,
                Err(proc) if attempt < 3 && proc.stderr().contains("Address already in use") => continue,
                Err(proc) => panic!("`stratos up` did not start\n{}", proc.describe()),
            }
        }
        unreachable!()
    }

    /// Starts `stratos up` on these ports; `Err` with the exited process if it did not come up.
    pub fn start_on(data_dir: &Path, api_port: u16, mqtt_port: u16, extra: &[&str]) -> Result<Platform, Proc> {
        Platform::start_with_env(data_dir, api_port, mqtt_port, extra, &[])
    }

    /// [`Platform::start_on`] with `env` set for `stratos up` (and so for its members).
    pub fn start_with_env(
        data_dir: &Path,
        api_port: u16,
        mqtt_port: u16,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<Platform, Proc> {
        let mut command = Command::new(BIN);
        command.envs(env.iter().map(|(k, v)| (*k, *v)));
        command
            .arg("up")
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra);
        let mut proc = spawn("stratos up", command);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if proc.try_status().is_some() {
                proc.wait_exit(Duration::from_secs(5));
                return Err(proc);
            }
            // The banner's last line, then the API itself.
            // With TLS on the API, plain HTTP cannot probe it: the banner comes after the bind.
            let tls = extra.iter().any(|a| a.starts_with("--api-tls"));
            let answers = if tls {
                TcpStream::connect(("127.0.0.1", api_port)).is_ok()
            } else {
                http_get(api_port, "/api/health").is_ok()
            };
            if proc.stdout().contains("Client commands use") && answers {
                break;
            }
            assert!(Instant::now() < deadline, "`stratos up` was not up within 30 s\n{}", proc.describe());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(proc.stdout().contains("Stratos is up"), "no \"Stratos is up\" in the banner\n{}", proc.describe());
        let extra = extra.iter().map(|s| s.to_string()).collect();
        Ok(Platform { proc, api_port, mqtt_port, data_dir: data_dir.to_owned(), extra })
    }

    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// `stratos ARGS --api <this platform>` (`--api` before a `--`: after it comes a command).
    pub fn cli(&self, args: &[&str]) -> Output {
        let api = self.api();
        stratos(&with_api(args, &api))
    }

    /// Like `cli`, and the command must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cli(args);
        assert!(out.success(), "`stratos {}` failed\n{out}\n{}", args.join(" "), self.proc.describe());
        out
    }

    /// Adds every php-web example definition, in order, one CLI call each.
    pub fn add_php_web(&self) {
        for (kind, file) in PHP_WEB {
            let path = examples_dir().join(file);
            let out = self.ok(&[kind, "add", path.to_str().unwrap()]);
            assert!(out.stdout.contains("added"), "`{kind} add {file}` printed\n{out}");
        }
    }

    /// `KIND list --output json` as JSON.
    pub fn list(&self, kind: &str) -> serde_json::Value {
        let out = self.ok(&[kind, "list", "--output", "json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("`{kind} list -o json` is not JSON: {e}\n{out}"))
    }

    /// The admin token `stratos up` wrote in its data directory.
    pub fn admin_token(&self) -> String {
        let file = self.data_dir.join("admin-token");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        text.trim().to_owned()
    }

    /// GET `path` on the API with the admin token: (status, body).
    pub fn api_get(&self, path: &str) -> (u16, String) {
        http_get_with(self.api_port, path, Some(&self.admin_token())).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET /api/health as JSON.
    pub fn health(&self) -> serde_json::Value {
        let (status, body) = http_get(self.api_port, "/api/health").expect("GET /api/health");
        assert_eq!(status, 200, "GET /api/health answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/health is not JSON ({e}): {body}"))
    }

    /// SIGTERM; the platform must exit 0 within 10 s.
    pub fn stop(mut self) -> Proc {
        self.proc.signal("TERM");
        let status = self.proc.wait_exit(Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("`stratos up` did not exit within 10 s of SIGTERM"));
        assert!(status.success(), "`stratos up` exited with {status} after SIGTERM\n{}", self.proc.describe());
        let Platform { proc, .. } = self;
        proc
    }

    /// Starts `stratos up` again with the same ports, data directory and arguments.
    pub fn restart(self) -> Platform {
        let (data_dir, api_port, mqtt_port) = (self.data_dir.clone(), self.api_port, self.mqtt_port);
        let extra = self.extra.clone();
        drop(self.stop());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Platform::start_on(&data_dir, api_port, mqtt_port, &extra)
            .unwrap_or_else(|proc| panic!("`stratos up` did not start again on the same ports\n{}", proc.describe()))
    }
}

impl Platform {
    /// `mqtt://` URL of the platform's embedded broker.
    pub fn broker_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// The broker's URL with the platform's credentials, which `stratos up` keeps in the
    /// data directory, as `stratos lb --bus-password-file` reads them.
    pub fn platform_bus_url(&self) -> String {
        let secret = stratos_bus::PlatformSecret::read(&self.data_dir.join("bus-password"))
            .expect("stratos up writes the bus password into its data directory");
        stratos_bus::with_credentials(&self.broker_url(), &secret.platform_credentials())
    }

    /// SIGKILL: the platform dies without cleaning up (its members live on).
    pub fn kill(mut self) {
        self.proc.signal("KILL");
        let status = self.proc.wait_exit(Duration::from_secs(10));
        assert!(status.is_some(), "`stratos up` outlived SIGKILL for 10 s");
    }

    /// Starts `stratos up` on these ports, retrying for up to 20 s while a port is still taken
    /// (by sockets of a killed predecessor).
    pub fn start_again(data_dir: &Path, api_port: u16, mqtt_port: u16, extra: &[&str]) -> Platform {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Platform::start_on(data_dir, api_port, mqtt_port, extra) {
                Ok(platform) => return platform,
                Err(proc) if Instant::now() < deadline && proc.stderr().contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(proc) => panic!("`stratos up` did not start again on the same ports\n{}", proc.describe()),
            }
        }
    }

    /// GET /api/topology as JSON.
    pub fn topology(&self) -> serde_json::Value {
        let (status, body) = self.api_get("/api/topology");
        assert_eq!(status, 200, "GET /api/topology answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/api/topology is not JSON ({e}): {body}"))
    }
}

/// Every member of a topology (GET /api/topology), in cluster order.
pub fn topology_members(topology: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for service in topology["services"].as_object().into_iter().flat_map(|s| s.values()) {
        for cluster in service["clusters"].as_object().into_iter().flat_map(|c| c.values()) {
            out.extend(cluster["members"].as_object().into_iter().flat_map(|m| m.values().cloned()));
        }
    }
    out
}

/// (state, process group, start time in clock ticks) from `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let s = stratos_test_kit::proc::stat(u32::try_from(pid).ok()?)?;
    Some((s.state, s.pgrp as i32, s.start_ticks))
}

/// A live process of a member: its environment names the member and it works under the data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProcess {
    pub pid: i32,
    pub pgid: i32,
    pub member_id: String,
}

/// Every live (non-zombie) process whose environment has STRATOS_MEMBER_ID and whose working
/// directory is under `data_dir`: the members' agents, their apps, and whatever those started.
pub fn member_processes(data_dir: &Path) -> Vec<MemberProcess> {
    let root = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_owned());
    let mut out = Vec::new();
    for pid in stratos_test_kit::proc::pids() {
        if !stratos_test_kit::proc::cwd(pid).is_some_and(|cwd| cwd.starts_with(&root)) {
            continue;
        }
        let Some(member_id) = stratos_test_kit::proc::environ_var(pid, "STRATOS_MEMBER_ID") else { continue };
        match stratos_test_kit::proc::stat(pid) {
            Some(s) if s.is_live() => out.push(MemberProcess { pid: pid as i32, pgid: s.pgrp as i32, member_id }),
            _ => {}
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// A temporary data directory whose member processes are killed when it is dropped (even by a
/// panic): members run in process groups of their own and outlive `stratos up`. Declare it
/// before the `Platform`, so that the platform is stopped first and cannot start new ones.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs the process group of every member process under the data dir, until none is left.
    pub fn kill_members(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = HashSet::new();
        loop {
            let left = member_processes(self.path());
            if left.is_empty() || Instant::now() > deadline {
                return killed.len();
            }
            for p in left {
                signal_group(p.pgid, "KILL");
                let _ = Command::new("kill").args(["-KILL", &p.pid.to_string()]).stderr(Stdio::null()).status();
                killed.insert(p.pgid);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let killed = self.kill_members();
        if killed > 0 && !std::thread::panicking() {
            eprintln!("killed {killed} member process group(s) left under {}", self.path().display());
        }
    }
}

/// Events from the platform's bus, collected in the background in arrival order.
pub struct EventLog {
    runtime: tokio::runtime::Runtime,
    bus: stratos_bus::Bus,
    events: Arc<Mutex<Vec<stratos_bus::AnyEvent>>>,
}

impl EventLog {
    /// Subscribes to `topology/#`; returns once the subscription is in place (the retained
    /// complete topology has arrived).
    pub fn topology(platform: &Platform) -> EventLog {
        EventLog::subscribe(platform, &["topology/#"])
    }

    /// Subscribes to each topic filter (`application/#`, `topology/#`, ...) and collects the
    /// events of all of them in one log: those of one filter in arrival order (those of two
    /// filters may interleave a little out of it). Returns once the subscriptions are in place:
    /// the broker handles a client's subscriptions in order, so they are once the retained
    /// `CompleteTopologyEvent` has come through the last one (a filter that takes it, made
    /// last, or else one for it alone, not logged).
    pub fn subscribe(platform: &Platform, filters: &[&str]) -> EventLog {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client_id = format!("stratos-cli-test-{}-{}", std::process::id(), free_port());
        let bus = runtime
            .block_on(stratos_bus::Bus::connect(&platform.platform_bus_url(), &client_id))
            .unwrap_or_else(|e| panic!("cannot connect to the platform's broker: {e}"));
        let events: Arc<Mutex<Vec<stratos_bus::AnyEvent>>> = Arc::default();
        let retained = "topology/CompleteTopologyEvent";
        // Overlapping filters would have the broker send the retained event twice: none added.
        let (last, first): (Vec<&str>, Vec<&str>) =
            filters.iter().copied().partition(|f| stratos_bus::topic_matches(f, retained));
        for filter in first.iter().chain(&last) {
            let mut subscription = runtime.block_on(bus.subscribe(filter)).unwrap();
            let into = events.clone();
            runtime.spawn(async move {
                while let Some(event) = subscription.recv().await {
                    into.lock().unwrap().push(event);
                }
            });
        }
        if last.is_empty() {
            let mut marker = runtime.block_on(bus.subscribe(retained)).unwrap();
            let arrived =
                runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), marker.recv()).await });
            assert!(matches!(arrived, Ok(Some(_))), "no retained CompleteTopologyEvent on the bus within 10 s");
        }
        let log = EventLog { runtime, bus, events };
        if !last.is_empty() {
            log.wait_for(Duration::from_secs(10), "the retained CompleteTopologyEvent", |e| {
                matches!(e, stratos_bus::AnyEvent::CompleteTopologyEvent(_))
            });
        }
        log
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<stratos_bus::AnyEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until an event `pick` accepts has arrived (or panics, naming `what`).
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pick: impl Fn(&stratos_bus::AnyEvent) -> bool,
    ) -> stratos_bus::AnyEvent {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pick(e)) {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "no {what} on the bus within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let bus = self.bus.clone();
        // The timer must be made inside the runtime.
        let _ = self.runtime.block_on(async move { tokio::time::timeout(Duration::from_secs(2), bus.close()).await });
    }
}

// ---------------------------------------------------------------------------
// Autoscaling under real load (tests/autoscale.rs, benches/scale_reaction.rs): definitions
// written as JSON files, and keep-alive HTTP clients driving load through the load balancer.

/// `stratos up` flags for quick scaling: evaluations every 2 s, health summaries every
/// second over a 20 s window, in-flight counts from the load balancer every second, a
/// member removed after two evaluations in a row ask for fewer.
pub const QUICK_SCALING: &[&str] = &[
    "--evaluation-interval",
    "2s",
    "--health-interval",
    "1s",
    "--health-window",
    "20s",
    "--lb-publish-interval",
    "1s",
    "--scale-down-after",
    "2",
];

/// Writes `definition` as JSON in `dir/definitions` and adds it with `stratos KIND add`.
pub fn add_definition(platform: &Platform, dir: &Path, kind: &str, definition: &serde_json::Value) {
    let defs = dir.join("definitions");
    std::fs::create_dir_all(&defs).unwrap();
    let id = ["id", "type", "applicationId", "name"].iter().find_map(|f| definition[f].as_str()).unwrap().to_owned();
    let file = defs.join(format!("{kind}-{id}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(definition).unwrap()).unwrap();
    let out = platform.ok(&[kind, "add", file.to_str().unwrap()]);
    assert!(out.stdout.contains("added"), "`{kind} add` printed\n{out}");
}

/// A cartridge running `stratos sample-http --delay DELAY_MS` (each request sleeps, so
/// requests stay in flight without loading the CPU), exposed by the load balancer on
/// `proxy_port`; its agents report health every second.
pub fn slow_http_cartridge(cartridge_type: &str, proxy_port: u16, delay_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "type": cartridge_type,
        "category": "framework",
        "multiTenant": false,
        "portMapping": [{ "name": "http", "protocol": "http", "port": 8000, "proxyPort": proxy_port }],
        "iaasProvider": [{
            "type": "local",
            "command": ["stratos", "sample-http", "--port", "${PORT}", "--delay", format!("{delay_ms}ms")],
            "property": [{ "name": "env.STRATOS_HEALTH_STATS_INTERVAL", "value": "1s" }]
        }]
    })
}

/// The host name a deployment generates for a cluster, which the load balancer routes.
pub fn cluster_host(app: &str, alias: &str) -> String {
    format!("{app}.{alias}.stratos.local")
}

/// An application of one cluster of [`slow_http_cartridge`] scaling on requests in flight.
pub struct SlowHttpApp<'a> {
    pub app: &'a str,
    pub alias: &'a str,
    /// Where the load balancer exposes the cluster.
    pub proxy_port: u16,
    /// How long each request sleeps in the member.
    pub delay_ms: u64,
    /// Requests in flight per member.
    pub threshold: f64,
    pub min: u32,
    pub max: u32,
    /// (network partition id, most members in it), in bursting order: each is a network
    /// partition of `iaas` with one partition `p1`, filled one after another.
    pub nps: &'a [(&'a str, u32)],
    pub iaas: Iaas<'a>,
}

/// Where a [`SlowHttpApp`]'s members run.
#[derive(Debug, Clone, Copy, Default)]
pub enum Iaas<'a> {
    /// Local processes.
    #[default]
    Local,
    /// Containers of `image` (the agent is bundled in by the driver).
    Docker {
        image: &'a str,
        /// The engine (`dockerHost`) of each network partition that names one; the others
        /// use the local engine.
        hosts: &'a [(&'a str, &'a str)],
    },
}

impl SlowHttpApp<'_> {
    /// Adds its definitions (network partitions, policies `in-flight`, `dp` and `ap`, the
    /// cartridge `slow-http` and the application), each from a JSON file written in `dir`.
    pub fn add(&self, platform: &Platform, dir: &Path) {
        use serde_json::json;
        for (np, partition_max) in self.nps {
            let definition = match self.iaas {
                Iaas::Local => {
                    json!({ "id": np, "provider": "local", "partitions": [{ "id": "p1", "partitionMax": partition_max }] })
                }
                Iaas::Docker { hosts, .. } => {
                    let property: Vec<serde_json::Value> = hosts
                        .iter()
                        .filter(|(id, _)| id == np)
                        .map(|(_, host)| json!({ "name": "dockerHost", "value": host }))
                        .collect();
                    json!({ "id": np, "provider": "docker", "property": property,
                            "partitions": [{ "id": "p1", "partitionMax": partition_max }] })
                }
            };
            add_definition(platform, dir, "network-partition", &definition);
        }
        add_definition(
            platform,
            dir,
            "autoscaling-policy",
            &json!({ "id": "in-flight", "loadThresholds": { "requestsInFlight": { "threshold": self.threshold } } }),
        );
        let partitions: Vec<serde_json::Value> = self
            .nps
            .iter()
            .map(|(np, max)| {
                json!({ "id": np, "partitionAlgo": "one-after-another", "partitions": [{ "id": "p1", "partitionMax": max }] })
            })
            .collect();
        add_definition(platform, dir, "deployment-policy", &json!({ "id": "dp", "networkPartitions": partitions }));
        let np_ids: Vec<&str> = self.nps.iter().map(|(np, _)| *np).collect();
        add_definition(
            platform,
            dir,
            "application-policy",
            &json!({ "id": "ap", "algorithm": "one-after-another", "networkPartitions": np_ids }),
        );
        let mut cartridge = slow_http_cartridge("slow-http", self.proxy_port, self.delay_ms);
        if let Iaas::Docker { image, .. } = self.iaas {
            let delay = format!("{}ms", self.delay_ms);
            cartridge["iaasProvider"] = json!([{
                "type": "docker", "imageId": image, "cpu": "0.5", "memory": "128Mi",
                "command": ["stratos", "sample-http", "--port", "${PORT}", "--bind", "0.0.0.0", "--delay", delay],
                "property": [{ "name": "env.STRATOS_HEALTH_STATS_INTERVAL", "value": "1s" }]
            }]);
        }
        add_definition(platform, dir, "cartridge", &cartridge);
        add_definition(
            platform,
            dir,
            "application",
            &json!({
                "applicationId": self.app,
                "components": { "cartridges": [{
                    "type": "slow-http",
                    "cartridgeMin": self.min,
                    "cartridgeMax": self.max,
                    "subscribableInfo": { "alias": self.alias, "autoscalingPolicy": "in-flight", "deploymentPolicy": "dp" }
                }] }
            }),
        );
    }

    /// Deploys it with the CLI (which waits for the minimum of members), then waits until the
    /// load balancer answers for the cluster's host on the proxy port.
    pub fn deploy(&self, platform: &Platform) {
        let out = platform.cli(&["application", "deploy", self.app, "--policy", "ap", "--timeout", "60s"]);
        assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
        let host = cluster_host(self.app, self.alias);
        eventually(Duration::from_secs(15), "the load balancer routes to the cluster", || {
            let probe = Load::start(self.proxy_port, &host, 1);
            std::thread::sleep(Duration::from_millis(300));
            let report = probe.stop();
            if report.ok > 0 && report.failed == 0 {
                Ok(())
            } else {
                Err(format!("{report:?}"))
            }
        });
    }
}

/// The members of one cluster, from GET /api/topology.
pub fn cluster_members(platform: &Platform, cluster_id: &str) -> Vec<serde_json::Value> {
    topology_members(&platform.topology()).into_iter().filter(|m| m["clusterId"] == cluster_id).collect()
}

/// `stratos member list -o json`.
pub fn member_list(platform: &Platform) -> Vec<serde_json::Value> {
    let out = platform.ok(&["member", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"));
    list.as_array().unwrap_or_else(|| panic!("`member list -o json` is not an array\n{out}")).clone()
}

/// `stratos cluster scaling-history CLUSTER --last N` as printed, for failure messages.
pub fn scaling_history(platform: &Platform, cluster_id: &str, last: usize) -> String {
    platform.cli(&["cluster", "scaling-history", cluster_id, "--last", &last.to_string()]).stdout
}

/// A cluster of `application status -o json` (its runtime), by alias.
pub fn cluster<'a>(runtime: &'a serde_json::Value, alias: &str) -> &'a serde_json::Value {
    runtime["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["alias"] == alias))
        .unwrap_or_else(|| panic!("no cluster {alias:?} in {runtime:#}"))
}

/// A member's id, from its JSON in the topology or `member list`.
pub fn id(member: &serde_json::Value) -> String {
    member["memberId"].as_str().unwrap_or_else(|| panic!("a member without an id: {member}")).to_owned()
}

/// One `GET path` through the load balancer on `proxy_port` for `host`, on a fresh
/// connection (`connect` to connect, 5 s to answer): the member that answered, as
/// `stratos sample-http` says it (`member <id> path <path>`); a non-200 is an error.
pub fn member_through_lb(proxy_port: u16, host: &str, path: &str, connect: Duration) -> Result<String, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy_port));
    let (status, body) =
        get_host(addr, host, path, connect, Duration::from_secs(5)).map_err(|e| format!("{path} for {host}: {e}"))?;
    if status != 200 {
        return Err(format!("answered {status}: {body:?}"));
    }
    body.strip_prefix("member ").and_then(|b| b.split_whitespace().next()).map(str::to_owned).ok_or(body)
}
