//! `stratos config set|unset|list APP`: an application's configuration, its members'
//! environment variables (`PATCH|GET /api/applications/{id}/config`), and
//! `stratos config rotate-key` (`POST /api/config/rotate-key`). A change's rolling
//! restarts are followed as `stratos cluster restart` follows one.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: ConfigAction,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Set environment variables of an application's members: app-wide, or for one
    /// cluster with --cluster (a cluster's value wins). With --secret the values are
    /// stored encrypted under the platform key and never shown again (list gives their
    /// names and revisions). The clusters whose environment changes are restarted one
    /// member at a time (progress shown until done); --no-restart leaves running members
    /// as they are: members started later get the change.
    ///
    /// Keys are environment variable names, none of the platform's (STRATOS_*, PORT,
    /// PORT_*, HOME, USER, LOGNAME, LD_*); values are at most 32 KiB. A KEY given without
    /// =VALUE takes its value from standard input (one such key), which keeps a secret out
    /// of the shell's history and the process list:
    ///   printf %s "$TOKEN" | stratos config set shop API_TOKEN --secret
    #[command(verbatim_doc_comment)]
    Set {
        /// The application (its applicationId).
        app: String,
        /// KEY=VALUE pairs; a bare KEY takes its value from standard input.
        #[arg(required = true, value_name = "KEY=VALUE")]
        entries: Vec<String>,
        /// The cluster alias the values are for (default: the whole application).
        #[arg(long, value_name = "ALIAS")]
        cluster: Option<String>,
        /// The values are secrets: encrypted at rest, never shown.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        roll: Roll,
    },
    /// Remove environment variables of an application's members (app-wide, or a
    /// cluster's own with --cluster); restarts as `set` does.
    Unset {
        /// The application (its applicationId).
        app: String,
        /// The keys to remove.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// Remove the cluster's own entries (its alias), not the app-wide ones.
        #[arg(long, value_name = "ALIAS")]
        cluster: Option<String>,
        #[command(flatten)]
        roll: Roll,
    },
    /// An application's configuration: plain values, secrets by name and revision only.
    /// With --cluster, what that cluster's members get (its own entries winning).
    List {
        /// The application (its applicationId).
        app: String,
        /// Show what this cluster's members get (its alias).
        #[arg(long, value_name = "ALIAS")]
        cluster: Option<String>,
    },
    /// Seal every stored secret under a new platform key, then retire the old key
    /// (platform admins). Stopped half-way, every secret still opens: run it again.
    #[command(name = "rotate-key")]
    RotateKey,
}

/// How a change reaches running members.
#[derive(Args)]
struct Roll {
    /// Do not restart members: the change reaches members started from now on.
    #[arg(long)]
    no_restart: bool,
    /// Return once the change is stored and its restarts asked for.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting for the restarts after this long (they go on).
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "10m")]
    timeout: Duration,
}

