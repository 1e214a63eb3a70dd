//! `stratos restore FILE`: a backup written into the empty store of a platform that is
//! not running (offline: straight into SQLite or PostgreSQL, not through the API), then
//! what the operator copies from the old data directory (`key_files.rs`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use stratos_store::{Store, StoreError};

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file `stratos backup` wrote.
    file: PathBuf,
    /// The data directory of the platform to restore (its SQLite store is
    /// `DATA_DIR/stratos.db`); the one `stratos up --data-dir` will be given.
    #[arg(long, env = "STRATOS_DATA_DIR", default_value = ".stratos")]
    data_dir: PathBuf,
    /// Restore into this store instead (`postgres://user:pass@host/db`, or a SQLite
    /// path), as `stratos up --store` names it.
    #[arg(long, alias = "store", env = "STRATOS_STORE", hide_env_values = true)]
    store_url: Option<String>,
}

pub async fn run(args: RestoreArgs) -> Result<()> {
    let started = Instant::now();
    let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    eprintln!("reading {}", args.file.display());
    let (header, documents) = stratos_store::backup::read(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a backup this build can restore", args.file.display()))?;
    eprintln!(
        "  platform {}, taken {} from a {} store: {} documents in {} collections of {} tenant id(s)",
        header.platform_id.as_deref().unwrap_or("(no id)"),
        header.created_at,
        header.store,
        header.documents,
        header.collections.len(),
        header.tenants
    );

    let store = open(&args).await?;
    eprintln!("checking that {} is empty", store.describe());
    let held = store.document_count().await?;
    if held > 0 {
        bail!(StoreError::NotEmpty { db: store.describe(), documents: held });
    }
    eprintln!("writing {} documents in one transaction", documents.len());
    let written = store.import(documents).await?;
    eprintln!("  done in {} ms", started.elapsed().as_millis());

    println!("restored {written} documents into {}", store.describe());
    println!("  {:<28} documents", "collection");
    for (collection, count) in &header.collections {
        println!("  {collection:<28} {count}");
    }
    println!("  platform id {}", header.platform_id.as_deref().unwrap_or("(none)"));
    print!("{}", crate::key_files::instructions(&args.data_dir));
    Ok(())
}

/// The target store; a SQLite store held by a running platform is refused, saying so.
async fn open(args: &RestoreArgs) -> Result<Store> {
    let opened = match &args.store_url {
        Some(url) => Store::open(url).await,
        None => Store::open_sqlite(&args.data_dir.join("stratos.db")).await,
    };
    match opened {
        Ok(store) => Ok(store),
        Err(e) if e.to_string().contains("database is locked") => bail!(
            "a platform is running on {} (its store is locked by another process): stop it first; a backup is \
             restored only into the empty store of a stopped platform",
            args.store_url.clone().unwrap_or_else(|| args.data_dir.display().to_string())
        ),
        Err(e) => Err(e.into()),
    }
}
