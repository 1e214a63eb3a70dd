//! `stratos apply` and `stratos diff` on the real `stratos up`, with a tree of
//! definitions laid out as Apache Stratos 4.1's `samples/` (its single-cartridge-app on
//! the mock IaaS, files as 4.1 ships them: quoted numbers, fields this platform keeps
//! as they are), read in an order the directories' names do not give.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{Platform, Sandbox};

/// Writes `value` as JSON at `root/rel`, making its directories.
fn write(root: &Path, rel: &str, value: &Value) -> PathBuf {
    let file = root.join(rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    file
}

/// 4.1's samples tree for single-cartridge-app, plus a YAML policy and the sample's
/// domain mappings (not a definition).
fn samples(root: &Path) {
    write(
        root,
        "network-partitions/mock/network-partition-1.json",
        &json!({"id": "network-partition-1", "provider": "mock",
                "partitions": [{"id": "partition-1", "property": [{"name": "region", "value": "default"}]}]}),
    );
    write(
        root,
        "autoscaling-policies/autoscaling-policy-1.json",
        &json!({"id": "autoscaling-policy-1", "loadThresholds": {
            "requestsInFlight": {"threshold": 20}, "memoryConsumption": {"threshold": 70}, "loadAverage": {"threshold": 70}}}),
    );
    let yaml = root.join("autoscaling-policies/autoscaling-policy-2.yaml");
    std::fs::write(&yaml, "id: autoscaling-policy-2\nloadThresholds:\n  loadAverage:\n    threshold: 50\n").unwrap();
    write(
        root,
        "deployment-policies/deployment-policy-1.json",
        &json!({"id": "deployment-policy-1", "networkPartitions": [{"id": "network-partition-1",
                "partitionAlgo": "one-after-another", "partitions": [{"id": "partition-1", "partitionMax": 20}]}]}),
    );
    write(
        root,
        "cartridges/mock/php.json",
        &json!({"type": "php", "provider": "apache", "category": "framework", "host": "php.stratos.org",
                "displayName": "php", "description": "php Cartridge", "version": "7", "multiTenant": "false",
                "portMapping": [{"name": "http-80", "protocol": "http", "port": "8080", "proxyPort": "8280"}],
                "deployment": {},
                "iaasProvider": [{"type": "mock", "imageId": "RegionOne/b4ca55e3",
                                  "property": [{"name": "keyPair", "value": "reka"}]}]}),
    );
    write(
        root,
        "application-policies/application-policy-1.json",
        &json!({"id": "application-policy-1", "algorithm": "one-after-another",
                "networkPartitions": ["network-partition-1"], "properties": [{"name": "key-1", "value": "value-1"}]}),
    );
    write(
        root,
        "applications/single-cartridge-app/artifacts/application.json",
        &json!({"applicationId": "single-cartridge-app", "alias": "single-cartridge-app", "multiTenant": false,
                "components": {"cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 5,
                    "subscribableInfo": {"alias": "my-php", "autoscalingPolicy": "autoscaling-policy-1",
                                         "deploymentPolicy": "deployment-policy-1"}}]}}),
    );
    write(
        root,
        "applications/single-cartridge-app/artifacts/domain-mappings.json",
        &json!({"domainMappings": [{"cartridgeAlias": "my-php", "domainName": "abc.com", "contextPath": "/abc/app"}]}),
    );
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim_end).collect()
}

