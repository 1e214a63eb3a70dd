//! The Stratos autoscaler: multi-factored scaling decisions with prediction,
//! evaluated for every deployed cluster by its monitor, under the group and
//! application monitors that roll statuses up.

pub mod decision;
pub mod dependents;
pub mod groups;
mod monitor;

pub use decision::{decide, predict, Action, Decision, FactorStats, Inputs, ScaleDownCounter, Thresholds, Vote};
pub use monitor::{run, run_timed, AutoscalerConfig, HISTORY_LENGTH};

/// Factor names, as the health processing publishes them.
pub const REQUESTS_IN_FLIGHT: &str = "requests-in-flight";
pub const LOAD_AVERAGE: &str = "load-average";
pub const MEMORY_CONSUMPTION: &str = "memory-consumption";
