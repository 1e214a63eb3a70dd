//! The `mock` IaaS, as in Apache Stratos 4.1: members that exist only in the platform
//! (no process, no container) and report health statistics following a pattern per
//! cartridge type and factor (`stratos_model::mock_iaas`). The `simulated` driver's
//! engine plays their agents; this module gives it the patterns as a [`StatsSource`].
//!
//! The patterns are a store record (`mock-iaas`/`config`, written by the manager);
//! [`watch`] reads it every second, so a change reaches running members without a
//! restart. A pattern's time runs from when the first member of its cartridge type
//! started while none ran, or from when that pattern changed, whichever is later: every
//! member of a type reports the same value at the same time, as in 4.1.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stratos_bus::{Bus, MemberRef};
use stratos_model::mock_iaas::{Curves, MockFactor};
use stratos_model::{MockIaasConfig, Problems, SUPER_TENANT};
use stratos_store::{Store, MOCK_IAAS_ID};

use crate::simulated::{Reading, SimulatedDriver, StatsSource};

/// The provider name network partitions give for it.
pub const PROVIDER: &str = "mock";

/// How often [`watch`] reads the stored patterns.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The factors a mock member reports.
const FACTORS: [MockFactor; 2] = [MockFactor::LoadAverage, MockFactor::MemoryConsumption];

/// The patterns in force and their clocks.
#[derive(Default)]
pub struct MockPatterns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    config: MockIaasConfig,
    curves: Curves,
    /// When each (cartridge type, factor)'s pattern was last set.
    changed: BTreeMap<(String, MockFactor), Instant>,
    /// Per cartridge type: its members running, and since when one has been.
    running: HashMap<String, (usize, Instant)>,
}

impl MockPatterns {
    /// Takes `config` (already validated by its writer; a pattern that is not valid is left
    /// out, and logged). The patterns that changed start their time at `now`. Whether
    /// anything changed.
    pub fn set(&self, config: MockIaasConfig, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.config == config {
            return false;
        }
        let mut problems = Problems::default();
        let curves = config.compile(&mut problems);
        for p in &problems.0 {
            tracing::error!(field = %p.path, problem = %p.message, "a mock IaaS pattern is left out");
        }
        let State { changed, curves: old, .. } = &mut *state;
        changed.retain(|key, _| curves.contains_key(key));
        for (key, curve) in &curves {
            if old.get(key) != Some(curve) {
                changed.insert(key.clone(), now);
            }
        }
        state.curves = curves;
        state.config = config;
        true
    }

    /// What a member of `service` reports at `now`.
    pub fn reading_at(&self, service: &str, now: Instant) -> Reading {
        let state = self.state.lock().unwrap();
        let since_first = state.running.get(service).map(|(_, since)| *since).unwrap_or(now);
        let mut reading = Reading::default();
        let (mut configured, mut stopped) = (0, 0);
        for factor in FACTORS {
            let key = (service.to_string(), factor);
            let Some(curve) = state.curves.get(&key) else { continue };
            configured += 1;
            let start = state.changed.get(&key).map_or(since_first, |changed| since_first.max(*changed));
            let value = curve.value_at(now.saturating_duration_since(start));
            match factor {
                MockFactor::LoadAverage => reading.load_average = value,
                MockFactor::MemoryConsumption => reading.memory_consumption = value,
                MockFactor::RequestsInFlight => {}
            }
            stopped += usize::from(value.is_none());
        }
        // Silent only when every pattern it has stopped; with none, it reports no value,
        // which still tells the health service that it is alive.
        reading.silent = configured > 0 && stopped == configured;
        reading
    }

    /// A member of `service` started at `now`: the first while none ran starts the type's time.
    pub fn started_at(&self, service: &str, now: Instant) {
        let mut state = self.state.lock().unwrap();
        let entry = state.running.entry(service.to_string()).or_insert((0, now));
        entry.0 += 1;
    }

    /// A member of `service` ended.
    pub fn ended(&self, service: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some((running, _)) = state.running.get_mut(service) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                state.running.remove(service);
            }
        }
    }
}

