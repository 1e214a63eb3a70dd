//! The proxy process: validating a configuration, starting the proxy, reloading it
//! gracefully, seeing a reload take effect, stopping it.
//!
//! - HAProxy runs in master-worker mode (`haproxy -W -f CFG -p PIDFILE`, in the
//!   foreground, our child). SIGUSR2 to the master reloads: it re-executes itself, the
//!   new worker takes the listening sockets over from the old one (`-x sockpair@`,
//!   automatic in master-worker mode) and the old worker finishes its requests.
//!   A configuration that fails at load time leaves the old worker serving.
//! - nginx runs with `daemon off` in the generated configuration (the master is our
//!   child). SIGHUP to the master reloads: new workers start with the new
//!   configuration on the same listening sockets, old workers finish their requests.
//!   A configuration that fails to load leaves the old workers serving.
//!
//! Both are stopped with SIGTERM (and SIGKILL after 10 s); the proxy also gets SIGTERM
//! if the thread that started it dies (`PR_SET_PDEATHSIG`), so a crashed `stratos`
//! leaves no proxy behind.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::{Error, Kind, Result};

/// Lines of the proxy's output kept for error messages.
const TAIL: usize = 40;

/// Writes `path` atomically: a temporary file in the same directory, synced, renamed over it.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Checks the configuration in `file` with the proxy's own validator (`haproxy -c -f`,
/// `nginx -t -c`). `Ok` with its output when valid, `Err` with its output when not.
pub async fn validate(kind: Kind, binary: &Path, file: &Path, run_dir: &Path) -> Result<String, String> {
    let mut command = Command::new(binary);
    match kind {
        Kind::Haproxy => command.arg("-c").arg("-f").arg(file),
        Kind::Nginx => command.arg("-t").arg("-c").arg(file).arg("-p").arg(prefix(run_dir)).args(["-e", "stderr"]),
    };
    command.stdin(Stdio::null()).kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(60), command.output()).await;
    let output = match run {
        Err(_) => return Err(format!("{} did not finish checking {} within 60 s", binary.display(), file.display())),
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", binary.display())),
        Ok(Ok(output)) => output,
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
        .trim()
        .to_string();
    if output.status.success() {
        Ok(text)
    } else {
        Err(if text.is_empty() { format!("{} exited with {}", binary.display(), output.status) } else { text })
    }
}

/// nginx's prefix (`-p`): the run directory, with a trailing slash.
fn prefix(run_dir: &Path) -> String {
    format!("{}/", run_dir.display())
}

/// GETs `path` from the proxy's local status port: (status code, body).
pub async fn local_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    local_get_host(port, path, "127.0.0.1").await
}

