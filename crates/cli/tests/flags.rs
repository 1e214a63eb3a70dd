//! Duration flags on the real binary: `--help` shows defaults with their unit, an old
//! spelling (a name with the unit in it, a bare number) still works and is warned about
//! in the log, and a duration that is not one is refused naming the flag.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{eventually, free_port, http_get, spawn, stratos, wait_listening, BIN};

/// The part of a `--help` text about `flag`: from its name to the next flag.
fn about<'h>(help: &'h str, flag: &str) -> &'h str {
    let start = help.find(&format!("{flag} ")).unwrap_or_else(|| panic!("{flag} is not in\n{help}"));
    let rest = &help[start + flag.len()..];
    let end = ["\n  -", "\n      --"].iter().filter_map(|next| rest.find(next)).min().unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn help_shows_defaults_with_their_unit() {
    let up = stratos(&["up", "--help"]);
    assert!(up.success(), "{up}");
    for (flag, default) in
        [("--evaluation-interval", "15s"), ("--health-window", "60s"), ("--lb-header-timeout", "10s")]
    {
        let text = about(&up.stdout, flag);
        assert!(text.contains("<DURATION>") && text.contains(&format!("[default: {default}]")), "{flag}: {text}");
    }
    let agent = stratos(&["agent", "--help"]);
    assert!(about(&agent.stdout, "--drain-grace").contains("[default: 1s]"), "{agent}");
}

#[test]
fn an_old_spelling_still_works_and_is_warned_about() {
    let port = free_port();
    let mut command = Command::new(BIN);
    command.args(["sample-http", "--port", &port.to_string(), "--delay-ms", "300"]);
    let app = spawn("stratos sample-http", command);
    wait_listening(port, "sample-http");
    let started = Instant::now();
    let (status, body) = http_get(port, "/").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300), "--delay-ms 300 was not taken as 300 ms");
    eventually(Duration::from_secs(10), "the deprecation warning", || {
        let log = app.stderr();
        if log.contains("deprecated: --delay-ms 300: use --delay 300ms") {
            Ok(())
        } else {
            Err(log)
        }
    });
    assert_eq!(app.stderr().matches("deprecated").count(), 1, "warned once:\n{}", app.stderr());
}

#[test]
fn a_duration_without_sense_is_refused_naming_the_flag() {
    let out = stratos(&["up", "--evaluation-interval", "soon"]);
    assert!(!out.status.success(), "{out}");
    assert!(out.stderr.contains("--evaluation-interval") && out.stderr.contains("soon"), "{out}");
}
