//! The `docker` driver on the machine's real Docker Engine, with images built here
//! `FROM scratch` (test-kit's `docker`): no registry, no pull. Without Docker these skip
//! (and fail with CI=true).
//!
//! The driver alone: a member runs the bundled agent in a scratch container, confined
//! (non-root, no capabilities, no new privileges, limits), reaches the bus on its tenant
//! network's gateway and is reached on its own address; tenants' networks are apart;
//! another platform's containers are never listed nor touched; a missing image is a
//! start error naming it. The platform (`stratos up`): a member is a container, adopted
//! after a kill -9 while strays of the platform are removed; faults on the engine
//! (`docker kill`, `docker pause`, `docker network disconnect`) are replaced, each timed;
//! a second engine (its own `dockerd`) stopped whole is judged on its own.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker};
use stratos_cloud::docker::{labels, DockerConfig, DockerDriver};
use stratos_cloud::driver::{MemberSpec, PortSpec};
use stratos_cloud::{Driver, InstanceState};
use stratos_model::Protocol;
use stratos_test_kit::docker::{self as dk, docker, try_docker};
use stratos_test_kit::engine::Engine;
use support::containers::{member_containers, platform_id, Cleanup};
use support::{
    add_definition, cluster_host, cluster_members, eventually, free_port, get_host, id, member_through_lb, Platform,
    Sandbox, BIN,
};

/// The image every test runs: a shell, and nothing of Stratos (the agent is bundled in).
fn image() -> String {
    dk::shell_image()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}{}{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// A member of `tenant` running `stratos sample-http` on port 8000 of its container.
fn spec(platform_id: &str, member_id: &str, tenant_id: i64, image: &str, broker: &EmbeddedBroker) -> MemberSpec {
    MemberSpec {
        member_id: member_id.into(),
        cluster_id: "app.web".into(),
        service_name: "web".into(),
        app_id: "app".into(),
        tenant_id,
        network_partition_id: "np".into(),
        partition_id: "p1".into(),
        command: ["stratos", "sample-http", "--port", "${PORT}", "--bind", "0.0.0.0"].map(String::from).to_vec(),
        image: Some(image.into()),
        ports: vec![PortSpec { protocol: Protocol::Http, port: 8000, proxy_port: 0 }],
        broker_url: String::new(),
        bus_credentials: Some(broker.member_credentials("app.web", member_id)),
        bus_ca_cert: None,
        artifact_repository: None,
        env: BTreeMap::from([("STRATOS_HEALTH_STATS_INTERVAL".to_string(), "1s".to_string())]),
        platform_id: platform_id.into(),
        limits: stratos_model::Limits { nano_cpus: Some(500_000_000), memory_bytes: Some(128 << 20) },
        volumes: vec![],
        placement: BTreeMap::new(),
        slot: None,
        persistent_volumes: vec![],
    }
}

/// A driver of platform `platform_id` whose members reach `broker`.
fn driver(platform_id: &str, broker: Arc<EmbeddedBroker>, dir: &Path) -> DockerDriver {
    let driver = DockerDriver::new(DockerConfig::default(), Path::new(BIN), dir)
        .unwrap()
        .with_platform_id(Some(platform_id.to_string()));
    driver.set_bus(broker);
    driver
}

/// GET / on `addr`, 3 s at most: (status, body).
fn get(addr: &str, port: u16) -> Result<(u16, String), String> {
    let addr: SocketAddr = format!("{addr}:{port}").parse().map_err(|e| format!("{addr}: {e}"))?;
    let three = Duration::from_secs(3);
    get_host(addr, "x", "/", three, three).map_err(|e| e.to_string())
}

/// `docker inspect -f FORMAT CONTAINER`.
fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, container])
}

