//! `stratos cluster scaling-history CLUSTER`.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

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
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let ClusterAction::ScalingHistory { cluster, last } = args.action;
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
