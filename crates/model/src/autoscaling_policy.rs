//! Autoscaling policy: the load each member should carry, per factor.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Definition, Definitions, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingPolicy {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub is_public: bool,
    pub load_thresholds: LoadThresholds,
}

/// A factor left out does not vote in scaling decisions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadThresholds {
    /// Requests in flight per member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_in_flight: Option<Threshold>,
    /// Memory consumption per member, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_consumption: Option<Threshold>,
    /// Load average per core ×100 per member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<Threshold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Threshold {
    #[serde(deserialize_with = "crate::lenient::f64")]
    pub threshold: f64,
}

impl Definition for AutoscalingPolicy {
    const KIND: Kind = Kind::AutoscalingPolicy;

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("id", &self.id);
        let t = &self.load_thresholds;
        if t.requests_in_flight.is_none() && t.memory_consumption.is_none() && t.load_average.is_none() {
            p.push("loadThresholds", "needs at least one of requestsInFlight, memoryConsumption, loadAverage");
        }
        for (name, threshold) in [("requestsInFlight", t.requests_in_flight), ("loadAverage", t.load_average)] {
            if let Some(Threshold { threshold }) = threshold {
                if !(threshold.is_finite() && threshold > 0.0) {
                    p.push(
                        format!("loadThresholds.{name}.threshold"),
                        format!("must be a number above 0, found {threshold}"),
                    );
                }
            }
        }
        if let Some(Threshold { threshold }) = t.memory_consumption {
            if !(threshold > 0.0 && threshold < 100.0) {
                p.push(
                    "loadThresholds.memoryConsumption.threshold",
                    format!("is a percentage and must be above 0 and below 100, found {threshold}"),
                );
            }
        }
    }

    fn check_references(&self, _defs: &Definitions, _p: &mut Problems) {}

    fn references(&self) -> Vec<(Kind, String)> {
        Vec::new()
    }
}
