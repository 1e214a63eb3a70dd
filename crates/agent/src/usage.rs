//! The member's own figures, as its health stats report them: CPU use as a percentage of
//! its CPU limit (or of one core), and memory as a percentage of its memory limit (or of
//! the machine). Never the machine's load: members sharing a host must not measure each
//! other.
//!
//! Two sources: in a container, the container's cgroup (its CPU time sampled over the
//! interval, `memory.current` against `memory.max`, or their cgroup v1 names); on the local
//! driver, the app's process tree from `/proc` (utime + stime of every process, with the
//! children they reaped; the resident memory of the agent and the tree). The arithmetic
//! is pure and tested here; the reading is `stratos_procfs`.

use std::time::Instant;

use stratos_procfs::{self as procfs, Cgroup, Limit};

/// Where the figures come from (`--usage-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceChoice {
    /// The cgroup inside a container (`/.dockerenv`, `/run/.containerenv`, or the agent is
    /// its namespace's pid 1), the process tree elsewhere.
    Auto,
    /// The cgroup mounted at /sys/fs/cgroup: only right where that group is the member's alone.
    Cgroup,
    /// The app's process tree.
    ProcessTree,
}

/// What is measured.
#[derive(Debug, Clone)]
pub enum Source {
    Cgroup(Cgroup),
    /// The app (and its descendants); the agent's own memory counts too.
    ProcessTree {
        app_pid: u32,
    },
}

impl Source {
    /// The source `choice` names for the app `app_pid`; a cgroup that cannot be found falls
    /// back to the process tree.
    pub fn choose(choice: SourceChoice, app_pid: u32) -> Source {
        let cgroup = match choice {
            SourceChoice::ProcessTree => None,
            SourceChoice::Cgroup => Cgroup::detect(),
            SourceChoice::Auto => in_container().then(Cgroup::detect).flatten(),
        };
        cgroup.map_or(Source::ProcessTree { app_pid }, Source::Cgroup)
    }

    /// `cgroup v2`, `cgroup v1` or `process tree`, for logs and `stratos usage`.
    pub fn describe(&self) -> String {
        match self {
            Source::Cgroup(group) => format!("cgroup v{}", group.version()),
            Source::ProcessTree { app_pid } => format!("process tree of pid {app_pid}"),
        }
    }
}

/// Whether this process runs in a container.
fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::process::id() == 1
}

/// One health stat's figures, in percent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Figures {
    pub load_average: Option<f64>,
    pub memory_consumption: Option<f64>,
}

/// Samples a source: each [`Sampler::sample`] covers the time since the one before (or
/// since the sampler was made).
#[derive(Debug)]
pub struct Sampler {
    source: Source,
    /// The CPU limit, in cores, when the source does not carry its own (`--cpu-limit`).
    cpu_limit: Option<f64>,
    last: Option<(Instant, u64)>,
}

