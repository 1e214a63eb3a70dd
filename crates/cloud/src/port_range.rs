//! The ports the `local` driver gives members (`stratos up --member-ports 20000-29999`):
//! parsed and checked here (pure), handed out in turn by the driver, which skips a port
//! something already listens on.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of TCP ports, `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn len(self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    pub fn is_empty(self) -> bool {
        false // `first <= last` always holds: one port at least.
    }

    /// The ports to try, in order, for the allocation after `last_given` (wrapping
    /// around): each member's ports follow the previous member's, so that a port just
    /// handed out, whose member has not bound it yet, is the last one tried again.
    pub fn after(self, last_given: Option<u16>) -> impl Iterator<Item = u16> {
        let start = match last_given {
            Some(p) if p >= self.first && p < self.last => u32::from(p) + 1,
            _ => u32::from(self.first),
        };
        let (first, len) = (u32::from(self.first), self.len());
        (0..len).map(move |i| (first + (start - first + i) % len) as u16)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a port range; write FIRST-LAST, e.g. 20000-29999"))?;
        let port = |text: &str| -> Result<u16, String> {
            match text.trim().parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("{:?} in {s:?} is not a port (1-65535)", text.trim())),
                Ok(p) => Ok(p),
            }
        };
        let (first, last) = (port(a)?, port(b)?);
        if first > last {
            return Err(format!("{s:?} ends before it starts; write the lower port first"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!("20000-29999".parse(), Ok(PortRange { first: 20000, last: 29999 }));
        assert_eq!(" 80 - 80 ".parse::<PortRange>().map(PortRange::len), Ok(1));
        for (bad, why) in [
            ("20000", "FIRST-LAST"),
            ("a-b", "not a port"),
            ("0-10", "not a port"),
            ("10-70000", "not a port"),
            ("30000-20000", "ends before it starts"),
            ("", "FIRST-LAST"),
        ] {
            let e = bad.parse::<PortRange>().unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ports_are_tried_after_the_last_one_given_wrapping_around() {
        let r = PortRange { first: 10, last: 13 };
        assert_eq!(r.after(None).collect::<Vec<_>>(), [10, 11, 12, 13]);
        assert_eq!(r.after(Some(11)).collect::<Vec<_>>(), [12, 13, 10, 11]);
        assert_eq!(r.after(Some(13)).collect::<Vec<_>>(), [10, 11, 12, 13]);
        assert_eq!(r.after(Some(99)).collect::<Vec<_>>(), [10, 11, 12, 13]);
        let one = PortRange { first: 7, last: 7 };
        assert_eq!(one.after(Some(7)).collect::<Vec<_>>(), [7]);
    }
}
