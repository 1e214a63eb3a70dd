//! Application: one or more clusters (cartridge subscriptions), optionally in
//! groups, with the dependencies between them.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::property::{check_properties, Property};
use crate::{Definition, Definitions, Kind, Problems, RepoUrlPolicy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub multi_tenant: bool,
    pub components: Components,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    #[serde(default)]
    pub cartridges: Vec<CartridgeSubscription>,
    #[serde(default)]
    pub groups: Vec<GroupComponent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
}

/// One cluster of the application: a cartridge, its size bounds and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartridgeSubscription {
    /// The cartridge type.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    #[serde(rename = "type")]
    pub cartridge_type: String,
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub cartridge_min: u32,
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub cartridge_max: u32,
    pub subscribable_info: SubscribableInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribableInfo {
    /// Names the cluster within the application; unique across the application.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub alias: String,
    pub autoscaling_policy: String,
    pub deployment_policy: String,
    /// Host names the load balancer routes to this cluster, besides the generated one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<ArtifactRepository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_cluster_id: Option<String>,
    #[serde(default, alias = "properties")]
    pub property: Vec<Property>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRepository {
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub private_repo: bool,
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupComponent {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub name: String,
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub alias: String,
    /// Stratos 4.1 names it `groupMinInstances`; `groupMin` is accepted too.
    #[serde(
        rename = "groupMinInstances",
        alias = "groupMin",
        default = "one",
        deserialize_with = "crate::lenient::u32"
    )]
    pub group_min: u32,
    /// Stratos 4.1 names it `groupMaxInstances`; `groupMax` is accepted too.
    #[serde(
        rename = "groupMaxInstances",
        alias = "groupMax",
        default = "one",
        deserialize_with = "crate::lenient::u32"
    )]
    pub group_max: u32,
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub group_scaling_enabled: bool,
    #[serde(default)]
    pub cartridges: Vec<CartridgeSubscription>,
    #[serde(default)]
    pub groups: Vec<GroupComponent>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    /// Each entry: the listed components start in this order.
    #[serde(default)]
    pub startup_orders: Vec<AliasList>,
    /// Each entry: when one of the listed components scales, the others scale with it.
    #[serde(default)]
    pub scaling_dependents: Vec<AliasList>,
    #[serde(default)]
    pub termination_behaviour: TerminationBehaviour,
}

/// Component references: `cartridge.<alias>` or `group.<alias>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AliasList {
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TerminationBehaviour {
    /// A faulty component takes every component down.
    #[default]
    TerminateAll,
    /// A faulty component takes down the components that depend on it.
    TerminateDependents,
    /// Components stay up when one fails.
    TerminateNone,
}

impl Application {
    /// Every cartridge subscription, groups included, with its field path.
    pub fn subscriptions(&self) -> Vec<(String, &CartridgeSubscription)> {
        let mut out = Vec::new();
        collect(&self.components.cartridges, &self.components.groups, "components", &mut out);
        out
    }

