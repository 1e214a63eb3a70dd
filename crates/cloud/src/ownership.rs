//! Whose members these are: every member carries the id of the platform (store)
//! that made it, and a controller adopts or terminates only its own.
//!
//! A store that is new, emptied, or another platform's must never be taken for the
//! truth while members run: the controller would find none of them in it and
//! terminate them all as orphans. So before a controller reconciles, the members the
//! drivers list are counted against the store ([`Census`], pure) and a store that
//! does not know running members is refused, unless the operator says what to do
//! with them ([`Strangers`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use stratos_model::topology::Topology;
use stratos_store::{Store, Unreadable};
use tracing::{info, warn};

use crate::driver::{Driver, Instance, InstanceState};
pub use crate::error::OwnershipError;

/// What to do with running members the store does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strangers {
    /// Refuse to reconcile, saying how many there are and what the operator can do.
    #[default]
    Refuse,
    /// This store takes the platform id of the running members (all of one
    /// platform): those its topology names are adopted; the others are its orphans.
    Adopt,
    /// Terminate them, then go on.
    Remove,
}

/// The running members as the store sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// The store's platform id.
    pub platform_id: Option<String>,
    /// How many members the store's topology records.
    pub recorded: usize,
    /// Running, with this platform's id.
    pub own: usize,
    /// Running with this platform's id though the store records no member at all:
    /// the store was emptied under them.
    pub own_unrecorded: Vec<String>,
    /// Running with another platform's id, by platform id.
    pub foreign: BTreeMap<String, Vec<String>>,
    /// Running without a platform id (started by a build before platform ids), and
    /// not named by the store: nobody can tell whose they are.
    pub unmarked_unrecorded: Vec<String>,
}

impl Census {
    /// Counts `instances` (only running ones matter) against a store with
    /// `platform_id` whose topology names the members `recorded`.
    pub fn take(platform_id: Option<&str>, recorded: &HashSet<String>, instances: &[Instance]) -> Census {
        let mut census =
            Census { platform_id: platform_id.map(str::to_string), recorded: recorded.len(), ..Default::default() };
        for i in instances.iter().filter(|i| i.state == InstanceState::Running) {
            match (&i.platform_id, platform_id) {
                (Some(theirs), Some(ours)) if theirs == ours => {
                    census.own += 1;
                    if recorded.is_empty() {
                        census.own_unrecorded.push(i.member_id.clone());
                    }
                }
                (Some(theirs), _) => census.foreign.entry(theirs.clone()).or_default().push(i.member_id.clone()),
                (None, _) if recorded.contains(&i.member_id) => {}
                (None, _) => census.unmarked_unrecorded.push(i.member_id.clone()),
            }
        }
        census
    }

    /// Running members this store must not judge: another platform's, unmarked ones
    /// it does not name, and its own while it records none.
    pub fn strangers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.foreign.values().flatten().cloned().collect();
        out.extend(self.unmarked_unrecorded.iter().cloned());
        out.extend(self.own_unrecorded.iter().cloned());
        out.sort();
        out
    }

    /// Why this store may not reconcile these members, and what the operator can do;
    /// `None` when it may.
    pub fn refusal(&self, store: &str) -> Option<String> {
        let strangers = self.strangers();
        if strangers.is_empty() {
            return None;
        }
        let mut whose = Vec::new();
        for (platform, members) in &self.foreign {
            whose.push(format!("{} of platform {platform}", members.len()));
        }
        if !self.unmarked_unrecorded.is_empty() {
            whose.push(format!(
                "{} without a platform id (started by an earlier build)",
                self.unmarked_unrecorded.len()
            ));
        }
        if !self.own_unrecorded.is_empty() {
            whose.push(format!("{} of this platform that the store no longer records", self.own_unrecorded.len()));
        }
        let this = match (&self.platform_id, self.recorded) {
            (None, 0) => "is new or empty".to_string(),
            (None, n) => format!("records {n} member(s) and no platform id"),
            (Some(id), n) => format!("is platform {id} and records {n} member(s)"),
        };
        Some(format!(
            "{} running member(s) that the store {store} does not know ({}); the store {this}. \
             Nothing was terminated. Start the platform with the store (--data-dir or --store) that made them; \
             or with --adopt-members to make this store theirs (members of clusters its deployments have are \
             recorded and kept, the others left running); or with --remove-members to terminate them. Members: {}",
            strangers.len(),
            whose.join(", "),
            summary(&strangers)
        ))
    }
}

