//! End-to-end: the real `stratos` binary, `stratos up` as a child process on free
//! ports with its own data directory, and the client commands against it.
//!
//! `external_mosquitto_broker` needs Mosquitto (`apt-get install mosquitto`; skip it
//! with STRATOS_SKIP_MOSQUITTO=1). `postgres_store` needs a PostgreSQL server in
//! STRATOS_TEST_POSTGRES (`eval "$(scripts/postgres-setup.sh | tail -n 1)"`; skip it
//! with STRATOS_SKIP_POSTGRES=1).

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use stratos_bus::events::{AnyEvent, ApplicationDeletedEvent};
use stratos_bus::Bus;
use support::postgres::PgSchema;
use support::{examples_dir, free_port, spawn, stratos, Platform, KINDS};

/// `list --output json` of every kind, checked to hold exactly the php-web ids.
fn snapshot(platform: &Platform) -> Vec<(&'static str, Value)> {
    KINDS
        .iter()
        .map(|(kind, id_field, ids)| {
            let list = platform.list(kind);
            let found: Vec<&str> = list
                .as_array()
                .unwrap_or_else(|| panic!("`{kind} list -o json` is not an array: {list}"))
                .iter()
                .map(|d| d[id_field].as_str().unwrap_or("?"))
                .collect();
            assert_eq!(found, *ids, "{kind} list");
            (*kind, list)
        })
        .collect()
}

#[test]
fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &[]);
    platform.add_php_web();
    let before = snapshot(&platform);

    // Every definition shows in full as it was listed.
    for (kind, list) in &before {
        let id_field = KINDS.iter().find(|k| k.0 == *kind).unwrap().1;
        for definition in list.as_array().unwrap() {
            let id = definition[id_field].as_str().unwrap();
            let out = platform.ok(&[kind, "show", id, "--output", "json"]);
            let shown: Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(&shown, definition, "`{kind} show {id}` differs from the list");
        }
    }

    // SIGTERM (asserted: exit 0 within 10 s), then up again on the same ports and data dir.
    let platform = platform.restart();
    let after = snapshot(&platform);
    for ((kind, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{kind} definitions changed across a restart");
    }

    // Restored definitions still guard each other: the application still uses php.
    let out = platform.cli(&["cartridge", "remove", "php"]);
    assert!(!out.success() && out.stderr.contains("php-web"), "removing a used cartridge after a restart\n{out}");

    // Logs written to a pipe or a file carry no terminal colour codes.
    let proc = platform.stop();
    assert!(proc.stderr().contains("INFO"), "no logs\n{}", proc.describe());
    assert!(!proc.stderr().contains('\x1b'), "terminal escape codes in redirected logs\n{}", proc.describe());
}

