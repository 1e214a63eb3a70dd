//! The little Stratos reads from Linux's `/proc`: process state, groups and trees, load,
//! memory, uids and environments; and, in a container, its cgroup's CPU and memory ([`cgroup`]). Parsing is pure ([`parse`], tested on sample text); the
//! readers here are thin and return `None` (or nothing) where `/proc` or the process is
//! missing. No dependencies, so every crate, bench and test can use it.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

pub mod cgroup;
pub mod parse;

pub use cgroup::Cgroup;
pub use parse::{Limit, Stat};

/// `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> Option<Stat> {
    parse::parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    parse::parse_loadavg(&fs::read_to_string("/proc/loadavg").ok()?)
}

/// `MemTotal` in KiB.
pub fn mem_total_kib() -> Option<u64> {
    parse::parse_kib(&fs::read_to_string("/proc/meminfo").ok()?, "MemTotal")
}

/// A KiB field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...).
pub fn status_kib(pid: u32, name: &str) -> Option<u64> {
    parse::parse_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?, name)
}

/// Resident memory of `pid`, in KiB (`None` for zombies and kernel threads).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Peak resident memory of `pid` (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// The real, effective, saved and filesystem uids of `pid`.
pub fn uids(pid: u32) -> Option<[u32; 4]> {
    parse::parse_uids(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The value of the environment variable `name` in `pid`'s initial environment.
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    parse::parse_environ_var(&fs::read(format!("/proc/{pid}/environ")).ok()?, name)
}

/// `pid`'s initial environment, every `NAME=value` in it.
pub fn environ(pid: u32) -> Option<Vec<(String, String)>> {
    Some(parse::parse_environ(&fs::read(format!("/proc/{pid}/environ")).ok()?))
}

/// `pid`'s working directory.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Every pid in /proc now.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// Whether `pid` is the same live process that started at `start_ticks` (not a zombie, not
/// a later process given the same pid).
pub fn is_alive(pid: u32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.is_live())
}

/// Whether `pid` is a live process of process group `pgrp`.
pub fn alive_in_group(pid: u32, pgrp: u32) -> bool {
    stat(pid).is_some_and(|s| s.pgrp == pgrp && s.is_live())
}

/// Whether any live process is in process group `pgrp`.
pub fn group_alive(pgrp: u32) -> bool {
    pids().into_iter().any(|pid| alive_in_group(pid, pgrp))
}

/// Direct children of `pid`: from `/proc/<pid>/task/*/children`, or by scanning every
/// process's parent where the kernel lacks that file.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        match fs::read_to_string(task.path().join("children")) {
            Ok(text) => out.extend(parse::parse_children(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && task.path().exists() => return scan_children(pid),
            Err(_) => {}
        }
    }
    out
}

fn scan_children(parent: u32) -> Vec<u32> {
    pids().into_iter().filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent)).collect()
}

/// The CPU time of `root` and its live descendants (with the children they reaped), in
/// clock ticks ([`USER_HZ`] a second); `None` once `root` is gone.
pub fn tree_cpu_ticks(root: u32) -> Option<u64> {
    let own = stat(root)?.cpu_ticks();
    Some(own + descendants(root).into_iter().filter_map(stat).map(|s| s.cpu_ticks()).sum::<u64>())
}

/// The clock ticks a second of `/proc/<pid>/stat`'s times: the kernel's `USER_HZ`, which
/// is 100 on every architecture Stratos runs on (x86-64, arm64).
pub const USER_HZ: u64 = 100;

/// Every live descendant of `root` (not `root` itself), parents before children.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::from([root]);
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for child in children(pid) {
            if seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_readable() {
        if !std::path::Path::new("/proc/self/status").exists() {
            return;
        }
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(peak_rss_kib(me).unwrap() >= rss_kib(me).unwrap());
        assert!(mem_total_kib().unwrap() > 0);
        assert!(loadavg().unwrap() >= 0.0);
        assert!(uids(me).is_some());
        assert_eq!(cwd(me), std::env::current_dir().ok());
        assert!(pids().contains(&me));
        let stat = stat(me).unwrap();
        assert!(is_alive(me, stat.start_ticks));
        assert!(!is_alive(me, stat.start_ticks + 1), "a recycled pid has another start time");
        assert!(group_alive(stat.pgrp));

        let mut child = std::process::Command::new("sleep").arg("30").env("PROCFS_TEST_VAR", "here").spawn().unwrap();
        let pid = child.id();
        let found = descendants(me).contains(&pid) && children(me).contains(&pid);
        let alive = alive_in_group(pid, stat.pgrp);
        // The kernel sets a new program's environment a moment after `exec` closes the
        // descriptors Command::spawn waits on: wait for it rather than race it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut var = environ_var(pid, "PROCFS_TEST_VAR");
        while var.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            var = environ_var(pid, "PROCFS_TEST_VAR");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found && alive);
        assert_eq!(var.as_deref(), Some("here"));
        assert!(!alive_in_group(pid, stat.pgrp));
    }
}
