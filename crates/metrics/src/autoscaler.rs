//! The autoscaler's series: decisions by the factor that drove them and their direction,
//! and each cluster's predicted against observed load per factor.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The factor whose requirement won (`requests-in-flight`, `load-average`,
    /// `memory-consumption`), or `none` when no factor voted.
    pub factor: String,
    /// `up`, `down` or `none`.
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    pub cluster: String,
    pub factor: String,
}

/// The factors the autoscaler decides on, as its decisions name them.
pub const FACTORS: &[&str] = &["requests-in-flight", "load-average", "memory-consumption"];

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug)]
pub struct AutoscalerMetrics {
    decisions: Family<DecisionLabels, Counter>,
    predicted: Family<LoadLabels, FloatGauge>,
    observed: Family<LoadLabels, FloatGauge>,
}

impl AutoscalerMetrics {
    pub(crate) fn register(registry: &mut Registry) -> AutoscalerMetrics {
        let metrics = AutoscalerMetrics {
            decisions: Family::default(),
            predicted: Family::default(),
            observed: Family::default(),
        };
        registry.register(
            "autoscaler_decisions",
            "Scaling decisions by the factor that required the most members and the direction taken",
            metrics.decisions.clone(),
        );
        registry.register(
            "autoscaler_predicted_load",
            "Each factor's load predicted one evaluation interval ahead, per cluster (the factor's own unit)",
            metrics.predicted.clone(),
        );
        registry.register(
            "autoscaler_observed_load",
            "Each factor's load averaged over the health window, per cluster (the factor's own unit)",
            metrics.observed.clone(),
        );
        metrics
    }

    /// One decision: `factor` drove it (`None`: no factor voted), `direction` is `up`,
    /// `down` or `none`.
    pub fn decided(&self, factor: Option<&str>, direction: &str) {
        let labels = DecisionLabels { factor: factor.unwrap_or("none").into(), direction: direction.into() };
        self.decisions.get_or_create(&labels).inc();
    }

    /// A factor's observed and predicted load for a cluster, as its last decision saw them.
    pub fn load(&self, cluster: &str, factor: &str, observed: f64, predicted: f64) {
        let labels = LoadLabels { cluster: cluster.into(), factor: factor.into() };
        self.observed.get_or_create(&labels).set(observed);
        self.predicted.get_or_create(&labels).set(predicted);
    }

    /// A factor that did not vote this time (no statistics): its series go.
    pub fn no_load(&self, cluster: &str, factor: &str) {
        let labels = LoadLabels { cluster: cluster.into(), factor: factor.into() };
        self.observed.remove(&labels);
        self.predicted.remove(&labels);
    }

    /// A cluster no longer deployed: its series go.
    pub fn forget(&self, cluster: &str) {
        for factor in FACTORS {
            self.no_load(cluster, factor);
        }
    }
}
