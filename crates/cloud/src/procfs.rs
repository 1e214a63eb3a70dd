//! Just enough of /proc to tell whether a process (group) still lives, without
//! being fooled by a recycled pid or a zombie.

use std::fs;

/// (state, process group, start time in clock ticks) from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, i32, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn parse_stat(text: &str) -> Option<(char, i32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, pgrp, start))
}

/// Whether `pid` is the same live process that started at `start_ticks`.
pub fn is_alive(pid: i32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some((state, _, start)) if start == start_ticks && state != 'Z' && state != 'X')
}

/// Whether any live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else { return false };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .any(|pid| matches!(stat(pid), Some((state, pgrp, _)) if pgrp == pgid && state != 'Z' && state != 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 4242, 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive() {
        let me = std::process::id() as i32;
        let (_, pgrp, start) = stat(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1), "a recycled pid has another start time");
        assert!(group_alive(pgrp));
    }
}