/// A few member ids, and how many more.
fn summary(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = ids.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

/// Every member the drivers list; an error when one cannot (nothing may be judged then).
/// A place of a driver that does not answer (one Docker Engine of several) is skipped with
/// a warning: the controller judges its members on their own, after a grace period.
pub async fn list_all(drivers: &[Arc<dyn Driver>]) -> Result<Vec<(Arc<dyn Driver>, Instance)>, OwnershipError> {
    let mut out = Vec::new();
    for driver in drivers {
        let listing =
            driver.list_reachable().await.map_err(|source| OwnershipError::List { driver: driver.name(), source })?;
        for u in &listing.unreachable {
            warn!(driver = driver.name(), place = %u.place, reason = %u.reason, "a place of the driver does not answer; its members are judged once it does or its grace period ends");
        }
        out.extend(listing.instances.into_iter().map(|i| (driver.clone(), i)));
    }
    Ok(out)
}

/// What [`establish`] read to decide, handed on (to the bus's admissions, the
/// controller) so that start-up reads the topology and lists the drivers once.
#[derive(Debug)]
pub struct Established {
    /// The store's platform id (made now for a new store with nothing running).
    pub platform_id: String,
    /// The stored topology, and the documents of it that cannot be read.
    pub topology: Topology,
    pub unreadable: Vec<Unreadable>,
    /// The members the drivers list, less those `--remove-members` terminated.
    pub listed: Vec<Instance>,
}

/// Makes sure the store may reconcile the members the drivers list, and returns its
/// platform id with what it read. With strangers running, `strangers` says what
/// happens; `Refuse` returns the operator's message.
pub async fn establish(
    store: &Store,
    drivers: &[Arc<dyn Driver>],
    strangers: Strangers,
    grace: Duration,
) -> Result<Established, OwnershipError> {
    store.migrate_topology().await?;
    let platform_id = store.platform_id().await?;
    let (topology, unreadable) = store.read_topology().await?;
    let mut recorded: HashSet<String> = topology.members().map(|m| m.member_id.clone()).collect();
    let listed = list_all(drivers).await?;
    // A member of a cluster whose document cannot be read is the store's, not a
    // stranger: the controller leaves that cluster as it is (see `frozen`).
    let frozen = crate::frozen::frozen_clusters(&topology, &unreadable);
    recorded.extend(listed.iter().filter(|(_, i)| frozen.contains(&i.cluster_id)).map(|(_, i)| i.member_id.clone()));
    let instances: Vec<Instance> = listed.iter().map(|(_, i)| i.clone()).collect();
    let census = Census::take(platform_id.as_deref(), &recorded, &instances);
    let done = |platform_id: String, listed: Vec<Instance>| Established { platform_id, topology, unreadable, listed };
    let Some(refusal) = census.refusal(&store.describe()) else {
        return Ok(done(store.create_platform_id(None).await?, instances));
    };
    match strangers {
        Strangers::Refuse => Err(OwnershipError::Refused(refusal)),
        Strangers::Adopt => {
            let ids: Vec<&String> = census.foreign.keys().collect();
            if !census.unmarked_unrecorded.is_empty() || ids.len() > 1 {
                return Err(OwnershipError::CannotAdopt(format!(
                    "the members are not all of one platform ({} platform id(s), {} without one); \
                     use --remove-members, or start with the store that made them",
                    ids.len(),
                    census.unmarked_unrecorded.len()
                )));
            }
            if census.own > census.own_unrecorded.len() && !ids.is_empty() {
                return Err(OwnershipError::CannotAdopt(format!(
                    "{} running member(s) of this store's own platform would become strangers; \
                     use --remove-members for the others, or start with the store that made them",
                    census.own
                )));
            }
            let adopted = store.create_platform_id(ids.first().map(|id| id.as_str())).await?;
            warn!(platform_id = %adopted, members = census.strangers().len(), "adopted the running members' platform id: those of deployed clusters are recorded and kept, the others left running");
            Ok(done(adopted, instances))
        }
        Strangers::Remove => {
            let strangers: HashSet<String> = census.strangers().into_iter().collect();
            for (driver, instance) in listed.iter().filter(|(_, i)| strangers.contains(&i.member_id)) {
                info!(member_id = %instance.member_id, platform_id = ?instance.platform_id, "terminating a member this store does not know (--remove-members)");
                driver.terminate(&instance.member_id, grace).await.map_err(OwnershipError::Terminate)?;
            }
            warn!(
                members = strangers.len(),
                "terminated the running members this store did not know (--remove-members)"
            );
            let kept = instances.into_iter().filter(|i| !strangers.contains(&i.member_id)).collect();
            Ok(done(store.create_platform_id(None).await?, kept))
        }
    }
}

/// The running members `--adopt-members` adopts: this platform's, that the store does
/// not record (once `establish` made the store theirs).
pub fn to_adopt(platform_id: &str, recorded: &HashSet<String>, instances: &[Instance]) -> HashSet<String> {
    instances
        .iter()
        .filter(|i| i.state == InstanceState::Running && i.platform_id.as_deref() == Some(platform_id))
        .filter(|i| !recorded.contains(&i.member_id))
        .map(|i| i.member_id.clone())
        .collect()
}

/// Whether the controller of `platform_id` may judge (adopt, keep, terminate) this
/// instance: its own, or an unmarked one its store records (started before platform ids).
pub fn is_ours(instance: &Instance, platform_id: &str, recorded: impl FnOnce(&str) -> bool) -> bool {
    match &instance.platform_id {
        Some(id) => id == platform_id,
        None => recorded(&instance.member_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: &str, platform: Option<&str>) -> Instance {
        Instance {
            member_id: id.into(),
            cluster_id: "app.web".into(),
            state: InstanceState::Running,
            address: "127.0.0.1".into(),
            ports: vec![],
            started_at: 0,
            platform_id: platform.map(str::to_string),
            network_partition_id: String::new(),
            partition_id: String::new(),
        }
    }

    fn names(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_store_with_nothing_running_may_start() {
        let c = Census::take(None, &names(&[]), &[]);
        assert_eq!(c.refusal("s"), None);
        let mut gone = running("m1", Some("other"));
        gone.state = InstanceState::Exited { code: Some(0), detail: "exited".into() };
        assert_eq!(Census::take(None, &names(&[]), &[gone]).refusal("s"), None, "exited members do not count");
    }

    #[test]
    fn an_empty_or_new_store_refuses_running_members_of_any_platform() {
        let c = Census::take(
            None,
            &names(&[]),
            &[running("m1", Some("p1")), running("m2", Some("p1")), running("m3", None)],
        );
        let refusal = c.refusal("sqlite:/x/stratos.db").expect("refused");
        assert!(refusal.starts_with("3 running member(s)"), "{refusal}");
        assert!(refusal.contains("2 of platform p1") && refusal.contains("1 without a platform id"), "{refusal}");
        assert!(
            refusal.contains("new or empty")
                && refusal.contains("--adopt-members")
                && refusal.contains("--remove-members")
        );
        // The store of this platform, emptied: its own members are strangers too.
        let c = Census::take(Some("p1"), &names(&[]), &[running("m1", Some("p1"))]);
        assert_eq!(c.own_unrecorded, ["m1"]);
        assert!(c.refusal("s").unwrap().contains("no longer records"));
    }

    #[test]
    fn a_store_with_records_judges_its_own_members_only() {
        // Its own members (recorded or orphans) are its business; another platform's are not.
        let own = [running("m1", Some("p1")), running("orphan", Some("p1"))];
        assert_eq!(Census::take(Some("p1"), &names(&["m1"]), &own).refusal("s"), None);
        let c = Census::take(Some("p1"), &names(&["m1"]), &[running("m1", Some("p1")), running("x", Some("p2"))]);
        assert_eq!(c.foreign["p2"], ["x"]);
        assert!(c.refusal("s").unwrap().contains("1 of platform p2"));
    }

    #[test]
    fn members_of_earlier_builds_are_adopted_by_the_store_that_records_them() {
        let legacy = [running("m1", None)];
        assert_eq!(Census::take(None, &names(&["m1"]), &legacy).refusal("s"), None);
        assert!(is_ours(&legacy[0], "p1", |id| id == "m1"));
        assert!(!is_ours(&legacy[0], "p1", |_| false));
        assert!(!is_ours(&running("m1", Some("p2")), "p1", |_| true));
        assert!(is_ours(&running("m1", Some("p1")), "p1", |_| false));
    }

    #[test]
    fn adoption_takes_this_platforms_running_members_the_store_does_not_record() {
        let mut exited = running("gone", Some("p1"));
        exited.state = InstanceState::Exited { code: Some(0), detail: "exited".into() };
        let listed = [running("m1", Some("p1")), running("new", Some("p1")), running("x", Some("p2")), exited];
        assert_eq!(to_adopt("p1", &names(&["m1"]), &listed), names(&["new"]));
    }
}
