//! The member's usage as the health stats report it: percentages of the machine, from the
//! figures `/proc` gives (`stratos_procfs`). Pure.

/// System load: the 1-minute load average per core, in percent (100 = every core busy).
pub fn load_percent(loadavg: f64, cores: usize) -> f64 {
    loadavg / cores.max(1) as f64 * 100.0
}

/// Memory used by `rss_kib` as a percentage of `total_kib`, at most 100.
pub fn memory_percent(rss_kib: u64, total_kib: u64) -> Option<f64> {
    (total_kib > 0).then(|| (rss_kib as f64 / total_kib as f64 * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(load_percent(1.0, 2), 50.0);
        assert_eq!(load_percent(3.0, 0), 300.0);
        assert_eq!(memory_percent(512, 1024), Some(50.0));
        assert_eq!(memory_percent(1, 0), None);
        assert_eq!(memory_percent(4096, 1024), Some(100.0));
    }
}
