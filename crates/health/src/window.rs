//! A sliding window of timestamped samples and its summary: average, gradient
//! (first derivative) and second derivative. Pure; time is passed in.

use std::collections::VecDeque;

/// Samples no older than `span` seconds before the newest one.
#[derive(Debug, Clone)]
pub struct Window {
    span: f64,
    samples: VecDeque<(f64, f64)>,
}

/// What a window says about one factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub average: f64,
    /// Change per second between the first and the last sample.
    pub gradient: f64,
    /// Change per second of the gradient: the gradient of the second half of the
    /// window minus that of the first half, over the time between the halves' centres.
    pub second_derivative: f64,
    pub samples: usize,
}

impl Window {
    pub fn new(span_secs: f64) -> Window {
        Window { span: span_secs, samples: VecDeque::new() }
    }

    /// Adds a sample at time `t` (seconds); samples that arrive out of order are
    /// placed in order, and those older than the span are dropped.
    pub fn push(&mut self, t: f64, value: f64) {
        if !value.is_finite() || !t.is_finite() {
            return;
        }
        let at = self.samples.iter().rposition(|(s, _)| *s <= t).map_or(0, |i| i + 1);
        self.samples.insert(at, (t, value));
        self.expire(self.samples.back().map_or(t, |(s, _)| *s));
    }

    /// Drops samples older than the span before `now`.
    pub fn expire(&mut self, now: f64) {
        while self.samples.front().is_some_and(|(s, _)| now - *s > self.span) {
            self.samples.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Time of the newest sample.
    pub fn last_time(&self) -> Option<f64> {
        self.samples.back().map(|(t, _)| *t)
    }

    /// `None` for an empty window; derivatives are 0 until there are enough samples.
    pub fn summary(&self) -> Option<Summary> {
        let n = self.samples.len();
        if n == 0 {
            return None;
        }
        let average = self.samples.iter().map(|(_, v)| v).sum::<f64>() / n as f64;
        // By index, without copying the samples: this runs for every member and
        // factor at every interval.
        let at = |i: usize| self.samples[i];
        let slope = gradient(at(0), at(n - 1));
        let second_derivative = if n >= 4 {
            // Halves [0, n/2) and [n/2, n).
            let (first, second) = ((at(0), at(n / 2 - 1)), (at(n / 2), at(n - 1)));
            let dt = centre(second) - centre(first);
            if dt > 0.0 {
                (gradient(second.0, second.1) - gradient(first.0, first.1)) / dt
            } else {
                0.0
            }
        } else {
            0.0
        };
        Some(Summary { average, gradient: slope, second_derivative, samples: n })
    }
}

/// Change per second between two samples; 0 when they are not apart in time.
fn gradient((t0, v0): (f64, f64), (t1, v1): (f64, f64)) -> f64 {
    if t1 > t0 {
        (v1 - v0) / (t1 - t0)
    } else {
        0.0
    }
}

fn centre(((t0, _), (t1, _)): ((f64, f64), (f64, f64))) -> f64 {
    (t0 + t1) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(points: &[(f64, f64)]) -> Window {
        let mut w = Window::new(60.0);
        for (t, v) in points {
            w.push(*t, *v);
        }
        w
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn constant_load_has_no_slope() {
        let s = window(&[(0.0, 5.0), (15.0, 5.0), (30.0, 5.0), (45.0, 5.0)]).summary().unwrap();
        assert_eq!((s.average, s.gradient, s.second_derivative), (5.0, 0.0, 0.0));
    }

    #[test]
    fn linear_ramp_has_constant_gradient_and_no_curvature() {
        // v = 2t
        let s = window(&[(0.0, 0.0), (10.0, 20.0), (20.0, 40.0), (30.0, 60.0)]).summary().unwrap();
        assert!(close(s.average, 30.0));
        assert!(close(s.gradient, 2.0));
        assert!(close(s.second_derivative, 0.0));
    }

    #[test]
    fn quadratic_growth_has_positive_second_derivative() {
        // v = t², halves [0,10] and [20,30]: gradients 10 and 50, centres 5 and 25 → (50-10)/20 = 2 = d²(t²)/dt².
        let s = window(&[(0.0, 0.0), (10.0, 100.0), (20.0, 400.0), (30.0, 900.0)]).summary().unwrap();
        assert!(close(s.gradient, 30.0));
        assert!(close(s.second_derivative, 2.0), "{s:?}");
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut w = window(&[(0.0, 100.0), (30.0, 10.0)]);
        w.push(61.0, 10.0);
        assert_eq!(w.len(), 2, "the sample at t=0 is older than 60 s");
        assert!(close(w.summary().unwrap().average, 10.0));
        w.expire(200.0);
        assert!(w.is_empty());
        assert!(w.summary().is_none());
    }

    #[test]
    fn out_of_order_samples_are_placed_in_order() {
        let s = window(&[(0.0, 0.0), (20.0, 40.0), (10.0, 20.0)]).summary().unwrap();
        assert!(close(s.gradient, 2.0));
    }

    #[test]
    fn one_sample_has_an_average_only() {
        let s = window(&[(3.0, 7.0)]).summary().unwrap();
        assert_eq!((s.average, s.gradient, s.second_derivative, s.samples), (7.0, 0.0, 0.0, 1));
    }
}