impl StatsSource for MockPatterns {
    fn reading(&self, member: &MemberRef, _now: u64) -> Reading {
        self.reading_at(&member.service_name, Instant::now())
    }

    fn member_started(&self, member: &MemberRef) {
        self.started_at(&member.service_name, Instant::now());
    }

    fn member_ended(&self, member: &MemberRef) {
        self.ended(&member.service_name);
    }
}

/// The `mock` driver: members activate `activation_delay` after they start and report
/// what `patterns` say every `stats_every`.
pub async fn driver(
    bus: Bus,
    activation_delay: Duration,
    stats_every: Duration,
    patterns: Arc<MockPatterns>,
) -> SimulatedDriver {
    SimulatedDriver::start_with(PROVIDER, bus, activation_delay, stats_every, patterns).await
}

/// Follows the stored patterns into `patterns`, every [`RELOAD_EVERY`]; never ends. A
/// document that cannot be read keeps the patterns in force (and is logged once).
pub async fn watch(store: Store, patterns: Arc<MockPatterns>) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match store.get_record::<MockIaasConfig>(SUPER_TENANT, MOCK_IAAS_ID).await {
            Ok(config) => {
                failing = false;
                let config = config.unwrap_or_default();
                let cartridges = config.cartridges.len();
                if patterns.set(config, Instant::now()) {
                    tracing::info!(cartridges, "mock IaaS patterns changed");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "cannot read the mock IaaS patterns; keeping those in force");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> MockIaasConfig {
        serde_json::from_value(json).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ramp() -> MockIaasConfig {
        config(serde_json::json!({"cartridges": [{"type": "php", "patterns": [
            {"factor": "load-average", "pattern": "ramp", "from": 0, "to": 100, "duration": "100s"},
            {"factor": "memory-consumption", "pattern": "constant", "value": 30}
        ]}]}))
    }

    #[test]
    fn time_runs_from_the_first_member_of_the_type() {
        let p = MockPatterns::default();
        let t0 = Instant::now();
        p.set(ramp(), t0);
        p.started_at("php", t0 + secs(10));
        p.started_at("php", t0 + secs(30));
        let r = p.reading_at("php", t0 + secs(60));
        assert_eq!(r, Reading { load_average: Some(50.0), memory_consumption: Some(30.0), silent: false });
        p.ended("php");
        assert_eq!(p.reading_at("php", t0 + secs(60)).load_average, Some(50.0), "one member still runs");
        p.ended("php");
        p.started_at("php", t0 + secs(200));
        assert_eq!(p.reading_at("php", t0 + secs(210)).load_average, Some(10.0), "none ran: time starts again");
    }

    #[test]
    fn a_changed_pattern_starts_its_time_when_it_changes_and_the_others_keep_theirs() {
        let p = MockPatterns::default();
        let t0 = Instant::now();
        p.set(ramp(), t0);
        p.started_at("php", t0);
        let mut next = ramp();
        next.cartridges[0].patterns[0].to = Some(200.0);
        assert!(p.set(next.clone(), t0 + secs(50)));
        assert!(!p.set(next, t0 + secs(60)), "the same patterns again change nothing");
        let r = p.reading_at("php", t0 + secs(75));
        assert_eq!(r.load_average, Some(50.0), "25 s into the new ramp");
        assert_eq!(r.memory_consumption, Some(30.0));
    }

    #[test]
    fn a_type_without_patterns_reports_no_value_and_stopped_patterns_go_silent() {
        let p = MockPatterns::default();
        let t0 = Instant::now();
        p.set(
            config(serde_json::json!({"cartridges": [{"type": "php", "patterns": [
                {"factor": "load-average", "sampleValues": [10, 20], "sampleDuration": "10s", "mode": "stop"}
            ]}]})),
            t0,
        );
        p.started_at("php", t0);
        p.started_at("tomcat", t0);
        assert_eq!(p.reading_at("tomcat", t0 + secs(5)), Reading::default(), "alive, with nothing to report");
        assert_eq!(p.reading_at("php", t0 + secs(15)).load_average, Some(20.0));
        assert!(!p.reading_at("php", t0 + secs(15)).silent);
        assert!(p.reading_at("php", t0 + secs(20)).silent);
    }
}
