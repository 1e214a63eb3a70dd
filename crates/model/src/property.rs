use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A free-form name/value pair, as Apache Stratos 4.1 writes them (`property: [{name, value}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Property {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Looks a property up by name.
pub fn property<'a>(props: &'a [Property], name: &str) -> Option<&'a str> {
    props.iter().find(|p| p.name == name).map(|p| p.value.as_str())
}

pub(crate) fn check_properties(props: &[Property], path: &str, problems: &mut crate::Problems) {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in props.iter().enumerate() {
        if p.name.trim().is_empty() {
            problems.push(format!("{path}[{i}].name"), "must not be empty");
        } else if !seen.insert(p.name.as_str()) {
            problems.push(format!("{path}[{i}].name"), format!("duplicate property {:?}", p.name));
        }
    }
}
