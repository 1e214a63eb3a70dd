//! Artifact deployment with the `git` binary: clone the repository into the member's
//! `artifacts` directory, pull on `ArtifactUpdatedEvent`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Longest a clone or pull may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Clones `repo` into `dir`; when `dir` already holds a clone (the agent restarted in its
/// member directory) pulls instead. Returns a one-line summary.
pub async fn deploy(repo: &str, dir: &Path) -> Result<String, String> {
    if dir.join(".git").is_dir() {
        return pull(dir).await;
    }
    if dir.exists() {
        // A clone interrupted earlier: start again.
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let target = dir.to_str().ok_or_else(|| format!("{} is not valid UTF-8", dir.display()))?;
    git(&["clone", "--quiet", "--", repo, target], None).await?;
    Ok(format!("cloned {repo} at {}", head(dir).await))
}

/// Pulls (fast-forward only) in the clone at `dir`. Returns a one-line summary.
pub async fn pull(dir: &Path) -> Result<String, String> {
    let out = git(&["pull", "--ff-only"], Some(dir)).await?;
    let last = out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("done");
    Ok(format!("git pull: now at {} ({last})", head(dir).await))
}

async fn head(dir: &Path) -> String {
    git(&["rev-parse", "--short", "HEAD"], Some(dir)).await.map(|s| s.trim().to_string()).unwrap_or_else(|e| e)
}

/// Runs git; its combined output, or an error naming the command and what git said.
async fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Never wait for a password nobody will type.
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let what = format!("git {}", args.first().copied().unwrap_or_default());
    let child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let out = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{what} did not finish within {} s", GIT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        let said: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Err(format!("{what} failed ({}): {}", out.status, said.join(" / ")))
    }
}