#[test]
fn a_member_runs_confined_from_scratch_and_reaches_the_bus() {
    if !dk::engine_or_skip("a_member_runs_confined_from_scratch_and_reaches_the_bus") {
        return;
    }
    let cleanup = Cleanup::default();
    let platform_id = unique("t");
    cleanup.platform(&platform_id);
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let bus = runtime.block_on(Bus::connect(&broker.platform_url(), "docker-test")).unwrap();
    let mut activated = runtime.block_on(bus.subscribe("instance/status/#")).unwrap();
    let driver = driver(&platform_id, broker.clone(), dir.path());
    let member_id = unique("m");
    let started = Instant::now();
    let instance = runtime.block_on(driver.start(&spec(&platform_id, &member_id, 41, &image, &broker))).unwrap();
    let container = labels::container_name(&member_id);

    // The agent, bundled, reached the bus on the tenant network's gateway with the
    // member's own credentials, and its app is up.
    let event = runtime.block_on(activated.wait_for(Duration::from_secs(60), |e| match e {
        AnyEvent::InstanceActivatedEvent(a) if a.member.member_id == member_id => Some(a),
        _ => None,
    }));
    assert!(event.is_some(), "no InstanceActivatedEvent; container log:\n{}", docker(&["logs", &container]));
    eprintln!("container start → InstanceActivatedEvent: {:?}", started.elapsed());
    // The host (the load balancer) reaches it at its address on its network.
    assert!(instance.address.starts_with(|c: char| c.is_ascii_digit()), "address {:?}", instance.address);
    assert_eq!(instance.ports[0].host_port, 8000);
    let (_, body) =
        eventually(Duration::from_secs(10), "the member answers on its address", || get(&instance.address, 8000));
    assert!(body.contains(&member_id), "{body}");

    // Confined.
    assert_eq!(inspect(&container, "{{.Config.User}}"), "2000000:2000000");
    assert_eq!(inspect(&container, "{{.HostConfig.CapDrop}}"), "[ALL]");
    assert_eq!(inspect(&container, "{{.HostConfig.SecurityOpt}}"), "[no-new-privileges]");
    assert_eq!(inspect(&container, "{{.HostConfig.PidsLimit}}"), "512");
    assert_eq!(inspect(&container, "{{.HostConfig.Memory}}"), (128u64 << 20).to_string());
    assert_eq!(inspect(&container, "{{.HostConfig.NanoCpus}}"), "500000000");
    // As the kernel sees the agent: uid, no capabilities, no new privileges.
    let status =
        docker(&["exec", &container, "/bin/bash", "-c", "while read -r l; do echo \"$l\"; done < /proc/1/status"]);
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{status}")).to_string()
    };
    assert!(field("Uid:").split_whitespace().skip(1).all(|u| u == "2000000"), "{}", field("Uid:"));
    assert!(field("CapEff:").ends_with("0000000000000000"), "{}", field("CapEff:"));
    assert!(field("CapBnd:").ends_with("0000000000000000"), "{}", field("CapBnd:"));
    assert!(field("NoNewPrivs:").ends_with('1'), "{}", field("NoNewPrivs:"));
    // The bundle is read-only; the image holds no Stratos.
    let write = try_docker(&["exec", &container, "/bin/sh", "-c", "echo x > /.stratos/x"]);
    assert!(write.is_err(), "the bundle is writable");

    // Listed as this platform's, then terminated and gone.
    let listed = runtime.block_on(driver.list()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].platform_id.as_deref(), listed[0].state.clone()),
        (Some(platform_id.as_str()), InstanceState::Running)
    );
    runtime.block_on(driver.terminate(&member_id, Duration::from_secs(5))).unwrap();
    assert!(runtime.block_on(driver.list()).unwrap().is_empty());
    assert!(try_docker(&["inspect", &container]).is_err(), "the container is still there");
}

