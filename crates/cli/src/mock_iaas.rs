//! `stratos up`'s mock IaaS (the `mock` provider, as in Apache Stratos 4.1): its flags,
//! and its patterns file in the data directory (4.1's `mock-iaas.xml`), read at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use stratos_model::duration::{self, VALUE_NAME as DURATION};
use stratos_model::{Format, MockIaasConfig, Problems, SUPER_TENANT};
use stratos_store::Store;

/// The names the patterns file may have in the data directory (JSON or YAML, as definitions).
pub const FILES: [&str; 3] = ["mock-iaas.json", "mock-iaas.yaml", "mock-iaas.yml"];

#[derive(Args, Clone)]
pub struct MockArgs {
    /// Do not offer the `mock` provider: members that run nothing yet report themselves
    /// active, for trying Apache Stratos 4.1's samples and watching the autoscaler without
    /// load. A production platform may want a network partition naming it refused.
    #[arg(long)]
    no_mock_iaas: bool,
    /// How long a mock member takes from started to active.
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "1s")]
    mock_activation_delay: Duration,
    /// How often a mock member reports its health statistics (as an agent's
    /// STRATOS_HEALTH_STATS_INTERVAL); under --member-fault-after.
    #[arg(long, value_name = DURATION, value_parser = duration::positive, default_value = "5s")]
    mock_stats_interval: Duration,
}

impl MockArgs {
    pub fn enabled(&self) -> bool {
        !self.no_mock_iaas
    }

    /// The `mock` driver on `bus`, following `patterns`.
    pub async fn driver(
        &self,
        bus: stratos_bus::Bus,
        patterns: Arc<stratos_cloud::MockPatterns>,
    ) -> Arc<dyn stratos_cloud::Driver> {
        let driver =
            stratos_cloud::mock_iaas::driver(bus, self.mock_activation_delay, self.mock_stats_interval, patterns).await;
        Arc::new(driver)
    }
}

/// The patterns file of `data_dir`, if there is one; two is an error (which one?).
fn patterns_file(data_dir: &Path) -> Result<Option<PathBuf>> {
    let found: Vec<PathBuf> = FILES.iter().map(|f| data_dir.join(f)).filter(|p| p.exists()).collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        more => anyhow::bail!(
            "more than one mock IaaS patterns file: {}; keep one",
            more.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Reads the data directory's patterns file, if any, and stores its patterns in place of
/// those set before (by the API): as 4.1 read `mock-iaas.xml` at start. A file with a
/// problem stops the start, naming the file and each field at fault.
pub async fn load_file(store: &Store, data_dir: &Path) -> Result<()> {
    let Some(file) = patterns_file(data_dir)? else { return Ok(()) };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = if file.extension().is_some_and(|e| e == "json") { Format::Json } else { Format::Yaml };
    let config: MockIaasConfig = stratos_model::parse(&text, format).map_err(|p| problems(&file, p))?;
    let mut found = Problems::default();
    config.validate(&mut found);
    if !found.is_empty() {
        return Err(problems(&file, found));
    }
    store.put_record(SUPER_TENANT, &config).await?;
    tracing::info!(file = %file.display(), cartridges = config.cartridges.len(), "mock IaaS patterns read");
    Ok(())
}

fn problems(file: &Path, problems: Problems) -> anyhow::Error {
    let lines: Vec<String> = problems.0.iter().map(|p| format!("  {}: {}", p.path, p.message)).collect();
    anyhow::anyhow!("the mock IaaS patterns in {} are not valid:\n{}", file.display(), lines.join("\n"))
}
