//! Scaling dependents scale together, both ways, by the ratio of the cluster
//! that initiates. Pure: the monitor resolves `cartridge.` / `group.` references
//! to clusters and hands over each cluster's own decision.

use crate::decision::Action;

/// One cluster of a scaling-dependents set, as its own evaluation left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub current: u32,
    pub min: u32,
    pub max: u32,
    pub action: Action,
}

impl Sizing {
    fn target(&self) -> u32 {
        match self.action {
            Action::ScaleUp(to) | Action::ScaleDown(to) => to,
            Action::None => self.current,
        }
    }
}

/// A ratio as a fraction (to / from), compared and applied in integers so that
/// 3 · 2/3 is 2, not 2.0000000000000004 rounded up to 3.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    to: u64,
    from: u64,
}

impl Ratio {
    fn above(self, other: Ratio) -> bool {
        self.to * other.from > other.to * self.from
    }

    /// ⌈n · to / from⌉.
    fn apply(self, n: u32) -> u32 {
        (n as u64 * self.to).div_ceil(self.from).min(u32::MAX as u64) as u32
    }
}

/// Applies every set (indices into `sizings`) in turn:
/// - when a member scales up, every other grows by at least its ratio (the
///   largest such ratio), within its max, and none of the set shrinks;
/// - otherwise, when a member scales down (its own consecutive-evaluations rule
///   already held), every other shrinks by the same ratio (the gentlest, when
///   several do), never below its min.
///
/// A cluster with no member yet has no ratio to give.
pub fn scale_together(sets: &[Vec<usize>], sizings: &mut [Sizing]) {
    for set in sets {
        let members: Vec<usize> = set.iter().copied().filter(|i| *i < sizings.len()).collect();
        let ratio = |up: bool| -> Option<Ratio> {
            members
                .iter()
                .map(|i| sizings[*i])
                .filter(|s| s.current > 0)
                .filter_map(|s| match s.action {
                    Action::ScaleUp(to) if up => Some(Ratio { to: to as u64, from: s.current as u64 }),
                    Action::ScaleDown(to) if !up => Some(Ratio { to: to as u64, from: s.current as u64 }),
                    _ => None,
                })
                .reduce(|a, b| if b.above(a) { b } else { a })
        };
        if let Some(up) = ratio(true).filter(|r| r.to > r.from) {
            for i in &members {
                grow(&mut sizings[*i], up);
            }
        } else if let Some(down) = ratio(false).filter(|r| r.to < r.from) {
            for i in &members {
                shrink(&mut sizings[*i], down);
            }
        }
    }
}

fn grow(s: &mut Sizing, ratio: Ratio) {
    let wanted = ratio.apply(s.current.max(1)).min(s.max);
    if wanted > s.current && wanted >= s.target() {
        s.action = Action::ScaleUp(wanted);
    } else if matches!(s.action, Action::ScaleDown(_)) {
        // The set grows: this one holds rather than shrinks against it.
        s.action = Action::None;
    }
}

