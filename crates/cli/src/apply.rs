//! `stratos apply -f DIR|FILE…` and `stratos diff -f …`: definitions of any kind from
//! files (JSON or YAML, Apache Stratos 4.1's as they are), over the REST API. Each is
//! created if new, updated if changed, left alone if equal, in an order that puts it
//! after what it names; one line per definition. With `--prune`, definitions of the
//! platform that no file has are removed (in the reverse order; one in use is refused).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use stratos_model::{Format, Kind};

use crate::apply_plan::{self, ORDER};
use crate::client::{describe_error, ApiArgs, Client};

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// A definition file (`.json`, `.yaml`, `.yml`) or a directory of them (read
    /// recursively, other files ignored); repeatable. Each file holds one definition,
    /// whose kind is told by its fields.
    #[arg(short = 'f', long = "filename", value_name = "DIR|FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Also remove the platform's definitions that no file has (one in use is refused).
    /// Nothing is removed when a file could not be read.
    #[arg(long)]
    prune: bool,
}

/// One definition read from a file.
struct Item {
    file: PathBuf,
    kind: Kind,
    id: String,
    /// As written (sent as is, so that the API's problems name the file's own fields).
    text: String,
    content_type: &'static str,
    /// As the API would store it.
    canonical: Value,
}

/// What the files hold: the definitions in apply order, and the files refused.
struct Read {
    items: Vec<Item>,
    refused: Vec<(PathBuf, String)>,
}

/// `stratos apply`.
pub async fn apply(args: ApplyArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    apply_files(&client, &args.files, args.prune).await
}

/// What `apply` does, for commands that apply definitions first (`application update -f`).
pub async fn apply_files(client: &Client, files: &[PathBuf], prune_others: bool) -> Result<()> {
    let read = read_all(files)?;
    let mut refused = report_unread(&read);
    for item in &read.items {
        let what = format!("{} {}", item.kind, item.id);
        let line = match current(client, item).await? {
            Some(now) if now == item.canonical => format!("unchanged {what}"),
            existing => {
                let (method, path) = match existing {
                    Some(_) => (Method::PUT, format!("/api/{}/{}", item.kind.resource(), item.id)),
                    None => (Method::POST, format!("/api/{}", item.kind.resource())),
                };
                let (status, body) =
                    client.send(method.clone(), &path, Some((item.text.clone(), item.content_type))).await?;
                match (status.is_success(), method == Method::POST) {
                    (true, true) => format!("created   {what}"),
                    (true, false) => format!("updated   {what}"),
                    (false, _) => {
                        refused += 1;
                        format!("refused   {what} ({}): {}", item.file.display(), describe(status, &body))
                    }
                }
            }
        };
        println!("{line}");
    }
    if prune_others {
        refused += prune(client, &read, true).await?;
    }
    if refused > 0 {
        bail!("{refused} refused");
    }
    Ok(())
}

/// `stratos diff`: what `apply` would do, with each changed field.
pub async fn diff(args: ApplyArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let read = read_all(&args.files)?;
    let refused = report_unread(&read);
    for item in &read.items {
        match current(&client, item).await? {
            None => println!("+ {} {}   (new, {})", item.kind, item.id, item.file.display()),
            Some(now) if now == item.canonical => println!("= {} {}", item.kind, item.id),
            Some(now) => {
                println!("~ {} {}   ({})", item.kind, item.id, item.file.display());
                for (path, was, will) in apply_plan::differences(&now, &item.canonical) {
                    println!("    {path}: {was} → {will}");
                }
            }
        }
    }
    if args.prune {
        prune(&client, &read, false).await?;
    }
    if refused > 0 {
        bail!("{refused} file(s) cannot be applied");
    }
    Ok(())
}

/// Prints the files that hold no definition to apply; how many.
fn report_unread(read: &Read) -> usize {
    for (file, why) in &read.refused {
        println!("refused   {}: {why}", file.display());
    }
    read.refused.len()
}

