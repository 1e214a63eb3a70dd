//! What `stratos apply` and `stratos diff` decide, pure: which kind a definition file
//! holds (4.1's files do not say: their fields do), the order that puts every definition
//! after those it names, a definition's canonical form (as the API would store it, so
//! that `"port": "8080"` equals `8080`), and the fields two forms differ in.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use stratos_model::{
    Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, CartridgeGroup, DeploymentPolicy, Format, Kind,
    NetworkPartition, Problems,
};

/// Kinds in the order that puts each after the kinds it names (prune goes backwards).
pub const ORDER: [Kind; 7] = [
    Kind::NetworkPartition,
    Kind::AutoscalingPolicy,
    Kind::Cartridge,
    Kind::CartridgeGroup,
    Kind::DeploymentPolicy,
    Kind::ApplicationPolicy,
    Kind::Application,
];

/// The kind of a definition, by the fields only that kind has; `Err` says why none.
pub fn kind_of(v: &Value) -> Result<Kind, String> {
    let Some(o) = v.as_object() else { return Err("not an object: a definition is a JSON or YAML object".into()) };
    let has = |f: &str| o.contains_key(f);
    if has("applicationId") {
        return Ok(Kind::Application);
    }
    if has("loadThresholds") {
        return Ok(Kind::AutoscalingPolicy);
    }
    if has("iaasProvider") || has("portMapping") || (has("type") && has("category")) {
        return Ok(Kind::Cartridge);
    }
    if let Some(nps) = o.get("networkPartitions") {
        let names_only = nps.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        return Ok(if has("algorithm") || names_only { Kind::ApplicationPolicy } else { Kind::DeploymentPolicy });
    }
    if has("networkPartitionGroups") {
        return Ok(Kind::ApplicationPolicy);
    }
    if has("provider") || (has("id") && has("partitions")) {
        return Ok(Kind::NetworkPartition);
    }
    if has("name") && (has("cartridges") || has("groups")) {
        return Ok(Kind::CartridgeGroup);
    }
    Err("cannot tell which kind of definition it is (none of applicationId, loadThresholds, iaasProvider, \
         networkPartitions, provider)"
        .into())
}

/// The definition's id, from its kind's id field.
pub fn id_of(kind: Kind, v: &Value) -> Result<String, String> {
    match v.get(kind.id_field()).and_then(Value::as_str) {
        Some(id) if !id.trim().is_empty() => Ok(id.to_string()),
        _ => Err(format!("{}: a {} needs it", kind.id_field(), kind.words())),
    }
}

/// The definition as the API stores it, or the problems (with their field paths) that
/// keep it from being one.
pub fn canonical(kind: Kind, v: &Value) -> Result<Value, Problems> {
    canonical_text(kind, &v.to_string(), Format::Json)
}

/// [`canonical`] of a file's text, so that a problem's line and column are the file's.
pub fn canonical_text(kind: Kind, text: &str, format: Format) -> Result<Value, Problems> {
    fn canon<D: Serialize + DeserializeOwned>(text: &str, format: Format) -> Result<Value, Problems> {
        let typed: D = stratos_model::parse(text, format)?;
        Ok(serde_json::to_value(typed).expect("a definition serialises"))
    }
    match kind {
        Kind::Cartridge => canon::<Cartridge>(text, format),
        Kind::NetworkPartition => canon::<NetworkPartition>(text, format),
        Kind::DeploymentPolicy => canon::<DeploymentPolicy>(text, format),
        Kind::AutoscalingPolicy => canon::<AutoscalingPolicy>(text, format),
        Kind::ApplicationPolicy => canon::<ApplicationPolicy>(text, format),
        Kind::CartridgeGroup => canon::<CartridgeGroup>(text, format),
        Kind::Application => canon::<Application>(text, format),
    }
}