#[test]
fn tenants_cannot_reach_each_other() {
    if !dk::engine_or_skip("tenants_cannot_reach_each_other") {
        return;
    }
    let cleanup = Cleanup::default();
    let platform_id = unique("t");
    cleanup.platform(&platform_id);
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let driver = driver(&platform_id, broker.clone(), dir.path());
    let (a, b) = (unique("a"), unique("b"));
    let member_a = runtime.block_on(driver.start(&spec(&platform_id, &a, 1, &image, &broker))).unwrap();
    let member_b = runtime.block_on(driver.start(&spec(&platform_id, &b, 2, &image, &broker))).unwrap();
    for m in [&member_a, &member_b] {
        eventually(Duration::from_secs(60), "the member answers", || get(&m.address, 8000));
    }
    // From a container on a network, a TCP connect to a member's port (2 s at most).
    let connect = |network: &str, address: &str| {
        let probe = format!("exec 3<>/dev/tcp/{address}/8000 && echo open");
        try_docker(&[
            "run",
            "--rm",
            "--network",
            network,
            "--user",
            "2000000",
            &image,
            "/bin/timeout",
            "2",
            "/bin/bash",
            "-c",
            &probe,
        ])
    };
    let net_a = stratos_cloud::docker::tenant_network(&platform_id, 1);
    let net_b = stratos_cloud::docker::tenant_network(&platform_id, 2);
    // Within a tenant: reached (the probe works).
    assert_eq!(connect(&net_a, &member_a.address).as_deref(), Ok("open"));
    // Across tenants: not, either way.
    assert!(connect(&net_b, &member_a.address).is_err(), "tenant 2 reached tenant 1's member");
    assert!(connect(&net_a, &member_b.address).is_err(), "tenant 1 reached tenant 2's member");
}

/// A tenant network its last member left is removed once idle (here at once); another
/// tenant's, still in use, is kept.
#[test]
fn a_tenant_network_no_member_uses_is_removed() {
    if !dk::engine_or_skip("a_tenant_network_no_member_uses_is_removed") {
        return;
    }
    let cleanup = Cleanup::default();
    let platform_id = unique("n");
    cleanup.platform(&platform_id);
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let config = DockerConfig { network_idle: Duration::ZERO, ..DockerConfig::default() };
    let driver =
        DockerDriver::new(config, Path::new(BIN), dir.path()).unwrap().with_platform_id(Some(platform_id.clone()));
    driver.set_bus(broker.clone());
    let (leaving, staying) = (unique("l"), unique("s"));
    runtime.block_on(driver.start(&spec(&platform_id, &leaving, 3, &image, &broker))).unwrap();
    runtime.block_on(driver.start(&spec(&platform_id, &staying, 4, &image, &broker))).unwrap();
    let (net3, net4) = (
        stratos_cloud::docker::tenant_network(&platform_id, 3),
        stratos_cloud::docker::tenant_network(&platform_id, 4),
    );
    runtime.block_on(driver.list()).unwrap();
    assert!(try_docker(&["network", "inspect", &net3]).is_ok(), "in use: kept");
    runtime.block_on(driver.terminate(&leaving, Duration::from_secs(5))).unwrap();
    eventually(Duration::from_secs(30), "tenant 3's network removed", || {
        runtime.block_on(driver.list()).map_err(|e| e.to_string())?;
        match try_docker(&["network", "inspect", &net3]) {
            Err(_) => Ok(()),
            Ok(_) => Err("still there".to_string()),
        }
    });
    assert!(try_docker(&["network", "inspect", &net4]).is_ok(), "tenant 4's network, in use, was removed");
    // A new member of tenant 3 makes it again.
    let again = unique("a");
    let member = runtime.block_on(driver.start(&spec(&platform_id, &again, 3, &image, &broker))).unwrap();
    eventually(Duration::from_secs(60), "the new member answers", || get(&member.address, 8000));
}