    fn group_aliases(&self) -> Vec<(String, &str)> {
        fn walk<'a>(groups: &'a [GroupComponent], at: &str, out: &mut Vec<(String, &'a str)>) {
            for (i, g) in groups.iter().enumerate() {
                let here = format!("{at}.groups[{i}]");
                out.push((format!("{here}.alias"), g.alias.as_str()));
                walk(&g.groups, &here, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.components.groups, "components", &mut out);
        out
    }
}

fn collect<'a>(
    cartridges: &'a [CartridgeSubscription],
    groups: &'a [GroupComponent],
    at: &str,
    out: &mut Vec<(String, &'a CartridgeSubscription)>,
) {
    for (i, c) in cartridges.iter().enumerate() {
        out.push((format!("{at}.cartridges[{i}]"), c));
    }
    for (i, g) in groups.iter().enumerate() {
        collect(&g.cartridges, &g.groups, &format!("{at}.groups[{i}]"), out);
    }
}

fn check_groups(groups: &[GroupComponent], at: &str, p: &mut Problems) {
    for (i, g) in groups.iter().enumerate() {
        let here = format!("{at}.groups[{i}]");
        p.check_id(&format!("{here}.name"), &g.name);
        if g.group_max < g.group_min {
            p.push(
                format!("{here}.groupMaxInstances"),
                format!("{} is below groupMinInstances {}", g.group_max, g.group_min),
            );
        }
        if g.cartridges.is_empty() && g.groups.is_empty() {
            p.push(format!("{here}.cartridges"), "a group needs at least one cartridge or group");
        }
        check_groups(&g.groups, &here, p);
    }
}

impl Definition for Application {
    const KIND: Kind = Kind::Application;

    fn id(&self) -> &str {
        &self.application_id
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("applicationId", &self.application_id);
        let subs = self.subscriptions();
        if subs.is_empty() {
            p.push("components", "an application needs at least one cartridge");
        }
        for (at, c) in &subs {
            p.check_id(&format!("{at}.type"), &c.cartridge_type);
            p.check_id(&format!("{at}.subscribableInfo.alias"), &c.subscribable_info.alias);
            if c.cartridge_min < 1 {
                p.push(format!("{at}.cartridgeMin"), "must be at least 1");
            }
            if c.cartridge_max < c.cartridge_min {
                p.push(
                    format!("{at}.cartridgeMax"),
                    format!("{} is below cartridgeMin {}", c.cartridge_max, c.cartridge_min),
                );
            }
            let info = &c.subscribable_info;
            if info.autoscaling_policy.is_empty() {
                p.push(format!("{at}.subscribableInfo.autoscalingPolicy"), "must not be empty");
            }
            if info.deployment_policy.is_empty() {
                p.push(format!("{at}.subscribableInfo.deploymentPolicy"), "must not be empty");
            }
            for (h, host) in info.host_names.iter().enumerate() {
                if !is_host_name(host) {
                    p.push(format!("{at}.subscribableInfo.hostNames[{h}]"), format!("{host:?} is not a host name"));
                }
            }
            if let Some(repo) = &info.artifact_repository {
                // Local repositories are a platform setting, checked with the references.
                if let Err(why) = crate::check_repo_url(&repo.repo_url, RepoUrlPolicy { allow_local: true }) {
                    p.push(format!("{at}.subscribableInfo.artifactRepository.repoUrl"), why);
                }
            }
            check_properties(&info.property, &format!("{at}.subscribableInfo.property"), p);
        }
        check_groups(&self.components.groups, "components", p);

        let cartridge_aliases: Vec<(String, &str)> = subs
            .iter()
            .map(|(at, c)| (format!("{at}.subscribableInfo.alias"), c.subscribable_info.alias.as_str()))
            .collect();
        let group_aliases = self.group_aliases();
        p.check_unique(cartridge_aliases.iter().chain(group_aliases.iter()).map(|(a, b)| (a.clone(), *b)));

        if let Some(deps) = &self.components.dependencies {
            let known: HashMap<String, ()> = cartridge_aliases
                .iter()
                .map(|(_, a)| (format!("cartridge.{a}"), ()))
                .chain(group_aliases.iter().map(|(_, a)| (format!("group.{a}"), ())))
                .collect();
            for (field, lists) in
                [("startupOrders", &deps.startup_orders), ("scalingDependents", &deps.scaling_dependents)]
            {
                for (i, list) in lists.iter().enumerate() {
                    let at = format!("components.dependencies.{field}[{i}].aliases");
                    if list.aliases.len() < 2 {
                        p.push(at.clone(), "needs at least two components");
                    }
                    for (j, alias) in list.aliases.iter().enumerate() {
                        if !(alias.starts_with("cartridge.") || alias.starts_with("group.")) {
                            p.push(
                                format!("{at}[{j}]"),
                                format!("{alias:?} must be \"cartridge.<alias>\" or \"group.<alias>\""),
                            );
                        } else if !known.contains_key(alias) {
                            p.push(format!("{at}[{j}]"), format!("{alias:?} names no component of this application"));
                        }
                    }
                }
            }
        }
    }

    fn check_references(&self, defs: &Definitions, p: &mut Problems) {
        for (at, c) in self.subscriptions() {
            // What any platform refuses was reported by `validate`; here, what this one does.
            if let Some(repo) = &c.subscribable_info.artifact_repository {
                let anywhere = crate::check_repo_url(&repo.repo_url, RepoUrlPolicy { allow_local: true });
                if let (Ok(()), Err(why)) = (anywhere, crate::check_repo_url(&repo.repo_url, defs.repo_policy)) {
                    p.push(format!("{at}.subscribableInfo.artifactRepository.repoUrl"), why);
                }
            }
            if !defs.cartridges.contains_key(&c.cartridge_type) {
                p.push(format!("{at}.type"), format!("cartridge {:?} is not defined", c.cartridge_type));
            }
            let info = &c.subscribable_info;
            if !info.autoscaling_policy.is_empty() && !defs.autoscaling_policies.contains_key(&info.autoscaling_policy)
            {
                p.push(
                    format!("{at}.subscribableInfo.autoscalingPolicy"),
                    format!("autoscaling policy {:?} is not defined", info.autoscaling_policy),
                );
            }
            if !info.deployment_policy.is_empty() && !defs.deployment_policies.contains_key(&info.deployment_policy) {
                p.push(
                    format!("{at}.subscribableInfo.deploymentPolicy"),
                    format!("deployment policy {:?} is not defined", info.deployment_policy),
                );
            }
        }
    }

    fn references(&self) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        for (_, c) in self.subscriptions() {
            out.push((Kind::Cartridge, c.cartridge_type.clone()));
            out.push((Kind::AutoscalingPolicy, c.subscribable_info.autoscaling_policy.clone()));
            out.push((Kind::DeploymentPolicy, c.subscribable_info.deployment_policy.clone()));
        }
        out
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}
