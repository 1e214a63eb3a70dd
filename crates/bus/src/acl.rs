//! Who may publish and subscribe where: pure functions over an [`Identity`] and a
//! topic or filter, the rules the broker's gate enforces (and that the generated
//! Mosquitto ACLs express).
//!
//! Platform components may do anything. A member may publish only on its own
//! member's topics of the blocks an agent speaks for (`instance/status/<memberId>/…`,
//! `health/member/<memberId>/…`, `log/<memberId>/…`), never retained, and subscribe
//! only to filters every topic of which lies in what is addressed to it: its member
//! and cluster notifier topics, the controller's events about its own member, and its
//! own publications.

use crate::credentials::Identity;

/// Topic prefixes under which a member publishes about itself, by member id.
pub const MEMBER_PUBLISHES: &[&str] = &["instance/status", "health/member", "log"];
/// Topic prefixes addressed to one member, by member id.
pub const MEMBER_RECEIVES: &[&str] = &["instance/notifier/member", "topology/member"];
/// Topic prefixes addressed to every member of a cluster, by cluster id.
pub const CLUSTER_RECEIVES: &[&str] = &["instance/notifier/cluster"];

/// May `who` publish on `topic` (with the retain flag `retain`)?
pub fn may_publish(who: &Identity, topic: &str, retain: bool) -> bool {
    match who {
        Identity::Platform => true,
        Identity::Member { member_id, .. } => {
            !retain
                && valid_id(member_id)
                && MEMBER_PUBLISHES.iter().any(|prefix| {
                    topic
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .and_then(|rest| rest.strip_prefix(member_id.as_str()))
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|name| !name.is_empty() && !name.contains(['/', '+', '#']))
                })
        }
    }
}

/// Is a member's message body about the member itself? Everything a member may
/// publish names its member (`memberId`) and cluster (`clusterId`) at the top of its
/// JSON body; the topic confines the member id, and this the cluster id too, so that
/// a member cannot report its statistics, say, into another cluster's figures.
pub fn body_is_about_itself(who: &Identity, payload: &[u8]) -> bool {
    match who {
        Identity::Platform => true,
        Identity::Member { member_id, cluster_id } => {
            let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(payload) else { return false };
            body.get("memberId").and_then(|v| v.as_str()) == Some(member_id.as_str())
                && body.get("clusterId").and_then(|v| v.as_str()) == Some(cluster_id.as_str())
        }
    }
}

/// May `who` subscribe to `filter`? Only if every topic the filter can match is one
/// the identity may read: a wildcard never reaches above a member's own subtree, so
/// `#`, `+/…` and `instance/notifier/cluster/+/…` are refused to members.
pub fn may_subscribe(who: &Identity, filter: &str) -> bool {
    match who {
        Identity::Platform => true,
        Identity::Member { member_id, cluster_id } => {
            let own = |prefixes: &'static [&'static str], id: &str| {
                valid_id(id) && prefixes.iter().any(|prefix| within(filter, &format!("{prefix}/{id}")))
            };
            own(MEMBER_PUBLISHES, member_id) || own(MEMBER_RECEIVES, member_id) || own(CLUSTER_RECEIVES, cluster_id)
        }
    }
}

/// Whether every topic `filter` matches lies under `base` (or is `base` itself): its
/// first levels are `base`'s levels, literally, and only then may wildcards come.
fn within(filter: &str, base: &str) -> bool {
    let mut levels = filter.split('/');
    for want in base.split('/') {
        match levels.next() {
            Some(got) if got == want && !got.contains(['+', '#']) => {}
            _ => return false,
        }
    }
    true
}

/// An id usable as one topic level: not empty, no separator, no wildcard.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '+', '#']) && !id.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Identity {
        Identity::Member { cluster_id: "php.web".into(), member_id: "m1".into() }
    }

    #[test]
    fn members_publish_only_their_own_status_health_and_logs() {
        let m = member();
        assert!(may_publish(&m, "instance/status/m1/InstanceActivatedEvent", false));
        assert!(may_publish(&m, "health/member/m1/MemberHealthStatEvent", false));
        assert!(may_publish(&m, "log/m1/LogEvent", false));
        for topic in [
            "instance/status/m2/InstanceActivatedEvent",
            "instance/status/m1",
            "instance/status/m1/",
            "instance/status/m1/a/b",
            "instance/status/m10/InstanceActivatedEvent",
            "topology/CompleteTopologyEvent",
            "topology/member/m1/MemberCreatedEvent",
            "topology/member/m1/MemberTerminatedEvent",
            "health/MemberFaultEvent",
            "health/InFlightRequestsEvent",
            "instance/notifier/cluster/php.web/InstanceCleanupClusterEvent",
            "instance/notifier/member/m1/InstanceCleanupMemberEvent",
            "autoscaler/ScalingDecisionEvent",
            "$SYS/anything",
        ] {
            assert!(!may_publish(&m, topic, false), "{topic}");
        }
        assert!(!may_publish(&m, "instance/status/m1/InstanceActivatedEvent", true), "never retained");
        assert!(may_publish(&Identity::Platform, "topology/CompleteTopologyEvent", true));
    }

    #[test]
    fn members_subscribe_only_within_what_is_addressed_to_them() {
        let m = member();
        for filter in [
            "instance/notifier/member/m1/#",
            "instance/notifier/member/m1/InstanceCleanupMemberEvent",
            "instance/notifier/cluster/php.web/#",
            "instance/notifier/cluster/php.web/+",
            "topology/member/m1/MemberMaintenanceModeEvent",
            "instance/status/m1/#",
            "log/m1/LogEvent",
        ] {
            assert!(may_subscribe(&m, filter), "{filter}");
        }
        for filter in [
            "#",
            "+/#",
            "instance/#",
            "instance/notifier/#",
            "instance/notifier/member/+/#",
            "instance/notifier/+/m1/#",
            "instance/notifier/cluster/+/InstanceCleanupClusterEvent",
            "instance/notifier/cluster/other/#",
            "instance/notifier/member/m2/#",
            "topology/#",
            "topology/member/+/MemberMaintenanceModeEvent",
            "log/#",
            "log/+/LogEvent",
            "health/#",
            "$SYS/#",
        ] {
            assert!(!may_subscribe(&m, filter), "{filter}");
        }
        assert!(may_subscribe(&Identity::Platform, "#"));
    }

    #[test]
    fn a_members_bodies_name_its_own_member_and_cluster() {
        let m = member();
        assert!(body_is_about_itself(&m, br#"{"memberId":"m1","clusterId":"php.web","load":1}"#));
        assert!(!body_is_about_itself(&m, br#"{"memberId":"m1","clusterId":"victim","load":1}"#));
        assert!(!body_is_about_itself(&m, br#"{"memberId":"m2","clusterId":"php.web"}"#));
        assert!(!body_is_about_itself(&m, br#"{"memberId":"m1"}"#));
        assert!(!body_is_about_itself(&m, b"not json"));
        assert!(!body_is_about_itself(&m, b"[]"));
        assert!(body_is_about_itself(&Identity::Platform, b"anything"));
    }

    #[test]
    fn ids_with_wildcards_confine_nothing() {
        let m = Identity::Member { cluster_id: "+".into(), member_id: "#".into() };
        assert!(!may_subscribe(&m, "instance/notifier/cluster/+/#"));
        assert!(!may_subscribe(&m, "instance/notifier/member/#"));
        assert!(!may_publish(&m, "log/#/LogEvent", false));
    }
}
