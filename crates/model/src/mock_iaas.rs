//! The `mock` IaaS's configuration, as Apache Stratos 4.1's `mock-iaas.xml` had it: the
//! health statistics its members report, one pattern per cartridge type and factor.
//! Pure: the types, their validation with field paths, and the value of a pattern at
//! a time ([`Curve::value_at`]).
//!
//! A pattern is one of
//! - `constant`: `value`;
//! - `ramp`: from `from` to `to`, linearly over `duration`, then `to`;
//! - `step`: `from` until `at`, then `to`;
//! - `sine`: `mean` + `amplitude` · sin(2π t / `period`), never below 0;
//! - `samples` (4.1's only kind, and the default when `sampleValues` is given): each of
//!   `sampleValues` for `sampleDuration`, then by `mode`: `loop` from the first again,
//!   `continue` with the last (the default), `stop` publishing (the member goes silent,
//!   as a frozen one would, and the health service declares it faulty).
//!
//! Durations are written `90s`, `2m`, `500ms`, or as a number of seconds (4.1's
//! `sampleDuration` was seconds). Time `t` runs from when the first member of the
//! cartridge type started while none ran, or from when the pattern last changed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Problems;

/// Every pattern of the mock IaaS (`GET`/`PUT /api/mockIaas`, or `mock-iaas.json` /
/// `mock-iaas.yaml` in the data directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MockIaasConfig {
    /// One entry per cartridge type; a type or factor with no pattern reports no value for
    /// it (its members still report, so they are not taken for faulty).
    #[serde(default)]
    pub cartridges: Vec<MockCartridge>,
}

/// The patterns the mock members of one cartridge type follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MockCartridge {
    /// The cartridge type (4.1's `<cartridge type="...">`).
    #[serde(rename = "type")]
    pub cartridge_type: String,
    /// At most one per factor.
    #[serde(default)]
    pub patterns: Vec<MockPattern>,
}

/// A health statistic the mock members report, by 4.1's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MockFactor {
    /// The member's load average, per core ×100 (as agents report it).
    LoadAverage,
    /// The member's memory consumption, in percent.
    MemoryConsumption,
    /// Refused: requests in flight are counted by the load balancers, which report 0 for a
    /// cluster no request can reach, and a second source would be averaged with theirs.
    RequestsInFlight,
}

impl MockFactor {
    pub fn name(self) -> &'static str {
        match self {
            MockFactor::LoadAverage => "load-average",
            MockFactor::MemoryConsumption => "memory-consumption",
            MockFactor::RequestsInFlight => "requests-in-flight",
        }
    }
}

/// The shape of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PatternKind {
    Constant,
    Ramp,
    Step,
    Sine,
    Samples,
}

/// What `samples` do after the last value (4.1's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SampleMode {
    /// From the first value again.
    Loop,
    /// The last value from then on.
    #[default]
    Continue,
    /// Publish nothing more: the member goes silent.
    Stop,
}

/// A duration as text (`90s`, `2m`) or a number of seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Seconds(s) if s.is_finite() && *s >= 0.0 && *s < 1e12 => Ok(Duration::from_secs_f64(*s)),
            DurationValue::Seconds(s) => Err(format!("{s} is not a number of seconds")),
            DurationValue::Text(t) => crate::duration::parse(t),
        }
    }
}

/// Sample values as a list, or comma-joined as 4.1's `<sampleValues>20,30,40</sampleValues>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SampleValues {
    List(Vec<f64>),
    Joined(String),
}

impl SampleValues {
    fn parse(&self) -> Result<Vec<f64>, String> {
        match self {
            SampleValues::List(values) => Ok(values.clone()),
            SampleValues::Joined(text) => text
                .split(',')
                .map(|v| v.trim().parse::<f64>().map_err(|_| format!("{:?} in {text:?} is not a number", v.trim())))
                .collect(),
        }
    }
}

