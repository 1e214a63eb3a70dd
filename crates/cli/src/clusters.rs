//! `stratos cluster scaling-history CLUSTER`, `stratos cluster scale CLUSTER --min N --max M`,
//! `stratos cluster restart CLUSTER` (rolling, its progress shown until it ends).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// The autoscaler's recent decisions for a cluster (`<application>.<alias>`), each with
    /// its inputs: per factor the average, gradient, second derivative, prediction and members required.
    ScalingHistory {
        cluster: String,
        /// Show only the last N decisions.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Set a deployed cluster's fewest and most members (either or both). Kept in the
    /// deployment; members start or drain at once to bring the cluster inside the new
    /// bounds, and the autoscaler decides within them from then on. Max may go past the
    /// application's cartridgeMax, up to what the deployment policy's partitions hold.
    #[command(verbatim_doc_comment)]
    Scale {
        cluster: String,
        /// Fewest members (at least 1).
        #[arg(long)]
        min: Option<u32>,
        /// Most members.
        #[arg(long)]
        max: Option<u32>,
    },
    /// Restart a cluster's members one at a time: each is replaced by a new member,
    /// which is active before the old one drains, so as many members serve as before.
    /// Shows progress until the last old member is replaced.
    Restart {
        cluster: String,
        /// Return once the restart is accepted, without waiting for it to finish.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (the restart goes on).
        #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "10m")]
        timeout: Duration,
    },
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let (cluster, last) = match args.action {
        ClusterAction::ScalingHistory { cluster, last } => (cluster, last),
        ClusterAction::Scale { cluster, min, max } => return scale(&client, &cluster, min, max, args.output).await,
        ClusterAction::Restart { cluster, no_wait, timeout } => {
            return restart(&client, &cluster, no_wait, timeout, args.output).await
        }
    };
    let history =
        client.call(Method::GET, &format!("/api/clusters/{cluster}/scalingHistory"), None).await?.unwrap_or_default();
    let entries: Vec<Value> = history.as_array().cloned().unwrap_or_default();
    let entries: Vec<Value> = entries[entries.len().saturating_sub(last)..].to_vec();
    if args.output != Output::Table {
        print_one(&Value::Array(entries), args.output);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no scaling decisions for {cluster} yet");
        return Ok(());
    }
    let mut table = crate::output::table(vec![
        "AGE",
        "ACTION",
        "MEMBERS",
        "REQUIRED",
        "FACTORS (average, gradient/s, 2nd derivative → predicted / threshold = members)",
    ]);
    let now = stratos_bus::now_millis();
    for e in entries {
        let d = &e["decision"];
        let votes: Vec<String> = d["votes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}: {:.1}, {:+.2}, {:+.3} → {:.1} / {} = {}",
                    v["factor"].as_str().unwrap_or("?"),
                    v["stats"]["average"].as_f64().unwrap_or(0.0),
                    v["stats"]["gradient"].as_f64().unwrap_or(0.0),
                    v["stats"]["secondDerivative"].as_f64().unwrap_or(0.0),
                    v["predicted"].as_f64().unwrap_or(0.0),
                    v["threshold"],
                    v["required"]
                )
            })
            .collect();
        let age = now.saturating_sub(e["timestamp"].as_u64().unwrap_or(now)) / 1000;
        crate::output::add_row(
            &mut table,
            vec![
                format!("{age}s ago"),
                e["action"].as_str().unwrap_or("?").to_string(),
                format!("{} → {}", e["current"], e["desired"]),
                d["required"].to_string(),
                if votes.is_empty() { "no fresh data: nothing voted".to_string() } else { votes.join("\n") },
            ],
        );
    }
    println!("{table}");
    Ok(())
}

async fn scale(client: &Client, cluster: &str, min: Option<u32>, max: Option<u32>, output: Output) -> Result<()> {
    if min.is_none() && max.is_none() {
        bail!("give --min, --max or both");
    }
    let mut body = serde_json::Map::new();
    if let Some(min) = min {
        body.insert("min".into(), min.into());
    }
    if let Some(max) = max {
        body.insert("max".into(), max.into());
    }
    let body = Some((Value::Object(body).to_string(), "application/json"));
    let bounds = client.call(Method::PUT, &format!("/api/clusters/{cluster}/scale"), body).await?.unwrap_or_default();
    if output != Output::Table {
        print_one(&bounds, output);
    } else {
        println!("cluster {cluster}: min {} max {}", bounds["min"], bounds["max"]);
    }
    Ok(())
}

async fn restart(client: &Client, cluster: &str, no_wait: bool, timeout: Duration, output: Output) -> Result<()> {
    let path = format!("/api/clusters/{cluster}/restart");
    let status = client.call(Method::POST, &path, None).await?.unwrap_or_default();
    if no_wait {
        if output != Output::Table {
            print_one(&status, output);
        } else {
            println!("restarting cluster {cluster}: {} member(s) to replace", list_len(&status["remaining"]));
        }
        return Ok(());
    }
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut last, mut status) = (String::new(), status);
    loop {
        crate::output::progress(restart_line(&status), &mut last, tty);
        if status["running"] == Value::Bool(false) {
            break;
        }
        if started.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            bail!(
                "the restart of cluster {cluster} did not finish within {} (it goes on){}",
                duration::format(timeout),
                status["error"].as_str().map(|e| format!("\n  error: {e}")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = client.call(Method::GET, &path, None).await?.unwrap_or_default();
    }
    if tty {
        eprintln!();
    }
    if output != Output::Table {
        print_one(&status, output);
    } else {
        println!("cluster {cluster} restarted: {} member(s) replaced", list_len(&status["replacements"]));
    }
    Ok(())
}

fn list_len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// One line of a restart's progress: old members left, replacements by status.
fn restart_line(status: &Value) -> String {
    let replacements: Vec<String> = status["replacements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| format!("{} {}", m["memberId"].as_str().unwrap_or("?"), m["status"].as_str().unwrap_or("?")))
        .collect();
    let mut line = format!(
        "{} old member(s) left; replacements: {}",
        list_len(&status["remaining"]),
        if replacements.is_empty() { "none yet".to_string() } else { replacements.join(", ") }
    );
    if let Some(e) = status["error"].as_str() {
        line.push_str(&format!(" error: {e}"));
    }
    line
}
