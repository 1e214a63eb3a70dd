//! The Stratos autoscaler: multi-factored scaling decisions with prediction,
//! evaluated for every deployed cluster by its monitor, under the group and
//! application monitors that roll statuses up.

mod clusters;
pub mod decision;
pub mod dependents;
mod error;
pub mod groups;
mod history;
mod metrics;
mod monitor;
pub mod surge;

pub use decision::{decide, predict, Action, Decision, FactorStats, Inputs, ScaleDownCounter, Thresholds, Vote};
pub use error::AutoscalerError;
pub use history::{Histories, HISTORY_LENGTH};
pub use monitor::{run, run_timed, AutoscalerConfig};

/// Factor names, as the health processing publishes them.
pub const REQUESTS_IN_FLIGHT: &str = "requests-in-flight";
pub const LOAD_AVERAGE: &str = "load-average";
pub const MEMORY_CONSUMPTION: &str = "memory-consumption";
