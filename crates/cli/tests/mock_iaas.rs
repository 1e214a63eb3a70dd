//! The `mock` IaaS on the real `stratos up`: Apache Stratos 4.1's sample
//! `single-cartridge-app` (samples/applications/simple/single-cartridge-app, with the
//! sample policies, the `mock` network partition and the mock `php` cartridge), written
//! as 4.1 ships it, with one change: the cartridge's proxy ports are free ports, so that
//! tests running side by side do not share 8280 and 8222.
//!
//! Mock members run nothing: they go through the lifecycle on the bus as an agent would,
//! and report the health statistics the mock IaaS's patterns say (`mock-iaas.yaml` in the
//! data directory, read at start; `stratos mock-iaas set`, taken by running members).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use stratos_bus::AnyEvent;
use support::{
    add_definition, cluster_members, eventually, free_port, get_host, scaling_history, EventLog, Platform, Sandbox,
    QUICK_SCALING,
};

const APP: &str = "single-cartridge-app";
const CLUSTER: &str = "single-cartridge-app.my-php";

/// `stratos up` flags: quick scaling, and mock members reporting every second.
fn flags() -> Vec<&'static str> {
    QUICK_SCALING.iter().copied().chain(["--mock-stats-interval", "1s", "--mock-activation-delay", "500ms"]).collect()
}

/// Adds the sample's definitions as 4.1's deploy.sh does, in its order; the mock `php`
/// cartridge exposed on `proxy_ports` (http, tcp).
fn add_single_cartridge_app(platform: &Platform, dir: &std::path::Path, proxy_ports: (u16, u16)) {
    add_definition(
        platform,
        dir,
        "autoscaling-policy",
        &json!({
            "id": "autoscaling-policy-1",
            "loadThresholds": {
                "requestsInFlight": { "threshold": 20 },
                "memoryConsumption": { "threshold": 70 },
                "loadAverage": { "threshold": 70 }
            }
        }),
    );
    add_definition(
        platform,
        dir,
        "network-partition",
        &json!({
            "id": "network-partition-1",
            "provider": "mock",
            "partitions": [{ "id": "partition-1", "property": [{ "name": "region", "value": "default" }] }]
        }),
    );
    add_definition(
        platform,
        dir,
        "deployment-policy",
        &json!({
            "id": "deployment-policy-1",
            "networkPartitions": [{
                "id": "network-partition-1",
                "partitionAlgo": "one-after-another",
                "partitions": [{ "id": "partition-1", "partitionMax": 20 }]
            }]
        }),
    );
    add_definition(
        platform,
        dir,
        "cartridge",
        &json!({
            "type": "php",
            "provider": "apache",
            "category": "framework",
            "host": "php.stratos.org",
            "displayName": "php",
            "description": "php Cartridge",
            "version": "7",
            "multiTenant": "false",
            "portMapping": [
                { "name": "http-80", "protocol": "http", "port": "8080", "proxyPort": proxy_ports.0.to_string() },
                { "name": "http-22", "protocol": "tcp", "port": "22", "proxyPort": proxy_ports.1.to_string() }
            ],
            "deployment": {},
            "iaasProvider": [{
                "type": "mock",
                "imageId": "RegionOne/b4ca55e3-58ab-4937-82ce-817ebd10240e",
                "networkInterfaces": [{ "networkUuid": "b55f009a-1cc6-4b17-924f-4ae0ee18db5e" }],
                "property": [
                    { "name": "instanceType", "value": "RegionOne/aa5f45a2-c6d6-419d-917a-9dd2e3888594" },
                    { "name": "keyPair", "value": "reka" },
                    { "name": "securityGroups", "value": "default" }
                ]
            }]
        }),
    );
    add_definition(
        platform,
        dir,
        "application-policy",
        &json!({
            "id": "application-policy-1",
            "algorithm": "one-after-another",
            "networkPartitions": ["network-partition-1"],
            "properties": [{ "name": "key-1", "value": "value-1" }, { "name": "key-2", "value": "value-2" }]
        }),
    );
    add_definition(
        platform,
        dir,
        "application",
        &json!({
            "applicationId": APP,
            "alias": APP,
            "multiTenant": false,
            "components": { "cartridges": [{
                "type": "php",
                "cartridgeMin": 1,
                "cartridgeMax": 5,
                "subscribableInfo": {
                    "alias": "my-php",
                    "autoscalingPolicy": "autoscaling-policy-1",
                    "deploymentPolicy": "deployment-policy-1",
                    "artifactRepository": {
                        "privateRepo": false,
                        "repoUrl": "https://github.com/lakwarus/single-cartridge.git",
                        "repoUsername": "",
                        "repoPassword": ""
                    }
                }
            }] }
        }),
    );
}