pub async fn run(args: ConfigArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.action {
        ConfigAction::Set { app, entries, cluster, secret, roll } => {
            let set = parse_entries(&entries, std::io::stdin())?;
            let body = json!({"cluster": cluster, "set": set, "secret": secret, "restart": !roll.no_restart});
            change(&client, &app, body, &roll, args.output).await
        }
        ConfigAction::Unset { app, keys, cluster, roll } => {
            let body = json!({"cluster": cluster, "unset": keys, "restart": !roll.no_restart});
            change(&client, &app, body, &roll, args.output).await
        }
        ConfigAction::List { app, cluster } => list(&client, &app, cluster.as_deref(), args.output).await,
        ConfigAction::RotateKey => {
            let rotated = client.call(Method::POST, "/api/config/rotate-key", None).await?.unwrap_or_default();
            if args.output != Output::Table {
                print_one(&rotated, args.output);
            } else {
                let retired: Vec<&str> =
                    rotated["retired"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!(
                    "secrets key rotated: key {}; {} secret(s) sealed again; retired: {}",
                    rotated["keyId"].as_str().unwrap_or("?"),
                    rotated["resealed"],
                    if retired.is_empty() { "none".to_string() } else { retired.join(", ") }
                );
            }
            Ok(())
        }
    }
}

/// `KEY=VALUE`s as a map; one bare `KEY` takes the whole of `stdin` (less one final newline).
fn parse_entries(entries: &[String], mut stdin: impl Read) -> Result<Map<String, Value>> {
    let mut set = Map::new();
    let mut from_stdin = None;
    for entry in entries {
        match entry.split_once('=') {
            Some((key, value)) => {
                set.insert(key.to_string(), Value::String(value.to_string()));
            }
            None if from_stdin.is_none() => from_stdin = Some(entry.clone()),
            None => {
                bail!("only one KEY may take its value from standard input ({} and {entry} do)", from_stdin.unwrap())
            }
        }
    }
    if let Some(key) = from_stdin {
        let mut value = String::new();
        stdin.read_to_string(&mut value).with_context(|| format!("reading the value of {key} from standard input"))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        set.insert(key, Value::String(value));
    }
    Ok(set)
}

async fn change(client: &Client, app: &str, body: Value, roll: &Roll, output: Output) -> Result<()> {
    let path = format!("/api/applications/{app}/config");
    let body = Some((body.to_string(), "application/json"));
    let answer = client.call(Method::PATCH, &path, body).await?.unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let (changed, unchanged, restarts) =
        (strings(&answer["changed"]), strings(&answer["unchanged"]), strings(&answer["restarts"]));
    if output == Output::Table {
        let list = |keys: &[String]| if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
        println!("application {app}: changed {}; unchanged {}", list(&changed), list(&unchanged));
        if answer["deployed"] != Value::Bool(true) {
            println!("not deployed: its members get this configuration when it is");
        } else if roll.no_restart && !changed.is_empty() {
            println!(
                "running members keep their environment; members started from now on get the change \
                 (`stratos cluster restart CLUSTER` replaces them)"
            );
        }
    }
    if restarts.is_empty() || roll.no_wait {
        if output != Output::Table {
            print_one(&answer, output);
        } else if !restarts.is_empty() {
            println!("restarting {}", restarts.join(", "));
        }
        return Ok(());
    }
    let statuses = follow(client, &restarts, roll.timeout).await?;
    if output != Output::Table {
        print_one(&json!({"change": answer, "restarts": statuses}), output);
    } else {
        for (cluster, status) in restarts.iter().zip(&statuses) {
            println!("cluster {cluster} restarted: {} member(s) replaced", list_len(&status["replacements"]));
        }
    }
    Ok(())
}

/// Follows the clusters' rolling restarts until none has an old member left.
async fn follow(client: &Client, clusters: &[String], timeout: Duration) -> Result<Vec<Value>> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let mut statuses = Vec::new();
        for cluster in clusters {
            let path = format!("/api/clusters/{cluster}/restart");
            statuses.push(client.call(Method::GET, &path, None).await?.unwrap_or_default());
        }
        let line: Vec<String> = clusters.iter().zip(&statuses).map(|(c, s)| restart_line(c, s)).collect();
        crate::output::progress(line.join("; "), &mut last, tty);
        if statuses.iter().all(|s| s["running"] == Value::Bool(false)) {
            if tty {
                eprintln!();
            }
            return Ok(statuses);
        }
        if started.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            let errors: Vec<String> = clusters
                .iter()
                .zip(&statuses)
                .filter_map(|(c, s)| s["error"].as_str().map(|e| format!("\n  {c}: {e}")))
                .collect();
            bail!("the restarts did not finish within {} (they go on){}", duration::format(timeout), errors.concat());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn list_len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// One cluster's part of the progress line: old members left, replacements by status.
fn restart_line(cluster: &str, status: &Value) -> String {
    let replacements: Vec<String> = status["replacements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| format!("{} {}", m["memberId"].as_str().unwrap_or("?"), m["status"].as_str().unwrap_or("?")))
        .collect();
    let mut line = format!(
        "{cluster}: {} old member(s) left; replacements: {}",
        list_len(&status["remaining"]),
        if replacements.is_empty() { "none yet".to_string() } else { replacements.join(", ") }
    );
    if let Some(e) = status["error"].as_str() {
        line.push_str(&format!(" error: {e}"));
    }
    line
}

async fn list(client: &Client, app: &str, cluster: Option<&str>, output: Output) -> Result<()> {
    let mut path = format!("/api/applications/{app}/config");
    if let Some(alias) = cluster {
        path.push_str(&format!("?cluster={alias}"));
    }
    let config = client.call(Method::GET, &path, None).await?.unwrap_or_default();
    if output != Output::Table {
        print_one(&config, output);
        return Ok(());
    }
    let entries = config["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("application {app} has no configuration{}", cluster.map(|c| format!(" for {c}")).unwrap_or_default());
        return Ok(());
    }
    let mut table = crate::output::table(vec!["SCOPE", "KEY", "VALUE", "REVISION", "UPDATED BY"]);
    for e in entries {
        let value = if e["secret"] == Value::Bool(true) {
            format!("(secret, key {})", e["keyId"].as_str().unwrap_or("?"))
        } else {
            e["value"].as_str().unwrap_or("").to_string()
        };
        crate::output::add_row(
            &mut table,
            vec![
                e["scope"].as_str().unwrap_or("?").to_string(),
                e["key"].as_str().unwrap_or("?").to_string(),
                value,
                e["revision"].to_string(),
                e["updatedBy"].as_str().unwrap_or("").to_string(),
            ],
        );
    }
    println!("{table}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_at_the_first_equals_and_one_bare_key_reads_stdin() {
        let entries = ["A=1".to_string(), "B=x=y".into(), "C=".into(), "TOKEN".into()];
        let set = parse_entries(&entries, "s3cr3t\n".as_bytes()).unwrap();
        assert_eq!(Value::Object(set), json!({"A": "1", "B": "x=y", "C": "", "TOKEN": "s3cr3t"}));
        let two = ["A".to_string(), "B".into()];
        assert!(parse_entries(&two, "".as_bytes()).is_err());
    }
}
