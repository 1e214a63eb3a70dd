//! The old spellings of duration flags, still taken, with a deprecation warning each.
//!
//! Every duration flag now takes a unit (`--evaluation-interval 15s`, parsed by
//! `stratos_model::duration`). Before, some took a bare number in a unit of their own
//! (`--evaluation-interval 15`, seconds; `--lb-header-timeout 10`, seconds) and some
//! carried the unit in their name (`--drain-grace-ms 500`, `STRATOS_GIT_TIMEOUT_SECS=60`).
//! Scripts, systemd units and stored cartridge definitions (`env.STRATOS_…` properties,
//! which reach the agent's environment) still say so; this module rewrites them into
//! the new spellings before clap parses the command line, and says what it rewrote.
//!
//! A duration flag is one whose value is named [`DURATION`]: the command's own
//! definition says which, so no list here can drift from it (a test checks that every
//! renamed name below still exists).

use std::ffi::OsString;

use clap::Command;
use stratos_model::duration::VALUE_NAME as DURATION;

/// The unit a bare number had in an old spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Secs,
    Millis,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Secs => "s",
            Unit::Millis => "ms",
        }
    }
}

/// Flags renamed when they took a unit: old name, new name, the old one's unit.
/// A bare number given to any other duration flag was in seconds.
const RENAMED_FLAGS: &[(&str, &str, Unit)] = &[
    ("git-timeout-secs", "git-timeout", Unit::Secs),
    ("health-interval-secs", "health-interval", Unit::Secs),
    ("activation-timeout-secs", "activation-timeout", Unit::Secs),
    ("drain-grace-ms", "drain-grace", Unit::Millis),
    ("cpu-work-ms", "cpu-work", Unit::Millis),
    ("delay-ms", "delay", Unit::Millis),
];

/// Environment variables renamed likewise (the agent's, set by drivers and cartridges).
const RENAMED_VARS: &[(&str, &str, Unit)] = &[
    ("STRATOS_GIT_TIMEOUT_SECS", "STRATOS_GIT_TIMEOUT", Unit::Secs),
    ("STRATOS_HEALTH_INTERVAL_SECS", "STRATOS_HEALTH_STATS_INTERVAL", Unit::Secs),
    ("STRATOS_ACTIVATION_TIMEOUT_SECS", "STRATOS_ACTIVATION_TIMEOUT", Unit::Secs),
    ("STRATOS_DRAIN_GRACE_MS", "STRATOS_DRAIN_GRACE", Unit::Millis),
];

/// A command line and environment in the new spellings, and what was rewritten.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Modernized {
    pub args: Vec<OsString>,
    /// Variables to set (name, value) before clap reads the environment.
    pub vars: Vec<(String, String)>,
    /// One line per old spelling met, for the log.
    pub deprecations: Vec<String>,
}

impl Modernized {
    /// Sets the rewritten variables in this process's environment. Call before any
    /// thread starts (clap reads them at parse time; members inherit them).
    pub fn apply_vars(&self) {
        for (name, value) in &self.vars {
            std::env::set_var(name, value);
        }
    }

    /// Logs each deprecation once; after the log is set up.
    pub fn warn(&self) {
        for deprecation in &self.deprecations {
            tracing::warn!("deprecated: {deprecation}");
        }
    }
}

/// `value` (a bare number) with its old `unit`: `15` seconds is `15s`, `1.5` seconds `1500ms`.
fn with_unit(value: &str, unit: Unit) -> String {
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{value}{}", unit.suffix());
    }
    let millis = value.parse::<f64>().unwrap_or(0.0) * if unit == Unit::Secs { 1000.0 } else { 1.0 };
    format!("{}ms", millis.round() as u64)
}

/// `12` or `1.5`: a duration in an old spelling, without its unit.
fn is_bare_number(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'.') && value.bytes().any(|b| b != b'.')
}

fn is_duration(arg: &clap::Arg) -> bool {
    arg.get_value_names().is_some_and(|names| names.iter().any(|n| n.as_str() == DURATION))
}

fn find_long<'c>(command: &'c Command, long: &str) -> Option<&'c clap::Arg> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|v| v.contains(&long)))
}

