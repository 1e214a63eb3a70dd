//! The Stratos autoscaler: multi-factored scaling decisions with prediction.

pub mod decision;

pub use decision::{decide, predict, Action, Decision, FactorStats, Inputs, ScaleDownCounter, Thresholds, Vote};
