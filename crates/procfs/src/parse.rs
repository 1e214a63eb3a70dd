//! Pure parsers of /proc's text formats, tested on sample text.

/// The fields of `/proc/<pid>/stat` Stratos uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// User and system CPU time of the children this process waited for, in clock ticks:
    /// a reaped child's time moves here, so a tree's total does not drop when one exits.
    pub cutime: u64,
    pub cstime: u64,
    /// When the process started, in clock ticks after boot: with the pid, it names one
    /// process even after the pid is reused.
    pub start_ticks: u64,
}

impl Stat {
    /// The CPU time of the process and of its reaped children, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }

    /// Running or sleeping, not a zombie waiting to be reaped (nor dead).
    pub fn is_live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is rest[0]; field n is rest[n - 3].
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: field(&fields, 4)?,
        pgrp: field(&fields, 5)?,
        utime: field(&fields, 14)?,
        stime: field(&fields, 15)?,
        cutime: field(&fields, 16)?,
        cstime: field(&fields, 17)?,
        start_ticks: field(&fields, 22)?,
    })
}

/// Field `n` (counted from 1, as proc(5) does) of a stat line, from the fields after the name.
fn field<T: std::str::FromStr>(after_name: &[&str], n: usize) -> Option<T> {
    after_name.get(n - 3)?.parse().ok()
}

/// The 1-minute load average from the text of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A `Name:   123 kB` field of `/proc/meminfo` or `/proc/<pid>/status`, in KiB (`name`
/// without its colon). `None` when absent (zombies have no `VmRSS`) or in another unit.
pub fn parse_kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    let mut words = line[name.len() + 1..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        None | Some("kB") => Some(value),
        Some(_) => None,
    }
}

/// `Uid:` of `/proc/<pid>/status`: the real, effective, saved and filesystem uids.
pub fn parse_uids(text: &str) -> Option<[u32; 4]> {
    let line = text.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let ids: Vec<u32> = line.split_whitespace().map(|u| u.parse().ok()).collect::<Option<_>>()?;
    ids.try_into().ok()
}

/// The pids in the text of `/proc/<pid>/task/<tid>/children`.
pub fn parse_children(text: &str) -> Vec<u32> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

/// The value of `name` in the bytes of `/proc/<pid>/environ` (NUL-separated `NAME=value`).
pub fn parse_environ_var(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|b| *b == 0).find_map(|var| {
        let value = var.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// Every `NAME=value` in the bytes of `/proc/<pid>/environ`, in order (a variable
/// without `=` is left out).
pub fn parse_environ(environ: &[u8]) -> Vec<(String, String)> {
    environ
        .split(|b| *b == 0)
        .filter_map(|var| {
            let at = var.iter().position(|b| *b == b'=')?;
            let (name, value) = (&var[..at], &var[at + 1..]);
            Some((String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(value).into_owned()))
        })
        .collect()
}

/// A limit the kernel writes as a number or as a word for "none" (`max` in cgroup v2, `-1`
/// or a near-`i64::MAX` page-rounded figure in cgroup v1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit<T> {
    Unlimited,
    At(T),
}

impl<T> Limit<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Limit::Unlimited => None,
            Limit::At(v) => Some(v),
        }
    }
}

/// cgroup v1 writes "no memory limit" as `PAGE_COUNTER_MAX` pages in bytes, just under
/// `i64::MAX`; anything above 2^62 bytes is no limit.
const V1_NO_LIMIT_ABOVE: u64 = 1 << 62;

/// A single number file (`memory.current`, `cpuacct.usage`, `cpu.cfs_period_us`, ...).
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `usage_usec` of cgroup v2's `cpu.stat`: the group's CPU time, in microseconds.
pub fn parse_cpu_stat_usage_usec(text: &str) -> Option<u64> {
    parse_keyed(text, "usage_usec")
}

/// A `key value` line of a cgroup's flat keyed file (`cpu.stat`, `memory.stat`).
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == key).then_some(())?;
        words.next()?.parse().ok()
    })
}

/// cgroup v2's `cpu.max` (`$QUOTA $PERIOD`, `max 100000` when unlimited): the limit in cores.
pub fn parse_cpu_max(text: &str) -> Option<Limit<f64>> {
    let mut words = text.split_whitespace();
    let quota = words.next()?;
    let period: u64 = words.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" {
        return Some(Limit::Unlimited);
    }
    cores(quota.parse().ok()?, period)
}

/// cgroup v1's `cpu.cfs_quota_us` (`-1` when unlimited) and `cpu.cfs_period_us`: the limit in cores.
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<Limit<f64>> {
    let quota: i64 = quota.trim().parse().ok()?;
    if quota < 0 {
        return Some(Limit::Unlimited);
    }
    cores(quota as u64, parse_u64(period)?)
}

fn cores(quota_us: u64, period_us: u64) -> Option<Limit<f64>> {
    (period_us > 0 && quota_us > 0).then(|| Limit::At(quota_us as f64 / period_us as f64))
}

