//! `stratos member exec MEMBER -- CMD...`: a command in a member's environment, its
//! output written as it comes and its exit code the command's; and the drivers behind
//! the API's route (`DriversExec`, given to the manager by `stratos up`).

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;
use stratos_cloud::{Driver, ExecOutput};
use stratos_manager::deploy_checks::BoxFuture;
use stratos_manager::member_exec::{ExecFrame, MemberExec};
use tokio::sync::mpsc;

use crate::client::Client;

/// The platform's drivers, each running commands in its own members.
pub struct DriversExec(pub Vec<Arc<dyn Driver>>);

impl MemberExec for DriversExec {
    fn exec<'a>(
        &'a self,
        provider: &'a str,
        member_id: &'a str,
        command: Vec<String>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<ExecFrame>, String>> {
        Box::pin(async move {
            let driver = self
                .0
                .iter()
                .find(|d| d.name() == provider)
                .ok_or_else(|| format!("this platform has no {provider:?} driver"))?;
            let mut output = driver.exec(member_id, &command).await.map_err(|e| e.to_string())?;
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move {
                while let Some(item) = output.recv().await {
                    let frame = match item {
                        ExecOutput::Stdout(b) => ExecFrame::Stdout(b),
                        ExecOutput::Stderr(b) => ExecFrame::Stderr(b),
                        ExecOutput::Exit(code) => ExecFrame::Exit(code),
                    };
                    if tx.send(frame).await.is_err() {
                        // The client went away: dropping `output` kills the command.
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }
}

/// Runs `command` in `member` through the API; returns the command's exit code.
pub async fn run(client: &Client, member: &str, command: Vec<String>) -> Result<i32> {
    let body = serde_json::json!({ "command": command }).to_string();
    relay(client, &format!("/api/members/{member}/exec"), body).await
}

/// POSTs `body` to `path` and writes the command output it streams back (`member exec`'s
/// framing, also `application run`'s); returns the command's exit code.
pub async fn relay(client: &Client, path: &str, body: String) -> Result<i32> {
    let mut response = client.stream(Method::POST, path, Some((body, "application/json"))).await?;
    let mut pending: Vec<u8> = Vec::new();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = response.chunk().await.context("reading the command's output")? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let frame: Value = serde_json::from_slice(&line).context("the API sent a line that is not JSON")?;
            if let Some(text) = frame["stdout"].as_str() {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            } else if let Some(text) = frame["stderr"].as_str() {
                stderr.write_all(text.as_bytes())?;
                stderr.flush()?;
            } else if let Some(exit) = frame.get("exit") {
                // A signal ended it: 128 + nothing known, as a shell says 129..; 1 will do.
                return Ok(exit.as_i64().map_or(1, |c| c as i32));
            }
        }
    }
    bail!("the connection ended before the command did (its exit code is unknown)")
}
