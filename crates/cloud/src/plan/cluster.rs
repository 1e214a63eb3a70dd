//! One deployed cluster's plan: its policies looked up, its members placed with the
//! driver that will start them, or the reason it cannot be converged.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use stratos_model::placement::{Placement, Slot};
use stratos_model::topology::{Cluster, ClusterStatus, Topology};
use stratos_model::{ApplicationPolicy, ClusterScale, ClusterSpec, Definitions, Deployment, NetworkPartition};

use super::backoff::FailureHistory;
use super::rollout::Pinned;
use super::scale::{plan_scale, ScaleInput};

/// What every cluster of a reconcile shares.
pub struct ClusterContext<'a> {
    pub defs: &'a Definitions,
    /// The deployment's application policy (its id, and itself unless it no longer exists).
    pub app_policy_id: &'a str,
    pub app_policy: Option<&'a ApplicationPolicy>,
    /// The providers this platform has a driver for.
    pub drivers: &'a HashSet<&'a str>,
    pub history: &'a FailureHistory,
    pub now: Instant,
    /// Clusters whose stored record cannot be read: nothing is planned for them.
    pub frozen: &'a HashSet<String>,
    /// Partitions on a place their driver cannot reach now (`places`): avoided by new
    /// members like those where starts failed.
    pub unreachable: &'a HashSet<Slot>,
    /// Rolling restarts asked for, by cluster id: when each was asked (milliseconds).
    pub restarts: &'a HashMap<String, u64>,
    /// What this cluster's new members are started from (its revision).
    pub pinned: Pinned<'a>,
}

