//! Scaling decisions: pure functions, exhaustively tested.
//!
//! Each factor with fresh data predicts its value one interval ahead
//! (s = u + u'·t + ½·u''·t²) and says how many members it needs; the cluster
//! takes the largest, bounded by min and max.

use serde::{Deserialize, Serialize};

/// One factor's view of a cluster over the last window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorStats {
    pub average: f64,
    pub gradient: f64,
    pub second_derivative: f64,
}

impl From<stratos_bus::events::FactorSummary> for FactorStats {
    fn from(s: stratos_bus::events::FactorSummary) -> Self {
        FactorStats { average: s.average, gradient: s.gradient, second_derivative: s.second_derivative }
    }
}

/// What the cluster looks like to the autoscaler at one evaluation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    pub min: u32,
    pub max: u32,
    /// Members counted as serving (active or starting).
    pub current: u32,
    /// Requests in flight of the whole cluster; `None`: no fresh data, no vote.
    pub requests_in_flight: Option<FactorStats>,
    /// Mean load average per core ×100 of the members.
    pub load_average: Option<FactorStats>,
    /// Mean memory consumption (%) of the members.
    pub memory_consumption: Option<FactorStats>,
}

/// The policy's thresholds (`None`: the factor is not used).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    pub requests_in_flight: Option<f64>,
    pub load_average: Option<f64>,
    pub memory_consumption: Option<f64>,
}

impl From<&stratos_model::LoadThresholds> for Thresholds {
    fn from(t: &stratos_model::LoadThresholds) -> Self {
        Thresholds {
            requests_in_flight: t.requests_in_flight.map(|t| t.threshold),
            load_average: t.load_average.map(|t| t.threshold),
            memory_consumption: t.memory_consumption.map(|t| t.threshold),
        }
    }
}

/// A factor's vote, kept for the explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub factor: String,
    pub stats: FactorStats,
    pub threshold: f64,
    pub predicted: f64,
    pub required: u32,
}

/// The outcome of one evaluation, with everything it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub inputs: Inputs,
    pub votes: Vec<Vote>,
    /// max(votes) bounded by min and max; `current` (bounded) when nothing voted.
    pub required: u32,
}

/// s = u + u'·t + ½·u''·t², never negative.
pub fn predict(stats: FactorStats, t: f64) -> f64 {
    (stats.average + stats.gradient * t + 0.5 * stats.second_derivative * t * t).max(0.0)
}

/// Members needed to keep requests in flight per member at the threshold.
pub fn required_for_requests(predicted: f64, threshold: f64) -> u32 {
    ceil_u32(predicted / threshold)
}

/// Members needed for the load average: ceil(min · predicted / threshold).
pub fn required_for_load(predicted: f64, threshold: f64, min: u32) -> u32 {
    ceil_u32(min as f64 * predicted / threshold)
}

