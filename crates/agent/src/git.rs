//! Artifact deployment with the `git` binary: clone the repository into the member's
//! `artifacts` directory, pull on `ArtifactUpdatedEvent`.
//!
//! A repository is a tenant's input run on the platform's machine: only remote
//! transports are allowed (git itself enforces it, through `GIT_ALLOW_PROTOCOL`, for
//! submodules and redirects too), and git is killed, with what it started (ssh, a
//! remote helper), when it takes longer than the timeout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use stratos_model::{check_repo_url, RepoUrlPolicy};
use tokio::process::Command;
use tracing::warn;

use stratos_procfs as procfs;

/// How git may be run for a member.
#[derive(Debug, Clone, Copy)]
pub struct GitOptions {
    /// Longest a clone or a pull may take.
    pub timeout: Duration,
    /// Local paths and `file://` (an administrator's `--allow-local-repos`).
    pub allow_local: bool,
}

impl GitOptions {
    fn policy(&self) -> RepoUrlPolicy {
        RepoUrlPolicy { allow_local: self.allow_local }
    }

    /// git's own list of transports it may use (`protocol.allow`).
    fn allowed_protocols(&self) -> &'static str {
        if self.allow_local {
            "https:http:ssh:git:file"
        } else {
            "https:http:ssh:git"
        }
    }
}

/// Clones `repo` into `dir`; when `dir` already holds a clone (the agent restarted in its
/// member directory) pulls instead. Returns a one-line summary.
pub async fn deploy(repo: &str, dir: &Path, options: GitOptions) -> Result<String, String> {
    check_repo_url(repo, options.policy()).map_err(|why| format!("repository {repo:?} refused: {why}"))?;
    if dir.join(".git").is_dir() {
        return pull(dir, options).await;
    }
    if dir.exists() {
        // A clone interrupted earlier: start again.
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let target = dir.to_str().ok_or_else(|| format!("{} is not valid UTF-8", dir.display()))?;
    git(&["clone", "--quiet", "--", repo, target], None, options).await?;
    Ok(format!("cloned {repo} at {}", head(dir, options).await))
}

/// Pulls (fast-forward only) in the clone at `dir`. Returns a one-line summary.
pub async fn pull(dir: &Path, options: GitOptions) -> Result<String, String> {
    let out = git(&["pull", "--ff-only"], Some(dir), options).await?;
    let last = out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("done");
    Ok(format!("git pull: now at {} ({last})", head(dir, options).await))
}

async fn head(dir: &Path, options: GitOptions) -> String {
    git(&["rev-parse", "--short", "HEAD"], Some(dir), options).await.map(|s| s.trim().to_string()).unwrap_or_else(|e| e)
}

/// Runs git; its combined output, or an error naming the command and what git said.
async fn git(args: &[&str], cwd: Option<&Path>, options: GitOptions) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Never wait for a password nobody will type.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", options.allowed_protocols())
        .kill_on_drop(true);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let what = format!("git {}", args.first().copied().unwrap_or_default());
    let child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let pid = child.id();
    let output = child.wait_with_output();
    tokio::pin!(output);
    let out = tokio::select! {
        out = &mut output => out.map_err(|e| format!("{what}: {e}"))?,
        () = tokio::time::sleep(options.timeout) => {
            // While git still runs, so that what it started (ssh, git-remote-*) is found
            // as its descendants; once git is gone they would belong to init.
            if let Some(pid) = pid {
                kill_tree(pid);
            }
            // Its pipes close once the tree is gone; a descendant that escaped the tree
            // does not hold the agent.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut output).await;
            warn!(command = %what, timeout = ?options.timeout, "git did not finish in time; killed");
            return Err(format!("{what} did not finish within {} s and was killed", options.timeout.as_secs()));
        }
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        let said: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Err(format!("{what} failed ({}): {}", out.status, said.join(" / ")))
    }
}

/// SIGKILLs `root` and every process under it.
fn kill_tree(root: u32) {
    let tree = procfs::descendants(root);
    for pid in std::iter::once(root).chain(tree) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}
