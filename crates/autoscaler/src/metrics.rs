//! What the autoscaler's metrics say about each decision (pure where it decides): the
//! factor that drove it, its direction, each factor's observed and predicted load; and
//! the clusters whose series are kept, so that an undeployed one loses them.

use std::collections::HashSet;

use stratos_metrics::AutoscalerMetrics;

use crate::decision::{Action, Decision};

/// The factor whose requirement won (the first of the largest), if any voted.
pub fn driving_factor(decision: &Decision) -> Option<&str> {
    let most = decision.votes.iter().map(|v| v.required).max()?;
    decision.votes.iter().find(|v| v.required == most).map(|v| v.factor.as_str())
}

/// `up`, `down` or `none`.
pub fn direction(action: Action) -> &'static str {
    match action {
        Action::None => "none",
        Action::ScaleUp(_) => "up",
        Action::ScaleDown(_) => "down",
    }
}

/// Records decisions into the metrics.
pub(crate) struct Recorder {
    metrics: AutoscalerMetrics,
    clusters: HashSet<String>,
}

impl Recorder {
    pub fn new(metrics: AutoscalerMetrics) -> Recorder {
        Recorder { metrics, clusters: HashSet::new() }
    }

    pub fn decided(&mut self, cluster: &str, decision: &Decision, action: Action) {
        self.metrics.decided(driving_factor(decision), direction(action));
        for factor in stratos_metrics::AUTOSCALER_FACTORS {
            match decision.votes.iter().find(|v| v.factor == *factor) {
                Some(v) => self.metrics.load(cluster, factor, v.stats.average, v.predicted),
                None => self.metrics.no_load(cluster, factor),
            }
        }
        if !self.clusters.contains(cluster) {
            self.clusters.insert(cluster.to_string());
        }
    }

    /// Forgets the series of clusters no longer deployed.
    pub fn retain(&mut self, deployed: impl Fn(&str) -> bool) {
        let metrics = &self.metrics;
        self.clusters.retain(|c| {
            let keep = deployed(c);
            if !keep {
                metrics.forget(c);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{FactorStats, Inputs, Vote};

    fn vote(factor: &str, required: u32) -> Vote {
        let stats = FactorStats { average: 1.0, gradient: 0.0, second_derivative: 0.0 };
        Vote { factor: factor.into(), stats, threshold: 1.0, predicted: 1.0, required }
    }

    #[test]
    fn the_largest_requirement_drives_the_decision() {
        let inputs = Inputs { min: 1, max: 5, current: 1, ..Inputs::default() };
        let mut d = Decision { inputs, votes: vec![], required: 1 };
        assert_eq!(driving_factor(&d), None);
        d.votes = vec![vote("requests-in-flight", 2), vote("load-average", 3), vote("memory-consumption", 3)];
        assert_eq!(driving_factor(&d), Some("load-average"));
        assert_eq!(direction(Action::ScaleUp(3)), "up");
        assert_eq!(direction(Action::ScaleDown(1)), "down");
        assert_eq!(direction(Action::None), "none");
    }
}