#[test]
fn another_platforms_containers_are_never_listed_nor_touched() {
    if !dk::engine_or_skip("another_platforms_containers_are_never_listed_nor_touched") {
        return;
    }
    let cleanup = Cleanup::default();
    let (ours, theirs) = (unique("ours"), unique("theirs"));
    cleanup.platform(&ours);
    cleanup.platform(&theirs);
    let image = image();
    let member_id = unique("m");
    // Another platform's member on the same engine, named as ours would be.
    let stranger = docker(&[
        "run",
        "-d",
        "--name",
        &labels::container_name(&member_id),
        "--label",
        &format!("{}={theirs}", labels::PLATFORM),
        "--label",
        &format!("{}={member_id}", labels::MEMBER),
        &image,
        "/bin/sleep",
        "600",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let driver = driver(&ours, broker.clone(), dir.path());
    assert!(runtime.block_on(driver.list()).unwrap().is_empty(), "another platform's container listed");
    assert!(runtime.block_on(driver.inspect(&member_id)).unwrap().is_none());
    runtime.block_on(driver.terminate(&member_id, Duration::from_secs(1))).unwrap();
    // A member of ours whose container name is taken by it: the start fails, the other stays.
    let error = runtime.block_on(driver.start(&spec(&ours, &member_id, 1, &image, &broker))).unwrap_err();
    eprintln!("start over another platform's container: {error}");
    assert_eq!(inspect(&stranger, "{{.State.Running}}"), "true", "another platform's container was touched");
}

#[test]
fn a_missing_image_is_a_start_error_naming_it() {
    if !dk::engine_or_skip("a_missing_image_is_a_start_error_naming_it") {
        return;
    }
    let cleanup = Cleanup::default();
    let platform_id = unique("t");
    cleanup.platform(&platform_id);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Arc::new(EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap());
    let driver = driver(&platform_id, broker.clone(), dir.path());
    let spec = spec(&platform_id, &unique("m"), 1, "stratos-test/never-built:1", &broker);
    let error = runtime.block_on(driver.start(&spec)).unwrap_err().to_string();
    assert!(error.contains("\"stratos-test/never-built:1\" does not exist"), "{error}");
    assert!(error.contains("stratos image build"), "{error}");
}

// ---------------------------------------------------------------------------------------
// The platform: `stratos up` with a docker network partition.

const APP: &str = "boxed";
const ALIAS: &str = "web";
const CLUSTER: &str = "boxed.web";

/// `stratos up` flags: health every second, a silent member faulty after 5 s.
const FLAGS: &[&str] = &["--health-interval", "1s", "--member-fault-after", "5s"];

/// Definitions of an application of `members` containers of `image` running `command`,
/// behind the load balancer on `proxy_port`.
fn add_app(platform: &Platform, dir: &Path, image: &str, command: &[&str], proxy_port: u16, members: u32) {
    add_app_on(platform, dir, image, command, proxy_port, members, &[ONE_ENGINE]);
}

/// A network partition of the docker provider: (id, its engine if not the local one,
/// the most members its one partition `p1` holds).
type EngineNp<'a> = (&'a str, Option<&'a str>, u32);

const ONE_ENGINE: EngineNp<'static> = ("np-docker", None, 10);

/// [`add_app`] over network partitions `nps`, filled one after another in that order.
fn add_app_on(
    platform: &Platform,
    dir: &Path,
    image: &str,
    command: &[&str],
    proxy_port: u16,
    members: u32,
    nps: &[EngineNp],
) {
    for (np, host, _) in nps {
        let property: Vec<serde_json::Value> =
            host.iter().map(|h| json!({ "name": "dockerHost", "value": h })).collect();
        add_definition(
            platform,
            dir,
            "network-partition",
            &json!({ "id": np, "provider": "docker", "property": property, "partitions": [{ "id": "p1" }] }),
        );
    }
    add_definition(
        platform,
        dir,
        "autoscaling-policy",
        &json!({ "id": "asp", "loadThresholds": { "requestsInFlight": { "threshold": 1000 } } }),
    );
    let placed: Vec<serde_json::Value> = nps
        .iter()
        .map(|(np, _, max)| {
            json!({ "id": np, "partitionAlgo": "one-after-another", "partitions": [{ "id": "p1", "partitionMax": max }] })
        })
        .collect();
    add_definition(platform, dir, "deployment-policy", &json!({ "id": "dp", "networkPartitions": placed }));
    let ids: Vec<&str> = nps.iter().map(|(np, _, _)| *np).collect();
    add_definition(
        platform,
        dir,
        "application-policy",
        &json!({ "id": "ap", "algorithm": "one-after-another", "networkPartitions": ids }),
    );
    add_definition(
        platform,
        dir,
        "cartridge",
        &json!({
            "type": "boxed-http",
            "category": "framework",
            "portMapping": [{
                "name": "http", "protocol": "http", "port": 8000, "proxyPort": proxy_port,
                "healthCheck": { "path": "/", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 3 }
            }],
            "iaasProvider": [{
                "type": "docker", "imageId": image, "command": command, "cpu": "0.5", "memory": "128Mi",
                "property": [{ "name": "env.STRATOS_HEALTH_STATS_INTERVAL", "value": "1s" }]
            }]
        }),
    );
    add_definition(
        platform,
        dir,
        "application",
        &json!({
            "applicationId": APP,
            "components": { "cartridges": [{
                "type": "boxed-http", "cartridgeMin": members, "cartridgeMax": members,
                "subscribableInfo": { "alias": ALIAS, "autoscalingPolicy": "asp", "deploymentPolicy": "dp" }
            }] }
        }),
    );
}

const SAMPLE: &[&str] = &["stratos", "sample-http", "--port", "${PORT}", "--bind", "0.0.0.0"];

fn active(platform: &Platform) -> BTreeSet<String> {
    cluster_members(platform, CLUSTER).iter().filter(|m| m["status"] == "Active").map(id).collect()
}

/// One request through the load balancer: the member that answered.
fn through_lb(proxy_port: u16) -> Result<String, String> {
    member_through_lb(proxy_port, &cluster_host(APP, ALIAS), "/", Duration::from_secs(3))
}

/// A platform running the app with `members` active containers, the LB routing to them.
struct Running {
    _cleanup: Cleanup,
    platform: Platform,
    proxy_port: u16,
    platform_id: String,
    sandbox: Sandbox,
}

fn run_app(members: u32) -> Running {
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), FLAGS);
    let platform_id = platform_id(&platform);
    cleanup.platform(&platform_id);
    let proxy_port = free_port();
    add_app(&platform, sandbox.path(), &image(), SAMPLE, proxy_port, members);
    let started = Instant::now();
    let out = platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "120s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    eventually(Duration::from_secs(60), "the active members", || match active(&platform) {
        a if a.len() == members as usize => Ok(a),
        a => Err(format!("{a:?}")),
    });
    eventually(Duration::from_secs(20), "the load balancer routes to a container", || through_lb(proxy_port));
    eprintln!("deploy → {members} active container(s), routed: {:?}", started.elapsed());
    Running { _cleanup: cleanup, platform, proxy_port, platform_id, sandbox }
}

