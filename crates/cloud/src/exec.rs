//! A command run in a member for an operator (`stratos member exec`): its output carried
//! as it comes, its exit code last. The driver decides where and as whom it runs; this
//! only relays.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::driver::{ExecOutput, ExecStream};

/// Items in flight between the command and whoever reads them: a slow reader holds the
/// command back rather than the platform buffering its output.
const BACKLOG: usize = 64;

/// Relays a spawned child's stdout and stderr, then its exit code. The child is killed
/// if the stream is dropped before it ends (the client went away).
pub fn relay(mut child: tokio::process::Child) -> ExecStream {
    let (tx, rx) = mpsc::channel(BACKLOG);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let out = forward(stdout, tx.clone(), ExecOutput::Stdout);
        let err = forward(stderr, tx.clone(), ExecOutput::Stderr);
        let (out_ok, err_ok) = tokio::join!(out, err);
        if !(out_ok && err_ok) {
            // Nobody reads any more: the command goes.
            let _ = child.kill().await;
            return;
        }
        tokio::select! {
            status = child.wait() => {
                let code = status.ok().and_then(|s| s.code());
                let _ = tx.send(ExecOutput::Exit(code)).await;
            }
            () = tx.closed() => {
                let _ = child.kill().await;
            }
        }
    });
    rx
}

/// Copies `from` into `tx` as `wrap`ped chunks; `false` once the reader is gone.
pub(crate) async fn forward<R: AsyncRead + Unpin>(
    from: Option<R>,
    tx: mpsc::Sender<ExecOutput>,
    wrap: fn(Vec<u8>) -> ExecOutput,
) -> bool {
    let Some(mut from) = from else { return true };
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// The member's environment without what lets it speak on the bus: an operator's command
/// (and whatever it prints) never sees the member's bus credentials.
pub fn without_bus_credentials(env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.into_iter().filter(|(name, _)| !name.starts_with("STRATOS_BUS_")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_credentials_are_left_out() {
        let env = [("PATH", "/bin"), ("STRATOS_BUS_USERNAME", "m"), ("STRATOS_BUS_PASSWORD", "s"), ("PORT", "1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec();
        let kept: Vec<String> = without_bus_credentials(env).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kept, ["PATH", "PORT"]);
    }

    #[tokio::test]
    async fn output_then_the_exit_code() {
        let child = tokio::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 7"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut rx = relay(child);
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
        }
        assert!(got.contains(&ExecOutput::Stdout(b"out\n".to_vec())), "{got:?}");
        assert!(got.contains(&ExecOutput::Stderr(b"err\n".to_vec())), "{got:?}");
        assert_eq!(got.last(), Some(&ExecOutput::Exit(Some(7))));
    }
}
