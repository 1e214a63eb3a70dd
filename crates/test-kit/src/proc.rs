//! Figures about processes from /proc (through `stratos_procfs`, re-exported here), for
//! benches that measure a process tree.

pub use stratos_procfs::*;

/// `pid` and every live descendant of it.
pub fn tree(pid: u32) -> Vec<u32> {
    std::iter::once(pid).chain(descendants(pid)).collect()
}

/// CPU time (user + system) of `pid`'s process tree, in seconds.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    tree(pid).into_iter().filter_map(stat).map(|s| (s.utime + s.stime) as f64 / ticks).sum()
}

/// Peak resident memory (VmHWM) summed over `pid`'s process tree, in MiB.
pub fn tree_peak_rss_mib(pid: u32) -> f64 {
    tree(pid).into_iter().filter_map(peak_rss_kib).sum::<u64>() as f64 / 1024.0
}

/// This process's peak resident memory (VmHWM), in MiB.
pub fn own_peak_rss_mib() -> f64 {
    peak_rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_figures() {
        let me = std::process::id();
        assert!(tree(me).starts_with(&[me]));
        assert!(tree_peak_rss_mib(me) > 0.0);
        assert!(own_peak_rss_mib() > 0.0);
        assert!(tree_cpu_seconds(me) >= 0.0);
    }
}
