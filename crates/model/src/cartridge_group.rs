//! Cartridge group: a named set of cartridges and nested groups that applications
//! subscribe to together (Apache Stratos 4.1's `CartridgeGroupBean`, `/api/cartridgeGroups`).
//!
//! A group definition names cartridge types; an application's group component
//! (`components.groups[]`, 4.1's `CartridgeGroupReferenceBean`) names the group and
//! subscribes to its cartridges with aliases and policies. The dependencies a group
//! carries name those aliases (`cartridge.my-php`), so only their form is checked here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Definition, Definitions, Dependencies, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartridgeGroup {
    /// The group's name; its id, named by applications' `components.groups[].name`.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub name: String,
    /// Cartridge types in the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cartridges: Vec<String>,
    /// Nested groups, defined inline (an application may name them by their `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<CartridgeGroup>,
    /// Startup orders, scaling dependents and termination behaviour among the group's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    /// Whether the group scales as a whole (by group instances).
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub group_scaling_enabled: bool,
    /// Whether each group instance is monitored on its own.
    #[serde(default, deserialize_with = "crate::lenient::bool")]
    pub group_instance_monitoring_enabled: bool,
}

impl CartridgeGroup {
    /// Every cartridge type in the group, nested groups included.
    pub fn all_cartridges(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.cartridges.iter().map(String::as_str).collect();
        out.extend(self.groups.iter().flat_map(CartridgeGroup::all_cartridges));
        out
    }

    /// The nested group named `name`, at any depth.
    pub fn nested(&self, name: &str) -> Option<&CartridgeGroup> {
        self.groups.iter().find_map(|g| if g.name == name { Some(g) } else { g.nested(name) })
    }

    fn validate_at(&self, at: &str, p: &mut Problems) {
        let field = |f: &str| if at.is_empty() { f.to_string() } else { format!("{at}.{f}") };
        p.check_id(&field("name"), &self.name);
        if self.cartridges.is_empty() && self.groups.is_empty() {
            p.push(field("cartridges"), "a group needs at least one cartridge or nested group");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cartridges.iter().enumerate() {
            let path = field(&format!("cartridges[{i}]"));
            p.check_id(&path, c);
            if !seen.insert(c.as_str()) {
                p.push(path, format!("cartridge {c:?} is listed twice"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let here = field(&format!("groups[{i}]"));
            if !names.insert(g.name.as_str()) {
                p.push(format!("{here}.name"), format!("group {:?} is nested twice here", g.name));
            }
            g.validate_at(&here, p);
        }
        if let Some(deps) = &self.dependencies {
            // The aliases are the application's: only their form can be checked here.
            deps.validate(&field("dependencies"), None, p);
        }
    }

    fn check_references_at(&self, at: &str, defs: &Definitions, p: &mut Problems) {
        let field = |f: &str| if at.is_empty() { f.to_string() } else { format!("{at}.{f}") };
        for (i, c) in self.cartridges.iter().enumerate() {
            if !defs.cartridges.contains_key(c) {
                p.push(field(&format!("cartridges[{i}]")), format!("cartridge {c:?} is not defined"));
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            g.check_references_at(&field(&format!("groups[{i}]")), defs, p);
        }
    }
}

impl Definition for CartridgeGroup {
    const KIND: Kind = Kind::CartridgeGroup;

    fn id(&self) -> &str {
        &self.name
    }

    fn validate(&self, p: &mut Problems) {
        self.validate_at("", p);
    }

    fn check_references(&self, defs: &Definitions, p: &mut Problems) {
        self.check_references_at("", defs, p);
    }

    fn references(&self) -> Vec<(Kind, String)> {
        let mut types: Vec<&str> = self.all_cartridges();
        types.sort_unstable();
        types.dedup();
        types.into_iter().map(|t| (Kind::Cartridge, t.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Format};

    fn group(text: &str) -> CartridgeGroup {
        parse(text, Format::Json).unwrap_or_else(|p| panic!("{p}"))
    }

    fn problems(g: &CartridgeGroup, defs: &Definitions) -> Vec<(String, String)> {
        g.check(defs).err().map(|p| p.0.into_iter().map(|p| (p.path, p.message)).collect()).unwrap_or_default()
    }

    #[test]
    fn nested_groups_are_checked_with_their_paths() {
        let g = group(
            r#"{"name": "outer", "cartridges": ["php"], "groups": [
                {"name": "mid", "cartridges": ["php", "php"], "groups": [{"name": "bad name", "cartridges": []}]},
                {"name": "mid", "cartridges": ["mysql"]}]}"#,
        );
        let mut defs = Definitions::default();
        let p = problems(&g, &defs);
        let paths: Vec<&str> = p.iter().map(|(path, _)| path.as_str()).collect();
        assert!(paths.contains(&"groups[0].cartridges[1]"), "{p:?}");
        assert!(paths.contains(&"groups[0].groups[0].name"), "{p:?}");
        assert!(paths.contains(&"groups[0].groups[0].cartridges"), "{p:?}");
        assert!(paths.contains(&"groups[1].name"), "{p:?}");
        // Every cartridge must be defined, at its path.
        assert!(paths.contains(&"cartridges[0]") && paths.contains(&"groups[1].cartridges[0]"), "{p:?}");
        assert_eq!(g.all_cartridges(), ["php", "php", "php", "mysql"]);
        assert_eq!(g.references(), [(Kind::Cartridge, "mysql".into()), (Kind::Cartridge, "php".into())]);
        assert_eq!(g.nested("mid").map(|m| m.cartridges.len()), Some(2));
        defs.cartridges.clear();
        assert!(g.nested("nope").is_none());
    }

    #[test]
    fn dependencies_are_checked_for_their_form_only() {
        let g = group(
            r#"{"name": "app-group", "cartridges": ["tomcat"], "groupScalingEnabled": "true",
                "dependencies": {"startupOrders": [{"aliases": ["cartridge.my-php, cartridge.my-tomcat"]}],
                                 "scalingDependents": [{"aliases": ["my-php", "cartridge.x"]}]}}"#,
        );
        assert!(g.group_scaling_enabled);
        assert_eq!(
            g.dependencies.as_ref().unwrap().startup_orders[0].aliases,
            ["cartridge.my-php", "cartridge.my-tomcat"]
        );
        let mut p = Problems::default();
        g.validate(&mut p);
        assert_eq!(p.0.len(), 1, "{p}");
        assert_eq!(p.0[0].path, "dependencies.scalingDependents[0].aliases[0]");
    }
}
