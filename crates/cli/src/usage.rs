//! `stratos usage`: the member's CPU and memory figures exactly as its agent reports them,
//! printed as JSON lines: to see what a container's cgroup (or a process tree) says.

use std::time::Duration;

use anyhow::Result;
use stratos_agent::usage::{Sampler, Source};
use stratos_agent::UsageConfig;

#[derive(clap::Args)]
pub struct UsageArgs {
    #[command(flatten)]
    usage: UsageConfig,
    /// The process tree measured with --usage-source process-tree (default: this process).
    #[arg(long)]
    pid: Option<u32>,
    /// Time between figures: 500ms, 2s, 1m.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    every: Duration,
    /// How many figures to print (0: for ever).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

pub async fn run(args: UsageArgs) -> Result<()> {
    let source = Source::choose(args.usage.source, args.pid.unwrap_or_else(std::process::id));
    let mut sampler = Sampler::new(source, args.usage.cpu_limit);
    let mut printed = 0;
    while args.count == 0 || printed < args.count {
        tokio::time::sleep(args.every).await;
        let figures = sampler.sample();
        let line = serde_json::json!({
            "source": sampler.source().describe(),
            "loadAverage": figures.load_average,
            "memoryConsumption": figures.memory_consumption,
        });
        println!("{line}");
        printed += 1;
    }
    Ok(())
}

/// `500ms`, `2s`, `1m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration (500ms, 2s, 1m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?} is not a duration (500ms, 2s, 1m)")),
    };
    if d.is_zero() {
        return Err("the interval must be above 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(super::parse_duration("2s"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(super::parse_duration("1m"), Ok(std::time::Duration::from_secs(60)));
        assert!(super::parse_duration("0s").is_err());
        assert!(super::parse_duration("2").is_err());
        assert!(super::parse_duration("s").is_err());
    }
}