/// The platform's form of the definition, if it has one (canonical as the file's).
async fn current(client: &Client, item: &Item) -> Result<Option<Value>> {
    let (status, body) = client.send(Method::GET, &format!("/api/{}/{}", item.kind.resource(), item.id), None).await?;
    match status {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => Ok(Some(apply_plan::canonical(item.kind, &body).unwrap_or(body))),
        s => bail!("cannot read {} {}: {}", item.kind, item.id, describe(s, &body)),
    }
}

/// Removes (or with `write` false, names) the platform's definitions no file has, the
/// kinds that name others first; how many were refused.
async fn prune(client: &Client, read: &Read, write: bool) -> Result<usize> {
    if !read.refused.is_empty() {
        println!(
            "not pruning: {} file(s) could not be read, whose definitions would be taken for gone",
            read.refused.len()
        );
        return Ok(usize::from(write));
    }
    let keep: BTreeSet<(Kind, &str)> = read.items.iter().map(|i| (i.kind, i.id.as_str())).collect();
    let mut refused = 0;
    for kind in ORDER.iter().rev() {
        let (status, list) = client.send(Method::GET, &format!("/api/{}", kind.resource()), None).await?;
        if !status.is_success() {
            bail!("cannot list {}s: {}", kind.words(), describe(status, &list));
        }
        for def in list.as_array().into_iter().flatten() {
            let Some(id) = def.get(kind.id_field()).and_then(Value::as_str) else { continue };
            if keep.contains(&(*kind, id)) {
                continue;
            }
            if !write {
                println!("- {kind} {id}   (in no file)");
                continue;
            }
            let (status, body) = client.send(Method::DELETE, &format!("/api/{}/{id}", kind.resource()), None).await?;
            if status.is_success() {
                println!("removed   {kind} {id}");
            } else {
                refused += 1;
                println!("refused   {kind} {id} (removal): {}", describe(status, &body));
            }
        }
    }
    Ok(refused)
}

/// The API's error on one line: its message and each field at fault.
fn describe(status: StatusCode, body: &Value) -> String {
    describe_error(status, &body.to_string()).replace("\n  ", "; ")
}

/// Reads every file named or under a directory named, in apply order.
fn read_all(paths: &[PathBuf]) -> Result<Read> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files).with_context(|| format!("cannot read {}", path.display()))?;
    }
    let mut read = Read { items: Vec::new(), refused: Vec::new() };
    for file in files {
        match read_one(&file) {
            Ok(item) => {
                if let Some(first) = read.items.iter().find(|i| i.kind == item.kind && i.id == item.id) {
                    let why = format!("{} {} is also defined in {}", item.kind, item.id, first.file.display());
                    read.refused.push((file, why));
                } else {
                    read.items.push(item);
                }
            }
            Err(why) => read.refused.push((file, why)),
        }
    }
    // Stable: within a kind, the files' order.
    read.items.sort_by_key(|i| ORDER.iter().position(|k| *k == i.kind));
    Ok(read)
}

/// `path` itself if a file; the definition files under it, sorted, if a directory.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, out)?;
        } else if entry.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "json" | "yaml" | "yml")) {
            out.push(entry);
        }
    }
    Ok(())
}

fn read_one(file: &PathBuf) -> Result<Item, String> {
    let (text, content_type) = crate::definitions::read(file).map_err(|e| format!("{e:#}"))?;
    let format = if content_type.contains("yaml") { Format::Yaml } else { Format::Json };
    let value: Value = stratos_model::parse(&text, format).map_err(|p| problems(&p))?;
    let kind = apply_plan::kind_of(&value)?;
    let id = apply_plan::id_of(kind, &value)?;
    let canonical =
        apply_plan::canonical_text(kind, &text, format).map_err(|p| format!("{kind} {id}: {}", problems(&p)))?;
    Ok(Item { file: file.clone(), kind, id, text, content_type, canonical })
}

fn problems(p: &stratos_model::Problems) -> String {
    p.0.iter()
        .map(|p| if p.path.is_empty() { p.message.clone() } else { format!("{}: {}", p.path, p.message) })
        .collect::<Vec<_>>()
        .join("; ")
}