/// One factor's pattern. Which fields it takes depends on `pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MockPattern {
    pub factor: MockFactor,
    /// The shape; omitted, `samples` (4.1's patterns had no other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<PatternKind>,
    /// `constant`: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `ramp`, `step`: the value at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    /// `ramp`, `step`: the value at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    /// `ramp`: how long it takes to go from `from` to `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationValue>,
    /// `step`: when the value goes from `from` to `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DurationValue>,
    /// `sine`: the middle value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// `sine`: how far above and below the mean it goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amplitude: Option<f64>,
    /// `sine`: one full wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<DurationValue>,
    /// `samples`: the values in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_values: Option<SampleValues>,
    /// `samples`: how long each value lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_duration: Option<DurationValue>,
    /// `samples`: what follows the last value (default `continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SampleMode>,
}

/// A pattern ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum Curve {
    Constant(f64),
    Ramp { from: f64, to: f64, over: Duration },
    Step { from: f64, to: f64, at: Duration },
    Sine { mean: f64, amplitude: f64, period: Duration },
    Samples { values: Vec<f64>, each: Duration, mode: SampleMode },
}

impl Curve {
    /// The value `elapsed` after the pattern's start; `None` once a `stop` pattern ended.
    pub fn value_at(&self, elapsed: Duration) -> Option<f64> {
        let t = elapsed.as_secs_f64();
        let value = match self {
            Curve::Constant(v) => *v,
            Curve::Ramp { from, to, over } => {
                let span = over.as_secs_f64();
                if span == 0.0 || t >= span {
                    *to
                } else {
                    from + (to - from) * t / span
                }
            }
            Curve::Step { from, to, at } => {
                if elapsed < *at {
                    *from
                } else {
                    *to
                }
            }
            Curve::Sine { mean, amplitude, period } => {
                mean + amplitude * (std::f64::consts::TAU * t / period.as_secs_f64()).sin()
            }
            Curve::Samples { values, each, mode } => {
                // Validation guarantees at least one value and a sample duration over zero.
                let index = (t / each.as_secs_f64()).floor() as usize;
                match (values.get(index), mode) {
                    (Some(v), _) => *v,
                    (None, SampleMode::Loop) => values[index % values.len()],
                    (None, SampleMode::Continue) => *values.last()?,
                    (None, SampleMode::Stop) => return None,
                }
            }
        };
        Some(value.max(0.0))
    }
}

/// The compiled patterns, by cartridge type and factor.
pub type Curves = BTreeMap<(String, MockFactor), Curve>;

impl MockIaasConfig {
    /// Checks every pattern, each problem with its field path (`cartridges[0].patterns[1].to`).
    pub fn validate(&self, problems: &mut Problems) {
        self.compile(problems);
    }

    /// The patterns ready to evaluate; those with problems are left out (and the problems pushed).
    pub fn compile(&self, problems: &mut Problems) -> Curves {
        let mut curves = Curves::new();
        let mut types = BTreeSet::new();
        for (i, cartridge) in self.cartridges.iter().enumerate() {
            let path = format!("cartridges[{i}]");
            problems.check_id(&format!("{path}.type"), &cartridge.cartridge_type);
            if !types.insert(cartridge.cartridge_type.as_str()) {
                problems.push(
                    format!("{path}.type"),
                    format!("cartridge type {:?} is given twice", cartridge.cartridge_type),
                );
            }
            let mut factors = BTreeSet::new();
            for (j, pattern) in cartridge.patterns.iter().enumerate() {
                let path = format!("{path}.patterns[{j}]");
                if !factors.insert(pattern.factor) {
                    problems.push(
                        format!("{path}.factor"),
                        format!("{} has a pattern already for this cartridge type", pattern.factor.name()),
                    );
                }
                if let Some(curve) = pattern.compile(&path, problems) {
                    curves.insert((cartridge.cartridge_type.clone(), pattern.factor), curve);
                }
            }
        }
        curves
    }
}

