//! The monitor tree of a deployed application: application → groups (nested) →
//! clusters. Clusters report their status in the topology (the controller owns
//! it); a group's and the application's status roll up from their children, and
//! only changes are announced. Pure: the caller loads and publishes.

use std::collections::BTreeMap;

use stratos_model::topology::ClusterStatus;
use stratos_model::{ApplicationMonitorStatus, Deployment, GroupSpec, MonitorStatus};

/// A monitor's status from its children's, in the order Apache Stratos checks them.
pub fn roll_up(children: &[MonitorStatus], previous: MonitorStatus, terminating: bool) -> MonitorStatus {
    use MonitorStatus::*;
    if terminating {
        return Terminating;
    }
    if children.iter().all(|c| *c == Active) {
        return Active;
    }
    if children.iter().any(|c| matches!(c, Inactive | Terminating)) {
        return Inactive;
    }
    // Some child has not been active yet: a monitor that never was active is
    // still starting; one that was is short of a child.
    if previous == Created {
        Created
    } else {
        Inactive
    }
}

/// A cluster as its monitors see it; `None`: the controller has not created it yet.
pub fn cluster_status(status: Option<ClusterStatus>) -> MonitorStatus {
    match status {
        None | Some(ClusterStatus::Created) => MonitorStatus::Created,
        Some(ClusterStatus::Active) => MonitorStatus::Active,
        // A cluster going away under a deployed application serves no more than an inactive one.
        Some(ClusterStatus::Inactive | ClusterStatus::Terminating | ClusterStatus::Terminated) => {
            MonitorStatus::Inactive
        }
    }
}

