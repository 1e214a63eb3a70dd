//! Application: one or more clusters (cartridge subscriptions), optionally in
//! groups, with the dependencies between them.

use std::collections::HashSet;

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
    /// Where members are placed. Left out inside a group that gives its own
    /// `deploymentPolicy` (which then applies here, as in Apache Stratos 4.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// The cartridge group (`/api/cartridgeGroups`) this component subscribes to; in a
    /// nested component, a group nested in its parent's definition may be named too.
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
    /// The deployment policy of every cartridge in the group, nested groups included;
    /// none of them may then name its own (Apache Stratos 4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_policy: Option<String>,
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

/// Component references: `cartridge.<alias>` or `group.<alias>`. Apache Stratos 4.1's
/// samples also join several in one string (`"group.my-appgroup, cartridge.my-esb"`),
/// which 4.1 splits on commas and trims: so does this, and keeps them split.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AliasList {
    #[serde(deserialize_with = "crate::lenient::comma_joined")]
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

impl Dependencies {
    /// Checks the form of every alias (`cartridge.<alias>` / `group.<alias>`, at least two
    /// per list) and, given the application's `known` references, that each names one.
    pub fn validate(&self, at: &str, known: Option<&HashSet<String>>, p: &mut Problems) {
        for (field, lists) in [("startupOrders", &self.startup_orders), ("scalingDependents", &self.scaling_dependents)]
        {
            for (i, list) in lists.iter().enumerate() {
                let at = format!("{at}.{field}[{i}].aliases");
                if list.aliases.len() < 2 {
                    p.push(at.clone(), "needs at least two components");
                }
                for (j, alias) in list.aliases.iter().enumerate() {
                    if !(alias.starts_with("cartridge.") || alias.starts_with("group.")) {
                        p.push(
                            format!("{at}[{j}]"),
                            format!("{alias:?} must be \"cartridge.<alias>\" or \"group.<alias>\""),
                        );
                    } else if known.is_some_and(|k| !k.contains(alias)) {
                        p.push(format!("{at}[{j}]"), format!("{alias:?} names no component of this application"));
                    }
                }
            }
        }
    }
}

impl Application {
    /// Every cartridge subscription, groups included, with its field path.
    pub fn subscriptions(&self) -> Vec<(String, &CartridgeSubscription)> {
        self.subscriptions_with_policy().into_iter().map(|(at, c, _)| (at, c)).collect()
    }

    /// Every cartridge subscription with its field path and the deployment policy its
    /// members are placed by: its own, or the one of the outermost group around it that
    /// gives one (Apache Stratos 4.1's group deployment policy); `""` when neither does.
    pub fn subscriptions_with_policy(&self) -> Vec<(String, &CartridgeSubscription, &str)> {
        let mut out = Vec::new();
        collect(&self.components.cartridges, &self.components.groups, "components", None, &mut out);
        out
    }