#[test]
fn a_killed_platform_adopts_its_containers_and_removes_strays() {
    if !dk::engine_or_skip("a_killed_platform_adopts_its_containers_and_removes_strays") {
        return;
    }
    let Running { _cleanup, platform, proxy_port, platform_id, sandbox } = run_app(1);
    let before = active(&platform);
    let member = before.iter().next().unwrap().clone();
    let container_id = inspect(&labels::container_name(&member), "{{.Id}}");
    // A container of this platform that no member names, and one of another platform.
    let stray = docker(&[
        "run",
        "-d",
        "--label",
        &format!("{}={platform_id}", labels::PLATFORM),
        "--label",
        &format!("{}=stray-{}", labels::MEMBER, std::process::id()),
        &image(),
        "/bin/sleep",
        "600",
    ]);
    let other = unique("other");
    _cleanup.platform(&other);
    let foreign = docker(&[
        "run",
        "-d",
        "--label",
        &format!("{}={other}", labels::PLATFORM),
        "--label",
        &format!("{}=m-{}", labels::MEMBER, std::process::id()),
        &image(),
        "/bin/sleep",
        "600",
    ]);
    let (api_port, mqtt_port) = (platform.api_port, platform.mqtt_port);
    platform.kill();
    let restarted = Instant::now();
    let platform = Platform::start_again(sandbox.path(), api_port, mqtt_port, FLAGS);
    eventually(Duration::from_secs(30), "the stray container removed", || match try_docker(&["inspect", &stray]) {
        Err(_) => Ok(()),
        Ok(_) => Err("still there".to_string()),
    });
    eprintln!("kill -9 and restart → stray removed: {:?}", restarted.elapsed());
    // The member lives on in the same container, and is still routed to.
    assert_eq!(active(&platform), before);
    assert_eq!(inspect(&labels::container_name(&member), "{{.Id}}"), container_id);
    assert_eq!(eventually(Duration::from_secs(20), "routed", || through_lb(proxy_port)), member);
    assert_eq!(inspect(&foreign, "{{.State.Running}}"), "true", "another platform's container was touched");
}