/// A status change of one monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Group { alias: String, from: MonitorStatus, to: MonitorStatus },
    Application { from: MonitorStatus, to: MonitorStatus },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupMonitor {
    pub alias: String,
    pub status: MonitorStatus,
    /// Ids of the clusters directly in the group.
    pub clusters: Vec<String>,
    pub groups: Vec<GroupMonitor>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationMonitor {
    pub application_id: String,
    pub tenant_id: i64,
    /// Which deployment of the application this tree watches.
    pub deployed_at: u64,
    pub status: MonitorStatus,
    /// Ids of the clusters in no group.
    pub clusters: Vec<String>,
    pub groups: Vec<GroupMonitor>,
}

impl ApplicationMonitor {
    /// The tree of a deployment, every monitor `Created`, or as `stored` left
    /// it (a restarted autoscaler does not announce again what it announced).
    pub fn new(deployment: &Deployment, stored: Option<&ApplicationMonitorStatus>) -> ApplicationMonitor {
        let stored = stored.filter(|s| s.deployed_at == deployment.deployed_at);
        let id_of =
            |alias: &String| deployment.clusters.iter().find(|c| &c.alias == alias).map(|c| c.cluster_id.clone());
        fn groups(
            specs: &[GroupSpec],
            id_of: &dyn Fn(&String) -> Option<String>,
            stored: Option<&ApplicationMonitorStatus>,
        ) -> Vec<GroupMonitor> {
            specs
                .iter()
                .map(|g| GroupMonitor {
                    alias: g.alias.clone(),
                    status: stored.and_then(|s| s.groups.get(&g.alias).copied()).unwrap_or(MonitorStatus::Created),
                    clusters: g.clusters.iter().filter_map(id_of).collect(),
                    groups: groups(&g.groups, id_of, stored),
                })
                .collect()
        }
        ApplicationMonitor {
            application_id: deployment.application_id.clone(),
            tenant_id: deployment.tenant_id,
            deployed_at: deployment.deployed_at,
            status: stored.map_or(MonitorStatus::Created, |s| s.status),
            clusters: deployment.top_level_clusters().iter().filter_map(id_of).collect(),
            groups: groups(&deployment.groups, &id_of, stored),
        }
    }

    /// Rolls every status up from the clusters' (by cluster id); returns what
    /// changed, inner groups before the groups and the application around them.
    pub fn update(&mut self, cluster: &dyn Fn(&str) -> MonitorStatus, terminating: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut children: Vec<MonitorStatus> = self.clusters.iter().map(|c| cluster(c)).collect();
        for g in &mut self.groups {
            children.push(g.update(cluster, terminating, &mut changes));
        }
        let next = roll_up(&children, self.status, terminating);
        if next != self.status {
            changes.push(Change::Application { from: self.status, to: next });
            self.status = next;
        }
        changes
    }

    /// What the manager shows in `application status`.
    pub fn record(&self, updated_at: u64) -> ApplicationMonitorStatus {
        fn walk(groups: &[GroupMonitor], out: &mut BTreeMap<String, MonitorStatus>) {
            for g in groups {
                out.insert(g.alias.clone(), g.status);
                walk(&g.groups, out);
            }
        }
        let mut groups = BTreeMap::new();
        walk(&self.groups, &mut groups);
        ApplicationMonitorStatus {
            application_id: self.application_id.clone(),
            deployed_at: self.deployed_at,
            status: self.status,
            groups,
            updated_at,
        }
    }
}

impl GroupMonitor {
    fn update(
        &mut self,
        cluster: &dyn Fn(&str) -> MonitorStatus,
        terminating: bool,
        changes: &mut Vec<Change>,
    ) -> MonitorStatus {
        let mut children: Vec<MonitorStatus> = self.clusters.iter().map(|c| cluster(c)).collect();
        for g in &mut self.groups {
            children.push(g.update(cluster, terminating, changes));
        }
        let next = roll_up(&children, self.status, terminating);
        if next != self.status {
            changes.push(Change::Group { alias: self.alias.clone(), from: self.status, to: next });
            self.status = next;
        }
        self.status
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use stratos_model::{ClusterSpec, DeploymentStatus};
    use MonitorStatus::*;

    use super::*;

    #[test]
    fn roll_up_table() {
        let cases = [
            // (children, previous, terminating, expected)
            (vec![Created, Created], Created, false, Created),
            (vec![Active, Created], Created, false, Created),
            (vec![Active, Active], Created, false, Active),
            (vec![Active, Inactive], Active, false, Inactive),
            (vec![Active, Inactive], Created, false, Inactive),
            (vec![Active, Created], Active, false, Inactive),
            (vec![Active, Active], Inactive, false, Active),
            (vec![Active, Terminating], Active, false, Inactive),
            (vec![Active, Active], Active, true, Terminating),
            (vec![Created], Created, true, Terminating),
        ];
        for (children, previous, terminating, expected) in cases {
            assert_eq!(
                roll_up(&children, previous, terminating),
                expected,
                "{children:?} was {previous:?} terminating {terminating}"
            );
        }
    }

    fn spec(alias: &str) -> ClusterSpec {
        ClusterSpec {
            cluster_id: format!("app.{alias}"),
            alias: alias.into(),
            cartridge_type: "c".into(),
            min: 1,
            max: 1,
            desired: 1,
            deployment_policy: "d".into(),
            autoscaling_policy: "a".into(),
            host_names: vec![],
            artifact_repository: None,
            depends_on: vec![],
            revision: None,
        }
    }

    fn group(alias: &str, clusters: &[&str], groups: Vec<GroupSpec>) -> GroupSpec {
        GroupSpec {
            alias: alias.into(),
            name: alias.into(),
            min: 1,
            max: 1,
            scaling_enabled: false,
            clusters: clusters.iter().map(|s| s.to_string()).collect(),
            groups,
        }
    }

    /// web; backend { db; inner { cache } }.
    fn deployment() -> Deployment {
        Deployment {
            application_id: "app".into(),
            tenant_id: 7,
            application_policy_id: "p".into(),
            status: DeploymentStatus::Deployed,
            deployed_at: 42,
            clusters: vec![spec("web"), spec("db"), spec("cache")],
            termination_behaviour: None,
            groups: vec![group("backend", &["db"], vec![group("inner", &["cache"], vec![])])],
        }
    }

    fn group_change(alias: &str, from: MonitorStatus, to: MonitorStatus) -> Change {
        Change::Group { alias: alias.into(), from, to }
    }

    #[test]
    fn statuses_roll_up_from_clusters_through_nested_groups() {
        let mut m = ApplicationMonitor::new(&deployment(), None);
        assert_eq!(m.clusters, ["app.web"]);
        assert_eq!(m.groups[0].clusters, ["app.db"]);
        assert_eq!(m.groups[0].groups[0].clusters, ["app.cache"]);
        let mut clusters: HashMap<&str, MonitorStatus> = HashMap::new();
        let mut step = |set: &[(&'static str, MonitorStatus)], terminating: bool, m: &mut ApplicationMonitor| {
            clusters.extend(set.iter().copied());
            let view = clusters.clone();
            m.update(&move |id: &str| view.get(id).copied().unwrap_or(Created), terminating)
        };
        // Nothing is active yet: nothing changes.
        assert_eq!(step(&[], false, &mut m), []);
        // cache active: inner is active; backend waits for db.
        assert_eq!(step(&[("app.cache", Active)], false, &mut m), [group_change("inner", Created, Active)]);
        assert_eq!(step(&[("app.db", Active)], false, &mut m), [group_change("backend", Created, Active)]);
        assert_eq!(step(&[("app.web", Active)], false, &mut m), [Change::Application { from: Created, to: Active }]);
        // cache goes down: inner, backend and the application are inactive, innermost first.
        assert_eq!(
            step(&[("app.cache", Inactive)], false, &mut m),
            [
                group_change("inner", Active, Inactive),
                group_change("backend", Active, Inactive),
                Change::Application { from: Active, to: Inactive },
            ]
        );
        let record = m.record(1);
        assert_eq!(record.status, Inactive);
        assert_eq!(record.groups["inner"], Inactive);
        assert_eq!(record.deployed_at, 42);
        // Back up, then undeployed: everything terminates.
        assert_eq!(step(&[("app.cache", Active)], false, &mut m).len(), 3);
        assert_eq!(m.status, Active);
        let changes = step(&[], true, &mut m);
        assert_eq!(changes.len(), 3);
        assert!(changes
            .iter()
            .all(|c| matches!(c, Change::Group { to: Terminating, .. } | Change::Application { to: Terminating, .. })));
        // A restarted autoscaler takes the statuses from the record of the same deployment only.
        let stored = m.record(2);
        assert_eq!(ApplicationMonitor::new(&deployment(), Some(&stored)), m);
        let redeployed = Deployment { deployed_at: 43, ..deployment() };
        assert_eq!(ApplicationMonitor::new(&redeployed, Some(&stored)).status, Created);
    }

    #[test]
    fn cluster_statuses_as_monitors_see_them() {
        for (status, expected) in [
            (None, Created),
            (Some(ClusterStatus::Created), Created),
            (Some(ClusterStatus::Active), Active),
            (Some(ClusterStatus::Inactive), Inactive),
            (Some(ClusterStatus::Terminating), Inactive),
        ] {
            assert_eq!(cluster_status(status), expected, "{status:?}");
        }
    }
}
