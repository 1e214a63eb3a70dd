//! Runs the real `stratos` binary: `stratos up` as a child process (killed when the
//! handle is dropped, even by a panic) and the client commands against it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    "STRATOS_MQTT_LISTEN",
    "STRATOS_DATA_DIR",
    "STRATOS_STORE",
    "RUST_LOG",
];

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php-web")
}

/// A port nobody listens on now, never handed out twice in this test process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if GIVEN.lock().unwrap().get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

pub fn wait_listening(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process with its stdout and stderr collected as they come; killed on drop.
pub struct Proc {
    label: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(label: &str, mut command: Command) -> Proc {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in STRATOS_ENV {
            command.env_remove(var);
        }
        // Logs must be plain without help: no NO_COLOR (stderr is a pipe, not a terminal).
        command.env_remove("NO_COLOR");
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc { label: label.to_owned(), child, stdout, stderr, readers, status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The exit status, if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to end; then its output is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.try_status().is_none() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.status
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// What it printed, for failure messages.
    pub fn describe(&self) -> String {
        format!("--- {} stdout ---\n{}\n--- {} stderr ---\n{}", self.label, self.stdout(), self.label, self.stderr())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&mut from);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    })
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

/// Runs `stratos ARGS` to its end (at most 60 s).
pub fn stratos(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    let mut proc = Proc::spawn(&format!("stratos {}", args.join(" ")), command);
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
        let mut command = Command::new(BIN);
        command
            .arg("up")
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra);
        let mut proc = Proc::spawn("stratos up", command);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if proc.try_status().is_some() {
                proc.wait_exit(Duration::from_secs(5));
                return Err(proc);
            }
            // The banner's last line, then the API itself.
            if proc.stdout().contains("Client commands use") && http_get(api_port, "/api/health").is_ok() {
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

    /// `stratos ARGS --api <this platform>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let api = self.api();
        let mut all = args.to_vec();
        all.extend(["--api", &api]);
        stratos(&all)
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

/// A minimal HTTP/1.0 GET (no chunked bodies): (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    Ok((status, body.to_owned()))
}

impl Platform {
    /// `mqtt://` URL of the platform's embedded broker.
    pub fn broker_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
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
        let (status, body) = http_get(self.api_port, "/api/topology").expect("GET /api/topology");
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
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
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
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for pid in entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())) {
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { continue };
        if !cwd.starts_with(&root) {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let member_id = environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(b"STRATOS_MEMBER_ID="))
            .map(|id| String::from_utf8_lossy(id).into_owned());
        let Some(member_id) = member_id else { continue };
        match proc_stat(pid) {
            Some((state, pgid, _)) if state != 'Z' && state != 'X' => out.push(MemberProcess { pid, pgid, member_id }),
            _ => {}
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// `kill -SIGNAL -- -PGID`: signals a whole process group.
pub fn signal_group(pgid: i32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client_id = format!("stratos-cli-test-{}-{}", std::process::id(), free_port());
        let bus = runtime
            .block_on(stratos_bus::Bus::connect(&platform.broker_url(), &client_id))
            .unwrap_or_else(|e| panic!("cannot connect to the platform's broker: {e}"));
        let mut subscription = runtime.block_on(bus.subscribe("topology/#")).unwrap();
        let events: Arc<Mutex<Vec<stratos_bus::AnyEvent>>> = Arc::default();
        let into = events.clone();
        runtime.spawn(async move {
            while let Some(event) = subscription.recv().await {
                into.lock().unwrap().push(event);
            }
        });
        let log = EventLog { runtime, bus, events };
        log.wait_for(Duration::from_secs(10), "the retained CompleteTopologyEvent", |e| {
            matches!(e, stratos_bus::AnyEvent::CompleteTopologyEvent(_))
        });
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
