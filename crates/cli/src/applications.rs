//! `stratos application ...`: definitions plus deploy, undeploy and status.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use comfy_table::Table;
use reqwest::Method;
use serde_json::Value;
use stratos_model::duration::{self, VALUE_NAME as DURATION};
use stratos_model::Kind;

use crate::client::{ApiArgs, Client};
use crate::definitions::{self, Action};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct ApplicationArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// How to print results.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: AppAction,
}

#[derive(Subcommand)]
enum AppAction {
    /// Add definitions from JSON or YAML files (`.yaml`/`.yml` are read as YAML), in order.
    Add {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// List every application.
    List,
    /// Show one application's definition in full.
    Show { id: String },
    /// Remove an application's definition (refused while it is deployed).
    Remove { id: String },
    /// Deploy an application: its clusters start with their minimum members.
    /// Waits, showing progress, until every cluster is active.
    Deploy {
        id: String,
        /// The application policy: which network partitions (clouds) it may use.
        #[arg(long, short)]
        policy: String,
        /// Return once the deployment is accepted, without waiting for members.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "3m")]
        timeout: Duration,
    },
    /// Undeploy an application: members drain, then terminate. Waits until none is left.
    Undeploy {
        id: String,
        /// Return once the undeployment is accepted, without waiting for members to go.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "3m")]
        timeout: Duration,
    },
    /// Show a deployed application's clusters, their members and any error, and its
    /// latest rollout.
    Status { id: String },
    /// Move a deployed application to new revisions (a rolling update).
    ///
    /// Each cluster whose cartridge
    /// (image, command, environment, ports, health checks) or artifact repository changed
    /// gets a new revision, and its members are replaced one at a time, each new member
    /// Active (its health checks passing) before an old one drains. A rollout that does
    /// not finish within its deadline, or whose new members fail 3 times in a row, is
    /// rolled back. Waits, showing progress. (`application update FILE...`, with only
    /// definition files, replaces application definitions, as `update` of other kinds.)
    Update(crate::rollouts::UpdateArgs),
    /// A rollout's status, the rollout history, or undo the latest rollout.
    Rollout {
        #[command(subcommand)]
        action: crate::rollouts::RolloutAction,
    },
    /// Run a one-off task: CMD in a new member of one of the application's clusters, with
    /// its cartridge as deployed (image, env.* properties, the cluster's STRATOS_* ids and
    /// STRATOS_TASK=true), no persistent volumes, no agent (nothing fetches the artifact
    /// repository), no load balancer route, not counted by the autoscaler. Its output is
    /// shown as it comes and its exit code is this command's; the task member is removed
    /// when CMD ends or this command is interrupted. Local and docker members only.
    #[command(verbatim_doc_comment)]
    Run {
        /// The application (deployed).
        id: String,
        /// The cluster (its alias) when the application has more than one.
        #[arg(long)]
        cluster: Option<String>,
        /// The program and its arguments (no shell: `-- sh -c '...'` for one).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub async fn run(args: ApplicationArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.action {
        AppAction::List if args.output == Output::Table => list_with_status(&client).await,
        AppAction::List => definitions::run_action(Kind::Application, &client, Action::List, args.output).await,
        AppAction::Add { files } => {
            definitions::run_action(Kind::Application, &client, Action::Add { files }, args.output).await
        }
        AppAction::Show { id } => {
            definitions::run_action(Kind::Application, &client, Action::Show { id }, args.output).await
        }
        AppAction::Remove { id } => {
            definitions::run_action(Kind::Application, &client, Action::Remove { id }, args.output).await
        }
        AppAction::Update(update) if update.definition_files().is_some() => {
            let files = update.definition_files().unwrap_or_default();
            definitions::run_action(Kind::Application, &client, Action::Update { files }, args.output).await
        }
        AppAction::Deploy { id, policy, no_wait, timeout } => {
            client.call(Method::POST, &format!("/api/applications/{id}/deploy/{policy}"), None).await?;
            eprintln!("application {id:?} deployed with policy {policy:?}");
            if no_wait {
                return Ok(());
            }
            let runtime = wait(&client, &id, timeout, |rt| {
                let clusters = rt["clusters"].as_array().cloned().unwrap_or_default();
                !clusters.is_empty()
                    && clusters
                        .iter()
                        .all(|c| c["activeMembers"].as_u64().unwrap_or(0) >= c["min"].as_u64().unwrap_or(1))
            })
            .await?;
            print_runtime(&runtime, args.output);
            Ok(())
        }
        AppAction::Undeploy { id, no_wait, timeout } => {
            client.call(Method::POST, &format!("/api/applications/{id}/undeploy"), None).await?;
            eprintln!("application {id:?} undeploying");
            if no_wait {
                return Ok(());
            }
            wait(&client, &id, timeout, |rt| rt["status"] == "not-deployed").await?;
            eprintln!("application {id:?} undeployed: no member left");
            Ok(())
        }
        AppAction::Run { id, cluster, command } => {
            let code = crate::workloads::run_task(&client, &id, cluster, command).await?;
            std::process::exit(code);
        }
        AppAction::Status { id } => {
            let runtime =
                client.call(Method::GET, &format!("/api/applications/{id}/runtime"), None).await?.unwrap_or_default();
            print_runtime(&runtime, args.output);
            if args.output == Output::Table {
                let (status, rollout) =
                    client.send(Method::GET, &format!("/api/applications/{id}/rollout"), None).await?;
                if status.is_success() && !rollout.is_null() {
                    crate::rollouts::print_rollout(&rollout);
                }
            }
            Ok(())
        }
        AppAction::Update(update) => crate::rollouts::update(&client, update, args.output).await,
        AppAction::Rollout { action } => crate::rollouts::run(&client, action, args.output).await,
    }
}

/// `application list`: each application with whether it is deployed and its monitor's
/// status (`-o json` gives the definitions whole).
async fn list_with_status(client: &Client) -> Result<()> {
    let list = client.call(Method::GET, "/api/applications", None).await?.unwrap_or_default();
    let apps = list.as_array().cloned().unwrap_or_default();
    if apps.is_empty() {
        println!("no application defined");
        return Ok(());
    }
    let mut table = crate::output::table(vec!["ID", "ALIAS", "STATUS", "CLUSTERS (alias: type min..max)"]);
    for app in &apps {
        let id = app["applicationId"].as_str().unwrap_or_default();
        let runtime = client.call(Method::GET, &format!("/api/applications/{id}/runtime"), None).await?;
        let mut row = crate::output::application_row(app);
        row.insert(2, deployed_status(&runtime.unwrap_or_default()));
        crate::output::add_row(&mut table, row);
    }
    println!("{table}");
    Ok(())
}

/// `not deployed`, or the deployment's state and the application monitor's status
/// (`deployed, Active`; `undeploying`).
fn deployed_status(runtime: &Value) -> String {
    match (runtime["status"].as_str(), runtime["applicationStatus"].as_str()) {
        (Some("not-deployed") | None, _) => "not deployed".into(),
        (Some(status), Some(monitor)) => format!("{status}, {monitor}"),
        (Some(status), None) => status.into(),
    }
}

/// Polls the runtime until `done`, showing one progress line per change.
async fn wait(client: &Client, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let runtime =
            client.call(Method::GET, &format!("/api/applications/{id}/runtime"), None).await?.unwrap_or_default();
        crate::output::progress(progress_line(&runtime), &mut last, tty);
        if done(&runtime) {
            if tty {
                eprintln!();
            }
            return Ok(runtime);
        }
        if started.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            let errors: Vec<String> = runtime["clusters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["error"].as_str().map(|e| format!("  {}: {e}", c["alias"].as_str().unwrap_or("?"))))
                .collect();
            bail!("application {id:?} did not get there within {}\n{}", duration::format(timeout), errors.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn progress_line(runtime: &Value) -> String {
    let clusters: Vec<String> = runtime["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut s = format!(
                "{} {}/{} active ({})",
                c["alias"].as_str().unwrap_or("?"),
                c["activeMembers"],
                c["desired"],
                c["status"].as_str().unwrap_or("?")
            );
            if let Some(e) = c["error"].as_str() {
                s.push_str(&format!(" error: {e}"));
            }
            s
        })
        .collect();
    format!("[{}] {}", runtime["status"].as_str().unwrap_or("?"), clusters.join(" | "))
}

fn print_runtime(runtime: &Value, output: Output) {
    if output != Output::Table {
        return print_one(runtime, output);
    }
    println!(
        "application {}: {}{}{}",
        runtime["applicationId"].as_str().unwrap_or("?"),
        runtime["status"].as_str().unwrap_or("?"),
        runtime["applicationStatus"].as_str().map(|s| format!(", {s}")).unwrap_or_default(),
        runtime["applicationPolicyId"].as_str().map(|p| format!(" (policy {p})")).unwrap_or_default()
    );
    for error in runtime["errors"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        println!("unreadable: {error}");
    }
    print_groups(runtime);
    let mut table = crate::output::table(vec![
        "CLUSTER",
        "GROUP",
        "CARTRIDGE",
        "STATUS",
        "ACTIVE",
        "MIN..MAX",
        "HOST NAMES",
        "ERROR",
    ]);
    for c in runtime["clusters"].as_array().into_iter().flatten() {
        let hosts: Vec<&str> = c["hostNames"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        crate::output::add_row(
            &mut table,
            vec![
                c["clusterId"].as_str().unwrap_or("?").to_string(),
                c["group"].as_str().unwrap_or("-").to_string(),
                c["cartridgeType"].as_str().unwrap_or("?").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
                format!("{}/{}", c["activeMembers"], c["desired"]),
                format!("{}..{}", c["min"], c["max"]),
                hosts.join(" "),
                c["error"].as_str().unwrap_or("").to_string(),
            ],
        );
    }
    println!("{table}");
}

/// The group monitors, nested groups indented under their parent; nothing for an
/// application without groups.
fn print_groups(runtime: &Value) {
    fn rows(groups: &Value, depth: usize, table: &mut Table) {
        for g in groups.as_array().into_iter().flatten() {
            let clusters: Vec<&str> =
                g["clusters"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            crate::output::add_row(
                table,
                vec![
                    format!("{}{}", "  ".repeat(depth), g["alias"].as_str().unwrap_or("?")),
                    g["name"].as_str().unwrap_or("?").to_string(),
                    g["status"].as_str().unwrap_or("?").to_string(),
                    format!("{}..{}", g["min"], g["max"]),
                    clusters.join(" "),
                ],
            );
            rows(&g["groups"], depth + 1, table);
        }
    }
    if runtime["groups"].as_array().is_none_or(|g| g.is_empty()) {
        return;
    }
    let mut table = crate::output::table(vec!["GROUP", "NAME", "STATUS", "MIN..MAX", "CLUSTERS"]);
    rows(&runtime["groups"], 0, &mut table);
    println!("{table}");
}