#[test]
fn cli_reports_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &[]);
    platform.add_php_web();

    // An unknown network partition, a duplicate partition id and an unknown partition, all reported.
    let bad = dir.path().join("deployment-policy-bad.json");
    std::fs::write(
        &bad,
        r#"{
            "id": "bad",
            "networkPartitions": [
                { "id": "np-nope", "partitionAlgo": "round-robin", "partitions": [{ "id": "p1", "partitionMax": 3 }] },
                { "id": "np-local-1", "partitionAlgo": "round-robin", "partitions": [
                    { "id": "p1", "partitionMax": 3 },
                    { "id": "p1", "partitionMax": 2 },
                    { "id": "p9", "partitionMax": 2 }
                ] }
            ]
        }"#,
    )
    .unwrap();
    let out = platform.cli(&["deployment-policy", "add", bad.to_str().unwrap()]);
    assert!(!out.success(), "a bad deployment policy was accepted\n{out}");
    for expected in [
        "deployment-policy-bad.json",
        "networkPartitions[0].id",
        "np-nope",
        "networkPartitions[1].partitions[1].id",
        "duplicate",
        "networkPartitions[1].partitions[2].id",
        "p9",
    ] {
        assert!(out.stderr.contains(expected), "stderr lacks {expected:?}\n{out}");
    }
    let out = platform.cli(&["deployment-policy", "show", "bad"]);
    assert!(!out.success() && out.stderr.contains("does not exist"), "the rejected policy was stored\n{out}");

    // A malformed document (a required field missing) names the field's place too.
    let malformed = dir.path().join("deployment-policy-malformed.json");
    std::fs::write(&malformed, r#"{"id": "m", "networkPartitions": [{"id": "np-local-1", "partitions": []}]}"#)
        .unwrap();
    let out = platform.cli(&["deployment-policy", "add", malformed.to_str().unwrap()]);
    assert!(!out.success(), "a malformed deployment policy was accepted\n{out}");
    assert!(out.stderr.contains("networkPartitions[0]") && out.stderr.contains("partitionAlgo"), "{out}");

    // The same mistakes in YAML are reported the same way.
    let bad_yaml = dir.path().join("deployment-policy-bad.yaml");
    std::fs::write(
        &bad_yaml,
        "id: bad\nnetworkPartitions:\n  - id: np-nope\n    partitionAlgo: round-robin\n    partitions: [{id: p1, partitionMax: 3}]\n",
    )
    .unwrap();
    let out = platform.cli(&["deployment-policy", "add", bad_yaml.to_str().unwrap()]);
    assert!(
        !out.success() && out.stderr.contains("networkPartitions[0].id") && out.stderr.contains("np-nope"),
        "{out}"
    );

    // A cartridge in use cannot be removed, and the error names its user.
    let out = platform.cli(&["cartridge", "remove", "php"]);
    assert!(!out.success(), "removing a cartridge in use succeeded\n{out}");
    assert!(out.stderr.contains("php-web"), "the error does not name the application\n{out}");
    platform.ok(&["cartridge", "show", "php"]);

    // Missing ids.
    for (kind, _, _) in KINDS {
        let out = platform.cli(&[kind, "show", "no-such-id"]);
        assert!(!out.success(), "`{kind} show no-such-id` succeeded\n{out}");
        assert!(out.stderr.contains("does not exist"), "`{kind} show no-such-id`\n{out}");
        assert!(out.stderr.contains("no-such-id"), "`{kind} show no-such-id`\n{out}");
    }
    let out = platform.cli(&["cartridge", "remove", "no-such-id"]);
    assert!(!out.success() && out.stderr.contains("does not exist"), "{out}");

    // A file that is not there.
    let missing = dir.path().join("nothing-here.json");
    let out = platform.cli(&["cartridge", "add", missing.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("nothing-here.json"), "{out}");

    // A YAML file is accepted, and reads back as written.
    let yaml = dir.path().join("autoscaling-policy-yaml.yaml");
    std::fs::write(
        &yaml,
        "id: from-yaml\nloadThresholds:\n  requestsInFlight: { threshold: 50 }\n  memoryConsumption: { threshold: 60 }\n  loadAverage: { threshold: 40 }\n",
    )
    .unwrap();
    let out = platform.ok(&["autoscaling-policy", "add", yaml.to_str().unwrap()]);
    assert!(out.stdout.contains("from-yaml"), "{out}");
    let out = platform.ok(&["autoscaling-policy", "show", "from-yaml", "--output", "json"]);
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(shown["loadThresholds"]["requestsInFlight"]["threshold"].as_f64(), Some(50.0), "{shown}");
    assert_eq!(shown["loadThresholds"]["memoryConsumption"]["threshold"].as_f64(), Some(60.0), "{shown}");
    assert_eq!(shown["loadThresholds"]["loadAverage"]["threshold"].as_f64(), Some(40.0), "{shown}");

    // Removing in the reverse order works, and leaves nothing.
    platform.ok(&["autoscaling-policy", "remove", "from-yaml"]);
    for (kind, _, ids) in KINDS.iter().rev() {
        for id in *ids {
            let out = platform.ok(&[kind, "remove", id]);
            assert!(out.stdout.contains("removed"), "{out}");
        }
        assert_eq!(platform.list(kind), serde_json::json!([]), "{kind} list after removing all");
    }
    drop(platform.stop());
}

#[test]
fn table_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &["--log-format", "json"]);

    let out = platform.ok(&["cartridge", "list"]);
    assert!(out.stdout.contains("no cartridge"), "an empty list says so\n{out}");

    platform.add_php_web();
    let out = platform.ok(&["cartridge", "list"]);
    for expected in ["TYPE", "php", "python-api", "8080", "8280", "9000"] {
        assert!(out.stdout.contains(expected), "the table lacks {expected:?}\n{out}");
    }
    let php_row = out.stdout.lines().find(|l| l.contains(" php ")).unwrap_or_else(|| panic!("no php row\n{out}"));
    assert!(php_row.contains("8080"), "the php row lacks its port: {php_row}");

    for (kind, _, ids) in KINDS {
        let table = platform.ok(&[kind, "list"]);
        for id in *ids {
            assert!(table.stdout.contains(id), "`{kind} list` lacks {id}\n{table}");
        }
        let json = platform.ok(&[kind, "list", "--output", "json"]);
        let list: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{kind}: {e}\n{json}"));
        assert_eq!(list.as_array().map(Vec::len), Some(ids.len()), "{kind} list -o json\n{json}");
        let yaml = platform.ok(&[kind, "list", "--output", "yaml"]);
        let from_yaml: Value = serde_norway::from_str(&yaml.stdout).unwrap_or_else(|e| panic!("{kind}: {e}\n{yaml}"));
        assert_eq!(from_yaml, list, "{kind}: YAML and JSON lists differ");
    }

    let out = platform.ok(&["cartridge", "show", "php", "--output", "yaml"]);
    assert!(out.stdout.lines().any(|l| l == "type: php"), "no `type: php` line\n{out}");
    let shown: Value = serde_norway::from_str(&out.stdout).unwrap_or_else(|e| panic!("not YAML: {e}\n{out}"));
    assert_eq!(shown["portMapping"][0]["port"], 8080, "{shown}");
    let out = platform.ok(&["cartridge", "show", "php", "-o", "json"]);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json, shown, "show -o json and -o yaml differ");

    // `add --output json` prints the stored definition.
    let file = dir.path().join("autoscaling-policy-x.json");
    std::fs::write(&file, r#"{"id": "x", "loadThresholds": {"requestsInFlight": {"threshold": 10}}}"#).unwrap();
    let out = platform.ok(&["autoscaling-policy", "add", file.to_str().unwrap(), "--output", "json"]);
    let added: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(added["id"], "x", "{out}");

    // STRATOS_API works in place of --api (the token found as `stratos up` recorded it).
    let out = Command::new(support::BIN)
        .args(["cartridge", "list"])
        .env("STRATOS_API", platform.api())
        .env("XDG_CONFIG_HOME", support::config_home())
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("python-api"));

    // --log-format json: every log line on stderr is a JSON object.
    let proc = platform.stop();
    let stderr = proc.stderr();
    assert!(!stderr.trim().is_empty(), "no logs at all");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(matches!(parsed, Ok(Value::Object(_))), "a log line is not JSON: {line}");
    }
}

