//! The app: the cartridge's command, run in the agent's own process group (the driver
//! stops a member by signalling that group), its output forwarded line by line.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};

use crate::logs::{read_line, LogSink, MAX_LINE};
use stratos_procfs as procfs;

pub struct App {
    child: Child,
    pid: u32,
    program: String,
    readers: Vec<JoinHandle<()>>,
}

impl App {
    /// Starts `command` in `cwd` with the agent's environment; its stdout and stderr go to `sink`.
    pub fn spawn(command: &[String], cwd: &Path, sink: &LogSink) -> Result<App, String> {
        let (program, args) = command.split_first().ok_or("the command is empty")?;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            // The bus credentials are the agent's: the app has no business on the bus.
            .env_remove("STRATOS_BUS_USERNAME")
            .env_remove(crate::BusPassword::ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A safety net: an agent that fails does not leave its app behind.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {}", io_reason(&e)))?;
        let pid = child.id().ok_or_else(|| format!("`{program}` exited at once"))?;
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(forward(out, "stdout", sink.clone()).in_current_span()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(forward(err, "stderr", sink.clone()).in_current_span()));
        }
        Ok(App { child, pid, program: program.clone(), readers })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the app to exit (cancel safe: usable in `select!`).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Waits (at most `timeout`) until the app's output is read to its end.
    pub async fn drain(&mut self, timeout: Duration) {
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(timeout, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
    }

    /// Stops the app and what it started: SIGTERM, then SIGKILL after `grace`.
    /// Returns how the app ended (`None` if that cannot be known).
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let group = procfs::stat(std::process::id()).map(|s| s.pgrp);
        let tree = procfs::descendants(self.pid);
        let deadline = Instant::now() + grace;
        // SIGCONT after SIGTERM, as init systems do: a stopped (frozen) app gets to act on it.
        for sig in [libc::SIGTERM, libc::SIGCONT] {
            signal(self.pid, sig);
            for &pid in &tree {
                // Only what is still in the member's process group (a pid may have been reused).
                if group.is_some_and(|g| procfs::alive_in_group(pid, g)) {
                    signal(pid, sig);
                }
            }
        }
        let status = match tokio::time::timeout_at(deadline.into(), self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot wait for the app");
                None
            }
            Err(_) => {
                warn!(pid = self.pid, program = %self.program, "the app did not stop within {grace:?} of SIGTERM; killing it");
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        // The app's own children, if they outlive it.
        if let Some(group) = group {
            let alive = |pid: &u32| procfs::alive_in_group(*pid, group);
            while tree.iter().any(alive) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for pid in tree.iter().filter(|p| alive(p)) {
                debug!(pid, "killing a process the app left behind");
                signal(*pid, libc::SIGKILL);
            }
        }
        status
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// "exited with status 3", "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// The reason of an I/O error without Rust's "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

async fn forward(out: impl AsyncRead + Unpin, stream: &'static str, sink: LogSink) {
    let mut reader = BufReader::with_capacity(64 * 1024, out);
    loop {
        match read_line(&mut reader, MAX_LINE).await {
            Ok(Some(line)) => sink.line(stream, line),
            Ok(None) => return,
            Err(e) => {
                debug!(stream, error = %e, "cannot read the app's output");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with status 3");
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by signal 9");
        assert_eq!(io_reason(&std::io::Error::from_raw_os_error(2)), "No such file or directory");
    }
}