#[test]
fn apply_creates_in_reference_order_then_updates_only_what_changed_and_prunes_what_is_not_in_use() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let root = sandbox.path().join("samples");
    samples(&root);
    let tree = root.to_str().unwrap();

    // First apply: everything created, each after what it names; the domain mappings are
    // no definition, named as refused (so the command fails), the rest still applied.
    let out = platform.cli(&["apply", "-f", tree]);
    assert!(!out.success(), "{out}");
    let got = lines(&out.stdout);
    assert!(got[0].starts_with("refused") && got[0].contains("domain-mappings.json: cannot tell"), "{out}");
    assert_eq!(
        got[1..],
        [
            "created   network-partition network-partition-1",
            "created   autoscaling-policy autoscaling-policy-1",
            "created   autoscaling-policy autoscaling-policy-2",
            "created   cartridge php",
            "created   deployment-policy deployment-policy-1",
            "created   application-policy application-policy-1",
            "created   application single-cartridge-app",
        ],
        "{out}"
    );
    assert!(out.stderr.contains("1 refused"), "{out}");
    std::fs::remove_file(root.join("applications/single-cartridge-app/artifacts/domain-mappings.json")).unwrap();

    // Again: nothing changed (4.1's quoted numbers equal what the platform stored).
    let out = platform.ok(&["apply", "-f", tree]);
    assert!(lines(&out.stdout).iter().all(|l| l.starts_with("unchanged ")), "{out}");
    assert_eq!(lines(&out.stdout).len(), 7, "{out}");

    // One threshold changed: diff names the field, apply updates that policy only.
    write(
        &root,
        "autoscaling-policies/autoscaling-policy-1.json",
        &json!({"id": "autoscaling-policy-1", "loadThresholds": {
            "requestsInFlight": {"threshold": 20}, "memoryConsumption": {"threshold": 70}, "loadAverage": {"threshold": 80}}}),
    );
    let out = platform.ok(&["diff", "-f", tree]);
    assert!(out.stdout.contains("~ autoscaling-policy autoscaling-policy-1"), "{out}");
    assert!(out.stdout.contains("loadThresholds.loadAverage.threshold: 70"), "{out}");
    assert!(out.stdout.contains("→ 80"), "{out}");
    assert!(out.stdout.contains("= cartridge php"), "{out}");
    let out = platform.ok(&["apply", "-f", tree]);
    let updated: Vec<&str> = lines(&out.stdout).into_iter().filter(|l| !l.starts_with("unchanged ")).collect();
    assert_eq!(updated, ["updated   autoscaling-policy autoscaling-policy-1"], "{out}");
    let shown = platform.ok(&["autoscaling-policy", "show", "autoscaling-policy-1", "-o", "json"]);
    assert!(shown.stdout.contains("80"), "{shown}");

    // A definition the platform refuses is named with its field; the others stay as they are.
    let bad = write(
        &root,
        "deployment-policies/deployment-policy-2.json",
        &json!({"id": "deployment-policy-2", "networkPartitions": [{"id": "network-partition-9", "partitionAlgo": "round-robin",
                "partitions": [{"id": "partition-1", "partitionMax": 2}]}]}),
    );
    let out = platform.cli(&["apply", "-f", tree]);
    assert!(!out.success(), "{out}");
    let refused: Vec<&str> = lines(&out.stdout).into_iter().filter(|l| l.starts_with("refused")).collect();
    assert_eq!(refused.len(), 1, "{out}");
    assert!(
        refused[0].contains("deployment-policy deployment-policy-2") && refused[0].contains("networkPartitions[0].id"),
        "{out}"
    );
    std::fs::remove_file(bad).unwrap();

    // Prune: a definition in no file goes; one still in use is refused and stays.
    let extra = write(
        sandbox.path(),
        "extra.json",
        &json!({"id": "extra", "loadThresholds": {"loadAverage": {"threshold": 10}}}),
    );
    platform.ok(&["autoscaling-policy", "add", extra.to_str().unwrap()]);
    let out = platform.ok(&["diff", "--prune", "-f", tree]);
    assert!(lines(&out.stdout).contains(&"- autoscaling-policy extra   (in no file)"), "{out}");
    let out = platform.ok(&["apply", "--prune", "-f", tree]);
    assert!(lines(&out.stdout).contains(&"removed   autoscaling-policy extra"), "{out}");
    std::fs::remove_file(root.join("cartridges/mock/php.json")).unwrap();
    let out = platform.cli(&["apply", "--prune", "-f", tree]);
    assert!(!out.success(), "{out}");
    let refused: Vec<&str> = lines(&out.stdout).into_iter().filter(|l| l.starts_with("refused")).collect();
    assert_eq!(refused.len(), 1, "{out}");
    assert!(refused[0].contains("cartridge php (removal)") && refused[0].contains("single-cartridge-app"), "{out}");
    platform.ok(&["cartridge", "show", "php"]);
}

#[test]
fn the_readme_s_example_applies_in_one_command() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let dir = support::examples_dir();
    let out = platform.ok(&["apply", "-f", dir.to_str().unwrap()]);
    let got = lines(&out.stdout);
    assert_eq!(got.len(), std::fs::read_dir(&dir).unwrap().count(), "{out}");
    assert!(got.iter().all(|l| l.starts_with("created ")), "{out}");
    let out = platform.ok(&["diff", "-f", dir.to_str().unwrap()]);
    assert!(lines(&out.stdout).iter().all(|l| l.starts_with("= ")), "{out}");
}
