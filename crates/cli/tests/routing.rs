//! Routing integrity and members outliving a bad store, end to end: the real
//! `stratos up`, members as real processes of the `local` driver, requests through
//! the built-in load balancer.
//!
//! - a host name of a deployed application cannot be claimed by another (409), and the
//!   owner keeps all its traffic;
//! - colliding cluster ids (`x.y` + `z`, `x` + `y.z`) are refused;
//! - a store that is empty, or another platform's, while members run does not
//!   terminate them: `stratos up` refuses to start and says how many it found;
//! - a SQLite `-shm` truncated under the platform no longer kills it (SIGBUS); an
//!   unwritable WAL is a clear error at start.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::{
    cluster_host, eventually, free_port, member_processes, topology_members, Output, Platform, Sandbox, SlowHttpApp,
};

/// `GET /` with `Host: host` to the load balancer on `port`: (status, body).
fn get_via_lb(port: u16, host: &str) -> std::io::Result<(u16, String)> {
    support::get_host(([127, 0, 0, 1], port).into(), host, "/", Duration::from_secs(2), Duration::from_secs(20))
}

/// Writes `definition` in `dir` and runs `stratos KIND add` on it, whatever the outcome.
fn try_add(platform: &Platform, dir: &Path, kind: &str, name: &str, definition: &serde_json::Value) -> Output {
    let file = dir.join(format!("{kind}-{name}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(definition).unwrap()).unwrap();
    platform.cli(&[kind, "add", file.to_str().unwrap()])
}

/// An application of one `slow-http` cluster (the cartridge [`SlowHttpApp::add`] defines).
fn slow_http_app(app: &str, alias: &str, host_names: &[&str]) -> serde_json::Value {
    json!({"applicationId": app, "components": {"cartridges": [{
        "type": "slow-http", "cartridgeMin": 1, "cartridgeMax": 3,
        "subscribableInfo": {"alias": alias, "autoscalingPolicy": "in-flight", "deploymentPolicy": "dp",
            "hostNames": host_names}}]}})
}

fn victim(proxy_port: u16) -> SlowHttpApp<'static> {
    SlowHttpApp {
        app: "victim",
        alias: "web",
        proxy_port,
        delay_ms: 0,
        threshold: 1000.0,
        min: 1,
        max: 1,
        nps: &[("np1", 10)],
        iaas: Default::default(),
    }
}

#[test]
fn a_host_name_hijack_is_refused_and_the_owner_keeps_its_traffic() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(&sandbox.path().join("data"), &[]);
    let proxy_port = free_port();
    let victim = victim(proxy_port);
    victim.add(&platform, sandbox.path());
    let host = cluster_host("victim", "web");
    // Added before the victim is deployed (nobody holds the name yet), deployed after.
    let thief = slow_http_app("thief", "web", &[&host]);
    let out = try_add(&platform, sandbox.path(), "application", "thief", &thief);
    assert!(out.success(), "{out}");
    victim.deploy(&platform);

    let out = platform.cli(&["application", "deploy", "thief", "--policy", "ap", "--timeout", "30s"]);
    assert!(!out.success(), "the hijacking deploy was accepted\n{out}");
    assert!(out.stderr.contains("409"), "{out}");
    assert!(out.stderr.contains(&format!("host name \"{host}\"")) && out.stderr.contains("victim"), "{out}");
    // Claiming it in a new application is refused at once.
    let out = try_add(&platform, sandbox.path(), "application", "thief2", &slow_http_app("thief2", "web", &[&host]));
    assert!(!out.success() && out.stderr.contains("409"), "{out}");

    // Nothing of the thief runs, and every request for the host reaches the victim.
    let clusters: Vec<String> =
        topology_members(&platform.topology()).iter().map(|m| m["clusterId"].as_str().unwrap().to_string()).collect();
    assert!(clusters.iter().all(|c| c == "victim.web"), "{clusters:?}");
    for i in 0..10 {
        let (status, body) = get_via_lb(proxy_port, &host).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(body.starts_with("member victim.web."), "request {i} was served by {body:?}");
    }
}

#[test]
fn colliding_cluster_ids_are_refused() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(&sandbox.path().join("data"), &[]);
    let first = SlowHttpApp { app: "x.y", alias: "z", max: 3, ..victim(free_port()) };
    first.add(&platform, sandbox.path());
    // `x` + `y.z` is cluster x.y.z too.
    let out = try_add(&platform, sandbox.path(), "application", "x", &slow_http_app("x", "y.z", &[]));
    assert!(out.success(), "{out}");
    let out = platform.cli(&["application", "deploy", "x.y", "--policy", "ap", "--timeout", "60s"]);
    assert!(out.success(), "{out}\n{}", platform.proc.describe());

    let out = platform.cli(&["application", "deploy", "x", "--policy", "ap", "--timeout", "30s"]);
    assert!(!out.success(), "the colliding deploy was accepted\n{out}");
    assert!(out.stderr.contains("409") && out.stderr.contains("\"x.y.z\""), "{out}");
    let runtime = platform.ok(&["application", "status", "x", "-o", "json"]).stdout;
    assert!(runtime.contains("not-deployed"), "{runtime}");
    let members = topology_members(&platform.topology());
    assert!(members.len() <= 3, "cluster x.y.z past its max: {}", members.len());
}

