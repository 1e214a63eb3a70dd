//! The little the agent reads from Linux's `/proc`: load average, memory, process trees.
//! Parsing is pure (tested on sample text); reading returns `None` where `/proc` is missing.

use std::collections::BTreeSet;
use std::fs;

/// The 1-minute load average from the text of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `MemTotal` in KiB from the text of `/proc/meminfo`.
pub fn parse_mem_total_kib(text: &str) -> Option<u64> {
    kib_field(text, "MemTotal:")
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status` (absent for zombies and kernel threads).
pub fn parse_vm_rss_kib(text: &str) -> Option<u64> {
    kib_field(text, "VmRSS:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        None | Some("kB") => Some(value),
        Some(_) => None,
    }
}

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z` (zombie), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp })
}

/// The pids in the text of `/proc/<pid>/task/<tid>/children`.
pub fn parse_children(text: &str) -> Vec<u32> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

/// System load: the 1-minute load average per core, in percent (100 = every core busy).
pub fn load_percent(loadavg: f64, cores: usize) -> f64 {
    loadavg / cores.max(1) as f64 * 100.0
}

/// Memory used by `rss_kib` as a percentage of `total_kib`, at most 100.
pub fn memory_percent(rss_kib: u64, total_kib: u64) -> Option<f64> {
    (total_kib > 0).then(|| (rss_kib as f64 / total_kib as f64 * 100.0).min(100.0))
}

pub fn loadavg() -> Option<f64> {
    parse_loadavg(&fs::read_to_string("/proc/loadavg").ok()?)
}

pub fn mem_total_kib() -> Option<u64> {
    parse_mem_total_kib(&fs::read_to_string("/proc/meminfo").ok()?)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` is a running (not zombie) process of process group `pgrp`.
pub fn alive_in_group(pid: u32, pgrp: u32) -> bool {
    stat(pid).is_some_and(|s| s.pgrp == pgrp && s.state != 'Z' && s.state != 'X')
}

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

/// Direct children of `pid`: from `/proc/<pid>/task/*/children`, or by scanning every
/// process's parent where the kernel lacks that file.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        match fs::read_to_string(task.path().join("children")) {
            Ok(text) => out.extend(parse_children(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && task.path().exists() => return scan_children(pid),
            Err(_) => {}
        }
    }
    out
}

fn scan_children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:        23893732 kB\nMemAvailable:   24223808 kB\n";
    const STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\nVmPeak:\t   30000 kB\nVmRSS:\t   19604 kB\nRssAnon:\t    8000 kB\nThreads:\t1\n";

    #[test]
    fn loadavg_is_the_first_field() {
        assert_eq!(parse_loadavg("0.52 0.57 0.77 1/112 30369\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("x 1 2"), None);
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(parse_mem_total_kib(MEMINFO), Some(24_684_096));
        assert_eq!(parse_mem_total_kib("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total_kib("MemTotal: 12 MB\n"), None);
    }

    #[test]
    fn status_rss() {
        assert_eq!(parse_vm_rss_kib(STATUS), Some(19_604));
        // Zombies have no VmRSS line; RssAnon must not be taken for it.
        assert_eq!(parse_vm_rss_kib("Name:\tz\nState:\tZ (zombie)\nRssAnon:\t1 kB\n"), None);
    }

    #[test]
    fn stat_with_a_tricky_command_name() {
        let stat = "4242 (my (weird) app) S 4200 4100 4100 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(stat), Some(Stat { state: 'S', ppid: 4200, pgrp: 4100 }));
        assert_eq!(parse_stat("4242 (app) Z 1 7 7 0").map(|s| s.state), Some('Z'));
        assert_eq!(parse_stat("4242 (app S"), None);
    }

    #[test]
    fn children_list() {
        assert_eq!(parse_children("30386 30400 \n"), vec![30386, 30400]);
        assert!(parse_children("").is_empty());
    }

    #[test]
    fn percentages() {
        assert_eq!(load_percent(1.0, 2), 50.0);
        assert_eq!(load_percent(3.0, 0), 300.0);
        assert_eq!(memory_percent(512, 1024), Some(50.0));
        assert_eq!(memory_percent(1, 0), None);
        assert_eq!(memory_percent(4096, 1024), Some(100.0));
    }

    #[test]
    fn this_process_is_readable() {
        if !std::path::Path::new("/proc/self/status").exists() {
            return;
        }
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(mem_total_kib().unwrap() > 0);
        assert!(loadavg().unwrap() >= 0.0);
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let found = descendants(std::process::id()).contains(&pid);
        let group = stat(std::process::id()).unwrap().pgrp;
        let alive = alive_in_group(pid, group);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found && alive);
        assert!(!alive_in_group(pid, group));
    }
}