impl MockPattern {
    /// The pattern's curve, or `None` with its problems pushed under `path`.
    pub fn compile(&self, path: &str, problems: &mut Problems) -> Option<Curve> {
        let before = problems.0.len();
        if self.factor == MockFactor::RequestsInFlight {
            problems.push(
                format!("{path}.factor"),
                "requests in flight are counted by the load balancers, which report 0 for a mock cluster (nothing \
                 can be routed to its members); give a pattern for load-average or memory-consumption",
            );
        }
        let kind = self.pattern.unwrap_or(PatternKind::Samples);
        let fields: [(&str, bool, &[PatternKind]); 11] = [
            ("value", self.value.is_some(), &[PatternKind::Constant]),
            ("from", self.from.is_some(), &[PatternKind::Ramp, PatternKind::Step]),
            ("to", self.to.is_some(), &[PatternKind::Ramp, PatternKind::Step]),
            ("duration", self.duration.is_some(), &[PatternKind::Ramp]),
            ("at", self.at.is_some(), &[PatternKind::Step]),
            ("mean", self.mean.is_some(), &[PatternKind::Sine]),
            ("amplitude", self.amplitude.is_some(), &[PatternKind::Sine]),
            ("period", self.period.is_some(), &[PatternKind::Sine]),
            ("sampleValues", self.sample_values.is_some(), &[PatternKind::Samples]),
            ("sampleDuration", self.sample_duration.is_some(), &[PatternKind::Samples]),
            ("mode", self.mode.is_some(), &[PatternKind::Samples]),
        ];
        for (name, given, kinds) in fields {
            if given && !kinds.contains(&kind) {
                problems.push(format!("{path}.{name}"), format!("does not apply to a {} pattern", kind_name(kind)));
            }
        }
        let value = |problems: &mut Problems, name: &str, v: Option<f64>| -> f64 {
            match v {
                None => {
                    problems.push(format!("{path}.{name}"), format!("a {} pattern needs it", kind_name(kind)));
                    0.0
                }
                Some(v) => {
                    self.check_value(problems, &format!("{path}.{name}"), v);
                    v
                }
            }
        };
        let duration = |problems: &mut Problems, name: &str, d: &Option<DurationValue>, positive: bool| -> Duration {
            let at = format!("{path}.{name}");
            match d.as_ref().map(DurationValue::parse) {
                None => {
                    problems.push(at, format!("a {} pattern needs it", kind_name(kind)));
                    Duration::ZERO
                }
                Some(Err(e)) => {
                    problems.push(at, e);
                    Duration::ZERO
                }
                Some(Ok(d)) if positive && d.is_zero() => {
                    problems.push(at, "must be more than zero");
                    d
                }
                Some(Ok(d)) => d,
            }
        };
        let curve = match kind {
            PatternKind::Constant => Curve::Constant(value(problems, "value", self.value)),
            PatternKind::Ramp => Curve::Ramp {
                from: value(problems, "from", self.from),
                to: value(problems, "to", self.to),
                over: duration(problems, "duration", &self.duration, false),
            },
            PatternKind::Step => Curve::Step {
                from: value(problems, "from", self.from),
                to: value(problems, "to", self.to),
                at: duration(problems, "at", &self.at, false),
            },
            PatternKind::Sine => {
                let mean = value(problems, "mean", self.mean);
                let amplitude = value(problems, "amplitude", self.amplitude);
                Curve::Sine { mean, amplitude, period: duration(problems, "period", &self.period, true) }
            }
            PatternKind::Samples => {
                let values = match self.sample_values.as_ref().map(SampleValues::parse) {
                    None => {
                        problems.push(format!("{path}.sampleValues"), "a samples pattern needs it");
                        Vec::new()
                    }
                    Some(Err(e)) => {
                        problems.push(format!("{path}.sampleValues"), e);
                        Vec::new()
                    }
                    Some(Ok(values)) if values.is_empty() => {
                        problems.push(format!("{path}.sampleValues"), "needs at least one value");
                        values
                    }
                    Some(Ok(values)) => {
                        for (k, v) in values.iter().enumerate() {
                            self.check_value(problems, &format!("{path}.sampleValues[{k}]"), *v);
                        }
                        values
                    }
                };
                let each = duration(problems, "sampleDuration", &self.sample_duration, true);
                Curve::Samples { values, each, mode: self.mode.unwrap_or_default() }
            }
        };
        (problems.0.len() == before).then_some(curve)
    }

