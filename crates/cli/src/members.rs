//! `stratos member list`.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct MemberArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: MemberAction,
}

#[derive(Subcommand)]
enum MemberAction {
    /// List members: cluster, partition, status, address and uptime.
    List {
        /// Only members of this application.
        #[arg(long)]
        application: Option<String>,
    },
}

pub async fn run(args: MemberArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let MemberAction::List { application } = args.action;
    let topology = client.call(Method::GET, "/api/topology", None).await?.unwrap_or_default();
    let mut members: Vec<Value> = Vec::new();
    for service in topology["services"].as_object().into_iter().flat_map(|s| s.values()) {
        for cluster in service["clusters"].as_object().into_iter().flat_map(|c| c.values()) {
            if application.as_deref().is_some_and(|a| cluster["appId"] != a) {
                continue;
            }
            members.extend(cluster["members"].as_object().into_iter().flat_map(|m| m.values().cloned()));
        }
    }
    if args.output != Output::Table {
        print_one(&Value::Array(members), args.output);
        return Ok(());
    }
    if members.is_empty() {
        println!("no members");
        return Ok(());
    }
    let now = stratos_bus::now_millis();
    let mut table = crate::output::table(vec!["MEMBER", "CLUSTER", "PARTITION", "STATUS", "ADDRESS", "UPTIME"]);
    for m in members {
        let ip = m["defaultPrivateIp"].as_str().unwrap_or("-");
        let ports: Vec<String> =
            m["ports"].as_array().into_iter().flatten().map(|p| format!("{ip}:{}", p["value"])).collect();
        let up = now.saturating_sub(m["initTime"].as_u64().unwrap_or(now)) / 1000;
        crate::output::add_row(
            &mut table,
            vec![
                m["memberId"].as_str().unwrap_or("?").to_string(),
                m["clusterId"].as_str().unwrap_or("?").to_string(),
                format!(
                    "{}/{}",
                    m["networkPartitionId"].as_str().unwrap_or("?"),
                    m["partitionId"].as_str().unwrap_or("?")
                ),
                m["status"].as_str().unwrap_or("?").to_string(),
                if ports.is_empty() { ip.to_string() } else { ports.join(" ") },
                format!("{}m{:02}s", up / 60, up % 60),
            ],
        );
    }
    println!("{table}");
    Ok(())
}
