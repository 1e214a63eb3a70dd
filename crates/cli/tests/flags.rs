//! Duration flags on the real binary: `--help` shows defaults with their unit, an old
//! spelling (a name with the unit in it, a bare number) still works and is warned about
//! in the log, and a duration that is not one is refused naming the flag.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{eventually, free_port, http_get, spawn, stratos, wait_listening, BIN};

#[test]
fn help_shows_defaults_with_their_unit() {
    let up = stratos(&["up", "--help"]);
    assert!(up.status.success(), "{up}");
    let line = |help: &str, flag: &str| help.lines().find(|l| l.contains(flag)).map(str::to_owned);
    let evaluation = up.stdout.split("--evaluation-interval").nth(1).unwrap_or_default().to_owned();
    assert!(evaluation.contains("[default: 15s]"), "{up}");
    assert!(line(&up.stdout, "--evaluation-interval").unwrap().contains("<DURATION>"), "{up}");
    let agent = stratos(&["agent", "--help"]);
    let drain = agent.stdout.split("--drain-grace ").nth(1).unwrap_or_default().to_owned();
    assert!(drain.contains("[default: 1s]"), "{agent}");
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