/// Members needed for memory: above the threshold, min plus one member per
/// (100 − threshold)/(max − min) points over it; at or below, one fewer than now.
pub fn required_for_memory(predicted: f64, threshold: f64, min: u32, max: u32, current: u32) -> u32 {
    if predicted > threshold {
        if max <= min {
            return max;
        }
        let step = (100.0 - threshold) / (max - min) as f64;
        min + ceil_u32((predicted - threshold) / step)
    } else {
        current.saturating_sub(1)
    }
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= u32::MAX as f64 {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

/// Evaluates a cluster: predicts each factor `horizon_secs` ahead and takes the
/// largest requirement, bounded by min and max.
pub fn decide(inputs: &Inputs, thresholds: &Thresholds, horizon_secs: f64, use_prediction: bool) -> Decision {
    let t = if use_prediction { horizon_secs } else { 0.0 };
    let mut votes = Vec::new();
    if let (Some(stats), Some(threshold)) = (inputs.requests_in_flight, thresholds.requests_in_flight) {
        let predicted = predict(stats, t);
        votes.push(vote(
            "requests-in-flight",
            stats,
            threshold,
            predicted,
            required_for_requests(predicted, threshold),
        ));
    }
    if let (Some(stats), Some(threshold)) = (inputs.load_average, thresholds.load_average) {
        let predicted = predict(stats, t);
        votes.push(vote(
            "load-average",
            stats,
            threshold,
            predicted,
            required_for_load(predicted, threshold, inputs.min),
        ));
    }
    if let (Some(stats), Some(threshold)) = (inputs.memory_consumption, thresholds.memory_consumption) {
        let predicted = predict(stats, t);
        let required = required_for_memory(predicted, threshold, inputs.min, inputs.max, inputs.current);
        votes.push(vote("memory-consumption", stats, threshold, predicted, required));
    }
    let mut wanted = votes.iter().map(|v| v.required).max().unwrap_or(inputs.current);
    if wanted < inputs.current && !removal_keeps_members_under_threshold(inputs.current, &votes) {
        // Hysteresis: shrinking would push each remaining member over a threshold, and
        // the next evaluation would grow the cluster again.
        wanted = inputs.current;
    }
    let required = wanted.clamp(inputs.min, inputs.max.max(inputs.min));
    Decision { inputs: inputs.clone(), votes, required }
}

/// Load average and memory are per-member averages: with one member fewer each
/// remaining member carries current/(current−1) times as much.
fn removal_keeps_members_under_threshold(current: u32, votes: &[Vote]) -> bool {
    if current <= 1 {
        return true;
    }
    let grow = current as f64 / (current - 1) as f64;
    votes.iter().filter(|v| v.factor != "requests-in-flight").all(|v| v.predicted * grow <= v.threshold)
}

fn vote(factor: &str, stats: FactorStats, threshold: f64, predicted: f64, required: u32) -> Vote {
    Vote { factor: factor.to_string(), stats, threshold, predicted, required }
}

/// What to do about a decision, given how long it has been asking to scale down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "to")]
pub enum Action {
    None,
    ScaleUp(u32),
    /// Remove one member (the least loaded), leaving this many.
    ScaleDown(u32),
}

/// Scale-up acts at once; scale-down waits until the decision held for
/// `needed` consecutive evaluations, removes one member, and starts counting
/// again (Apache Stratos forgot that reset, and so removed a member at every
/// evaluation once the count was reached).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleDownCounter {
    pub consecutive: u32,
}

impl ScaleDownCounter {
    pub fn next(&mut self, current: u32, required: u32, needed: u32) -> Action {
        if required > current {
            self.consecutive = 0;
            Action::ScaleUp(required)
        } else if required < current {
            self.consecutive += 1;
            if self.consecutive >= needed.max(1) {
                self.consecutive = 0;
                Action::ScaleDown(current - 1)
            } else {
                Action::None
            }
        } else {
            self.consecutive = 0;
            Action::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(average: f64, gradient: f64, second_derivative: f64) -> FactorStats {
        FactorStats { average, gradient, second_derivative }
    }

    #[test]
    fn prediction_is_the_kinematic_formula() {
        let cases = [
            // (u, u', u'', t, expected)
            (10.0, 0.0, 0.0, 15.0, 10.0),
            (10.0, 1.0, 0.0, 15.0, 25.0),
            (10.0, 1.0, 0.2, 15.0, 47.5),
            (10.0, -1.0, 0.0, 15.0, 0.0), // never negative
            (0.0, 0.0, 2.0, 3.0, 9.0),
        ];
        for (u, g, a, t, expected) in cases {
            assert_eq!(predict(stats(u, g, a), t), expected, "u={u} u'={g} u''={a} t={t}");
        }
    }

    #[test]
    fn requests_in_flight_table() {
        for (predicted, threshold, expected) in
            [(0.0, 80.0, 0), (1.0, 80.0, 1), (80.0, 80.0, 1), (81.0, 80.0, 2), (400.0, 80.0, 5)]
        {
            assert_eq!(required_for_requests(predicted, threshold), expected, "{predicted}/{threshold}");
        }
    }

    #[test]
    fn load_average_table() {
        for (predicted, threshold, min, expected) in
            [(35.0, 70.0, 2, 1), (70.0, 70.0, 2, 2), (140.0, 70.0, 2, 4), (71.0, 70.0, 1, 2)]
        {
            assert_eq!(required_for_load(predicted, threshold, min), expected, "{predicted} {threshold} {min}");
        }
    }

    #[test]
    fn memory_table() {
        // threshold 80, min 1, max 5: one member per 5 points over 80.
        for (predicted, current, expected) in
            [(81.0, 1, 2), (85.0, 1, 2), (86.0, 1, 3), (100.0, 3, 5), (80.0, 3, 2), (50.0, 1, 0)]
        {
            assert_eq!(required_for_memory(predicted, 80.0, 1, 5, current), expected, "{predicted} current {current}");
        }
        assert_eq!(required_for_memory(95.0, 80.0, 3, 3, 3), 3, "min == max");
    }

    #[test]
    fn the_largest_vote_wins_within_bounds() {
        let inputs = Inputs {
            min: 1,
            max: 4,
            current: 2,
            requests_in_flight: Some(stats(160.0, 0.0, 0.0)),
            load_average: Some(stats(10.0, 0.0, 0.0)),
            memory_consumption: None,
        };
        let thresholds =
            Thresholds { requests_in_flight: Some(80.0), load_average: Some(70.0), memory_consumption: Some(80.0) };
        let d = decide(&inputs, &thresholds, 15.0, true);
        assert_eq!(d.required, 2);
        assert_eq!(d.votes.len(), 2, "memory has no data and does not vote");
        let d = decide(
            &Inputs { requests_in_flight: Some(stats(1000.0, 0.0, 0.0)), ..inputs.clone() },
            &thresholds,
            15.0,
            true,
        );
        assert_eq!(d.required, 4, "bounded by max");
        let d =
            decide(&Inputs { requests_in_flight: None, load_average: None, ..inputs.clone() }, &thresholds, 15.0, true);
        assert_eq!(d.required, 2, "nothing voted: keep the current size");
        assert!(d.votes.is_empty());
    }

    #[test]
    fn no_shrinking_that_would_overload_the_remaining_members() {
        // Memory 60 % over 2 members: one member would carry 120 % of 80.
        let inputs = Inputs {
            min: 1,
            max: 5,
            current: 2,
            memory_consumption: Some(stats(60.0, 0.0, 0.0)),
            ..Default::default()
        };
        let thresholds = Thresholds { memory_consumption: Some(80.0), ..Default::default() };
        assert_eq!(decide(&inputs, &thresholds, 15.0, true).required, 2);
        let light = Inputs { memory_consumption: Some(stats(30.0, 0.0, 0.0)), ..inputs };
        assert_eq!(decide(&light, &thresholds, 15.0, true).required, 1);
    }

    #[test]
    fn prediction_scales_ahead_of_a_rising_load() {
        let inputs = Inputs {
            min: 1,
            max: 10,
            current: 1,
            requests_in_flight: Some(stats(70.0, 4.0, 0.0)),
            ..Default::default()
        };
        let thresholds = Thresholds { requests_in_flight: Some(80.0), ..Default::default() };
        assert_eq!(decide(&inputs, &thresholds, 15.0, false).required, 1, "70 now fits one member");
        assert_eq!(decide(&inputs, &thresholds, 15.0, true).required, 2, "130 in 15 s needs two");
    }

    #[test]
    fn scale_down_waits_and_resets_after_each_removal() {
        let mut c = ScaleDownCounter::default();
        assert_eq!(c.next(5, 2, 3), Action::None);
        assert_eq!(c.next(5, 2, 3), Action::None);
        assert_eq!(c.next(5, 2, 3), Action::ScaleDown(4));
        // The count starts again: the next removal needs three more evaluations.
        assert_eq!(c.next(4, 2, 3), Action::None);
        assert_eq!(c.next(4, 2, 3), Action::None);
        assert_eq!(c.next(4, 2, 3), Action::ScaleDown(3));
        // A steady evaluation in between breaks the streak.
        assert_eq!(c.next(3, 2, 3), Action::None);
        assert_eq!(c.next(3, 3, 3), Action::None);
        assert_eq!(c.next(3, 2, 3), Action::None);
        assert_eq!(c.consecutive, 1);
        // Scale-up is immediate and resets the count.
        assert_eq!(c.next(3, 6, 3), Action::ScaleUp(6));
        assert_eq!(c.consecutive, 0);
    }
}