/// A memory limit in bytes: cgroup v2's `memory.max` (`max`) or v1's `memory.limit_in_bytes`.
pub fn parse_memory_limit(text: &str) -> Option<Limit<u64>> {
    let text = text.trim();
    if text == "max" {
        return Some(Limit::Unlimited);
    }
    let bytes = parse_u64(text)?;
    Some(if bytes >= V1_NO_LIMIT_ABOVE { Limit::Unlimited } else { Limit::At(bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:        23893732 kB\nMemAvailable:   24223808 kB\n";
    const STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\nUid:\t1000\t1001\t1002\t1003\nVmPeak:\t   30000 kB\nVmHWM:\t   20000 kB\nVmRSS:\t   19604 kB\nRssAnon:\t    8000 kB\nThreads:\t1\n";

    #[test]
    fn stat_with_a_tricky_command_name() {
        let stat = "4242 (my (weird) app) S 4200 4100 4100 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 1 0 987654 0 0";
        let parsed = parse_stat(stat).unwrap();
        assert_eq!(
            parsed,
            Stat { state: 'S', ppid: 4200, pgrp: 4100, utime: 10, stime: 5, cutime: 0, cstime: 0, start_ticks: 987654 }
        );
        assert_eq!(parse_stat(&stat.replace(" 10 5 0 0 20", " 10 5 7 3 20")).unwrap().cpu_ticks(), 25);
        assert!(parsed.is_live());
        let zombie = parse_stat("4242 (app) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5").unwrap();
        assert_eq!((zombie.state, zombie.is_live()), ('Z', false));
        assert_eq!(parse_stat("4242 (app S"), None);
        assert_eq!(parse_stat("4242 (app) S 1 7 7"), None, "too few fields");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn loadavg_is_the_first_field() {
        assert_eq!(parse_loadavg("0.52 0.57 0.77 1/112 30369\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("x 1 2"), None);
    }

    #[test]
    fn kib_fields() {
        assert_eq!(parse_kib(MEMINFO, "MemTotal"), Some(24_684_096));
        assert_eq!(parse_kib("MemFree: 1 kB\n", "MemTotal"), None);
        assert_eq!(parse_kib("MemTotal: 12 MB\n", "MemTotal"), None);
        assert_eq!(parse_kib(STATUS, "VmRSS"), Some(19_604));
        assert_eq!(parse_kib(STATUS, "VmHWM"), Some(20_000));
        // Zombies have no VmRSS line; RssAnon must not be taken for it, nor a longer name.
        assert_eq!(parse_kib("Name:\tz\nState:\tZ (zombie)\nRssAnon:\t1 kB\n", "VmRSS"), None);
        assert_eq!(parse_kib("VmRSSX:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn uids() {
        assert_eq!(parse_uids(STATUS), Some([1000, 1001, 1002, 1003]));
        assert_eq!(parse_uids("Uid:\t1 2\n"), None);
        assert_eq!(parse_uids("Name:\tx\n"), None);
    }

    #[test]
    fn children_list() {
        assert_eq!(parse_children("30386 30400 \n"), vec![30386, 30400]);
        assert!(parse_children("").is_empty());
    }

    #[test]
    fn environ_var() {
        let environ = b"PATH=/bin\0STRATOS_MEMBER_ID=m-1\0STRATOS_MEMBER_IDX=no\0";
        assert_eq!(parse_environ_var(environ, "STRATOS_MEMBER_ID").as_deref(), Some("m-1"));
        assert_eq!(parse_environ_var(environ, "STRATOS_MEMBER"), None);
        assert_eq!(parse_environ_var(b"", "PATH"), None);
        let all = parse_environ(b"PATH=/bin\0EMPTY=\0NOEQUALS\0A=b=c\0");
        let want = [("PATH", "/bin"), ("EMPTY", ""), ("A", "b=c")].map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(all, want);
    }

    #[test]
    fn cgroup_v2_cpu() {
        let stat = "usage_usec 2468013\nuser_usec 2000000\nsystem_usec 468013\nnr_periods 12\nnr_throttled 3\n";
        assert_eq!(parse_cpu_stat_usage_usec(stat), Some(2_468_013));
        assert_eq!(parse_cpu_stat_usage_usec("user_usec 5\n"), None);
        assert_eq!(parse_keyed("usage_usecx 1\nusage_usec 2\n", "usage_usec"), Some(2), "a longer key is another key");
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(Limit::At(0.5)));
        assert_eq!(parse_cpu_max("200000 100000"), Some(Limit::At(2.0)));
        assert_eq!(parse_cpu_max("max 100000\n"), Some(Limit::Unlimited));
        assert_eq!(parse_cpu_max("max"), Some(Limit::Unlimited));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("50000 0"), None);
        assert_eq!(parse_cpu_max("x 100000"), None);
    }

    #[test]
    fn cgroup_v1_cpu() {
        assert_eq!(parse_u64("123456789012\n"), Some(123_456_789_012), "cpuacct.usage, in ns");
        assert_eq!(parse_cfs_quota("50000\n", "100000\n"), Some(Limit::At(0.5)));
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), Some(Limit::Unlimited));
        assert_eq!(parse_cfs_quota("50000", "x"), None);
        assert_eq!(Limit::At(0.5).value(), Some(0.5));
        assert_eq!(Limit::<f64>::Unlimited.value(), None);
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("max\n"), Some(Limit::Unlimited));
        assert_eq!(parse_memory_limit("268435456\n"), Some(Limit::At(268_435_456)));
        assert_eq!(parse_memory_limit("9223372036854771712\n"), Some(Limit::Unlimited), "v1's no limit");
        assert_eq!(parse_memory_limit("lots"), None);
        let stat = "anon 1000\nfile 5000\ninactive_file 4096\nactive_file 904\n";
        assert_eq!(parse_keyed(stat, "inactive_file"), Some(4096));
        assert_eq!(parse_keyed("total_inactive_file 12\n", "total_inactive_file"), Some(12));
    }
}