/// A member to record and start.
#[derive(Debug, Clone, PartialEq)]
pub struct Creation {
    pub slot: Slot,
    /// The driver that starts it.
    pub provider: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct ClusterPlan {
    pub create: Vec<Creation>,
    pub drain: Vec<String>,
    /// The cluster cannot be converged: counted as a failure (back-off), kept on the cluster.
    pub failure: Option<String>,
    /// Shown on the cluster, not counted (every partition full).
    pub note: Option<String>,
}

/// Startup order: a cluster starts once the clusters it depends on are active.
pub fn dependencies_active(deployment: &Deployment, spec: &ClusterSpec, topology: &Topology) -> bool {
    spec.depends_on.iter().all(|alias| {
        let id = stratos_model::cluster_id(&deployment.application_id, alias);
        topology.cluster(&id).is_some_and(|c| c.status == ClusterStatus::Active)
    })
}

pub fn plan_cluster(
    ctx: &ClusterContext,
    spec: &ClusterSpec,
    scale: Option<&ClusterScale>,
    cluster: Option<&Cluster>,
    leaving: &dyn Fn(&str) -> bool,
) -> ClusterPlan {
    let failed = |failure: String| ClusterPlan { failure: Some(failure), ..Default::default() };
    if ctx.frozen.contains(&spec.cluster_id) {
        return ClusterPlan::default();
    }
    let Some(app_policy) = ctx.app_policy else {
        return failed(format!("application policy {:?} no longer exists", ctx.app_policy_id));
    };
    let Some(policy) = ctx.defs.deployment_policies.get(&spec.deployment_policy) else {
        return failed(format!("deployment policy {:?} no longer exists", spec.deployment_policy));
    };
    let nps: HashMap<String, NetworkPartition> =
        ctx.defs.network_partitions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let placement = Placement::new(app_policy.algorithm, &app_policy.network_partitions, policy, &nps);
    let mut avoid = ctx.history.avoided(&spec.cluster_id, ctx.now);
    avoid.extend(ctx.unreachable.iter().cloned());
    let scaled = plan_scale(&ScaleInput {
        spec,
        scale,
        placement: &placement,
        members: cluster.map(|c| c.members.values().collect()).unwrap_or_default(),
        leaving,
        backing_off: ctx.history.backing_off(&spec.cluster_id, ctx.now),
        avoid: &avoid,
        restart_since: ctx.restarts.get(&spec.cluster_id).copied(),
        revision: ctx.pinned.revision,
        pace: ctx.pinned.pace,
        stateful: ctx.pinned.cartridge.is_ok_and(super::slots::has_volumes),
    });
    let mut plan = ClusterPlan { drain: scaled.drain, note: scaled.full, ..Default::default() };
    for slot in scaled.create {
        match startable(ctx.pinned, ctx.drivers, spec, &slot, &nps) {
            Ok(provider) => plan.create.push(Creation { slot, provider }),
            Err(e) => {
                plan.failure = Some(e);
                break;
            }
        }
    }
    plan
}

/// The provider that starts a member of `spec` in `slot`, or why none can.
fn startable(
    pinned: Pinned,
    drivers: &HashSet<&str>,
    spec: &ClusterSpec,
    (np_id, partition_id): &Slot,
    nps: &HashMap<String, NetworkPartition>,
) -> Result<String, String> {
    let provider = nps
        .get(np_id)
        .and_then(|np| np.partition(partition_id).and_then(|p| np.provider_of(p)).map(str::to_string))
        .unwrap_or_default();
    if !drivers.contains(provider.as_str()) {
        return Err(format!(
            "network partition {np_id:?} uses provider {provider:?}, which this platform has no driver for"
        ));
    }
    let cartridge = pinned.cartridge.map_err(str::to_string)?;
    if cartridge.iaas(&provider).is_none() {
        return Err(format!("cartridge {:?} has no iaasProvider of type {provider:?}", spec.cartridge_type));
    }
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::backoff::Failure;
    use crate::plan::testing::*;

    fn defs() -> Definitions {
        fn de<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            serde_json::from_value(v).expect("a definition")
        }
        let mut defs = Definitions::default();
        defs.cartridges.insert(
            "web".into(),
            de(serde_json::json!({"type": "web", "category": "framework",
                "portMapping": [{"protocol": "http", "port": 80, "proxyPort": 8280}],
                "iaasProvider": [{"type": "local", "command": ["serve"]}, {"type": "docker", "imageId": "i"}]})),
        );
        defs.network_partitions.insert(
            "np1".into(),
            de(serde_json::json!({"id": "np1", "provider": "local",
                "partitions": [{"id": "a"}, {"id": "b", "provider": "docker"}]})),
        );
        defs.deployment_policies.insert(
            "dp".into(),
            de(
                serde_json::json!({"id": "dp", "networkPartitions": [{"id": "np1", "partitionAlgo": "one-after-another",
                "partitions": [{"id": "a", "partitionMax": 2}, {"id": "b", "partitionMax": 5}]}]}),
            ),
        );
        defs.application_policies.insert(
            "ap".into(),
            de(serde_json::json!({"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np1"]})),
        );
        defs
    }

    /// What a context borrows: [`defs`], `drivers`, and no failure, frozen cluster,
    /// unreachable partition or restart unless a test sets one.
    struct World {
        defs: Definitions,
        drivers: HashSet<&'static str>,
        history: FailureHistory,
        frozen: HashSet<String>,
        unreachable: HashSet<Slot>,
        restarts: HashMap<String, u64>,
    }

    impl World {
        fn new(drivers: &[&'static str]) -> World {
            World {
                defs: defs(),
                drivers: drivers.iter().copied().collect(),
                history: FailureHistory::default(),
                frozen: HashSet::new(),
                unreachable: HashSet::new(),
                restarts: HashMap::new(),
            }
        }

        fn at(&self, now: Instant) -> ClusterContext<'_> {
            ClusterContext {
                defs: &self.defs,
                app_policy_id: "ap",
                app_policy: self.defs.application_policies.get("ap"),
                drivers: &self.drivers,
                history: &self.history,
                now,
                frozen: &self.frozen,
                unreachable: &self.unreachable,
                restarts: &self.restarts,
                pinned: Pinned {
                    revision: None,
                    cartridge: self.defs.cartridges.get("web").ok_or("no cartridge"),
                    pace: crate::plan::restart::Pace::ONE_AT_A_TIME,
                },
            }
        }
    }

    #[test]
    fn members_are_placed_with_their_driver_or_the_cluster_fails_naming_why() {
        let w = World::new(&["local"]);
        let ctx = w.at(Instant::now());
        let no = |_: &str| false;
        // Two fit in a (local); the third would go to b, whose provider has no driver.
        let plan = plan_cluster(&ctx, &spec(3, 3, 3), None, None, &no);
        assert_eq!(plan.create.iter().map(|c| c.provider.as_str()).collect::<Vec<_>>(), ["local", "local"]);
        let failure = plan.failure.expect("the third cannot start");
        assert!(failure.contains("provider \"docker\""), "{failure}");

        let mut s = spec(1, 1, 1);
        s.deployment_policy = "gone".into();
        let plan = plan_cluster(&ctx, &s, None, None, &no);
        assert_eq!(plan.failure.as_deref(), Some("deployment policy \"gone\" no longer exists"));
        let no_policy = ClusterContext { app_policy: None, ..ctx };
        assert!(plan_cluster(&no_policy, &spec(1, 1, 1), None, None, &no).failure.is_some());
    }

    #[test]
    fn nothing_is_planned_for_a_frozen_cluster() {
        let mut w = World::new(&["local"]);
        w.frozen.insert(CLUSTER.to_string());
        let ctx = w.at(Instant::now());
        let members: Vec<_> = (0..2).map(|i| member(&format!("m{i}"), "np1", "a", active(), i)).collect();
        let t = topology(&members);
        let no = |_: &str| false;
        for (s, sc) in [(spec(3, 3, 3), None), (spec(0, 3, 0), Some(scale(0, &["m0"])))] {
            assert_eq!(plan_cluster(&ctx, &s, sc.as_ref(), t.cluster(CLUSTER), &no), ClusterPlan::default());
        }
    }

    #[test]
    fn back_off_and_avoidance_come_from_the_history_at_the_time_given() {
        let mut w = World::new(&["local", "docker"]);
        let t0 = Instant::now();
        w.history.record(CLUSTER, t0, "did not activate", Failure::Start, Some(slot("np1", "a")));
        let no = |_: &str| false;
        assert_eq!(plan_cluster(&w.at(t0), &spec(1, 1, 1), None, None, &no), ClusterPlan::default(), "backing off");
        let retry = plan_cluster(&w.at(t0 + std::time::Duration::from_secs(2)), &spec(1, 1, 1), None, None, &no);
        assert_eq!(retry.create, [Creation { slot: slot("np1", "b"), provider: "docker".into() }], "a is avoided");
        let later = plan_cluster(&w.at(t0 + std::time::Duration::from_secs(4)), &spec(1, 1, 1), None, None, &no);
        assert_eq!(later.create[0].slot, slot("np1", "a"), "the avoidance ended");
    }

    #[test]
    fn partitions_on_an_unreachable_place_get_no_new_member() {
        let mut w = World::new(&["local", "docker"]);
        w.unreachable.insert(slot("np1", "a"));
        let planned = plan_cluster(&w.at(Instant::now()), &spec(1, 1, 1), None, None, &|_: &str| false);
        assert_eq!(planned.create, [Creation { slot: slot("np1", "b"), provider: "docker".into() }]);
    }
}
