//! The members against the drivers' listing: which are gone, which instances are
//! orphans to reap, and which the operator asked to adopt.

use std::collections::{HashMap, HashSet};

use stratos_model::topology::{Member, MemberStatus, Port, Topology};
use stratos_model::Property;

use super::backoff::Failure;
use super::places::Unseen;
use crate::driver::{Instance, InstanceState};
use crate::ownership;

/// An instance as a driver listed it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub instance: Instance,
    /// The driver (provider) that listed it.
    pub provider: &'static str,
}

/// What judging the members needs.
pub struct MembersInput<'a> {
    pub topology: &'a Topology,
    /// Every driver's listing, by member id.
    pub instances: &'a HashMap<String, Listed>,
    /// The platform the controller acts for.
    pub platform_id: &'a str,
    /// Whether the store may judge the running members (it is this platform's and the
    /// census let it start): no orphan is reaped otherwise.
    pub store_trusted: bool,
    /// Members their driver is stopping: judged again once it reports.
    pub terminating: &'a HashSet<String>,
    pub draining: &'a dyn Fn(&str) -> bool,
    /// Clusters whose stored record cannot be read: none of their members is judged.
    pub frozen: &'a HashSet<String>,
    /// Running members the operator asked to adopt (`--adopt-members`) that the store
    /// did not record when the controller started.
    pub adopting: &'a HashSet<String>,
    /// Clusters a deployment converges (where an adopted member may go), with their service.
    pub deployed: &'a HashMap<String, String>,
    /// Members on a place their driver cannot reach (`places`), by id: left as they are
    /// within the grace period, given up after it.
    pub unseen: &'a HashMap<String, Unseen>,
}