impl Sampler {
    pub fn new(source: Source, cpu_limit: Option<f64>) -> Sampler {
        let mut sampler = Sampler { source, cpu_limit, last: None };
        sampler.last = sampler.cpu_usec().map(|used| (Instant::now(), used));
        sampler
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The figures since the last sample; the load is `None` when the CPU time cannot be
    /// read now or could not before.
    pub fn sample(&mut self) -> Figures {
        let now = self.cpu_usec().map(|used| (Instant::now(), used));
        let load = match (self.last, now) {
            (Some((then, before)), Some((at, used))) => {
                let wall = at.duration_since(then).as_micros() as u64;
                cpu_percent(used.saturating_sub(before), wall, self.cores())
            }
            _ => None,
        };
        self.last = now.or(self.last);
        Figures { load_average: load, memory_consumption: self.memory() }
    }

    /// The cores 100% stands for: the cgroup's own limit, else `--cpu-limit`, else one.
    fn cores(&self) -> f64 {
        let own = match &self.source {
            Source::Cgroup(group) => group.cpu_limit().and_then(Limit::value),
            Source::ProcessTree { .. } => None,
        };
        own.or(self.cpu_limit).unwrap_or(1.0)
    }

    fn cpu_usec(&self) -> Option<u64> {
        match &self.source {
            Source::Cgroup(group) => group.cpu_usage_usec(),
            Source::ProcessTree { app_pid } => {
                procfs::tree_cpu_ticks(*app_pid).map(|ticks| ticks * (1_000_000 / procfs::USER_HZ))
            }
        }
    }

    fn memory(&self) -> Option<f64> {
        let machine = || procfs::mem_total_kib().map(|kib| kib * 1024);
        match &self.source {
            Source::Cgroup(group) => {
                let limit = group.memory_limit().and_then(Limit::value).or_else(machine)?;
                memory_percent(group.memory_bytes()?, limit)
            }
            Source::ProcessTree { app_pid } => {
                let pids = [std::process::id(), *app_pid].into_iter().chain(procfs::descendants(*app_pid));
                let rss_kib: u64 = pids.filter_map(procfs::rss_kib).sum();
                memory_percent(rss_kib * 1024, machine()?)
            }
        }
    }
}

/// CPU time `used_usec` over `wall_usec` of wall time, as a percentage of `cores` (100 =
/// the whole limit busy). `None` over no time.
pub fn cpu_percent(used_usec: u64, wall_usec: u64, cores: f64) -> Option<f64> {
    (wall_usec > 0 && cores > 0.0).then(|| used_usec as f64 / wall_usec as f64 / cores * 100.0)
}

/// Memory `used` as a percentage of `limit` (same unit), at most 100.
pub fn memory_percent(used: u64, limit: u64) -> Option<f64> {
    (limit > 0).then(|| (used as f64 / limit as f64 * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_against_the_limit() {
        assert_eq!(cpu_percent(1_000_000, 1_000_000, 1.0), Some(100.0), "one core busy");
        assert_eq!(cpu_percent(500_000, 1_000_000, 0.5), Some(100.0), "half a core, all of --cpus 0.5");
        assert_eq!(cpu_percent(250_000, 1_000_000, 0.5), Some(50.0));
        assert_eq!(cpu_percent(2_000_000, 1_000_000, 1.0), Some(200.0), "two threads on one core's budget");
        assert_eq!(cpu_percent(0, 1_000_000, 2.0), Some(0.0));
        assert_eq!(cpu_percent(5, 0, 1.0), None);
        assert_eq!(cpu_percent(5, 10, 0.0), None);
    }

    #[test]
    fn memory_against_the_limit() {
        assert_eq!(memory_percent(512, 1024), Some(50.0));
        assert_eq!(memory_percent(1, 0), None);
        assert_eq!(memory_percent(4096, 1024), Some(100.0));
    }

    /// The CPU time the kernel's scheduler counted for `pid`, in microseconds: an account
    /// independent of the `stat` times the sampler reads.
    fn scheduled_usec(pid: u32) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
        text.split_whitespace().next().unwrap().parse::<u64>().unwrap() / 1000
    }

    #[test]
    fn a_busy_process_tree_reports_the_cpu_it_got_and_an_idle_one_none() {
        let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let mut idle = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let mut busy_sampler = Sampler::new(Source::ProcessTree { app_pid: busy.id() }, None);
        let mut idle_sampler = Sampler::new(Source::ProcessTree { app_pid: idle.id() }, None);
        let (started, ran_before) = (Instant::now(), scheduled_usec(busy.id()));
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (b, i) = (busy_sampler.sample(), idle_sampler.sample());
        let got =
            cpu_percent(scheduled_usec(busy.id()) - ran_before, started.elapsed().as_micros() as u64, 1.0).unwrap();
        busy.kill().unwrap();
        idle.kill().unwrap();
        let _ = (busy.wait(), idle.wait());
        let (b_load, i_load) = (b.load_average.unwrap(), i.load_average.unwrap());
        // A busy loop gets a whole core on an idle machine, less on a shared one: the figure
        // must be what it got, by the scheduler's own account (stat's ticks are coarser).
        assert!((b_load - got).abs() < 15.0, "busy: reported {b_load}, scheduled {got}");
        assert!(b_load > 20.0, "busy: {b_load}");
        assert!(i_load < 5.0, "idle: {i_load}");
        assert!(b.memory_consumption.unwrap() > 0.0);
    }
}