/// A backup restored into a fresh data directory while the containers run (the old
/// platform stopped, `bus-password` copied as `stratos restore` says): `stratos up` there
/// is the same platform (the restored store keeps the id the containers' labels carry),
/// and adopts the same containers, still routed, none started or removed.
#[test]
fn a_restored_platform_adopts_its_running_containers() {
    if !dk::engine_or_skip("a_restored_platform_adopts_its_running_containers") {
        return;
    }
    let Running { _cleanup, platform, proxy_port, platform_id, sandbox } = run_app(2);
    let before = active(&platform);
    let containers = |members: &BTreeSet<String>| -> BTreeMap<String, String> {
        members.iter().map(|m| (m.clone(), inspect(&labels::container_name(m), "{{.Id}}"))).collect()
    };
    let expected = containers(&before);
    let out = platform.ok(&["backup"]);
    let file = sandbox.path().join("backup.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    let mqtt_port = platform.mqtt_port;
    drop(platform.stop());

    let fresh = sandbox.path().join("restored");
    let out = support::stratos(&["restore", file.to_str().unwrap(), "--data-dir", fresh.to_str().unwrap()]);
    assert!(out.success() && out.stdout.contains("bus-password"), "{out}");
    std::fs::copy(sandbox.path().join("bus-password"), fresh.join("bus-password")).unwrap();
    let restarted = Instant::now();
    let platform = Platform::start_again(&fresh, free_port(), mqtt_port, FLAGS);
    assert_eq!(support::containers::platform_id(&platform), platform_id);
    let routed = eventually(Duration::from_secs(30), "both containers routed", || {
        let seen: BTreeSet<String> = (0..20).map(|_| through_lb(proxy_port)).collect::<Result<_, _>>()?;
        if seen == before {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    });
    eprintln!("restore and start → both containers adopted and routed: {:?}", restarted.elapsed());
    assert_eq!(routed, before);
    for _ in 0..6 {
        assert_eq!(active(&platform), before, "the members changed");
        assert_eq!(member_containers(None, &platform_id), before, "a container started or removed");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(containers(&before), expected, "not the same containers");
    drop(platform.stop());
}

/// Waits until `victim` is gone from the cluster, a new member is active in its place and
/// the load balancer sends no request to it; prints how long it took.
fn replaced(run: &Running, victim: &str, what: &str, since: Instant) {
    eventually(Duration::from_secs(120), "the member replaced", || {
        let now = active(&run.platform);
        if now.len() == 1 && !now.contains(victim) {
            Ok(())
        } else {
            Err(format!("active: {now:?}"))
        }
    });
    let answered = eventually(Duration::from_secs(20), "the replacement routed", || through_lb(run.proxy_port));
    assert_ne!(answered, victim);
    eventually(Duration::from_secs(30), "the victim's container removed", || {
        match try_docker(&["inspect", &labels::container_name(victim)]) {
            Err(_) => Ok(()),
            Ok(_) => Err("still there".to_string()),
        }
    });
    eprintln!("{what} → replaced, routed, container removed: {:?}", since.elapsed());
}

#[test]
fn a_killed_container_is_replaced() {
    if !dk::engine_or_skip("a_killed_container_is_replaced") {
        return;
    }
    let run = run_app(1);
    let victim = active(&run.platform).into_iter().next().unwrap();
    let since = Instant::now();
    docker(&["kill", &labels::container_name(&victim)]);
    replaced(&run, &victim, "docker kill", since);
}

#[test]
fn a_paused_container_is_found_faulty_and_replaced() {
    if !dk::engine_or_skip("a_paused_container_is_found_faulty_and_replaced") {
        return;
    }
    let run = run_app(1);
    let victim = active(&run.platform).into_iter().next().unwrap();
    let since = Instant::now();
    docker(&["pause", &labels::container_name(&victim)]);
    replaced(&run, &victim, "docker pause", since);
}

#[test]
fn a_disconnected_container_is_found_faulty_and_replaced() {
    if !dk::engine_or_skip("a_disconnected_container_is_found_faulty_and_replaced") {
        return;
    }
    let run = run_app(1);
    let victim = active(&run.platform).into_iter().next().unwrap();
    let network = stratos_cloud::docker::tenant_network(&run.platform_id, stratos_model::SUPER_TENANT);
    let since = Instant::now();
    docker(&["network", "disconnect", &network, &labels::container_name(&victim)]);
    replaced(&run, &victim, "docker network disconnect", since);
}

#[test]
fn a_missing_image_is_refused_at_deploy_naming_it() {
    if !dk::engine_or_skip("a_missing_image_is_refused_at_deploy_naming_it") {
        return;
    }
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), FLAGS);
    cleanup.platform(&platform_id(&platform));
    add_app(&platform, sandbox.path(), "stratos-test/never-built:1", SAMPLE, free_port(), 1);
    let out = platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "10s"]);
    assert!(!out.success(), "deployed with a missing image\n{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("stratos-test/never-built:1"), "{said}");
    assert!(said.contains("stratos image build"), "{said}");
    assert!(said.contains("components.cartridges[0].type"), "{said}");
}

