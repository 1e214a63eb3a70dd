//! Child processes that never outlive the test: killed when their handle is dropped, even
//! by a panic, with their output collected as it comes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child process, killed when dropped (for those whose output goes elsewhere).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process with its stdout and stderr collected as they come; killed on drop, and
/// its output printed then if the test is panicking.
pub struct Proc {
    label: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` with no stdin and its output piped; panics if it cannot start.
    pub fn spawn(label: &str, mut command: Command) -> Proc {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
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

    /// `kill -SIGNAL PID`.
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

/// `kill -SIGNAL -- -PGID`: signals a whole process group; whether `kill` succeeded.
pub fn signal_group(pgid: i32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut proc = Proc::spawn("sh", command);
        let status = proc.wait_exit(Duration::from_secs(20)).expect("sh ends");
        assert_eq!(status.code(), Some(3));
        assert_eq!((proc.stdout(), proc.stderr()), ("out\n".into(), "err\n".into()));
    }

    #[test]
    fn killed_when_dropped() {
        let proc = Proc::spawn("sleep", {
            let mut c = Command::new("sleep");
            c.arg("60");
            c
        });
        let pid = proc.pid();
        drop(proc);
        assert!(stratos_procfs::stat(pid).is_none_or(|s| !s.is_live()), "sleep {pid} outlived its handle");
    }
}
