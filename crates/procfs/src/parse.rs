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
    /// When the process started, in clock ticks after boot: with the pid, it names one
    /// process even after the pid is reused.
    pub start_ticks: u64,
}

impl Stat {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:        23893732 kB\nMemAvailable:   24223808 kB\n";
    const STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\nUid:\t1000\t1001\t1002\t1003\nVmPeak:\t   30000 kB\nVmHWM:\t   20000 kB\nVmRSS:\t   19604 kB\nRssAnon:\t    8000 kB\nThreads:\t1\n";

    #[test]
    fn stat_with_a_tricky_command_name() {
        let stat = "4242 (my (weird) app) S 4200 4100 4100 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 1 0 987654 0 0";
        let parsed = parse_stat(stat).unwrap();
        assert_eq!(parsed, Stat { state: 'S', ppid: 4200, pgrp: 4100, utime: 10, stime: 5, start_ticks: 987654 });
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
    }
}