/// GETs `path` with `Host: host` from 127.0.0.1:`port`, on a new connection: (status code, body).
pub async fn local_get_host(port: u16, path: &str, host: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 2 s"))??;
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// The generation of the configuration answering on the status port.
pub async fn serving_generation(status_port: u16) -> Option<u64> {
    match local_get(status_port, "/stratos-generation").await {
        Ok((200, body)) => body.trim().parse().ok(),
        _ => None,
    }
}

/// A running proxy (its master process).
pub struct ProxyProcess {
    pub kind: Kind,
    binary: PathBuf,
    config: PathBuf,
    run_dir: PathBuf,
    status_port: u16,
    child: Option<Child>,
    /// The master's pid (0 when none), shared with the handle that stops it on drop.
    pub pid: Arc<AtomicU32>,
    output: Arc<Mutex<VecDeque<String>>>,
    /// The workers before the reload in progress.
    old_workers: Vec<u32>,
}

impl ProxyProcess {
    pub fn new(kind: Kind, binary: PathBuf, config: PathBuf, run_dir: PathBuf, status_port: u16) -> ProxyProcess {
        ProxyProcess {
            kind,
            binary,
            config,
            run_dir,
            status_port,
            child: None,
            pid: Arc::new(AtomicU32::new(0)),
            output: Arc::default(),
            old_workers: Vec::new(),
        }
    }

    /// Starts the proxy on the configuration file and waits until it serves `generation`.
    pub async fn start(&mut self, generation: u64, timeout: Duration) -> Result<()> {
        let mut command = Command::new(&self.binary);
        match self.kind {
            Kind::Haproxy => {
                command.arg("-W").arg("-f").arg(&self.config).arg("-p").arg(self.run_dir.join("haproxy.pid"))
            }
            Kind::Nginx => {
                command.arg("-c").arg(&self.config).arg("-p").arg(prefix(&self.run_dir)).args(["-e", "stderr"])
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(Error::io(format!("cannot start {}", self.binary.display())))?;
        let pid = child.id().unwrap_or(0);
        self.pid.store(pid, Ordering::SeqCst);
        self.output.lock().unwrap().clear();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out, self.kind, self.output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err, self.kind, self.output.clone()));
        }
        self.child = Some(child);
        info!(proxy = %self.kind, pid, config = %self.config.display(), "proxy started");
        if let Err(e) = self.wait_generation(generation, timeout).await {
            self.stop().await;
            return Err(e);
        }
        Ok(())
    }

    /// Asks the master to load the configuration file again, gracefully.
    pub fn reload(&mut self) {
        let pid = self.pid.load(Ordering::SeqCst);
        self.old_workers = children(pid);
        let signal = match self.kind {
            Kind::Haproxy => libc::SIGUSR2,
            Kind::Nginx => libc::SIGHUP,
        };
        send(pid, signal);
    }

    /// Waits until the configuration `generation` is in service: the status port answers
    /// it (several times in a row, on new connections) and, for nginx, every worker of
    /// the previous configuration has stopped accepting (the master tells them ~100 ms
    /// after starting the new ones; until then both accept).
    pub async fn wait_generation(&mut self, generation: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut in_a_row = 0;
        loop {
            if serving_generation(self.status_port).await == Some(generation) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
            }
            if in_a_row >= 3 && self.old_workers_stopped_accepting() {
                self.old_workers.clear();
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.pid.store(0, Ordering::SeqCst);
                    self.child = None;
                    return Err(Error::Exited { kind: self.kind, status, output: self.diagnostics() });
                }
            }
            if Instant::now() > deadline {
                return Err(Error::NotInService { kind: self.kind, generation, timeout, output: self.diagnostics() });
            }
            tokio::time::sleep(Duration::from_millis(if in_a_row > 0 { 5 } else { 25 })).await;
        }
    }

    /// nginx titles a worker `worker process is shutting down` as it closes its listening
    /// sockets. (HAProxy's old worker unbinds as soon as the new one is ready.)
    fn old_workers_stopped_accepting(&self) -> bool {
        self.kind != Kind::Nginx
            || self.old_workers.iter().all(|&w| match std::fs::read(format!("/proc/{w}/cmdline")) {
                Ok(cmdline) => cmdline.is_empty() || String::from_utf8_lossy(&cmdline).contains("shutting down"),
                Err(_) => true,
            })
    }

    /// The last lines the proxy printed (and, for nginx, of its error log).
    pub fn diagnostics(&self) -> String {
        let mut lines: Vec<String> = self.output.lock().unwrap().iter().cloned().collect();
        if self.kind == Kind::Nginx {
            if let Ok(log) = std::fs::read_to_string(self.run_dir.join("error.log")) {
                let tail: Vec<&str> = log.lines().rev().take(TAIL).collect();
                lines.extend(tail.into_iter().rev().map(|l| format!("error.log: {l}")));
            }
        }
        lines.join("\n")
    }

    /// Resolves when the proxy's master exits (never, when none runs).
    pub async fn exited(&mut self) -> ExitStatus {
        match self.child.as_mut() {
            Some(child) => {
                let status = child.wait().await;
                self.child = None;
                self.pid.store(0, Ordering::SeqCst);
                status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(-1))
            }
            None => std::future::pending().await,
        }
    }

    /// SIGTERM to the master (which stops its workers), SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = self.pid.swap(0, Ordering::SeqCst);
        send(pid, libc::SIGTERM);
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(status) => info!(proxy = %self.kind, pid, ?status, "proxy stopped"),
            Err(_) => {
                warn!(proxy = %self.kind, pid, "proxy did not stop within 10 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// The child processes of `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().is_some_and(|stat| {
                // pid (comm) state ppid ...: comm may hold spaces and parentheses.
                let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
            })
        })
        .collect()
}

/// Sends `signal` to `pid` (nothing for pid 0).
pub fn send(pid: u32, signal: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Logs the proxy's output line by line and keeps the last lines.
async fn forward(from: impl AsyncRead + Unpin, kind: Kind, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("[ALERT]") || line.contains("[emerg]") || line.contains("[crit]") {
            warn!(proxy = %kind, "{line}");
        } else {
            info!(proxy = %kind, "{line}");
        }
        let mut tail = tail.lock().unwrap();
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically() {
        let dir = std::env::temp_dir().join(format!("stratos-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.cfg");
        write_atomically(&file, "one").unwrap();
        write_atomically(&file, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.cfg")], "no temporary file left");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