fn shrink(s: &mut Sizing, ratio: Ratio) {
    let wanted = ratio.apply(s.current).max(s.min);
    if wanted < s.target() {
        s.action = Action::ScaleDown(wanted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn s(current: u32, min: u32, max: u32, action: Action) -> Sizing {
        Sizing { current, min, max, action }
    }

    #[test]
    fn one_set_both_ways() {
        // (what, sizings before, actions after)
        let cases: Vec<(&str, Vec<Sizing>, Vec<Action>)> = vec![
            ("nothing moves", vec![s(2, 1, 10, None), s(4, 1, 10, None)], vec![None, None]),
            ("up ×2 doubles the other", vec![s(2, 1, 10, ScaleUp(4)), s(3, 1, 10, None)], vec![ScaleUp(4), ScaleUp(6)]),
            ("up within max", vec![s(2, 1, 10, ScaleUp(4)), s(3, 1, 5, None)], vec![ScaleUp(4), ScaleUp(5)]),
            (
                "up: the largest ratio wins",
                vec![s(2, 1, 10, ScaleUp(3)), s(2, 1, 10, ScaleUp(4)), s(1, 1, 10, None)],
                vec![ScaleUp(4), ScaleUp(4), ScaleUp(2)],
            ),
            (
                "up: a larger own target stays",
                vec![s(2, 1, 10, ScaleUp(3)), s(2, 1, 10, ScaleUp(6))],
                vec![ScaleUp(6), ScaleUp(6)],
            ),
            ("up beats down", vec![s(2, 1, 10, ScaleUp(4)), s(4, 1, 10, ScaleDown(3))], vec![ScaleUp(4), ScaleUp(8)]),
            ("up beats down at max", vec![s(2, 1, 10, ScaleUp(4)), s(4, 1, 4, ScaleDown(3))], vec![ScaleUp(4), None]),
            (
                "an empty cluster grows to one at least",
                vec![s(1, 1, 10, ScaleUp(2)), s(0, 0, 10, None)],
                vec![ScaleUp(2), ScaleUp(2)],
            ),
            (
                "down 4→3 takes 8 to 6",
                vec![s(4, 1, 10, ScaleDown(3)), s(8, 1, 10, None)],
                vec![ScaleDown(3), ScaleDown(6)],
            ),
            (
                "down 3→2 takes 3 to 2, not 3",
                vec![s(3, 1, 10, ScaleDown(2)), s(3, 1, 10, None)],
                vec![ScaleDown(2), ScaleDown(2)],
            ),
            (
                "down rounds up: 2→1 takes 3 to 2",
                vec![s(2, 1, 10, ScaleDown(1)), s(3, 1, 10, None)],
                vec![ScaleDown(1), ScaleDown(2)],
            ),
            ("down never below min", vec![s(4, 1, 10, ScaleDown(3)), s(4, 4, 10, None)], vec![ScaleDown(3), None]),
            ("down to min", vec![s(2, 1, 10, ScaleDown(1)), s(6, 4, 10, None)], vec![ScaleDown(1), ScaleDown(4)]),
            (
                "down: the gentlest ratio",
                vec![s(4, 1, 10, ScaleDown(3)), s(2, 1, 10, ScaleDown(1)), s(8, 1, 10, None)],
                vec![ScaleDown(3), ScaleDown(1), ScaleDown(6)],
            ),
            (
                "down: nothing follows an empty cluster",
                vec![s(0, 0, 10, ScaleDown(0)), s(3, 1, 10, None)],
                vec![ScaleDown(0), None],
            ),
            (
                "down: an empty follower stays empty",
                vec![s(2, 1, 10, ScaleDown(1)), s(0, 0, 10, None)],
                vec![ScaleDown(1), None],
            ),
        ];
        for (what, mut sizings, expected) in cases {
            let set: Vec<usize> = (0..sizings.len()).collect();
            scale_together(&[set], &mut sizings);
            let actions: Vec<Action> = sizings.iter().map(|s| s.action).collect();
            assert_eq!(actions, expected, "{what}");
        }
    }

    #[test]
    fn only_members_of_a_set_follow() {
        // Sets {0, 1} and {2, 3}; 4 belongs to none; 9 is out of range and ignored.
        let mut sizings = vec![
            s(2, 1, 10, ScaleUp(4)),
            s(2, 1, 10, None),
            s(4, 1, 10, ScaleDown(3)),
            s(4, 1, 10, None),
            s(2, 1, 10, None),
        ];
        scale_together(&[vec![0, 1, 9], vec![2, 3]], &mut sizings);
        let actions: Vec<Action> = sizings.iter().map(|s| s.action).collect();
        assert_eq!(actions, [ScaleUp(4), ScaleUp(4), ScaleDown(3), ScaleDown(3), None]);
    }
}
