//! One port's health as its checks report it: consecutive failures against the
//! threshold. Pure, so that counting, the threshold and recovery are tested without
//! a clock or a socket.

/// What one check's outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Healthy still (perhaps with failures below the threshold), or unhealthy still.
    Unchanged,
    /// The threshold was reached with this failure.
    BecameUnhealthy,
    /// A success after the port had been unhealthy.
    Recovered,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    threshold: u32,
    failures: u32,
    unhealthy: bool,
}

impl Tracker {
    /// `threshold` consecutive failures make the port unhealthy (at least 1).
    pub fn new(threshold: u32) -> Tracker {
        Tracker { threshold: threshold.max(1), failures: 0, unhealthy: false }
    }

    /// Takes in one check's outcome.
    pub fn record(&mut self, passed: bool) -> Change {
        if passed {
            self.failures = 0;
            if std::mem::take(&mut self.unhealthy) {
                return Change::Recovered;
            }
            return Change::Unchanged;
        }
        self.failures = self.failures.saturating_add(1);
        if !self.unhealthy && self.failures >= self.threshold {
            self.unhealthy = true;
            return Change::BecameUnhealthy;
        }
        Change::Unchanged
    }

    /// Consecutive failures so far (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    pub fn is_unhealthy(&self) -> bool {
        self.unhealthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_of_consecutive_failures_makes_it_unhealthy() {
        let mut t = Tracker::new(3);
        assert_eq!(t.record(false), Change::Unchanged);
        assert_eq!(t.record(false), Change::Unchanged);
        assert_eq!(t.failures(), 2);
        assert!(!t.is_unhealthy());
        assert_eq!(t.record(false), Change::BecameUnhealthy);
        assert!(t.is_unhealthy());
        // Said once: later failures change nothing.
        assert_eq!(t.record(false), Change::Unchanged);
        assert_eq!(t.failures(), 4);
    }

    #[test]
    fn a_success_below_the_threshold_starts_the_count_again() {
        let mut t = Tracker::new(3);
        t.record(false);
        t.record(false);
        assert_eq!(t.record(true), Change::Unchanged);
        assert_eq!(t.failures(), 0);
        t.record(false);
        assert_eq!(t.record(false), Change::Unchanged, "two failures after a success are not three in a row");
        assert!(!t.is_unhealthy());
    }

    #[test]
    fn recovery_is_reported_once() {
        let mut t = Tracker::new(1);
        assert_eq!(t.record(false), Change::BecameUnhealthy);
        assert_eq!(t.record(true), Change::Recovered);
        assert_eq!(t.record(true), Change::Unchanged);
        assert_eq!(t.record(false), Change::BecameUnhealthy, "unhealthy again after recovering");
    }

    #[test]
    fn a_zero_threshold_means_one() {
        let mut t = Tracker::new(0);
        assert_eq!(t.threshold(), 1);
        assert_eq!(t.record(true), Change::Unchanged);
        assert_eq!(t.record(false), Change::BecameUnhealthy);
    }
}