/// Rewrites `args` (the whole command line, program first) and the variables `var`
/// reads into the new spellings of `command`'s duration flags.
pub fn modernize(command: &Command, args: Vec<OsString>, var: impl Fn(&str) -> Option<String>) -> Modernized {
    let mut out = Modernized::default();
    let mut current = command;
    let mut args = args.into_iter();
    if let Some(program) = args.next() {
        out.args.push(program);
    }
    while let Some(token) = args.next() {
        let Some(text) = token.to_str().map(str::to_owned) else {
            out.args.push(token);
            continue;
        };
        if text == "--" {
            out.args.push(token);
            out.args.extend(args.by_ref());
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let renamed = RENAMED_FLAGS
                .iter()
                .find(|(old, new, _)| *old == name && find_long(current, new).is_some_and(is_duration));
            let (name, unit) = match renamed {
                Some((_, new, unit)) => (*new, *unit),
                None => (name, Unit::Secs),
            };
            let Some(arg) = find_long(current, name) else {
                out.args.push(token);
                continue;
            };
            if !arg.get_action().takes_values() {
                out.args.push(token);
                continue;
            }
            let value = match inline {
                Some(value) => Some(OsString::from(value)),
                None => args.next(),
            };
            let Some(value) = value else {
                out.args.push(token);
                continue;
            };
            if !is_duration(arg) {
                out.args.push(token);
                if !text.contains('=') {
                    out.args.push(value);
                }
                continue;
            }
            let value_text = value.to_string_lossy().into_owned();
            let new_value = if is_bare_number(&value_text) { with_unit(&value_text, unit) } else { value_text.clone() };
            if let Some((old, new, _)) = renamed {
                out.deprecations.push(format!("--{old} {value_text}: use --{new} {new_value}"));
            } else if new_value != value_text {
                out.deprecations.push(format!("--{name} {value_text} without a unit: use --{name} {new_value}"));
            }
            out.args.push(format!("--{name}={new_value}").into());
            continue;
        }
        if let Some(short) = text.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            let c = short.chars().next().expect("one character");
            let takes_value = current
                .get_arguments()
                .find(|a| a.get_short() == Some(c))
                .is_some_and(|a| a.get_action().takes_values());
            out.args.push(token);
            if takes_value {
                out.args.extend(args.next());
            }
            continue;
        }
        if !text.starts_with('-') {
            if let Some(sub) = current.find_subcommand(&text) {
                current = sub;
            }
        }
        out.args.push(token);
    }
    modernize_vars(current, &var, &mut out);
    out
}

