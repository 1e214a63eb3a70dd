//! `stratos backup > FILE`: the platform's whole state, through the API (platform
//! admins), written to standard output as it comes; what it holds said on standard error.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use reqwest::Method;
use stratos_store::backup::{parse_header, BackupHeader};

use crate::client::{ApiArgs, Client};

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn run(args: BackupArgs) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if stdout.is_terminal() {
        bail!(
            "a backup is written to standard output: redirect it to a file (`stratos backup > stratos-backup.jsonl`)"
        );
    }
    let client = Client::new(&args.api)?;
    let mut response = client.stream(Method::GET, "/api/backup", None).await?;
    let mut header: Option<BackupHeader> = None;
    let mut first_line: Vec<u8> = Vec::new();
    let (mut lines, mut bytes) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.context("reading the backup from the API")? {
        if header.is_none() {
            first_line.extend_from_slice(&chunk);
            if let Some(end) = first_line.iter().position(|b| *b == b'\n') {
                let text = String::from_utf8_lossy(&first_line[..end]).into_owned();
                header = Some(parse_header(&text)?);
            }
        }
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        bytes += chunk.len();
        stdout.write_all(&chunk).context("writing the backup to standard output")?;
    }
    stdout.flush().context("writing the backup to standard output")?;
    let Some(header) = header else { bail!("the API sent no backup header") };
    let documents = lines.saturating_sub(1);
    if documents != header.documents {
        bail!(
            "the backup is incomplete: {documents} of {} documents arrived (the connection ended early)",
            header.documents
        );
    }
    eprintln!(
        "backup of platform {}: {} documents in {} collections of {} tenant id(s), {bytes} bytes, taken {} from its {} store",
        header.platform_id.as_deref().unwrap_or("(no id)"),
        header.documents,
        header.collections.len(),
        header.tenants,
        header.created_at,
        header.store,
    );
    eprintln!(
        "it holds password and token hashes and encrypted secrets: keep it private. The data directory's key files \
         (bus-password, secrets.key, TLS keys) are not in it: keep them apart; `stratos restore` names them."
    );
    Ok(())
}
