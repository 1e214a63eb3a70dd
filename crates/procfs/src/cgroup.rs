//! The cgroup a container's processes run in, read from where the container sees it: its
//! own group mounted at `/sys/fs/cgroup` (cgroup v2, one hierarchy) or at
//! `/sys/fs/cgroup/<controller>` (cgroup v1, one per controller). Only meaningful where
//! that group is the member's alone (a container); on a host it is the machine's or a
//! session's, which is why the agent uses the process tree there. Parsing is in [`parse`].

use std::fs;
use std::path::{Path, PathBuf};

use crate::parse::{self, Limit};

/// Where cgroups are mounted.
pub const MOUNT: &str = "/sys/fs/cgroup";

/// The group's files, by hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// One directory with `cpu.stat`, `cpu.max`, `memory.current`, `memory.max`.
    V2 { dir: PathBuf },
    /// `cpuacct.usage` (ns), `cpu.cfs_quota_us` / `cpu.cfs_period_us`, and
    /// `memory.usage_in_bytes` / `memory.limit_in_bytes`, each in its controller's directory.
    V1 { cpuacct: PathBuf, cpu: PathBuf, memory: PathBuf },
}

impl Cgroup {
    /// The group mounted at [`MOUNT`], if any.
    pub fn detect() -> Option<Cgroup> {
        Cgroup::at(Path::new(MOUNT))
    }

    /// The group mounted at `root`: v2 when `root/cgroup.controllers` exists, else v1 when
    /// its CPU accounting controller does (alone or co-mounted as `cpu,cpuacct`).
    pub fn at(root: &Path) -> Option<Cgroup> {
        if root.join("cgroup.controllers").is_file() {
            return Some(Cgroup::V2 { dir: root.to_path_buf() });
        }
        let first = |names: &[&str], file: &str| names.iter().map(|n| root.join(n)).find(|d| d.join(file).is_file());
        Some(Cgroup::V1 {
            cpuacct: first(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"], "cpuacct.usage")?,
            cpu: first(&["cpu", "cpu,cpuacct", "cpuacct,cpu"], "cpu.cfs_quota_us").unwrap_or_else(|| root.join("cpu")),
            memory: root.join("memory"),
        })
    }

    /// `2` or `1`.
    pub fn version(&self) -> u8 {
        match self {
            Cgroup::V2 { .. } => 2,
            Cgroup::V1 { .. } => 1,
        }
    }

    /// The CPU time the group's processes used, in microseconds.
    pub fn cpu_usage_usec(&self) -> Option<u64> {
        match self {
            Cgroup::V2 { dir } => parse::parse_cpu_stat_usage_usec(&read(dir, "cpu.stat")?),
            Cgroup::V1 { cpuacct, .. } => Some(parse::parse_u64(&read(cpuacct, "cpuacct.usage")?)? / 1000),
        }
    }

    /// The group's CPU limit, in cores.
    pub fn cpu_limit(&self) -> Option<Limit<f64>> {
        match self {
            Cgroup::V2 { dir } => parse::parse_cpu_max(&read(dir, "cpu.max")?),
            Cgroup::V1 { cpu, .. } => {
                parse::parse_cfs_quota(&read(cpu, "cpu.cfs_quota_us")?, &read(cpu, "cpu.cfs_period_us")?)
            }
        }
    }

    /// The memory the group uses, in bytes, less its inactive page cache (which the kernel
    /// reclaims before it would hit the limit), as `docker stats` counts it.
    pub fn memory_bytes(&self) -> Option<u64> {
        let (dir, usage, stat, inactive) = match self {
            Cgroup::V2 { dir } => (dir, "memory.current", "memory.stat", "inactive_file"),
            Cgroup::V1 { memory, .. } => (memory, "memory.usage_in_bytes", "memory.stat", "total_inactive_file"),
        };
        let used = parse::parse_u64(&read(dir, usage)?)?;
        let cache = read(dir, stat).and_then(|s| parse::parse_keyed(&s, inactive)).unwrap_or(0);
        Some(used.saturating_sub(cache))
    }

    /// The group's memory limit, in bytes.
    pub fn memory_limit(&self) -> Option<Limit<u64>> {
        match self {
            Cgroup::V2 { dir } => parse::parse_memory_limit(&read(dir, "memory.max")?),
            Cgroup::V1 { memory, .. } => parse::parse_memory_limit(&read(memory, "memory.limit_in_bytes")?),
        }
    }
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stratos-procfs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_v2_group_is_read_from_its_files() {
        let root = scratch("v2");
        write(&root, "cgroup.controllers", "cpu memory pids\n");
        write(&root, "cpu.stat", "usage_usec 1500\nuser_usec 1000\n");
        write(&root, "cpu.max", "50000 100000\n");
        write(&root, "memory.current", "10000\n");
        write(&root, "memory.stat", "anon 6000\ninactive_file 4000\n");
        write(&root, "memory.max", "max\n");
        let group = Cgroup::at(&root).unwrap();
        assert_eq!(group.version(), 2);
        assert_eq!(group.cpu_usage_usec(), Some(1500));
        assert_eq!(group.cpu_limit(), Some(Limit::At(0.5)));
        assert_eq!(group.memory_bytes(), Some(6000));
        assert_eq!(group.memory_limit(), Some(Limit::Unlimited));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_v1_group_is_read_from_each_controller() {
        let root = scratch("v1");
        write(&root.join("cpu,cpuacct"), "cpuacct.usage", "2500000\n");
        write(&root.join("cpu,cpuacct"), "cpu.cfs_quota_us", "-1\n");
        write(&root.join("cpu,cpuacct"), "cpu.cfs_period_us", "100000\n");
        write(&root.join("memory"), "memory.usage_in_bytes", "8192\n");
        write(&root.join("memory"), "memory.limit_in_bytes", "4096000\n");
        let group = Cgroup::at(&root).unwrap();
        assert_eq!(group.version(), 1);
        assert_eq!(group.cpu_usage_usec(), Some(2500), "nanoseconds to microseconds");
        assert_eq!(group.cpu_limit(), Some(Limit::Unlimited));
        assert_eq!(group.memory_bytes(), Some(8192), "no memory.stat: nothing subtracted");
        assert_eq!(group.memory_limit(), Some(Limit::At(4_096_000)));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn no_group_without_its_files() {
        let root = scratch("none");
        fs::create_dir_all(&root).unwrap();
        assert_eq!(Cgroup::at(&root), None);
        fs::remove_dir_all(root).unwrap();
    }
}
