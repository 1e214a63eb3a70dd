//! Table, JSON and YAML output of definitions.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;
use stratos_model::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// Turns one definition into a table row.
type RowFn = fn(&Value) -> Vec<String>;

pub fn print_one(value: &Value, output: Output) {
    match output {
        Output::Yaml => print!("{}", serde_norway::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

pub fn print_list(kind: Kind, list: &Value, output: Output) {
    if output != Output::Table {
        return print_one(list, output);
    }
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no {} defined", kind.words());
        return;
    }
    let (header, row): (&[&str], RowFn) = match kind {
        Kind::Cartridge => {
            (&["TYPE", "CATEGORY", "PROVIDER", "VERSION", "MULTI-TENANT", "PORTS", "IAAS"], cartridge_row)
        }
        Kind::NetworkPartition => (&["ID", "PROVIDER", "PARTITIONS"], network_partition_row),
        Kind::DeploymentPolicy => (&["ID", "NETWORK PARTITIONS"], deployment_policy_row),
        Kind::AutoscalingPolicy => (&["ID", "REQUESTS IN FLIGHT", "MEMORY %", "LOAD AVERAGE"], autoscaling_policy_row),
        Kind::ApplicationPolicy => (&["ID", "ALGORITHM", "NETWORK PARTITIONS"], application_policy_row),
        Kind::CartridgeGroup => (&["NAME", "CARTRIDGES", "NESTED GROUPS", "GROUP SCALING"], cartridge_group_row),
        Kind::Application => (&["ID", "ALIAS", "CLUSTERS (alias: type min..max)"], application_row),
    };
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for item in &items {
        table.add_row(row(item));
    }
    println!("{table}");
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn cartridge_row(c: &Value) -> Vec<String> {
    let ports: Vec<String> = each(&c["portMapping"])
        .map(|p| format!("{}:{}->{}", s(&p["protocol"]), s(&p["port"]), s(&p["proxyPort"])))
        .collect();
    let iaas: Vec<String> = each(&c["iaasProvider"]).map(|i| s(&i["type"])).collect();
    vec![
        s(&c["type"]),
        s(&c["category"]),
        s(&c["provider"]),
        s(&c["version"]),
        s(&c["multiTenant"]),
        ports.join(" "),
        iaas.join(","),
    ]
}

fn network_partition_row(n: &Value) -> Vec<String> {
    let parts: Vec<String> = each(&n["partitions"]).map(|p| s(&p["id"])).collect();
    vec![s(&n["id"]), s(&n["provider"]), parts.join(", ")]
}

fn deployment_policy_row(d: &Value) -> Vec<String> {
    let nps: Vec<String> = each(&d["networkPartitions"])
        .map(|np| {
            let parts: Vec<String> =
                each(&np["partitions"]).map(|p| format!("{}≤{}", s(&p["id"]), s(&p["partitionMax"]))).collect();
            format!("{} ({}: {})", s(&np["id"]), s(&np["partitionAlgo"]), parts.join(", "))
        })
        .collect();
    vec![s(&d["id"]), nps.join("; ")]
}

fn autoscaling_policy_row(a: &Value) -> Vec<String> {
    let t = &a["loadThresholds"];
    vec![
        s(&a["id"]),
        s(&t["requestsInFlight"]["threshold"]),
        s(&t["memoryConsumption"]["threshold"]),
        s(&t["loadAverage"]["threshold"]),
    ]
}

fn application_policy_row(a: &Value) -> Vec<String> {
    let nps: Vec<String> = each(&a["networkPartitions"]).map(s).collect();
    vec![s(&a["id"]), s(&a["algorithm"]), nps.join(" → ")]
}

fn cartridge_group_row(g: &Value) -> Vec<String> {
    fn nested(g: &Value, out: &mut Vec<String>) {
        for n in each(&g["groups"]) {
            out.push(s(&n["name"]));
            nested(n, out);
        }
    }
    let cartridges: Vec<String> = each(&g["cartridges"]).map(s).collect();
    let mut groups = Vec::new();
    nested(g, &mut groups);
    vec![s(&g["name"]), cartridges.join(", "), groups.join(", "), s(&g["groupScalingEnabled"])]
}

fn application_row(a: &Value) -> Vec<String> {
    fn walk(components: &Value, out: &mut Vec<String>) {
        for c in each(&components["cartridges"]) {
            out.push(format!(
                "{}: {} {}..{}",
                s(&c["subscribableInfo"]["alias"]),
                s(&c["type"]),
                s(&c["cartridgeMin"]),
                s(&c["cartridgeMax"])
            ));
        }
        for g in each(&components["groups"]) {
            walk(g, out);
        }
    }
    let mut clusters = Vec::new();
    walk(&a["components"], &mut clusters);
    vec![s(&a["applicationId"]), s(&a["alias"]), clusters.join(", ")]
}