/// Every live member process's member id under `dir`, sorted.
fn running_members(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = member_processes(dir).into_iter().map(|p| p.member_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn an_empty_or_foreign_store_leaves_running_members_alone_and_says_so() {
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("data");
    let platform = Platform::start(&data, &[]);
    let app = SlowHttpApp { min: 2, max: 2, ..victim(free_port()) };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let members = eventually(Duration::from_secs(30), "both members run", || {
        let ids = running_members(&data);
        if ids.len() == 2 {
            Ok(ids)
        } else {
            Err(format!("{ids:?}"))
        }
    });
    let recorded = std::fs::read_to_string(data.join("members").join(&members[0]).join("member.json")).unwrap();
    let platform_id = serde_json::from_str::<serde_json::Value>(&recorded).unwrap()["platformId"]
        .as_str()
        .expect("member.json records the platform id")
        .to_string();
    let (api_port, mqtt_port) = (platform.api_port, platform.mqtt_port);
    platform.kill();

    // Another data dir that sees these members (its members dir is theirs): another platform.
    let other = sandbox.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink(data.join("members"), other.join("members")).unwrap();
    let refused = Platform::start_on(&other, free_port(), free_port(), &[]).err().expect("started on a foreign store");
    let said = refused.stderr();
    assert!(said.contains("2 running member(s)") && said.contains(&format!("2 of platform {platform_id}")), "{said}");
    assert!(said.contains("--adopt-members") && said.contains("--remove-members"), "{said}");
    assert_eq!(running_members(&data), members, "the members were touched");

    // The platform's own store, emptied: the same.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("stratos.db{suffix}")));
    }
    let refused = Platform::start_on(&data, api_port, mqtt_port, &[]).err().expect("started on an emptied store");
    let said = refused.stderr();
    assert!(said.contains("2 running member(s)") && said.contains("new or empty"), "{said}");
    assert_eq!(running_members(&data), members, "the members were touched");
    // They still serve through a load balancer that knows them? None runs now; their
    // processes answer on their own ports.

    // The operator removes them explicitly.
    let platform = Platform::start_again(&data, api_port, mqtt_port, &["--remove-members"]);
    eventually(Duration::from_secs(30), "the members are terminated", || {
        let left = running_members(&data);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert!(platform.health()["status"] == "ok");
}

#[test]
fn adopt_members_keeps_the_running_members_of_a_lost_store_and_records_them() {
    // The store is lost under two running members; `--adopt-members` must keep them
    // (not reap them as orphans) and record them once their application is deployed again.
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("data");
    let platform = Platform::start(&data, &[]);
    let app = SlowHttpApp { min: 2, max: 2, ..victim(free_port()) };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let members = eventually(Duration::from_secs(30), "both members run", || {
        let ids = running_members(&data);
        if ids.len() == 2 {
            Ok(ids)
        } else {
            Err(format!("{ids:?}"))
        }
    });
    let (api_port, mqtt_port) = (platform.api_port, platform.mqtt_port);
    platform.kill();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("stratos.db{suffix}")));
    }

    let platform = Platform::start_again(&data, api_port, mqtt_port, &["--adopt-members"]);
    // No deployment names their cluster yet: they are left running. Deployed again, the
    // application gets them back, not new members.
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let recorded = eventually(Duration::from_secs(30), "the members are in the topology", || {
        let mut ids: Vec<String> = topology_members(&platform.topology())
            .iter()
            .map(|m| m["memberId"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        if ids == members {
            Ok(ids)
        } else {
            Err(format!("{ids:?}"))
        }
    });
    assert_eq!(recorded, members);
    for m in topology_members(&platform.topology()) {
        assert_eq!(m["status"], "Active", "{m:#}");
    }
    assert_eq!(running_members(&data), members, "an adopted member was terminated or another started");
}

#[test]
fn a_shared_memory_file_truncated_under_the_platform_does_not_crash_it() {
    // Truncating `stratos.db-shm` under a running platform killed it with SIGBUS (SQLite
    // mapped it; its pages vanished). The store keeps its WAL index in memory now.
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("data");
    let platform = Platform::start(&data, &[]);
    let shm = data.join("stratos.db-shm");
    assert!(!shm.exists(), "the store maps {}", shm.display());
    std::fs::write(&shm, b"").unwrap();
    // Writes and reads after it: every definition of php-web is stored and listed.
    platform.add_php_web();
    assert_eq!(platform.health()["status"], "ok");
    assert_eq!(platform.list("cartridge").as_array().unwrap().len(), 2);
    // Alive to the end: it exits 0 on SIGTERM (`stop` checks).
    platform.stop();
}

#[test]
fn an_unwritable_wal_is_a_clear_error_at_start() {
    // As root every file is writable: the platform runs as `nobody` here.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("skipped: needs root to run the platform as another user");
        return;
    }
    const NOBODY: u32 = 65534;
    let sandbox = Sandbox::new();
    let data = sandbox.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::chown(sandbox.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = run_as(NOBODY, &["up", "--help"]);
    assert!(out.status.success(), "`stratos` cannot run as nobody: {}", String::from_utf8_lossy(&out.stderr));
    // The platform's database, and a WAL it cannot write (owned by root, read-only).
    let db = data.join("stratos.db");
    std::fs::write(&db, b"").unwrap();
    std::os::unix::fs::chown(&db, Some(NOBODY), Some(NOBODY)).unwrap();
    let wal = data.join("stratos.db-wal");
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();

    let (api, mqtt) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let out =
        run_as(NOBODY, &["up", "--data-dir", data.to_str().unwrap(), "--api-listen", &api, "--mqtt-listen", &mqtt]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), None, "killed by a signal: {stderr}");
    assert!(!out.status.success(), "started with an unwritable WAL: {stderr}");
    assert!(stderr.contains("stratos.db-wal") && stderr.contains("not writable"), "{stderr}");
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs `stratos ARGS` as `uid` (and its group), to completion (60 s at most).
fn run_as(uid: u32, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(support::BIN);
    command.args(args).uid(uid).gid(uid).env_remove("RUST_LOG");
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`stratos {}` as uid {uid} did not finish within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