/// Each field where `now` (the platform's) and `want` (the file's) differ: (path, now, want),
/// `null` for a field one of them lacks.
pub fn differences(now: &Value, want: &Value) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    walk("", now, want, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(&at, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_4_1_sample_kind_is_told_by_its_fields() {
        let cases = [
            (json!({"id": "np1", "provider": "mock", "partitions": [{"id": "p1"}]}), Kind::NetworkPartition),
            (json!({"id": "as", "loadThresholds": {"loadAverage": {"threshold": 70}}}), Kind::AutoscalingPolicy),
            (json!({"type": "php", "category": "framework", "iaasProvider": []}), Kind::Cartridge),
            (
                json!({"id": "dp", "networkPartitions": [{"id": "np1", "partitionAlgo": "round-robin", "partitions": []}]}),
                Kind::DeploymentPolicy,
            ),
            (
                json!({"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np1"]}),
                Kind::ApplicationPolicy,
            ),
            (json!({"id": "ap", "networkPartitions": ["np1"]}), Kind::ApplicationPolicy),
            (json!({"applicationId": "app", "components": {}}), Kind::Application),
        ];
        for (v, kind) in cases {
            assert_eq!(kind_of(&v), Ok(kind), "{v}");
        }
        assert_eq!(kind_of(&json!({"name": "g", "cartridges": ["php"]})), Ok(Kind::CartridgeGroup));
        assert_eq!(
            kind_of(&json!({"name": "g", "groups": [{"name": "h", "cartridges": ["php"]}]})),
            Ok(Kind::CartridgeGroup)
        );
        assert!(kind_of(&json!({"domainName": "x"})).unwrap_err().contains("cannot tell"));
        assert!(kind_of(&json!([1])).is_err());
    }

    #[test]
    fn the_order_puts_every_kind_after_those_it_names() {
        let at = |k: Kind| ORDER.iter().position(|o| *o == k).unwrap();
        assert_eq!(ORDER.len(), Kind::ALL.len());
        assert!(at(Kind::NetworkPartition) < at(Kind::DeploymentPolicy));
        assert!(at(Kind::NetworkPartition) < at(Kind::ApplicationPolicy));
        for named in [Kind::Cartridge, Kind::AutoscalingPolicy, Kind::DeploymentPolicy] {
            assert!(at(named) < at(Kind::Application), "{named}");
        }
    }

    #[test]
    fn canonical_forms_make_4_1_quoted_scalars_equal_to_bare_ones() {
        let quoted = json!({"type": "php", "category": "framework", "multiTenant": "false",
            "portMapping": [{"name": "http", "protocol": "http", "port": "8080", "proxyPort": "8280"}],
            "iaasProvider": [{"type": "mock"}]});
        let bare = json!({"type": "php", "category": "framework", "multiTenant": false,
            "portMapping": [{"name": "http", "protocol": "http", "port": 8080, "proxyPort": 8280}],
            "iaasProvider": [{"type": "mock"}]});
        assert_eq!(canonical(Kind::Cartridge, &quoted).unwrap(), canonical(Kind::Cartridge, &bare).unwrap());
        let problems = canonical(Kind::Cartridge, &json!({"type": "php", "portMapping": "x"})).unwrap_err();
        assert_eq!(problems.0[0].path, "portMapping", "{problems:?}");
    }

    #[test]
    fn differences_name_each_field() {
        let now = json!({"id": "a", "loadThresholds": {"loadAverage": {"threshold": 70}}, "list": [1, 2]});
        let want =
            json!({"id": "a", "loadThresholds": {"loadAverage": {"threshold": 80}}, "list": [1, 3], "extra": true});
        assert_eq!(
            differences(&now, &want),
            [
                ("extra".to_string(), Value::Null, json!(true)),
                ("list[1]".to_string(), json!(2), json!(3)),
                ("loadThresholds.loadAverage.threshold".to_string(), json!(70), json!(80)),
            ]
        );
        assert!(differences(&want, &want).is_empty());
    }
}
