//! Members' slots and the lifetime of their persistent volumes. Pure.
//!
//! A member gets a slot when it is created: the lowest ordinal no live member of its
//! cluster holds (its `slot` property). A member that dies is replaced in the slot it
//! leaves, so the volumes of that slot (the cartridge's `persistence`, one per volume
//! id) outlive members: the replacement finds what the dead one wrote.
//!
//! A volume with `removeOnTermination: true` is removed once its slot is not used for
//! good: no live member holds it and it is at or past the cluster's desired size (a
//! scale-in that took the cluster below it), or the cluster is gone (undeployed). A slot
//! below the desired size is only between members (a replacement is coming) and keeps
//! its volumes. A volume with `removeOnTermination: false` is never removed by the
//! platform: it outlives even the undeploy (a redeploy of the same cluster id finds it).

use std::collections::{BTreeSet, HashMap};

use stratos_model::topology::Member;
use stratos_model::Cartridge;

/// The member property that holds its slot.
pub const SLOT_PROPERTY: &str = "slot";

/// A member's slot, if it has one (members of earlier builds have none).
pub fn slot_of(member: &Member) -> Option<u32> {
    member.properties.iter().find(|p| p.name == SLOT_PROPERTY).and_then(|p| p.value.parse().ok())
}

/// Whether a cartridge's members have slot volumes (`persistence.volume` not empty): its
/// clusters are replaced terminate-first, in the same slot (`scale`, `restart`).
pub fn has_volumes(cartridge: &Cartridge) -> bool {
    cartridge.persistence.as_ref().is_some_and(|p| !p.volume.is_empty())
}

/// The lowest slot none of `used` holds: at most their count, so one pass over a bitmap
/// of that size (a large cluster's creations each cost its size, not more).
pub fn lowest_free(used: impl IntoIterator<Item = u32>) -> u32 {
    let used: Vec<u32> = used.into_iter().collect();
    let mut taken = vec![false; used.len() + 1];
    for s in used {
        if let Some(t) = taken.get_mut(s as usize) {
            *t = true;
        }
    }
    taken.iter().position(|t| !t).expect("n slots leave one of 0..=n free") as u32
}

/// What a cluster needs of its slots: how many members it is to have, and the slots its
/// live members (created, starting, active or draining) hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSlots {
    /// 0 for a cluster being undeployed.
    pub desired: u32,
    pub used: BTreeSet<u32>,
}

/// A volume as the sweep judges it: its cluster, slot and whether the definition wants
/// it removed on termination.
pub trait SlotVolumeKey {
    fn cluster_id(&self) -> &str;
    fn slot(&self) -> u32;
    fn remove_on_termination(&self) -> bool;
}

/// The volumes to remove now: those with `removeOnTermination` whose slot is not used
/// for good (see the module's text). `clusters` holds every cluster the platform still
/// has (deployed or undeploying); a volume's cluster missing from it is gone.
pub fn removable<'a, V: SlotVolumeKey>(volumes: &'a [V], clusters: &HashMap<String, ClusterSlots>) -> Vec<&'a V> {
    volumes
        .iter()
        .filter(|v| v.remove_on_termination())
        .filter(|v| match clusters.get(v.cluster_id()) {
            None => true,
            Some(c) => !c.used.contains(&v.slot()) && v.slot() >= c.desired,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratos_model::Property;

    struct V(&'static str, u32, bool);
    impl SlotVolumeKey for V {
        fn cluster_id(&self) -> &str {
            self.0
        }
        fn slot(&self) -> u32 {
            self.1
        }
        fn remove_on_termination(&self) -> bool {
            self.2
        }
    }

    fn slots(desired: u32, used: &[u32]) -> ClusterSlots {
        ClusterSlots { desired, used: used.iter().copied().collect() }
    }

    #[test]
    fn the_lowest_free_slot_is_taken() {
        assert_eq!(lowest_free([]), 0);
        assert_eq!(lowest_free([0, 1, 2]), 3);
        // A killed member's slot is the one its replacement gets.
        assert_eq!(lowest_free([0, 2]), 1);
        assert_eq!(lowest_free([1, 2]), 0);
        assert_eq!(lowest_free([0, 0, 7]), 1);
        assert_eq!(lowest_free([u32::MAX]), 0);
    }

    #[test]
    fn a_cartridge_has_volumes_when_its_persistence_names_one() {
        let cartridge = |persistence: serde_json::Value| -> Cartridge {
            serde_json::from_value(serde_json::json!({"type": "db", "category": "data", "persistence": persistence}))
                .expect("a cartridge")
        };
        assert!(has_volumes(&cartridge(serde_json::json!({"volume": [{"id": "d", "mappingPath": "/d"}]}))));
        assert!(!has_volumes(&cartridge(serde_json::json!({"isRequired": false}))));
        assert!(!has_volumes(&cartridge(serde_json::Value::Null)));
    }

    #[test]
    fn a_member_says_its_slot() {
        let mut m = crate::plan::testing::member("m", "np", "p", stratos_model::topology::MemberStatus::Active, 0);
        assert_eq!(slot_of(&m), None);
        m.properties.push(Property { name: SLOT_PROPERTY.into(), value: "3".into() });
        assert_eq!(slot_of(&m), Some(3));
        m.properties.last_mut().unwrap().value = "x".into();
        assert_eq!(slot_of(&m), None);
    }

    #[test]
    fn a_slot_between_members_keeps_its_volumes() {
        // The member of slot 0 was killed; its replacement is not recorded yet.
        let clusters = HashMap::from([("c".to_string(), slots(2, &[1]))]);
        assert!(removable(&[V("c", 0, true)], &clusters).is_empty());
    }

    #[test]
    fn a_slot_past_the_desired_size_loses_its_volumes_once_unused() {
        let clusters = HashMap::from([("c".to_string(), slots(1, &[0, 2]))]);
        let volumes = [V("c", 0, true), V("c", 1, true), V("c", 2, true), V("c", 1, false)];
        let gone: Vec<u32> = removable(&volumes, &clusters).iter().map(|v| v.1).collect();
        // Slot 2 is still draining; slot 1 is free and past the size; false is kept.
        assert_eq!(gone, [1]);
    }

    #[test]
    fn an_undeployed_cluster_loses_only_its_removable_volumes() {
        let volumes = [V("gone", 0, true), V("gone", 1, false), V("undeploying", 0, true)];
        let clusters = HashMap::from([("undeploying".to_string(), slots(0, &[0]))]);
        let gone: Vec<(&str, u32)> = removable(&volumes, &clusters).iter().map(|v| (v.0, v.1)).collect();
        assert_eq!(gone, [("gone", 0)]);
    }
}
