//! Prometheus metrics of every Stratos component.
//!
//! One typed registry (`prometheus-client`, no global state) per process: `stratos up`
//! registers every component's families once and serves them as `GET /api/metrics`
//! (platform admins, or the scrape token); a standalone `stratos lb` or
//! `stratos lb-extension` registers its own and serves them on its admin listener
//! (`--metrics-listen`, always behind the scrape token: [`admin`]). Never on a proxy port,
//! never anonymous.
//!
//! Each component gets its handles ([`CloudMetrics`], [`LbMetrics`], ...) from a
//! [`Builder`]; series are named `stratos_<component>_<what>_<unit>` with base units
//! (seconds). Labels are bounded: clusters and applications (the platform's own size),
//! event types (a fixed set), route templates, status classes; never member ids, never
//! request paths. A cluster that goes away takes its series with it.

pub mod admin;
mod api;
mod autoscaler;
mod bus;
mod cloud;
mod extension;
mod health;
pub mod histogram;
mod lb;
pub mod token;

use std::sync::Arc;

use prometheus_client::registry::Registry;

pub use api::ApiMetrics;
pub use autoscaler::{AutoscalerMetrics, FACTORS as AUTOSCALER_FACTORS};
pub use bus::BusMetrics;
pub use cloud::{CloudMetrics, MemberCount};
pub use extension::ExtensionMetrics;
pub use health::HealthMetrics;
pub use histogram::AtomicHistogram;
pub use lb::{LbClusterMetrics, LbMetrics};
pub use token::{ScrapeToken, TokenError};

/// The content type of [`Scrape::render`]: the OpenMetrics text format, which
/// Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Registers the families of the components a process runs.
pub struct Builder {
    registry: Registry,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { registry: Registry::with_prefix("stratos") }
    }
}

impl Builder {
    pub fn cloud(&mut self) -> CloudMetrics {
        CloudMetrics::register(&mut self.registry)
    }
    pub fn health(&mut self) -> HealthMetrics {
        HealthMetrics::register(&mut self.registry)
    }
    pub fn autoscaler(&mut self) -> AutoscalerMetrics {
        AutoscalerMetrics::register(&mut self.registry)
    }
    pub fn lb(&mut self) -> LbMetrics {
        LbMetrics::register(&mut self.registry)
    }
    pub fn api(&mut self) -> ApiMetrics {
        ApiMetrics::register(&mut self.registry)
    }
    pub fn extension(&mut self) -> ExtensionMetrics {
        ExtensionMetrics::register(&mut self.registry)
    }
    /// The event bus's families; every component's connection shares them, by its
    /// `component` label ([`BusMetrics::for_component`]).
    pub fn bus(&mut self) -> BusMetrics {
        BusMetrics::register(&mut self.registry)
    }

    /// The registry, complete, ready to be scraped.
    pub fn finish(self) -> Scrape {
        Scrape { registry: Arc::new(self.registry) }
    }
}

/// A complete registry, cheap to clone, rendered at each scrape.
#[derive(Clone)]
pub struct Scrape {
    registry: Arc<Registry>,
}

impl Scrape {
    /// Every series in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// Seconds since `start`, for histograms.
pub fn seconds_since(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