#[test]
fn a_command_that_exits_at_once_backs_off_with_its_exit_code() {
    if !dk::engine_or_skip("a_command_that_exits_at_once_backs_off_with_its_exit_code") {
        return;
    }
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), FLAGS);
    let platform_id = platform_id(&platform);
    cleanup.platform(&platform_id);
    add_app(&platform, sandbox.path(), &image(), &["/bin/sh", "-c", "exit 7"], free_port(), 1);
    let since = Instant::now();
    // It never becomes active: the deploy's wait ends, the deployment stays.
    platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "1s"]);
    let error = eventually(Duration::from_secs(60), "the cluster's error", || {
        let out = platform.cli(&["application", "status", APP, "-o", "json"]);
        let status: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out}"))?;
        let cluster = support::cluster(&status, ALIAS);
        match cluster["error"].as_str() {
            Some(e) if e.contains('7') => Ok(e.to_string()),
            _ => Err(format!("{cluster:#}")),
        }
    });
    eprintln!("exit 7 at once → the cluster's error {error:?}: {:?}", since.elapsed());
    // Backed off: in the next 20 s, a handful of containers were made, not one per
    // reconcile (the engine's own record of creations in that window).
    let from = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let filter = format!("label={}={platform_id}", labels::PLATFORM);
    let created = docker(&[
        "events",
        "--since",
        &from.to_string(),
        "--until",
        &(from + 20).to_string(),
        "--filter",
        &filter,
        "--filter",
        "event=create",
        "--format",
        "{{.ID}}",
    ]);
    let starts = created.lines().count();
    assert!(starts <= 6, "{starts} containers in 20 s: no back-off");
}

