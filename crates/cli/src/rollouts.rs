//! `stratos application update APP [-f DIR]` and `stratos application rollout
//! status|history|undo APP`: revisions and rolling updates over the REST API
//! (`manager::rollouts`). Waiting shows one progress line per change.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::client::Client;
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct UpdateArgs {
    /// The deployed application (or definition files: see above).
    #[arg(value_name = "APP", required = true, num_args = 1..)]
    targets: Vec<String>,
    /// First apply the definitions in these files or directories, as `stratos apply -f`
    /// does; then roll out what changed.
    #[arg(short = 'f', long = "filename", value_name = "DIR|FILE", num_args = 1..)]
    files: Vec<PathBuf>,
    /// New members started beyond the desired size at a time.
    #[arg(long, default_value_t = 1)]
    max_surge: u32,
    /// Members in service the cluster may lack against its desired size meanwhile.
    #[arg(long, default_value_t = 0)]
    max_unavailable: u32,
    /// The rollout fails (the new members drain, the old revision stays) unless done
    /// within this long; it also fails once 3 new members fail in a row.
    #[arg(long, value_name = DURATION, value_parser = duration::positive, default_value = "5m")]
    deadline: Duration,
    /// Return once the rollout started, without waiting for it to end.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
pub enum RolloutAction {
    /// The latest rollout: its status, why it failed, members old and new per cluster.
    Status { id: String },
    /// Every rollout of the application, newest first.
    History { id: String },
    /// Roll the latest rollout back: its clusters return to the revisions it came from,
    /// one member at a time. Waits, showing progress.
    Undo {
        id: String,
        /// Return once the rollout back started.
        #[arg(long)]
        no_wait: bool,
    },
}

impl UpdateArgs {
    /// The files of `application update FILE...` (every target a JSON or YAML file that
    /// exists, and no rollout option): a definition update, not a rollout.
    pub fn definition_files(&self) -> Option<Vec<PathBuf>> {
        let file = |t: &String| {
            let path = std::path::Path::new(t);
            path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml"))
        };
        (self.files.is_empty() && self.targets.iter().all(file))
            .then(|| self.targets.iter().map(PathBuf::from).collect())
    }
}

/// `application update`.
pub async fn update(client: &Client, args: UpdateArgs, output: Output) -> Result<()> {
    let [id] = args.targets.as_slice() else { bail!("give one application to update (or only definition files)") };
    let id = id.clone();
    if !args.files.is_empty() {
        crate::apply::apply_files(client, &args.files, false).await?;
    }
    let body = json!({
        "maxSurge": args.max_surge,
        "maxUnavailable": args.max_unavailable,
        "deadline": duration::format(args.deadline),
    });
    let path = format!("/api/applications/{id}/update");
    let outcome =
        client.call(Method::POST, &path, Some((body.to_string(), "application/json"))).await?.unwrap_or_default();
    eprintln!("{}", outcome["message"].as_str().unwrap_or_default());
    if outcome["started"] != Value::Bool(true) {
        return Ok(());
    }
    finish(client, &id, &outcome["rollout"], args.no_wait, args.deadline, output).await
}

pub async fn run(client: &Client, action: RolloutAction, output: Output) -> Result<()> {
    match action {
        RolloutAction::Status { id } => {
            let view = client.call(Method::GET, &format!("/api/applications/{id}/rollout"), None).await?;
            let view = view.unwrap_or_default();
            if output != Output::Table {
                print_one(&view, output);
            } else if view.is_null() {
                println!("application {id:?} has had no rollout since it was deployed");
            } else {
                print_rollout(&view);
            }
            Ok(())
        }
        RolloutAction::History { id } => {
            let list = client.call(Method::GET, &format!("/api/applications/{id}/rollout/history"), None).await?;
            let list = list.unwrap_or_default();
            if output != Output::Table {
                print_one(&list, output);
                return Ok(());
            }
            let mut table = crate::output::table(vec!["#", "STATUS", "REVISIONS", "STARTED BY", "REASON"]);
            for r in list.as_array().into_iter().flatten() {
                crate::output::add_row(
                    &mut table,
                    vec![
                        r["number"].to_string(),
                        r["status"].as_str().unwrap_or("?").into(),
                        moves(r),
                        r["requestedBy"].as_str().unwrap_or("?").into(),
                        r["reason"].as_str().unwrap_or_default().into(),
                    ],
                );
            }
            println!("{table}");
            Ok(())
        }
        RolloutAction::Undo { id, no_wait } => {
            let path = format!("/api/applications/{id}/rollout/undo");
            let outcome = client.call(Method::POST, &path, None).await?.unwrap_or_default();
            eprintln!("{}", outcome["message"].as_str().unwrap_or_default());
            let deadline = outcome["rollout"]["deadline"].as_str().and_then(|d| duration::parse(d).ok());
            finish(client, &id, &outcome["rollout"], no_wait, deadline.unwrap_or(Duration::from_secs(300)), output)
                .await
        }
    }
}

/// Waits for a rollout to end (a little past its deadline, by which the controller
/// ends it), then prints it; an error unless it completed.
async fn finish(
    client: &Client,
    id: &str,
    started: &Value,
    no_wait: bool,
    deadline: Duration,
    output: Output,
) -> Result<()> {
    let mut view = started.clone();
    if !no_wait {
        let tty = std::io::stderr().is_terminal();
        let begun = Instant::now();
        let mut last = String::new();
        loop {
            crate::output::progress(progress_line(&view), &mut last, tty);
            if view["status"] != "progressing" || begun.elapsed() > deadline + Duration::from_secs(30) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            view =
                client.call(Method::GET, &format!("/api/applications/{id}/rollout"), None).await?.unwrap_or_default();
        }
        if tty {
            eprintln!();
        }
    }
    if output != Output::Table {
        print_one(&view, output);
    } else {
        print_rollout(&view);
    }
    match view["status"].as_str() {
        Some("complete") => Ok(()),
        Some("progressing") if no_wait => Ok(()),
        Some(status) => bail!(
            "rollout {} of application {id:?} is {status}{}",
            view["number"],
            view["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        None => bail!("rollout of application {id:?}: no status"),
    }
}

fn revision(v: &Value) -> String {
    v.as_u64().map_or_else(|| "live".to_string(), |n| n.to_string())
}

fn moves(r: &Value) -> String {
    r["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {}→{}", c["clusterId"].as_str().unwrap_or("?"), revision(&c["from"]), revision(&c["to"])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line of a rollout's progress.
fn progress_line(view: &Value) -> String {
    let clusters: Vec<String> = view["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} rev {}: {} updated, {} starting, {} old",
                c["clusterId"].as_str().unwrap_or("?"),
                revision(&c["to"]),
                c["updated"],
                c["starting"],
                c["old"]
            )
        })
        .collect();
    format!("[rollout {} {}] {}", view["number"], view["status"].as_str().unwrap_or("?"), clusters.join(" | "))
}

/// A rollout in a few lines (also under `application status`).
pub fn print_rollout(view: &Value) {
    println!(
        "rollout {}: {} ({}){}",
        view["number"],
        view["status"].as_str().unwrap_or("?"),
        moves(view),
        view["undoOf"].as_u64().map(|n| format!(", undoing rollout {n}")).unwrap_or_default()
    );
    if let Some(reason) = view["reason"].as_str() {
        println!("  reason: {reason}");
    }
    for c in view["clusters"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} updated, {} starting, {} old",
            c["clusterId"].as_str().unwrap_or("?"),
            c["updated"],
            c["starting"],
            c["old"]
        );
    }
}
