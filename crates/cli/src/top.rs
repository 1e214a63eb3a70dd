//! `stratos top [APP]`: clusters and members live in the terminal, from the REST API
//! (each application's runtime, and each cluster's last autoscaler decision for its
//! load, memory and requests in flight), redrawn every `--interval`; `q` or Ctrl-C
//! quits, `--once` prints one frame.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::client::{ApiArgs, Client};

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Only this application (default: every deployed application the caller sees).
    app: Option<String>,
    /// Time between frames.
    #[arg(long, value_name = DURATION, value_parser = duration::positive, default_value = "2s")]
    interval: Duration,
    /// Print one frame and end (for scripts and tests).
    #[arg(long)]
    once: bool,
}

/// One application as a frame shows it: its runtime, and each cluster's last decision.
pub struct AppView {
    pub runtime: Value,
    /// Cluster id → the autoscaler's last decision about it, if any.
    pub decisions: std::collections::BTreeMap<String, Value>,
}

pub async fn run(args: TopArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    if args.once {
        print!("{}", frame(&gather(&client, args.app.as_deref()).await?));
        return Ok(());
    }
    let _raw = RawInput::enter();
    let (quit_tx, mut quit) = tokio::sync::mpsc::channel::<()>(1);
    // Keys come from a thread of its own (stdin blocks); `q` quits.
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while let Ok(1) = std::io::stdin().read(&mut byte) {
            if matches!(byte[0], b'q' | b'Q' | 3) {
                let _ = quit_tx.blocking_send(());
                return;
            }
        }
    });
    loop {
        let text = match gather(&client, args.app.as_deref()).await {
            Ok(apps) => frame(&apps),
            Err(e) => format!("error: {e:#}\n"),
        };
        // Clear the screen, home the cursor, draw.
        print!("\x1b[2J\x1b[H{text}\n(every {:?}; q quits)\n", args.interval);
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = quit.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Reads what a frame shows.
async fn gather(client: &Client, only: Option<&str>) -> Result<Vec<AppView>> {
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => {
            let list = client.call(Method::GET, "/api/applications", None).await?.unwrap_or_default();
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["applicationId"].as_str().map(String::from))
                .collect()
        }
    };
    let mut apps = Vec::new();
    for id in ids {
        let runtime =
            client.call(Method::GET, &format!("/api/applications/{id}/runtime"), None).await?.unwrap_or_default();
        if only.is_none() && runtime["status"] == "not-deployed" {
            continue;
        }
        let mut decisions = std::collections::BTreeMap::new();
        for cluster in runtime["clusters"].as_array().into_iter().flatten() {
            let Some(cid) = cluster["clusterId"].as_str() else { continue };
            let path = format!("/api/clusters/{cid}/scalingHistory");
            // A cluster the controller has not created yet has no history.
            if let Ok((status, history)) = client.send(Method::GET, &path, None).await {
                if status.is_success() {
                    if let Some(last) = history.as_array().and_then(|h| h.last()) {
                        decisions.insert(cid.to_string(), last.clone());
                    }
                }
            }
        }
        apps.push(AppView { runtime, decisions });
    }
    Ok(apps)
}

/// One frame: per application, its clusters (status, live / desired within min..max,
/// requests in flight, load, memory as the autoscaler last saw them) and their members.
pub fn frame(apps: &[AppView]) -> String {
    let mut out = String::new();
    if apps.is_empty() {
        out.push_str("no application deployed\n");
        return out;
    }
    for app in apps {
        let rt = &app.runtime;
        let _ = writeln!(
            out,
            "APPLICATION {}  {}{}",
            rt["applicationId"].as_str().unwrap_or("?"),
            rt["status"].as_str().unwrap_or("?"),
            rt["applicationStatus"].as_str().map(|s| format!(", {s}")).unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  {:<28} {:<10} {:>13} {:>9} {:>8} {:>8}",
            "CLUSTER", "STATUS", "LIVE/DESIRED", "IN-FLIGHT", "LOAD", "MEMORY"
        );
        for c in rt["clusters"].as_array().into_iter().flatten() {
            let id = c["clusterId"].as_str().unwrap_or("?");
            let members = c["members"].as_array().map(Vec::as_slice).unwrap_or_default();
            let live = members.iter().filter(|m| m["status"] == "Active").count();
            let sizes = format!(
                "{live}/{} ({}..{})",
                c["desired"].as_u64().unwrap_or(0),
                c["min"].as_u64().unwrap_or(0),
                c["max"].as_u64().unwrap_or(0)
            );
            let inputs = app.decisions.get(id).map(|d| &d["decision"]["inputs"]);
            let factor = |name: &str| {
                inputs.and_then(|i| i[name]["average"].as_f64()).map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<10} {:>13} {:>9} {:>8} {:>8}",
                id,
                c["status"].as_str().unwrap_or("?"),
                sizes,
                factor("requestsInFlight"),
                factor("loadAverage"),
                factor("memoryConsumption")
            );
            for m in members {
                let _ = writeln!(
                    out,
                    "    {:<40} {:<16} {:<16} {}",
                    m["memberId"].as_str().unwrap_or("?"),
                    m["status"].as_str().unwrap_or("?"),
                    m["partitionId"].as_str().unwrap_or("-"),
                    m["defaultPrivateIp"].as_str().unwrap_or("-")
                );
            }
            if let Some(error) = c["error"].as_str() {
                let _ = writeln!(out, "    error: {error}");
            }
        }
        out.push('\n');
    }
    out
}

/// The terminal without line buffering or echo while `top` runs (so that `q` needs no
/// Enter), restored when dropped. Nothing when stdin is no terminal.
struct RawInput(Option<libc::termios>);

impl RawInput {
    fn enter() -> RawInput {
        if !std::io::stdin().is_terminal() {
            return RawInput(None);
        }
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios of our own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return RawInput(None);
            }
            let mut raw = saved;
            raw.c_lflag &= !(libc::ICANON | libc::ECHO);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            RawInput(Some(saved))
        }
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_frame_shows_clusters_their_figures_and_members() {
        let runtime = json!({
            "applicationId": "web", "status": "deployed", "applicationStatus": "Active",
            "clusters": [{
                "clusterId": "web.php", "status": "Active", "desired": 2, "min": 1, "max": 4,
                "members": [
                    {"memberId": "web.php.m1", "status": "Active", "partitionId": "P1", "defaultPrivateIp": "127.0.0.1"},
                    {"memberId": "web.php.m2", "status": "Starting", "partitionId": "P1"}
                ]
            }]
        });
        let decision =
            json!({"decision": {"inputs": {"requestsInFlight": {"average": 3.25}, "loadAverage": {"average": 12.0}}}});
        let view = AppView { runtime, decisions: [("web.php".to_string(), decision)].into() };
        let text = frame(&[view]);
        assert!(text.contains("APPLICATION web  deployed, Active"), "{text}");
        let row = text.lines().find(|l| l.trim_start().starts_with("web.php ")).expect(&text);
        assert!(
            row.contains("1/2 (1..4)") && row.contains("3.2") && row.contains("12.0") && row.ends_with(" -"),
            "{row}"
        );
        assert!(text.contains("web.php.m2") && text.contains("Starting"), "{text}");
        assert_eq!(frame(&[]), "no application deployed\n");
    }
}
