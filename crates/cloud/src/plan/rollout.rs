//! Rollouts (`stratos application update`), pure: which revision a member runs, what a
//! cluster's members are started from, and whether a rollout is over (complete, or
//! failed: the controller then sends its clusters back to the revisions they came
//! from, see `model::effective_revision`, and `restart` replaces the new members).
//!
//! The replacement itself is `restart`'s step: a member of another revision than the
//! cluster's is old.

use stratos_model::topology::{Member, MemberStatus};
use stratos_model::{Cartridge, Rollout, REVISION_PROPERTY};

use super::restart::Pace;

/// New members failing in a row that fail a rollout before its deadline.
pub const MAX_FAILURES_IN_A_ROW: u32 = 3;

/// The revision a member was started from (`None`: before revisions were kept).
pub fn revision_of(m: &Member) -> Option<u32> {
    stratos_model::property(&m.properties, REVISION_PROPERTY).and_then(|v| v.parse().ok())
}

/// What a cluster's new members are started from.
#[derive(Debug, Clone, Copy)]
pub struct Pinned<'a> {
    /// The revision they run (`None`: the live definitions).
    pub revision: Option<u32>,
    /// Its cartridge, or why there is none (the record is missing).
    pub cartridge: Result<&'a Cartridge, &'a str>,
    /// How fast members of another revision are replaced.
    pub pace: Pace,
}

/// One cluster of a rollout as it stands.
pub struct Progress<'a> {
    pub cluster_id: &'a str,
    pub to: Option<u32>,
    /// Its members in service or on their way (not leaving).
    pub live: Vec<&'a Member>,
    pub desired: u32,
    /// Members that failed in a row since the rollout started, and the last one's error.
    pub failures: Option<(u32, &'a str)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Progressing,
    Complete,
    Failed(String),
}

fn name(revision: Option<u32>) -> String {
    revision.map_or_else(|| "of the live definitions".to_string(), |n| n.to_string())
}

/// Whether `rollout` is over at `now` (milliseconds).
pub fn judge(rollout: &Rollout, clusters: &[Progress], now: u64) -> Verdict {
    for c in clusters {
        if let Some((count, error)) = c.failures {
            if count >= MAX_FAILURES_IN_A_ROW {
                return Verdict::Failed(format!(
                    "cluster {}: {count} new members of revision {} failed in a row (last: {error})",
                    c.cluster_id,
                    name(c.to)
                ));
            }
        }
    }
    let behind = clusters.iter().find_map(|c| {
        let serving = c.live.iter().filter(|m| revision_of(m) == c.to && m.status == MemberStatus::Active).count();
        let old = c.live.iter().filter(|m| revision_of(m) != c.to).count();
        (old > 0 || (serving as u32) < c.desired).then_some((c, serving, old))
    });
    let Some((c, serving, old)) = behind else { return Verdict::Complete };
    if now >= rollout.started_at.saturating_add(rollout.deadline_ms) {
        return Verdict::Failed(format!(
            "not done within its deadline ({}): cluster {} has {serving} of {} member(s) of revision {} active and {old} old member(s) left",
            stratos_model::duration::format(std::time::Duration::from_millis(rollout.deadline_ms)),
            c.cluster_id,
            c.desired,
            name(c.to)
        ));
    }
    Verdict::Progressing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::restart::{restart_step, RestartStep};
    use crate::plan::testing::*;
    use stratos_model::{Property, RolloutCluster};

    fn at(mut m: Member, revision: u32) -> Member {
        m.properties.push(Property { name: REVISION_PROPERTY.into(), value: revision.to_string() });
        m
    }

    fn rollout() -> Rollout {
        Rollout {
            application_id: "app".into(),
            number: 1,
            deployed_at: 0,
            clusters: vec![RolloutCluster { cluster_id: CLUSTER.into(), from: Some(1), to: Some(2) }],
            started_at: 1_000,
            requested_by: "admin".into(),
            max_surge: 1,
            max_unavailable: 0,
            deadline_ms: 60_000,
            undo_of: None,
        }
    }

    fn progress<'a>(live: &'a [Member], failures: Option<(u32, &'a str)>) -> Progress<'a> {
        Progress { cluster_id: CLUSTER, to: Some(2), live: live.iter().collect(), desired: 2, failures }
    }

    #[test]
    fn complete_once_every_member_runs_the_new_revision_and_enough_serve() {
        let r = rollout();
        let mixed = [at(member("a", "np1", "a", active(), 1), 1), at(member("b", "np1", "a", active(), 2), 2)];
        assert_eq!(judge(&r, &[progress(&mixed, None)], 2_000), Verdict::Progressing);
        let mut new = [at(member("b", "np1", "a", active(), 2), 2), at(member("c", "np1", "a", active(), 3), 2)];
        assert_eq!(judge(&r, &[progress(&new, None)], 2_000), Verdict::Complete);
        new[1].status = MemberStatus::Starting;
        assert_eq!(judge(&r, &[progress(&new, None)], 2_000), Verdict::Progressing, "c does not serve yet");
    }

    #[test]
    fn fails_past_its_deadline_or_after_failures_in_a_row() {
        let r = rollout();
        let old = [at(member("a", "np1", "a", active(), 1), 1), at(member("b", "np1", "a", active(), 2), 1)];
        let Verdict::Failed(why) = judge(&r, &[progress(&old, None)], 61_000) else { panic!("past the deadline") };
        assert!(why.contains("deadline (1m)") && why.contains("0 of 2"), "{why}");
        assert_eq!(judge(&r, &[progress(&old, Some((2, "exited")))], 2_000), Verdict::Progressing);
        let Verdict::Failed(why) = judge(&r, &[progress(&old, Some((3, "exited with status 1")))], 2_000) else {
            panic!("three in a row")
        };
        assert!(why.contains("3 new members of revision 2 failed in a row (last: exited with status 1)"), "{why}");
    }

    #[test]
    fn old_members_are_those_of_another_revision_and_a_failed_rollout_drains_the_new_ones() {
        let live = [
            at(member("a", "np1", "a", active(), 1), 1),
            at(member("b", "np1", "a", active(), 2), 1),
            at(member("n", "np1", "a", MemberStatus::Starting, 3), 2),
        ];
        let refs: Vec<&Member> = live.iter().collect();
        let to = |revision: Option<u32>| move |m: &Member| revision_of(m) != revision;
        // Rolling to 2: n is the surge member; nothing drains until it serves.
        assert_eq!(restart_step(&refs, 2, &to(Some(2)), Pace::ONE_AT_A_TIME), RestartStep::WAIT);
        // Failed: back to 1, n (never in service) drains, a and b stay.
        assert_eq!(
            restart_step(&refs, 2, &to(Some(1)), Pace::ONE_AT_A_TIME),
            RestartStep::Act { start: 0, drain: vec!["n".into()] }
        );
        // Members from before revisions were kept run the live definitions.
        let legacy = [member("x", "np1", "a", active(), 1)];
        assert_eq!(revision_of(&legacy[0]), None);
        assert_eq!(restart_step(&[&legacy[0]], 1, &to(None), Pace::ONE_AT_A_TIME), RestartStep::Done);
    }
}