    /// The field of the group that gives the deployment policy of the subscription at
    /// `at` (`components.groups[0].deploymentPolicy`), if a group does.
    pub fn deployment_policy_field(&self, at: &str) -> Option<String> {
        fn walk(groups: &[GroupComponent], here: &str, at: &str) -> Option<String> {
            groups.iter().enumerate().find_map(|(i, g)| {
                let path = format!("{here}.groups[{i}]");
                if !at.starts_with(&format!("{path}.")) {
                    return None;
                }
                match &g.deployment_policy {
                    Some(_) => Some(format!("{path}.deploymentPolicy")),
                    None => walk(&g.groups, &path, at),
                }
            })
        }
        walk(&self.components.groups, "components", at)
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
    group_policy: Option<&'a str>,
    out: &mut Vec<(String, &'a CartridgeSubscription, &'a str)>,
) {
    for (i, c) in cartridges.iter().enumerate() {
        let policy = group_policy.unwrap_or(c.subscribable_info.deployment_policy.as_str());
        out.push((format!("{at}.cartridges[{i}]"), c, policy));
    }
    for (i, g) in groups.iter().enumerate() {
        let policy = group_policy.or(g.deployment_policy.as_deref());
        collect(&g.cartridges, &g.groups, &format!("{at}.groups[{i}]"), policy, out);
    }
}

/// Where deployment policies are given: on a group, every cartridge and group inside it
/// takes it and may not name its own; outside any such group, every cartridge names one.
/// `inherited` is the path of the group giving one around `groups`, if any.
fn check_group_policies(
    cartridges: &[CartridgeSubscription],
    groups: &[GroupComponent],
    at: &str,
    inherited: Option<&str>,
    p: &mut Problems,
) {
    for (i, c) in cartridges.iter().enumerate() {
        let field = format!("{at}.cartridges[{i}].subscribableInfo.deploymentPolicy");
        match (inherited, c.subscribable_info.deployment_policy.is_empty()) {
            (Some(group), false) => p.push(
                field,
                format!("the group at {group} gives the deployment policy of every cartridge in it; remove this one (as Apache Stratos 4.1 requires)"),
            ),
            (None, true) => p.push(field, "missing: name a deployment policy here or on a group around this cartridge"),
            _ => {}
        }
    }
    for (i, g) in groups.iter().enumerate() {
        let here = format!("{at}.groups[{i}]");
        let own = g.deployment_policy.as_deref();
        match (inherited, own) {
            (Some(group), Some(_)) => p.push(
                format!("{here}.deploymentPolicy"),
                format!("the group at {group} already gives the deployment policy of every group in it; remove this one (as Apache Stratos 4.1 requires)"),
            ),
            (_, Some("")) => p.push(format!("{here}.deploymentPolicy"), "must not be empty"),
            _ => {}
        }
        let inner = inherited.map(str::to_owned).or_else(|| own.map(|_| here.clone()));
        check_group_policies(&g.cartridges, &g.groups, &here, inner.as_deref(), p);
    }
}

/// The application's group components against the cartridge groups they name: each names
/// a group the tenant defined (or, nested, one its parent's definition nests), subscribes
/// to every cartridge that group has, and to no other.
fn check_group_references(
    groups: &[GroupComponent],
    at: &str,
    parent: Option<&crate::CartridgeGroup>,
    defs: &Definitions,
    p: &mut Problems,
) {
    for (i, g) in groups.iter().enumerate() {
        let here = format!("{at}.groups[{i}]");
        let definition = parent.and_then(|d| d.nested(&g.name)).or_else(|| defs.cartridge_groups.get(&g.name));
        let mut bad_name = Problems::default();
        bad_name.check_id("name", &g.name);
        if !bad_name.is_empty() {
            continue; // `validate` said why; it can name no group.
        }
        let Some(definition) = definition else {
            p.push(
                format!("{here}.name"),
                format!("cartridge group {:?} is not defined; add it with POST /api/cartridgeGroups", g.name),
            );
            check_group_references(&g.groups, &here, None, defs, p);
            continue;
        };
        let wanted = definition.all_cartridges();
        let mut subscribed = Vec::new();
        collect(&g.cartridges, &g.groups, &here, None, &mut subscribed);
        for t in &wanted {
            if !subscribed.iter().any(|(_, c, _)| c.cartridge_type == *t) {
                p.push(
                    format!("{here}.cartridges"),
                    format!("cartridge group {:?} has cartridge {t:?}, which this group subscribes to nowhere", g.name),
                );
            }
        }
        for (j, c) in g.cartridges.iter().enumerate() {
            if !wanted.contains(&c.cartridge_type.as_str()) {
                p.push(
                    format!("{here}.cartridges[{j}].type"),
                    format!(
                        "cartridge {:?} is not in cartridge group {:?} (its cartridges: {})",
                        c.cartridge_type,
                        g.name,
                        wanted.join(", ")
                    ),
                );
            }
        }
        check_group_references(&g.groups, &here, Some(definition), defs, p);
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
        check_group_policies(&self.components.cartridges, &self.components.groups, "components", None, p);

        let cartridge_aliases: Vec<(String, &str)> = subs
            .iter()
            .map(|(at, c)| (format!("{at}.subscribableInfo.alias"), c.subscribable_info.alias.as_str()))
            .collect();
        let group_aliases = self.group_aliases();
        p.check_unique(cartridge_aliases.iter().chain(group_aliases.iter()).map(|(a, b)| (a.clone(), *b)));

        if let Some(deps) = &self.components.dependencies {
            let known: HashSet<String> = cartridge_aliases
                .iter()
                .map(|(_, a)| format!("cartridge.{a}"))
                .chain(group_aliases.iter().map(|(_, a)| format!("group.{a}")))
                .collect();
            deps.validate("components.dependencies", Some(&known), p);
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
        fn group_policies(groups: &[GroupComponent], at: &str, defs: &Definitions, p: &mut Problems) {
            for (i, g) in groups.iter().enumerate() {
                let here = format!("{at}.groups[{i}]");
                if let Some(policy) = g.deployment_policy.as_deref().filter(|d| !d.is_empty()) {
                    if !defs.deployment_policies.contains_key(policy) {
                        p.push(
                            format!("{here}.deploymentPolicy"),
                            format!("deployment policy {policy:?} is not defined"),
                        );
                    }
                }
                group_policies(&g.groups, &here, defs, p);
            }
        }
        group_policies(&self.components.groups, "components", defs, p);
        check_group_references(&self.components.groups, "components", None, defs, p);
    }

    fn references(&self) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        for (_, c, policy) in self.subscriptions_with_policy() {
            out.push((Kind::Cartridge, c.cartridge_type.clone()));
            out.push((Kind::AutoscalingPolicy, c.subscribable_info.autoscaling_policy.clone()));
            out.push((Kind::DeploymentPolicy, policy.to_owned()));
        }
        fn group_names(groups: &[GroupComponent], out: &mut Vec<(Kind, String)>) {
            for g in groups {
                out.push((Kind::CartridgeGroup, g.name.clone()));
                group_names(&g.groups, out);
            }
        }
        group_names(&self.components.groups, &mut out);
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
