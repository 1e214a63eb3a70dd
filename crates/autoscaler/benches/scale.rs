//! Evaluation cost at scale: health summaries and scaling decisions for
//! 1k, 10k and 100k members (10 per cluster), with the memory they take.
//!
//! `cargo bench -p stratos-autoscaler --bench scale`

use std::time::Instant;

use stratos_autoscaler::{decide, Action, FactorStats, Inputs, ScaleDownCounter, Thresholds};
use stratos_bus::MemberRef;
use stratos_health::HealthState;

fn rss_kib() -> u64 {
    stratos_procfs::rss_kib(std::process::id()).unwrap_or(0)
}

fn main() {
    println!(
        "{:>9} {:>9} {:>16} {:>16} {:>14} {:>12}",
        "members", "clusters", "ingest (ms)", "summaries (ms)", "decide (ms)", "RSS (MiB)"
    );
    for members in [1_000usize, 10_000, 100_000] {
        let clusters = members / 10;
        let before = rss_kib();
        let mut health = HealthState::new(60.0, 60.0);
        let started = Instant::now();
        // Four samples per member over the window (one every 15 s), with a rising load.
        for step in 0..4 {
            let t = step as f64 * 15.0;
            for m in 0..members {
                let c = m / 10;
                let member = MemberRef {
                    service_name: "svc".into(),
                    cluster_id: format!("app{c}.web"),
                    member_id: format!("app{c}.web.{m}"),
                    network_partition_id: "np1".into(),
                    partition_id: "p1".into(),
                };
                health.member_stats(member, t, Some(40.0 + (m % 50) as f64 + step as f64 * 5.0), Some(50.0));
            }
            for c in 0..clusters {
                health.cluster_in_flight(&format!("app{c}.web"), "np1", t, 100.0 + step as f64 * 20.0);
            }
        }
        let ingest = started.elapsed();

        let started = Instant::now();
        let summaries = health.summaries(45.0, 45_000);
        let summarise = started.elapsed();

        // What the monitor does with them each cycle: gather per cluster, decide, count.
        let mut by_cluster: std::collections::HashMap<&str, Inputs> =
            std::collections::HashMap::with_capacity(clusters);
        let thresholds =
            Thresholds { requests_in_flight: Some(80.0), load_average: Some(70.0), memory_consumption: Some(80.0) };
        let mut counters: Vec<ScaleDownCounter> = vec![ScaleDownCounter::default(); clusters];
        let started = Instant::now();
        for s in &summaries {
            let inputs = by_cluster.entry(s.cluster_id.as_str()).or_insert_with(|| Inputs {
                min: 2,
                max: 20,
                current: 10,
                ..Default::default()
            });
            inputs.requests_in_flight = s.requests_in_flight.map(FactorStats::from);
            inputs.load_average = s.load_average.map(FactorStats::from);
            inputs.memory_consumption = s.memory_consumption.map(FactorStats::from);
        }
        let mut ups = 0;
        for (i, inputs) in by_cluster.values().enumerate() {
            let d = decide(inputs, &thresholds, 15.0, true);
            if let Action::ScaleUp(_) = counters[i].next(inputs.current, d.required, 3) {
                ups += 1;
            }
        }
        let decide_time = started.elapsed();
        assert_eq!(by_cluster.len(), clusters);
        let rss = rss_kib().saturating_sub(before);
        println!(
            "{:>9} {:>9} {:>16.1} {:>16.1} {:>14.2} {:>12.1}   ({ups} clusters scale up)",
            members,
            clusters,
            ingest.as_secs_f64() * 1000.0,
            summarise.as_secs_f64() * 1000.0,
            decide_time.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0
        );
    }
}