/// The second engine stopped whole (`dockerd` stops its containers and exits): the first
/// engine's members are judged and replaced as ever meanwhile; the second's are given up
/// after the grace period and replaced on the first engine, where the deployment policy
/// has room; when the second engine is back, this platform's containers left there are
/// removed.
#[test]
fn a_stopped_engine_is_judged_on_its_own() {
    if !dk::engine_or_skip("a_stopped_engine_is_judged_on_its_own") {
        return;
    }
    let image = image();
    let mut engine2 = Engine::start("stop", "10.232.0.0/16");
    engine2.load_image(&image);
    let host2 = engine2.host();
    let cleanup = Cleanup::default();
    cleanup.engine(&host2);
    let sandbox = Sandbox::new();
    let flags: Vec<&str> = FLAGS.iter().copied().chain(["--unreachable-grace", "10s"]).collect();
    let platform = Platform::start(sandbox.path(), &flags);
    let platform_id = platform_id(&platform);
    cleanup.platform(&platform_id);
    let proxy_port = free_port();
    // Two members on the second engine first, then up to three on the first.
    let nps = [("np-e2", Some(host2.as_str()), 2), ("np-e1", None, 3)];
    add_app_on(&platform, sandbox.path(), &image, SAMPLE, proxy_port, 3, &nps);
    let out = platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "120s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    eventually(Duration::from_secs(60), "three active members", || match active(&platform) {
        a if a.len() == 3 => Ok(a),
        a => Err(format!("{a:?}")),
    });
    let on2 = member_containers(Some(&host2), &platform_id);
    let on1 = member_containers(None, &platform_id);
    assert_eq!((on2.len(), on1.len()), (2, 1), "second engine {on2:?}, first {on1:?}");

    let stopped = Instant::now();
    engine2.stop();
    eprintln!("second engine stopped whole in {:?}", stopped.elapsed());
    // The first engine is judged as ever: its member killed meanwhile is replaced there.
    let killed = on1.iter().next().unwrap().clone();
    docker(&["kill", &labels::container_name(&killed)]);
    let replaced = eventually(Duration::from_secs(90), "three active members on the first engine", || {
        let members = cluster_members(&platform, CLUSTER);
        let active: Vec<&serde_json::Value> = members.iter().filter(|m| m["status"] == "Active").collect();
        let on_first = active.iter().all(|m| m["networkPartitionId"] == "np-e1");
        let ids: BTreeSet<String> = active.iter().map(|m| id(m)).collect();
        if active.len() == 3 && on_first && !ids.contains(&killed) {
            Ok(ids)
        } else {
            Err(format!("{members:#?}"))
        }
    });
    eprintln!(
        "second engine stopped → its members and the first's killed one replaced on the first: {:?}",
        stopped.elapsed()
    );
    assert_eq!(member_containers(None, &platform_id), replaced, "the first engine runs exactly the members");
    // Past the grace period the second engine's members are given up.
    eventually(Duration::from_secs(60), "the second engine's members given up", || {
        let left: Vec<String> =
            cluster_members(&platform, CLUSTER).iter().map(id).filter(|m| on2.contains(m)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still recorded: {left:?}"))
        }
    });
    eprintln!("second engine stopped → its members given up: {:?}", stopped.elapsed());
    let log = platform.proc.stderr();
    assert!(log.contains("does not answer"), "the unreachable engine was not reported:\n{log}");
    assert!(log.contains("given up"), "no member was given up:\n{log}");

    // Back: what this platform left there is removed; the members stay on the first engine.
    let back = Instant::now();
    engine2.restart();
    eventually(Duration::from_secs(60), "the second engine's stale containers removed", || {
        match member_containers(Some(&host2), &platform_id) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("{left:?}")),
        }
    });
    eprintln!("second engine back → its stale containers removed: {:?}", back.elapsed());
    assert_eq!(active(&platform), replaced, "the members on the first engine are left alone");
    let answered = eventually(Duration::from_secs(20), "routed", || through_lb(proxy_port));
    assert!(replaced.contains(&answered), "{answered} is not a member");
}

#[test]
fn exec_runs_in_the_members_container_as_its_user_without_bus_credentials() {
    if !dk::engine_or_skip("exec_runs_in_the_members_container_as_its_user_without_bus_credentials") {
        return;
    }
    let run = run_app(1);
    let member = active(&run.platform).into_iter().next().unwrap();
    let api = run.platform.api();
    // Shell builtins only: the image has a shell and little else.
    let script = "while read k v rest; do [ \"$k\" = Uid: ] && echo \"uid=$v\"; done < /proc/self/status; \
                  echo \"member=$STRATOS_MEMBER_ID password=[$STRATOS_BUS_PASSWORD]\"; echo oops >&2; exit 4";
    let out = support::stratos(&["member", "exec", "--api", &api, &member, "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(4), "{out}");
    assert!(out.stdout.contains(&format!("uid={}\n", stratos_cloud::docker::DEFAULT_UID)), "{out}");
    assert!(out.stdout.contains(&format!("member={member} password=[]\n")), "{out}");
    assert!(out.stderr.contains("oops"), "{out}");
}
