//! The one parser of durations given on a command line or in the environment:
//! humantime's (`15s`, `500ms`, `2m`, `1h 30m`), used as the `value_parser` of every
//! duration flag of every `stratos` subcommand. The old spellings (a bare number in the
//! flag's old unit, names ending in `-secs`/`-ms`) are mapped to these by the binary
//! before its flags are parsed (`stratos` crate, `legacy_flags.rs`), with a warning.

use std::time::Duration;

/// What every duration flag shows as its value (`--evaluation-interval <DURATION>`).
pub const VALUE_NAME: &str = "DURATION";

/// Parses a duration with its unit: `15s`, `500ms`, `2m`, `1h 30m`; `0` alone is zero.
/// A bare number is refused (its unit would be a guess); clap names the flag in front
/// of the message.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a duration is needed, e.g. 15s, 500ms, 2m".into());
    }
    if text != "0" && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{text:?} has no unit: write e.g. {text}s or {text}ms"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration ({e}): write e.g. 15s, 500ms, 2m"))
}

/// As [`parse`], for a duration that must not be zero (an interval, a timeout that
/// cannot be switched off).
pub fn positive(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err(format!("{:?} must be more than zero", text.trim())),
        d => Ok(d),
    }
}

/// A duration as `parse` reads it back, for defaults and messages: `15s`, `500ms`, `12h`.
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 10s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_numbers_and_nonsense_are_refused_with_an_example() {
        let bare = parse("15").unwrap_err();
        assert!(bare.contains("no unit") && bare.contains("15s"), "{bare}");
        for bad in ["", "ten", "5 parsecs", "-1s", "1.5.2s"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("e.g."), "{bad:?}: {e}");
        }
    }

    #[test]
    fn intervals_are_not_zero() {
        assert_eq!(positive("250ms"), Ok(Duration::from_millis(250)));
        assert!(positive("0s").unwrap_err().contains("more than zero"));
    }

    #[test]
    fn formatted_durations_parse_back() {
        for d in [Duration::from_secs(15), Duration::from_millis(500), Duration::from_secs(12 * 3600)] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(15)), "15s");
    }
}