/// The environment of the command that runs: bare numbers in duration variables (they
/// were seconds), and renamed variables.
fn modernize_vars(command: &Command, var: &impl Fn(&str) -> Option<String>, out: &mut Modernized) {
    for arg in command.get_arguments().filter(|a| is_duration(a)) {
        let Some(name) = arg.get_env().and_then(|e| e.to_str()) else { continue };
        let renamed = RENAMED_VARS.iter().find(|(_, new, _)| *new == name);
        if let Some(value) = var(name) {
            if is_bare_number(&value) {
                let new_value = with_unit(&value, Unit::Secs);
                out.deprecations.push(format!("{name}={value} without a unit: use {name}={new_value}"));
                out.vars.push((name.to_owned(), new_value));
            }
            if let Some((old, _, _)) = renamed.filter(|(old, _, _)| var(old).is_some()) {
                out.deprecations.push(format!("{old} is ignored: {name} is set"));
            }
            continue;
        }
        let Some((old, new, unit)) = renamed else { continue };
        let Some(value) = var(old) else { continue };
        let new_value = if is_bare_number(&value) { with_unit(&value, *unit) } else { value.clone() };
        out.deprecations.push(format!("{old}={value}: use {new}={new_value}"));
        out.vars.push((new.to_string(), new_value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::HashMap;

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Modernized {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args = std::iter::once("stratos").chain(args.iter().copied()).map(OsString::from).collect();
        modernize(&crate::Cli::command(), args, |name| vars.get(name).cloned())
    }

    fn args(m: &Modernized) -> Vec<&str> {
        m.args[1..].iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn new_spellings_pass_unchanged() {
        let line = ["up", "--evaluation-interval", "15s", "--lb-header-timeout=500ms", "--data-dir", "/tmp/x"];
        let m = run(&line, &[("STRATOS_HEALTH_WINDOW", "1m")]);
        assert_eq!(args(&m), ["up", "--evaluation-interval=15s", "--lb-header-timeout=500ms", "--data-dir", "/tmp/x"]);
        assert!(m.deprecations.is_empty() && m.vars.is_empty(), "{m:?}");
    }

    #[test]
    fn bare_numbers_were_seconds() {
        let m = run(&["up", "--evaluation-interval", "2", "--health-window=60"], &[]);
        assert_eq!(args(&m), ["up", "--evaluation-interval=2s", "--health-window=60s"]);
        assert_eq!(m.deprecations.len(), 2);
        assert!(m.deprecations[0].contains("use --evaluation-interval 2s"), "{:?}", m.deprecations);
        let m = run(&["lb", "--lb-connect-timeout", "1.5"], &[]);
        assert_eq!(args(&m), ["lb", "--lb-connect-timeout=1500ms"]);
        let m = run(&["application", "deploy", "app", "-p", "ap", "--timeout", "60"], &[]);
        assert_eq!(args(&m), ["application", "deploy", "app", "-p", "ap", "--timeout=60s"]);
    }

    #[test]
    fn renamed_flags_take_their_old_unit() {
        let m = run(&["agent", "--drain-grace-ms", "500", "--git-timeout-secs=30"], &[]);
        assert_eq!(args(&m), ["agent", "--drain-grace=500ms", "--git-timeout=30s"]);
        assert_eq!(
            m.deprecations,
            ["--drain-grace-ms 500: use --drain-grace 500ms", "--git-timeout-secs 30: use --git-timeout 30s"]
        );
        let m = run(&["sample-http", "--delay-ms", "200", "--port", "8080"], &[]);
        assert_eq!(args(&m), ["sample-http", "--delay=200ms", "--port", "8080"]);
    }

    #[test]
    fn values_and_other_commands_are_left_alone() {
        // `--delay-ms` is not a flag of `up`; a value that names a subcommand is a value.
        let m = run(&["up", "--delay-ms", "5", "--log-format", "agent", "--store", "15"], &[]);
        assert_eq!(args(&m), ["up", "--delay-ms", "5", "--log-format", "agent", "--store", "15"]);
        let m = run(&["cartridge", "add", "--", "--timeout", "5"], &[]);
        assert_eq!(args(&m), ["cartridge", "add", "--", "--timeout", "5"]);
    }

    #[test]
    fn old_variables_are_mapped_to_the_new_ones() {
        let vars =
            [("STRATOS_HEALTH_INTERVAL_SECS", "1"), ("STRATOS_DRAIN_GRACE_MS", "250"), ("STRATOS_GIT_TIMEOUT", "2s")];
        let mut m = run(&["agent"], &vars);
        m.vars.sort();
        assert_eq!(
            m.vars,
            [
                ("STRATOS_DRAIN_GRACE".to_string(), "250ms".to_string()),
                ("STRATOS_HEALTH_STATS_INTERVAL".into(), "1s".into())
            ]
        );
        assert_eq!(m.deprecations.len(), 2, "{:?}", m.deprecations);
        let m = run(&["up"], &[("STRATOS_EVALUATION_INTERVAL", "15"), ("STRATOS_HEALTH_INTERVAL", "5s")]);
        assert_eq!(m.vars, [("STRATOS_EVALUATION_INTERVAL".to_string(), "15s".to_string())]);
        // The new name wins over the old.
        let m = run(&["agent"], &[("STRATOS_GIT_TIMEOUT_SECS", "9"), ("STRATOS_GIT_TIMEOUT", "2s")]);
        assert!(m.vars.is_empty());
        assert_eq!(m.deprecations, ["STRATOS_GIT_TIMEOUT_SECS is ignored: STRATOS_GIT_TIMEOUT is set"]);
    }

    #[test]
    fn every_renamed_name_is_a_duration_flag_of_some_command() {
        let cli = crate::Cli::command();
        let commands: Vec<&Command> = cli.get_subcommands().collect();
        let durations: Vec<&clap::Arg> = commands.iter().flat_map(|c| all_args(c)).filter(|a| is_duration(a)).collect();
        for (_, new, _) in RENAMED_FLAGS {
            assert!(durations.iter().any(|a| a.get_long() == Some(new)), "--{new}");
        }
        for (_, new, _) in RENAMED_VARS {
            assert!(durations.iter().any(|a| a.get_env().is_some_and(|e| e == *new)), "{new}");
        }
        // And every duration flag shows a default with its unit, or none.
        for arg in durations {
            for default in arg.get_default_values() {
                assert!(!is_bare_number(default.to_str().unwrap()) || default == "0", "{arg:?}");
            }
        }
    }

    fn all_args(command: &Command) -> Vec<&clap::Arg> {
        let mut out: Vec<&clap::Arg> = command.get_arguments().collect();
        for sub in command.get_subcommands() {
            out.extend(all_args(sub));
        }
        out
    }

    #[test]
    fn bad_durations_are_refused_naming_the_flag() {
        let error =
            match <crate::Cli as clap::Parser>::try_parse_from(["stratos", "up", "--evaluation-interval", "soon"]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("`soon` was taken for a duration"),
            };
        assert!(error.contains("--evaluation-interval") && error.contains("soon"), "{error}");
        let error =
            match <crate::Cli as clap::Parser>::try_parse_from(["stratos", "lb", "--lb-header-timeout", "0.5.1s"]) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("taken"),
            };
        assert!(error.contains("--lb-header-timeout"), "{error}");
    }
}