#[test]
fn external_mosquitto_broker() {
    let port = free_port();
    let Some(_mosquitto) = stratos_test_kit::mosquitto::Mosquitto::start(port) else { return };
    let broker = format!("mqtt://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &["--broker", &broker]);

    let banner = platform.proc.stdout();
    let bus_line = banner.lines().find(|l| l.contains("event bus")).unwrap_or_else(|| panic!("{banner}"));
    assert!(bus_line.contains(&broker), "the banner does not name the broker: {bus_line}");
    assert!(!bus_line.contains("embedded"), "the banner says embedded: {bus_line}");
    assert_eq!(platform.health()["broker"], broker.as_str());
    // No embedded broker was started on --mqtt-listen.
    assert!(TcpListener::bind(("127.0.0.1", platform.mqtt_port)).is_ok(), "something listens on --mqtt-listen");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(Bus::connect(&broker, &format!("stratos-cli-e2e-{}", std::process::id()))).unwrap();
    let mut events = runtime.block_on(bus.subscribe("application/#")).unwrap();
    // Our own probe coming back proves the subscription is in place.
    let probe = ApplicationDeletedEvent { application_id: "probe".into(), tenant_id: -1 };
    runtime.block_on(bus.publish(&probe)).unwrap();
    let seen = runtime.block_on(events.wait_for(Duration::from_secs(10), |e| {
        matches!(&e, AnyEvent::ApplicationDeletedEvent(p) if p.application_id == "probe").then_some(())
    }));
    assert!(seen.is_some(), "the probe event did not come back through Mosquitto");

    platform.add_php_web();
    let created = runtime.block_on(events.wait_for(Duration::from_secs(10), |e| match &e {
        AnyEvent::ApplicationCreatedEvent(c) => Some((e.topic(), c.application_id.clone())),
        _ => None,
    }));
    let (topic, id) = created.expect("no ApplicationCreatedEvent on Mosquitto within 10 s");
    assert_eq!(topic, "application/ApplicationCreatedEvent");
    assert_eq!(id, "php-web");

    runtime.block_on(bus.close());
    drop(platform.stop());
}

#[test]
fn postgres_store() {
    let Some(server) = support::postgres::server_url() else { return };
    let schema = PgSchema::create(&server);
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &["--store", &url]);

    let banner = platform.proc.stdout();
    let store_line = banner.lines().find(|l| l.contains("store")).unwrap_or_else(|| panic!("{banner}"));
    assert!(store_line.contains("postgres"), "the banner does not name PostgreSQL: {store_line}");
    let health = platform.health();
    assert!(health["store"].as_str().unwrap_or("").starts_with("postgres"), "{health}");
    // The password never shows.
    if let Some(password) = password_of(&server) {
        assert!(!banner.contains(&format!(":{password}@")), "the banner shows the password: {store_line}");
        assert!(!health.to_string().contains(&format!(":{password}@")), "/api/health shows the password: {health}");
    }
    assert!(!dir.path().join("stratos.db").exists(), "a SQLite database was created despite --store");

    platform.add_php_web();
    let before = snapshot(&platform);
    let platform = platform.restart();
    let after = snapshot(&platform);
    assert_eq!(before, after, "definitions changed across a restart on PostgreSQL");

    // The data is in PostgreSQL, not in the data directory: a new data directory sees it too.
    drop(platform.stop());
    let other = tempfile::tempdir().unwrap();
    let platform = Platform::start(other.path(), &["--store", &url]);
    assert_eq!(snapshot(&platform), before, "a platform with another data directory");
    drop(platform.stop());
}

fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_owned())
}

#[test]
fn up_fails_clearly_when_port_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    for (flag, other_flag) in [("--api-listen", "--mqtt-listen"), ("--mqtt-listen", "--api-listen")] {
        let other = format!("127.0.0.1:{}", free_port());
        let data_dir = dir.path().to_str().unwrap();
        let mut command = Command::new(support::BIN);
        command.args(["up", flag, &taken_addr, other_flag, &other, "--data-dir", data_dir]);
        let mut proc = spawn("stratos up", command);
        let started = Instant::now();
        let status = proc.wait_exit(Duration::from_secs(30));
        let status =
            status.unwrap_or_else(|| panic!("`stratos up {flag} {taken_addr}` kept running\n{}", proc.describe()));
        assert!(!status.success(), "`stratos up {flag} <taken port>` exited 0\n{}", proc.describe());
        assert!(started.elapsed() < Duration::from_secs(15), "it took {:?} to fail", started.elapsed());
        let stderr = proc.stderr();
        assert!(stderr.contains(&taken_addr), "the error does not name {taken_addr}\n{}", proc.describe());
        assert!(stderr.contains(flag), "the error does not point at {flag}\n{}", proc.describe());
        assert!(!proc.stdout().contains("Stratos is up"), "it claimed to be up\n{}", proc.describe());
    }
    drop(taken);
}

#[test]
fn help_explains_itself() {
    let out = stratos(&["--help"]);
    assert!(out.success(), "{out}");
    for expected in [
        "up",
        "cartridge",
        "network-partition",
        "deployment-policy",
        "autoscaling-policy",
        "application-policy",
        "application",
        "stratos up",
    ] {
        assert!(out.stdout.contains(expected), "`stratos --help` lacks {expected:?}\n{out}");
    }

    let out = stratos(&["up", "--help"]);
    assert!(out.success(), "{out}");
    for expected in [
        "--api-listen",
        "--mqtt-listen",
        "--broker",
        "--data-dir",
        "--store",
        "--body-limit",
        "--log-format",
        "postgres://",
    ] {
        assert!(out.stdout.contains(expected), "`stratos up --help` lacks {expected:?}\n{out}");
    }

    let out = stratos(&["cartridge", "--help"]);
    assert!(out.success(), "{out}");
    for expected in ["add", "update", "list", "show", "remove", "--api", "--output", "STRATOS_API"] {
        assert!(out.stdout.contains(expected), "`stratos cartridge --help` lacks {expected:?}\n{out}");
    }

    // No command: usage on stderr, non-zero exit.
    let out = stratos(&[]);
    assert!(!out.success() && out.stderr.contains("Usage"), "{out}");
    let out = stratos(&["--version"]);
    assert!(out.success() && out.stdout.contains("stratos"), "{out}");
}

#[test]
fn client_without_platform_says_so() {
    // Nothing listens on this port: the client says how to fix it.
    let api = format!("http://127.0.0.1:{}", free_port());
    let out = stratos(&["cartridge", "list", "--api", &api]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("stratos up") && out.stderr.contains(&api), "{out}");
    let example = examples_dir().join("cartridge-php.json");
    let out = stratos(&["cartridge", "add", example.to_str().unwrap(), "--api", &api]);
    assert!(!out.success() && out.stderr.contains("cannot reach"), "{out}");
}
