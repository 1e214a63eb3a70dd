//! Table, JSON and YAML output of definitions.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Row, Table};
use serde_json::Value;
use stratos_model::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// A table that fits the width it is printed in: on a terminal, the terminal's; else
/// `$COLUMNS` when it is set (a script that wants a width says so), else none, so that
/// piped output keeps whole values. A cell too long for its column is cut to one line
/// ending in `…` (a cell of several lines keeps as many); `-o json` gives every value whole.
pub fn table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_truncation_indicator("…")
        .set_header(header);
    if let Some(width) = width_when_not_a_terminal(table.is_tty(), std::env::var("COLUMNS").ok().as_deref()) {
        table.set_width(width);
    }
    table
}

/// The width to lay a table out in when comfy-table cannot ask the terminal: `$COLUMNS`
/// if it is a sensible number, else `None` (no truncation).
fn width_when_not_a_terminal(is_tty: bool, columns: Option<&str>) -> Option<u16> {
    if is_tty {
        return None; // comfy-table reads the terminal's width itself.
    }
    columns?.trim().parse::<u16>().ok().filter(|w| *w >= 20)
}

/// Adds a row whose cells are cut (with `…`) rather than wrapped: each stays on as many
/// lines as its text has (one, mostly), so that rows stay one line tall.
pub fn add_row(table: &mut Table, cells: Vec<String>) {
    let lines = cells.iter().map(|c| c.lines().count().max(1)).max().unwrap_or(1);
    let mut row = Row::from(cells);
    row.max_height(lines);
    table.add_row(row);
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
    let mut table = crate::output::table(header.to_vec());
    for item in &items {
        crate::output::add_row(&mut table, row(item));
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

pub fn application_row(a: &Value) -> Vec<String> {
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

/// A long operation's progress line on stderr, printed when it changes (`last`): redrawn
/// in place on a terminal, one line each otherwise (logs, pipes).
pub fn progress(line: String, last: &mut String, tty: bool) {
    if line == *last {
        return;
    }
    if tty {
        eprint!("\r\x1b[K{line}");
    } else {
        eprintln!("{line}");
    }
    let _ = std::io::Write::flush(&mut std::io::stderr());
    *last = line;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piped_tables_take_columns_or_stay_whole() {
        assert_eq!(width_when_not_a_terminal(false, None), None);
        assert_eq!(width_when_not_a_terminal(false, Some("120")), Some(120));
        assert_eq!(width_when_not_a_terminal(false, Some(" 80 ")), Some(80));
        assert_eq!(width_when_not_a_terminal(false, Some("wide")), None);
        assert_eq!(width_when_not_a_terminal(false, Some("5")), None);
        assert_eq!(width_when_not_a_terminal(true, Some("120")), None);
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis_to_fit_the_width() {
        let mut t = table(vec!["ID", "CLUSTERS"]);
        t.set_width(40);
        add_row(&mut t, vec!["app".into(), "web: php 1..5, ".repeat(40)]);
        add_row(&mut t, vec!["two".into(), "first line\nsecond line".into()]);
        let text = t.to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 40, "{line:?} is wider than 40:\n{text}");
        }
        assert!(text.contains('…'), "{text}");
        // One line for the long row, two for the row of two lines, plus the borders and header.
        assert_eq!(text.lines().count(), 3 + 1 + 2 + 1, "{text}");
    }
}
