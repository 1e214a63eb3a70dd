//! Properties of the decision loop under a simulated constant load, where a
//! cluster's total load spreads evenly over its members.

use proptest::prelude::*;
use stratos_autoscaler::{decide, Action, FactorStats, Inputs, ScaleDownCounter, Thresholds};

fn flat(average: f64) -> FactorStats {
    FactorStats { average, gradient: 0.0, second_derivative: 0.0 }
}

/// Runs `steps` evaluations and returns the cluster size after each.
fn simulate(
    min: u32,
    max: u32,
    start: u32,
    rif_total: f64,
    load_total: f64,
    mem_total: f64,
    t: Thresholds,
) -> Vec<u32> {
    let mut n = start;
    let mut counter = ScaleDownCounter::default();
    let mut sizes = Vec::new();
    for _ in 0..60 {
        let inputs = Inputs {
            min,
            max,
            current: n,
            requests_in_flight: Some(flat(rif_total)),
            load_average: Some(flat(load_total / n as f64)),
            memory_consumption: Some(flat((mem_total / n as f64).min(100.0))),
        };
        let d = decide(&inputs, &t, 15.0, true);
        match counter.next(n, d.required, 3) {
            Action::ScaleUp(to) => n = to,
            Action::ScaleDown(to) => n = to,
            Action::None => {}
        }
        sizes.push(n);
    }
    sizes
}

proptest! {
    #[test]
    fn size_stays_within_bounds_and_settles(
        min in 1u32..4,
        extra in 0u32..8,
        start_offset in 0u32..12,
        rif_total in 0.0f64..2000.0,
        load_total in 0.0f64..800.0,
        mem_total in 0.0f64..600.0,
        rif_threshold in 10.0f64..200.0,
        load_threshold in 20.0f64..95.0,
        mem_threshold in 30.0f64..95.0,
    ) {
        let max = min + extra;
        let start = (min + start_offset).min(max);
        let t = Thresholds { requests_in_flight: Some(rif_threshold), load_average: Some(load_threshold), memory_consumption: Some(mem_threshold) };
        let sizes = simulate(min, max, start, rif_total, load_total, mem_total, t);
        for n in &sizes {
            prop_assert!(*n >= min && *n <= max, "size {} outside {}..{}: {:?}", n, min, max, sizes);
        }
        // No oscillation: once settled, the size never changes again under a constant load.
        let tail = &sizes[40..];
        prop_assert!(tail.iter().all(|n| *n == tail[0]), "oscillates under a constant load: {:?}", sizes);
    }
}