    fn check_value(&self, problems: &mut Problems, path: &str, v: f64) {
        if !v.is_finite() || v < 0.0 {
            problems.push(path, format!("{v} is not a value of 0 or more"));
        } else if self.factor == MockFactor::MemoryConsumption && v > 100.0 {
            problems.push(path, format!("{v} is over 100: memory consumption is a percentage"));
        }
    }
}

fn kind_name(kind: PatternKind) -> &'static str {
    match kind {
        PatternKind::Constant => "constant",
        PatternKind::Ramp => "ramp",
        PatternKind::Step => "step",
        PatternKind::Sine => "sine",
        PatternKind::Samples => "samples",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn curve(json: serde_json::Value) -> Result<Curve, Vec<String>> {
        let pattern: MockPattern = serde_json::from_value(json).unwrap();
        let mut problems = Problems::default();
        pattern
            .compile("p", &mut problems)
            .ok_or_else(|| problems.0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect())
    }

    #[test]
    fn constant_is_the_same_at_every_time() {
        let c = curve(serde_json::json!({"factor": "load-average", "pattern": "constant", "value": 42})).unwrap();
        for t in [0.0, 1.0, 3600.0] {
            assert_eq!(c.value_at(at(t)), Some(42.0));
        }
    }

    #[test]
    fn ramp_goes_linearly_then_holds() {
        let c = curve(
            serde_json::json!({"factor": "load-average", "pattern": "ramp", "from": 10, "to": 90, "duration": "80s"}),
        )
        .unwrap();
        assert_eq!(c.value_at(at(0.0)), Some(10.0));
        assert_eq!(c.value_at(at(40.0)), Some(50.0));
        assert_eq!(c.value_at(at(80.0)), Some(90.0));
        assert_eq!(c.value_at(at(1000.0)), Some(90.0));
        let down = Curve::Ramp { from: 90.0, to: 10.0, over: at(8.0) };
        assert_eq!(down.value_at(at(2.0)), Some(70.0));
        let instant = Curve::Ramp { from: 1.0, to: 5.0, over: Duration::ZERO };
        assert_eq!(instant.value_at(Duration::ZERO), Some(5.0), "a ramp of no duration is its end at once");
    }

    #[test]
    fn step_changes_at_its_time() {
        let c = curve(
            serde_json::json!({"factor": "memory-consumption", "pattern": "step", "from": 20, "to": 80, "at": 30}),
        )
        .unwrap();
        assert_eq!(c.value_at(at(29.999)), Some(20.0));
        assert_eq!(c.value_at(at(30.0)), Some(80.0));
        assert_eq!(c.value_at(at(300.0)), Some(80.0));
    }

    #[test]
    fn sine_waves_around_its_mean_and_never_goes_below_zero() {
        let c = Curve::Sine { mean: 50.0, amplitude: 30.0, period: at(60.0) };
        let near = |t: f64, want: f64| assert!((c.value_at(at(t)).unwrap() - want).abs() < 1e-9, "at {t}");
        near(0.0, 50.0);
        near(15.0, 80.0);
        near(30.0, 50.0);
        near(45.0, 20.0);
        near(60.0, 50.0);
        let deep = Curve::Sine { mean: 10.0, amplitude: 30.0, period: at(60.0) };
        assert_eq!(deep.value_at(at(45.0)), Some(0.0));
    }

    #[test]
    fn samples_follow_their_mode_after_the_last() {
        let values = vec![20.0, 30.0, 40.0];
        let each = at(60.0);
        let go = |mode| Curve::Samples { values: values.clone(), each, mode };
        for mode in [SampleMode::Loop, SampleMode::Continue, SampleMode::Stop] {
            assert_eq!(go(mode).value_at(at(0.0)), Some(20.0));
            assert_eq!(go(mode).value_at(at(59.0)), Some(20.0));
            assert_eq!(go(mode).value_at(at(60.0)), Some(30.0));
            assert_eq!(go(mode).value_at(at(179.0)), Some(40.0));
        }
        assert_eq!(go(SampleMode::Loop).value_at(at(180.0)), Some(20.0));
        assert_eq!(go(SampleMode::Loop).value_at(at(250.0)), Some(30.0));
        assert_eq!(go(SampleMode::Continue).value_at(at(10_000.0)), Some(40.0));
        assert_eq!(go(SampleMode::Stop).value_at(at(180.0)), None);
    }

    #[test]
    fn a_4_1_pattern_loads_as_it_was_written() {
        // mock-iaas.xml's <pattern factor="memory-consumption" mode="continue">, as JSON.
        let c = curve(serde_json::json!({
            "factor": "memory-consumption", "mode": "continue",
            "sampleValues": "20,30,40,50,60,70,50,40,30,20", "sampleDuration": 60
        }))
        .unwrap();
        assert_eq!(c.value_at(at(0.0)), Some(20.0));
        assert_eq!(c.value_at(at(300.0)), Some(70.0));
        assert_eq!(c.value_at(at(3600.0)), Some(20.0));
    }

    #[test]
    fn problems_name_their_fields() {
        let problems = curve(serde_json::json!({"factor": "load-average", "pattern": "ramp", "from": -1, "value": 3}))
            .unwrap_err();
        assert_eq!(
            problems,
            [
                "p.value: does not apply to a ramp pattern",
                "p.from: -1 is not a value of 0 or more",
                "p.to: a ramp pattern needs it",
                "p.duration: a ramp pattern needs it",
            ]
        );
        let problems =
            curve(serde_json::json!({"factor": "memory-consumption", "sampleValues": "20, x", "sampleDuration": "0s"}))
                .unwrap_err();
        assert_eq!(
            problems,
            ["p.sampleValues: \"x\" in \"20, x\" is not a number", "p.sampleDuration: must be more than zero"]
        );
        let problems = curve(serde_json::json!({"factor": "memory-consumption", "pattern": "constant", "value": 120}))
            .unwrap_err();
        assert_eq!(problems, ["p.value: 120 is over 100: memory consumption is a percentage"]);
        let problems =
            curve(serde_json::json!({"factor": "requests-in-flight", "pattern": "constant", "value": 5})).unwrap_err();
        assert!(
            problems[0].starts_with("p.factor: requests in flight are counted by the load balancers"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_config_refuses_a_type_or_factor_given_twice() {
        let config: MockIaasConfig = serde_json::from_value(serde_json::json!({"cartridges": [
            {"type": "php", "patterns": [
                {"factor": "load-average", "pattern": "constant", "value": 1},
                {"factor": "load-average", "pattern": "constant", "value": 2}
            ]},
            {"type": "php", "patterns": []},
            {"type": "tomcat", "patterns": [{"factor": "memory-consumption", "pattern": "constant", "value": 3}]}
        ]}))
        .unwrap();
        let mut problems = Problems::default();
        let curves = config.compile(&mut problems);
        let paths: Vec<&str> = problems.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["cartridges[0].patterns[1].factor", "cartridges[1].type"]);
        assert_eq!(curves.get(&("tomcat".into(), MockFactor::MemoryConsumption)), Some(&Curve::Constant(3.0)));
    }
}
