//! The metrics flags: `--metrics-listen` (a standalone component's admin listener) and
//! `--metrics-token-file` (the scrape token Prometheus presents). Metrics are never
//! served anonymously, nor on a proxy port.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use stratos_metrics::{Scrape, ScrapeToken};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics as `GET /metrics` on this address (an admin listener of
    /// its own, never a proxy port), to clients presenting the scrape token of
    /// --metrics-token-file. Off by default.
    #[arg(long, env = "STRATOS_METRICS_LISTEN", requires = "metrics_token_file")]
    pub metrics_listen: Option<SocketAddr>,
    /// A file whose first line is the scrape token (at least 16 characters; keep it
    /// 0600) that Prometheus sends as `Authorization: Bearer <token>`. With `stratos up`
    /// it also opens `GET /api/metrics` (which platform admins read with their own token).
    #[arg(long, env = "STRATOS_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// The scrape token, if a file is given.
    pub fn token(&self) -> anyhow::Result<Option<ScrapeToken>> {
        self.metrics_token_file.as_deref().map(ScrapeToken::from_file).transpose().context("--metrics-token-file")
    }

    /// Starts the admin listener if asked for.
    pub async fn serve(&self, scrape: &Scrape) -> anyhow::Result<Option<SocketAddr>> {
        let Some(addr) = self.metrics_listen else { return Ok(None) };
        let token = self.token()?.context("--metrics-listen needs --metrics-token-file")?;
        if !addr.ip().is_loopback() {
            tracing::warn!(listen = %addr, "metrics are served in plain HTTP: the scrape token crosses the network readable (keep it on a private network)");
        }
        let bound = stratos_metrics::admin::start(addr, scrape.clone(), token)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics (--metrics-listen)"))?;
        Ok(Some(bound))
    }
}
