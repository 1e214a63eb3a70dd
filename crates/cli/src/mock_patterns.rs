//! `stratos mock-iaas show|set`: the mock IaaS's health-statistics patterns (platform admins).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

#[derive(Args)]
pub struct MockIaasArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Yaml)]
    output: Output,
    #[command(subcommand)]
    action: MockIaasAction,
}

#[derive(Subcommand)]
enum MockIaasAction {
    /// Show the patterns in force.
    Show,
    /// Replace every pattern with those of FILE (JSON or YAML, as `mock-iaas.json` in the
    /// data directory): running mock members follow them within a second.
    ///
    /// Per cartridge type, at most one pattern per factor (load-average, memory-consumption):
    /// constant (value), ramp (from, to, duration), step (from, to, at), sine (mean, amplitude,
    /// period), or samples (sampleValues, sampleDuration, mode loop|continue|stop), e.g.
    ///
    ///   cartridges:
    ///     - type: php
    ///       patterns:
    ///         - { factor: load-average, pattern: step, from: 20, to: 150, at: 2m }
    Set { file: PathBuf },
}

pub async fn run(args: MockIaasArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let answer = match args.action {
        MockIaasAction::Show => client.call(Method::GET, "/api/mockIaas", None).await?,
        MockIaasAction::Set { file } => {
            let body = crate::definitions::read(&file)?;
            let answer = client.call(Method::PUT, "/api/mockIaas", Some(body)).await?;
            if args.output == Output::Table {
                println!("mock IaaS patterns set from {}", file.display());
                return Ok(());
            }
            answer
        }
    };
    print_one(&answer.unwrap_or_default(), args.output);
    Ok(())
}
