//! `stratos <kind> add|update|list|show|remove`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use stratos_model::Kind;

use crate::client::{ApiArgs, Client};
use crate::output::{print_list, print_one, Output};

#[derive(Args)]
pub struct DefinitionArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// How to print results.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// Add definitions from JSON or YAML files (`.yaml`/`.yml` are read as YAML), in order.
    Add {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replace existing definitions with the ones in the files.
    Update {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List every definition of this kind.
    List,
    /// Show one definition in full.
    Show { id: String },
    /// Remove a definition (refused while another definition uses it).
    Remove { id: String },
}

pub async fn run(kind: Kind, args: DefinitionArgs) -> Result<()> {
    run_action(kind, &Client::new(&args.api)?, args.action, args.output).await
}

pub async fn run_action(kind: Kind, client: &Client, action: Action, output: Output) -> Result<()> {
    let collection = format!("/api/{}", kind.resource());
    match action {
        Action::Add { files } => send_files(kind, client, Method::POST, &collection, &files, output).await?,
        Action::Update { files } => send_files(kind, client, Method::PUT, &collection, &files, output).await?,
        Action::List => {
            let list = client.call(Method::GET, &collection, None).await?.unwrap_or_default();
            print_list(kind, &list, output);
        }
        Action::Show { id } => {
            let one = client.call(Method::GET, &format!("{collection}/{id}"), None).await?.unwrap_or_default();
            print_one(&one, output);
        }
        Action::Remove { id } => {
            client.call(Method::DELETE, &format!("{collection}/{id}"), None).await?;
            if output == Output::Table {
                println!("{} {id:?} removed", kind.words());
            }
        }
    }
    Ok(())
}

/// Adds (POST) or replaces (PUT) the definitions in `files`, in order; stops at the first refusal.
async fn send_files(
    kind: Kind,
    client: &Client,
    method: Method,
    collection: &str,
    files: &[PathBuf],
    output: Output,
) -> Result<()> {
    let (doing, done) = if method == Method::POST { ("adding", "added") } else { ("updating from", "updated") };
    for file in files {
        let (text, content_type) = read(file)?;
        let answer = client
            .call(method.clone(), collection, Some((text, content_type)))
            .await
            .with_context(|| format!("{doing} {}", file.display()))?;
        report(kind, done, answer, output);
    }
    Ok(())
}

fn report(kind: Kind, verb: &str, value: Option<serde_json::Value>, output: Output) {
    let value = value.unwrap_or_default();
    match output {
        Output::Table => {
            let id = value[kind.id_field()].as_str().unwrap_or("?");
            println!("{} {id:?} {verb}", kind.words());
            for warning in value["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", warning.as_str().unwrap_or_default());
            }
        }
        _ => print_one(&value, output),
    }
}

pub(crate) fn read(file: &PathBuf) -> Result<(String, &'static str)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("yaml") | Some("yml") => "application/yaml",
        Some("json") => "application/json",
        _ => match stratos_model::Format::sniff(&text) {
            stratos_model::Format::Json => "application/json",
            stratos_model::Format::Yaml => "application/yaml",
        },
    };
    Ok((text, content_type))
}