/// A member of the topology whose instance is no more.
#[derive(Debug, Clone, PartialEq)]
pub struct Gone {
    pub cluster_id: String,
    pub member_id: String,
    pub reason: String,
    /// Its instance is another platform's: forgotten, never stopped.
    pub foreign: bool,
    /// How its going counts against its cluster, if it does.
    pub failure: Option<Failure>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Judgement {
    pub gone: Vec<Gone>,
    /// (cluster id, member id) of instances of this platform no member names.
    pub orphans: Vec<(String, String)>,
    /// Members to record in the topology, as they run.
    pub adopt: Vec<Member>,
    /// Members asked to adopt whose cluster no deployment has: left running, reported.
    pub not_adoptable: Vec<(String, String)>,
}

pub fn judge(input: &MembersInput) -> Judgement {
    let mut out = Judgement::default();
    let frozen = |cluster_id: &str| input.frozen.contains(cluster_id);
    for m in input.topology.members() {
        if input.terminating.contains(&m.member_id) || frozen(&m.cluster_id) {
            continue;
        }
        match input.unseen.get(&m.member_id) {
            Some(Unseen::Waiting) => continue,
            Some(Unseen::Lost(why)) => {
                // Not the cluster's failure: it is not backed off, and its partition is
                // avoided while the place is out of reach (`ClusterContext::unreachable`).
                out.gone.push(Gone {
                    cluster_id: m.cluster_id.clone(),
                    member_id: m.member_id.clone(),
                    reason: format!("member {} given up: {why}", m.member_id),
                    foreign: false,
                    failure: None,
                });
                continue;
            }
            None => {}
        }
        let draining = (input.draining)(&m.member_id);
        let (reason, foreign) = match input.instances.get(&m.member_id).map(|l| &l.instance) {
            Some(i) if i.platform_id.as_ref().is_some_and(|p| p != input.platform_id) => {
                (format!("its instance belongs to platform {}", i.platform_id.as_deref().unwrap_or("?")), true)
            }
            Some(Instance { state: InstanceState::Running, .. }) => continue,
            Some(Instance { state: InstanceState::Exited { detail, .. }, .. }) => (detail.clone(), false),
            None => ("no instance of the member exists".to_string(), false),
        };
        let failure = match m.status {
            _ if foreign || draining => None,
            s if s < MemberStatus::Active => Some(Failure::Start),
            MemberStatus::Active => Some(Failure::AfterActivation),
            _ => None,
        };
        let reason = match failure {
            Some(Failure::Start) => format!("member {} stopped before activating: {reason}", m.member_id),
            Some(_) => format!("member {} stopped after activating: {reason}", m.member_id),
            None => reason,
        };
        out.gone.push(Gone {
            cluster_id: m.cluster_id.clone(),
            member_id: m.member_id.clone(),
            reason,
            foreign,
            failure,
        });
    }
    // An instance names its cluster: look there first, and at every member only for
    // the few not found there.
    let in_its_cluster =
        |i: &Instance| input.topology.cluster(&i.cluster_id).is_some_and(|c| c.members.contains_key(&i.member_id));
    let mut unknown: Vec<&Listed> = input.instances.values().filter(|l| !in_its_cluster(&l.instance)).collect();
    if !unknown.is_empty() {
        let known: HashSet<&str> = input.topology.members().map(|m| m.member_id.as_str()).collect();
        unknown.retain(|l| !known.contains(l.instance.member_id.as_str()));
    }
    unknown.sort_by(|a, b| a.instance.member_id.cmp(&b.instance.member_id));
    for l in unknown {
        let i = &l.instance;
        if input.terminating.contains(&i.member_id) || frozen(&i.cluster_id) {
            continue;
        }
        if input.adopting.contains(&i.member_id) {
            if i.state != InstanceState::Running {
                continue;
            }
            match input.deployed.get(&i.cluster_id) {
                Some(service) => out.adopt.push(adopted(l, service)),
                None => out.not_adoptable.push((i.cluster_id.clone(), i.member_id.clone())),
            }
            continue;
        }
        // Only this platform's members are ever reaped; another's are left running.
        if input.store_trusted && ownership::is_ours(i, input.platform_id, |_| false) {
            out.orphans.push((i.cluster_id.clone(), i.member_id.clone()));
        }
    }
    out
}

/// The record of an adopted member: it runs, so it is taken for active (its agent
/// announced that long ago and will not again; its health checks still watch it).
fn adopted(l: &Listed, service: &str) -> Member {
    let i = &l.instance;
    Member {
        service_name: service.to_string(),
        cluster_id: i.cluster_id.clone(),
        member_id: i.member_id.clone(),
        network_partition_id: i.network_partition_id.clone(),
        partition_id: i.partition_id.clone(),
        status: MemberStatus::Active,
        default_private_ip: Some(i.address.clone()),
        default_public_ip: None,
        ports: i.ports.iter().map(|p| Port { protocol: p.protocol, value: p.host_port, proxy: p.proxy_port }).collect(),
        init_time: i.started_at,
        properties: vec![Property { name: "provider".into(), value: l.provider.to_string() }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::*;

    struct World {
        topology: Topology,
        instances: HashMap<String, Listed>,
        terminating: HashSet<String>,
        frozen: HashSet<String>,
        adopting: HashSet<String>,
        deployed: HashMap<String, String>,
        unseen: HashMap<String, Unseen>,
        trusted: bool,
    }

    impl World {
        fn new(members: &[Member]) -> World {
            World {
                topology: topology(members),
                instances: HashMap::new(),
                terminating: HashSet::new(),
                frozen: HashSet::new(),
                adopting: HashSet::new(),
                deployed: HashMap::from([(CLUSTER.to_string(), "web".to_string())]),
                unseen: HashMap::new(),
                trusted: true,
            }
        }
        fn run(&mut self, id: &str, cluster: &str, platform: Option<&str>, state: InstanceState) {
            let instance = instance(id, cluster, platform, state);
            self.instances.insert(id.into(), Listed { instance, provider: "local" });
        }
        fn judge(&self) -> Judgement {
            let no = |_: &str| false;
            judge(&MembersInput {
                topology: &self.topology,
                instances: &self.instances,
                platform_id: "p1",
                store_trusted: self.trusted,
                terminating: &self.terminating,
                draining: &no,
                frozen: &self.frozen,
                adopting: &self.adopting,
                deployed: &self.deployed,
                unseen: &self.unseen,
            })
        }
    }

    fn exited() -> InstanceState {
        InstanceState::Exited { code: Some(1), detail: "exited with code 1".into() }
    }

    #[test]
    fn members_whose_instance_is_gone_are_judged_by_how_far_they_got() {
        let mut starting = member("m1", "np1", "a", active(), 1);
        starting.status = MemberStatus::Starting;
        let mut w =
            World::new(&[starting, member("m2", "np1", "a", active(), 2), member("m3", "np1", "a", active(), 3)]);
        w.run("m1", CLUSTER, Some("p1"), exited());
        w.run("m2", CLUSTER, Some("p1"), exited());
        w.run("m3", CLUSTER, Some("p1"), InstanceState::Running);
        let j = w.judge();
        assert_eq!(j.gone.len(), 2, "{j:?}");
        assert_eq!(j.gone[0].failure, Some(Failure::Start));
        assert!(j.gone[0].reason.contains("stopped before activating: exited with code 1"), "{:?}", j.gone[0]);
        assert_eq!(j.gone[1].failure, Some(Failure::AfterActivation), "an active member that exits counts too");
        assert!(j.orphans.is_empty());
    }

    #[test]
    fn a_member_without_an_instance_is_gone_and_one_of_another_platform_is_forgotten_not_stopped() {
        let mut w = World::new(&[member("m1", "np1", "a", active(), 1), member("m2", "np1", "a", active(), 2)]);
        w.run("m2", CLUSTER, Some("p2"), InstanceState::Running);
        let j = w.judge();
        assert_eq!(j.gone[0].member_id, "m1");
        assert_eq!(j.gone[0].reason, "member m1 stopped after activating: no instance of the member exists");
        assert!(j.gone[1].foreign && j.gone[1].failure.is_none(), "{:?}", j.gone[1]);
    }

    #[test]
    fn members_pending_termination_are_neither_gone_nor_orphans() {
        let mut w = World::new(&[member("m1", "np1", "a", active(), 1)]);
        w.terminating.insert("m1".into());
        w.terminating.insert("o1".into());
        w.run("o1", CLUSTER, Some("p1"), InstanceState::Running);
        assert_eq!(w.judge(), Judgement::default());
    }

    #[test]
    fn orphans_are_this_platforms_instances_no_member_names_and_only_while_the_store_is_trusted() {
        let mut w = World::new(&[member("m1", "np1", "a", active(), 1)]);
        w.run("m1", CLUSTER, Some("p1"), InstanceState::Running);
        w.run("own", CLUSTER, Some("p1"), InstanceState::Running);
        w.run("theirs", CLUSTER, Some("p2"), InstanceState::Running);
        w.run("unmarked", CLUSTER, None, InstanceState::Running);
        // A member recorded in another cluster than its instance says is not an orphan.
        w.run("m1", "other.cluster", Some("p1"), InstanceState::Running);
        let j = w.judge();
        assert_eq!(
            j.orphans,
            [(CLUSTER.to_string(), "own".to_string())],
            "never another platform's nor an unmarked one"
        );
        w.trusted = false;
        assert!(w.judge().orphans.is_empty(), "never while the census refuses the store");
    }

    #[test]
    fn a_frozen_clusters_members_are_neither_gone_nor_orphans() {
        let mut w = World::new(&[member("m1", "np1", "a", active(), 1)]);
        w.frozen.insert(CLUSTER.into());
        w.run("o1", CLUSTER, Some("p1"), InstanceState::Running);
        assert_eq!(w.judge(), Judgement::default(), "m1 has no instance and o1 no record: both left alone");
    }

    #[test]
    fn adopted_instances_are_recorded_as_they_run_and_others_left_alone() {
        let mut w = World::new(&[]);
        w.run("a1", CLUSTER, Some("p1"), InstanceState::Running);
        w.instances.get_mut("a1").unwrap().instance.partition_id = "a".into();
        w.run("a2", "undeployed.web", Some("p1"), InstanceState::Running);
        w.run("a3", CLUSTER, Some("p1"), exited());
        w.adopting = ["a1", "a2", "a3"].map(String::from).into();
        let j = w.judge();
        assert_eq!(j.adopt.len(), 1, "{j:?}");
        let m = &j.adopt[0];
        assert_eq!((m.member_id.as_str(), m.status, m.partition_id.as_str()), ("a1", MemberStatus::Active, "a"));
        assert_eq!(m.service_name, "web");
        assert_eq!(stratos_model::property(&m.properties, "provider"), Some("local"));
        assert_eq!(j.not_adoptable, [("undeployed.web".to_string(), "a2".to_string())]);
        assert!(j.orphans.is_empty(), "neither adopted nor adoptable ones are reaped: {j:?}");
        // Without --adopt-members the same instance is an orphan.
        w.adopting.clear();
        assert_eq!(w.judge().orphans.len(), 3, "an exited one too: its driver cleans it up");
    }

    #[test]
    fn members_on_an_unreachable_place_wait_out_its_grace_then_are_given_up_without_blame() {
        let mut w = World::new(&[
            member("m1", "np2", "a", active(), 1),
            member("m2", "np2", "a", active(), 2),
            member("m3", "np1", "a", active(), 3),
        ]);
        // m1 and m2's engine does not answer, so neither is listed; m3's is listed.
        w.run("m3", CLUSTER, Some("p1"), InstanceState::Running);
        w.unseen.insert("m1".into(), Unseen::Waiting);
        w.unseen.insert("m2".into(), Unseen::Waiting);
        assert_eq!(w.judge(), Judgement::default(), "within the grace nothing is gone");
        w.unseen.insert("m1".into(), Unseen::Lost("e2 has not answered for 31s".into()));
        let j = w.judge();
        assert_eq!(j.gone.len(), 1, "{j:?}");
        assert_eq!(j.gone[0].member_id, "m1");
        assert_eq!(j.gone[0].reason, "member m1 given up: e2 has not answered for 31s");
        assert_eq!(j.gone[0].failure, None, "the cluster is not backed off for its engine");
        assert!(!j.gone[0].foreign, "its driver is asked to clean up once the engine is back");
    }
}
