//! A minimal Debian root filesystem as a tar, made by mmdebstrap from Debian's packages:
//! the `essential` variant (dpkg, a shell, coreutils; no apt) plus the packages asked for,
//! without their recommendations, documentation or apt lists.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::ImageError;

const PROGRAM: &str = "mmdebstrap";
/// The lines of mmdebstrap's output a failure quotes.
const TAIL: usize = 15;

/// Writes the root filesystem of `suite` with `packages` to `out` (a `.tar` path), passing
/// each line mmdebstrap prints to `progress`.
pub async fn rootfs(
    suite: &str,
    packages: &[String],
    mirror: Option<&str>,
    out: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ImageError> {
    let mut cmd = Command::new(PROGRAM);
    cmd.args(["--variant=essential", "--format=tar", "--aptopt=APT::Install-Recommends \"false\""])
        .args(["--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*"])
        .args(["--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/locale/locale.alias"])
        .arg(format!("--include={}", packages.join(",")))
        .arg("--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*")
        .arg(suite)
        .arg(out);
    if let Some(mirror) = mirror {
        cmd.arg(mirror);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ImageError::Tool { program: PROGRAM, package: PROGRAM, source })?;
    let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut tail = VecDeque::with_capacity(TAIL);
    let (mut out_lines, mut err_lines) = (Some(stdout), Some(stderr));
    while out_lines.is_some() || err_lines.is_some() {
        let line = tokio::select! {
            l = next(&mut out_lines) => l,
            l = next(&mut err_lines) => l,
        };
        if let Some(line) = line {
            progress(&line);
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status =
        child.wait().await.map_err(|source| ImageError::Tool { program: PROGRAM, package: PROGRAM, source })?;
    if !status.success() {
        let tail = Vec::from(tail).join(" / ");
        return Err(ImageError::ToolFailed { program: PROGRAM, status, tail });
    }
    Ok(())
}

/// The next line of a stream, `None` (and the stream dropped) at its end; pending for ever
/// once dropped, so that `select!` waits on the other.
async fn next<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Option<tokio::io::Lines<R>>) -> Option<String> {
    let Some(reader) = lines else { return std::future::pending().await };
    match reader.next_line().await {
        Ok(Some(line)) => Some(line),
        _ => {
            *lines = None;
            None
        }
    }
}
