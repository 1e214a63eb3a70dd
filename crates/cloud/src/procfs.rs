//! The local driver's view of /proc (`stratos_procfs`): whether a member's process (group)
//! still lives, without being fooled by a recycled pid or a zombie. Pids are `i32` here, as
//! `kill(2)` takes them.

/// (state, process group, start time in clock ticks) from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, i32, u64)> {
    let s = stratos_procfs::stat(u32::try_from(pid).ok()?)?;
    Some((s.state, i32::try_from(s.pgrp).ok()?, s.start_ticks))
}

/// Whether `pid` is the same live process that started at `start_ticks`.
pub fn is_alive(pid: i32, start_ticks: u64) -> bool {
    u32::try_from(pid).is_ok_and(|pid| stratos_procfs::is_alive(pid, start_ticks))
}

/// Whether any live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    u32::try_from(pgid).is_ok_and(stratos_procfs::group_alive)
}
