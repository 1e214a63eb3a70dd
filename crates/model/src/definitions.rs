//! The set of definitions a tenant has: what references are checked against.

use std::collections::BTreeMap;

use crate::{
    Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, CartridgeGroup, DeploymentPolicy, Kind,
    NetworkPartition, Problems,
};

/// Behaviour every definition kind shares.
pub trait Definition: Sized {
    const KIND: Kind;
    fn id(&self) -> &str;
    /// Checks the definition on its own; pushes every problem found.
    fn validate(&self, problems: &mut Problems);
    /// Checks that what it names exists in `defs`.
    fn check_references(&self, defs: &Definitions, problems: &mut Problems);
    /// The definitions it names, so that they cannot be removed while in use.
    fn references(&self) -> Vec<(Kind, String)>;

    /// Validation and reference checks together.
    fn check(&self, defs: &Definitions) -> Result<(), Problems> {
        let mut problems = Problems::default();
        self.validate(&mut problems);
        self.check_references(defs, &mut problems);
        problems.into_result()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    pub cartridges: BTreeMap<String, Cartridge>,
    pub network_partitions: BTreeMap<String, NetworkPartition>,
    pub deployment_policies: BTreeMap<String, DeploymentPolicy>,
    pub autoscaling_policies: BTreeMap<String, AutoscalingPolicy>,
    pub application_policies: BTreeMap<String, ApplicationPolicy>,
    pub cartridge_groups: BTreeMap<String, CartridgeGroup>,
    pub applications: BTreeMap<String, Application>,
    /// Which artifact repositories applications may name: a platform setting, not a
    /// definition (the manager sets it; by default remote repositories only).
    pub repo_policy: crate::RepoUrlPolicy,
}

impl Definitions {
    /// Whether a definition of `kind` named `id` is here.
    pub fn contains(&self, kind: Kind, id: &str) -> bool {
        match kind {
            Kind::Cartridge => self.cartridges.contains_key(id),
            Kind::NetworkPartition => self.network_partitions.contains_key(id),
            Kind::DeploymentPolicy => self.deployment_policies.contains_key(id),
            Kind::AutoscalingPolicy => self.autoscaling_policies.contains_key(id),
            Kind::ApplicationPolicy => self.application_policies.contains_key(id),
            Kind::CartridgeGroup => self.cartridge_groups.contains_key(id),
            Kind::Application => self.applications.contains_key(id),
        }
    }

    /// Every definition that names `(kind, id)`: a removal of it would break them.
    pub fn dependents_of(&self, kind: Kind, id: &str) -> Vec<(Kind, String)> {
        fn scan<D: Definition>(map: &BTreeMap<String, D>, kind: Kind, id: &str, out: &mut Vec<(Kind, String)>) {
            for def in map.values() {
                if def.references().iter().any(|(k, i)| *k == kind && i == id) {
                    out.push((D::KIND, def.id().to_string()));
                }
            }
        }
        let mut out = Vec::new();
        scan(&self.cartridges, kind, id, &mut out);
        scan(&self.network_partitions, kind, id, &mut out);
        scan(&self.deployment_policies, kind, id, &mut out);
        scan(&self.autoscaling_policies, kind, id, &mut out);
        scan(&self.application_policies, kind, id, &mut out);
        scan(&self.cartridge_groups, kind, id, &mut out);
        scan(&self.applications, kind, id, &mut out);
        out
    }

    /// Adds a definition given as JSON of its kind.
    pub fn insert_json(&mut self, kind: Kind, value: serde_json::Value) -> Result<(), serde_json::Error> {
        fn put<D: Definition + serde::de::DeserializeOwned>(
            map: &mut BTreeMap<String, D>,
            value: serde_json::Value,
        ) -> Result<(), serde_json::Error> {
            let def: D = serde_json::from_value(value)?;
            map.insert(def.id().to_string(), def);
            Ok(())
        }
        match kind {
            Kind::Cartridge => put(&mut self.cartridges, value),
            Kind::NetworkPartition => put(&mut self.network_partitions, value),
            Kind::DeploymentPolicy => put(&mut self.deployment_policies, value),
            Kind::AutoscalingPolicy => put(&mut self.autoscaling_policies, value),
            Kind::ApplicationPolicy => put(&mut self.application_policies, value),
            Kind::CartridgeGroup => put(&mut self.cartridge_groups, value),
            Kind::Application => put(&mut self.applications, value),
        }
    }
}