fn deploy(platform: &Platform) {
    let out = platform.cli(&["application", "deploy", APP, "--policy", "application-policy-1", "--timeout", "60s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
}

fn statuses(platform: &Platform) -> Vec<String> {
    cluster_members(platform, CLUSTER).iter().map(|m| m["status"].as_str().unwrap_or("?").to_owned()).collect()
}

fn active(platform: &Platform) -> usize {
    statuses(platform).iter().filter(|s| *s == "Active").count()
}

fn member_events(events: &EventLog, member_id: &str) -> Vec<&'static str> {
    events
        .events()
        .iter()
        .filter_map(|e| match e {
            AnyEvent::MemberCreatedEvent(e) if e.member.member_id == member_id => Some("created"),
            AnyEvent::MemberInitializedEvent(e) if e.member.member_id == member_id => Some("initialized"),
            AnyEvent::MemberStartedEvent(e) if e.member.member_id == member_id => Some("started"),
            AnyEvent::MemberActivatedEvent(e) if e.member.member_id == member_id => Some("active"),
            AnyEvent::MemberTerminatedEvent(e) if e.member.member_id == member_id => Some("terminated"),
            _ => None,
        })
        .collect()
}

#[test]
fn the_4_1_single_cartridge_app_deploys_on_mock_until_its_member_is_active_and_nothing_is_routed_to_it() {
    let sandbox = Sandbox::new();
    // Members silent for 3 s are declared faulty: the mock member must keep reporting.
    let mut up = flags();
    up.extend(["--member-fault-after", "3s"]);
    let platform = Platform::start(sandbox.path(), &up);
    assert!(
        platform.proc.stdout().contains("mock IaaS"),
        "the banner names the mock IaaS\n{}",
        platform.proc.describe()
    );
    let proxy_ports = (free_port(), free_port());
    add_single_cartridge_app(&platform, sandbox.path(), proxy_ports);
    let events = EventLog::topology(&platform);
    deploy(&platform);

    // The minimum (one member) is active, through the whole lifecycle on the bus.
    let members = cluster_members(&platform, CLUSTER);
    assert_eq!(members.len(), 1, "{members:#?}");
    assert_eq!(members[0]["status"], "Active", "{members:#?}");
    assert_eq!(members[0]["networkPartitionId"], "network-partition-1");
    let member_id = members[0]["memberId"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "the member's lifecycle on the bus", || {
        let seen = member_events(&events, &member_id);
        (seen == ["created", "initialized", "started", "active"]).then_some(()).ok_or(format!("{seen:?}"))
    });
    eventually(Duration::from_secs(15), "the application active", || {
        let out = platform.ok(&["application", "status", APP, "-o", "json"]);
        let status: Value = serde_json::from_str(&out.stdout).unwrap();
        (status["applicationStatus"] == "Active").then_some(()).ok_or(format!("{status:#}"))
    });

    // It reports (with no pattern set, no value), through several fault-detection windows,
    // and is not taken for faulty.
    let health = EventLog::subscribe(&platform, &["health/#"]);
    eventually(Duration::from_secs(20), "ten health statistics of the mock member", || {
        let stats: Vec<AnyEvent> = health
            .events()
            .into_iter()
            .filter(|e| matches!(e, AnyEvent::MemberHealthStatEvent(s) if s.member.member_id == member_id))
            .collect();
        match stats.first() {
            Some(AnyEvent::MemberHealthStatEvent(s)) => {
                assert_eq!((s.load_average, s.memory_consumption), (None, None), "no pattern, no value");
            }
            _ => return Err("none yet".into()),
        }
        (stats.len() >= 10).then_some(()).ok_or(format!("{} so far", stats.len()))
    });
    assert!(
        health.events().iter().all(|e| !matches!(e, AnyEvent::MemberFaultEvent(f) if f.member.member_id == member_id)),
        "a reporting mock member was declared faulty"
    );
    assert_eq!(statuses(&platform), ["Active"]);

    // Nothing can be routed to it: the load balancer answers 503 for its host, and has
    // ejected nothing (it never tried the member's address).
    let topology = platform.topology();
    let host = topology["services"]["php"]["clusters"][CLUSTER]["hostNames"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no host name for {CLUSTER}: {topology:#}"))
        .to_owned();
    let lb = SocketAddr::from(([127, 0, 0, 1], proxy_ports.0));
    let (status, body) = eventually(Duration::from_secs(10), "the load balancer listens for the cluster", || {
        get_host(lb, &host, "/", Duration::from_secs(1), Duration::from_secs(5)).map_err(|e| e.to_string())
    });
    assert_eq!(status, 503, "{body}");
    let log = platform.proc.stderr();
    assert!(!log.contains("member ejected"), "the load balancer tried a mock member\n{log}");

    // Undeployed: the member is terminated, and announced so.
    platform.ok(&["application", "undeploy", APP]);
    eventually(Duration::from_secs(30), "the member terminated", || {
        let seen = member_events(&events, &member_id);
        (seen.last() == Some(&"terminated")).then_some(()).ok_or(format!("{seen:?}"))
    });
    assert!(cluster_members(&platform, CLUSTER).is_empty());
    assert!(events.events().iter().all(|e| !matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == member_id && t.reason.contains("fault"))));
}

#[test]
fn a_mock_pattern_above_the_threshold_scales_out_and_one_below_scales_back_in() {
    let sandbox = Sandbox::new();
    // The patterns file in the data directory, read at start: a load average of 150 per
    // member against the threshold of 70 asks for ceil(1 · 150 / 70) = 3 members.
    std::fs::write(
        sandbox.path().join("mock-iaas.yaml"),
        "cartridges:\n  - type: php\n    patterns:\n      - { factor: load-average, pattern: constant, value: 150 }\n      \
         - { factor: memory-consumption, mode: continue, sampleValues: '20,30', sampleDuration: 60 }\n",
    )
    .unwrap();
    let platform = Platform::start(sandbox.path(), &flags());
    let shown = platform.ok(&["mock-iaas", "show", "-o", "json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["cartridges"][0]["patterns"][0]["value"], 150.0, "{shown:#}");
    add_single_cartridge_app(&platform, sandbox.path(), (free_port(), free_port()));
    deploy(&platform);
    eventually(Duration::from_secs(60), "three active members", || {
        let s = statuses(&platform);
        (active(&platform) == 3 && s.len() == 3)
            .then_some(())
            .ok_or(format!("{s:?}\n{}", scaling_history(&platform, CLUSTER, 8)))
    });
    // The pattern falls, through the API: the running members follow it, and the cluster
    // goes back to its minimum.
    let file = sandbox.path().join("falling.json");
    std::fs::write(
        &file,
        json!({"cartridges": [{"type": "php", "patterns": [
            {"factor": "load-average", "pattern": "ramp", "from": 150, "to": 10, "duration": "4s"}
        ]}]})
        .to_string(),
    )
    .unwrap();
    let out = platform.ok(&["mock-iaas", "set", file.to_str().unwrap(), "-o", "table"]);
    assert!(out.stdout.contains("mock IaaS patterns set"), "{out}");
    eventually(Duration::from_secs(90), "back to one member", || {
        let s = statuses(&platform);
        (s == ["Active"]).then_some(()).ok_or(format!("{s:?}\n{}", scaling_history(&platform, CLUSTER, 8)))
    });
    let history = scaling_history(&platform, CLUSTER, 20);
    assert!(history.contains("scale-up") && history.contains("scale-down"), "{history}");

    // A bad pattern is refused at its field, and the patterns in force stay.
    std::fs::write(
        &file,
        r#"{"cartridges": [{"type": "php", "patterns": [{"factor": "load-average", "pattern": "step", "from": 1}]}]}"#,
    )
    .unwrap();
    let out = platform.cli(&["mock-iaas", "set", file.to_str().unwrap()]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("cartridges[0].patterns[0].to"), "{out}");
    let shown = platform.ok(&["mock-iaas", "show", "-o", "json"]);
    assert!(shown.stdout.contains("ramp"), "{shown}");
}

#[test]
fn a_bad_patterns_file_stops_the_start_naming_its_field() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path().join("mock-iaas.json"),
        r#"{"cartridges": [{"type": "php", "patterns": [{"factor": "load-average", "pattern": "sine", "mean": 50, "amplitude": 20}]}]}"#,
    )
    .unwrap();
    let Err(proc) = Platform::start_on(sandbox.path(), free_port(), free_port(), &[]) else {
        panic!("`stratos up` started with a bad mock-iaas.json");
    };
    let stderr = proc.stderr();
    assert!(stderr.contains("mock-iaas.json") && stderr.contains("cartridges[0].patterns[0].period"), "{stderr}");
    // Without the mock IaaS, the file is not its business.
    let platform = Platform::start(sandbox.path(), &["--no-mock-iaas"]);
    assert!(!platform.proc.stdout().contains("mock IaaS"), "{}", platform.proc.describe());
}
