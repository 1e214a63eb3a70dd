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
