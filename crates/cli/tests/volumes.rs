//! Persistent volumes (a cartridge's `persistence`) and one-off tasks, through the real
//! platform (`stratos up`, members that are real `stratos sample-http` processes or
//! containers): a file written into a member's volume survives `kill -9` of the member
//! (its replacement takes the same slot and finds it); `stratos volume list` shows the
//! volumes with the member of their slot; `stratos cluster restart` replaces the member
//! terminate-first, in its slot, and the replacement finds the file; after a scale-in a `removeOnTermination:
//! true` volume of a slot no longer used is removed; at undeploy every such volume is
//! removed and every `false` one kept; `stratos application run` runs a command in a new
//! member of the cluster, with the cluster's environment, its output and exit code
//! passed on, and nothing left running afterwards (nor once its client is killed).
//!
//! The tests run one at a time (a lock): each starts a platform and a few members.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use stratos_test_kit::docker as dk;
use support::containers::{platform_id, Cleanup};
use support::{cluster_members, eventually, free_port, id, Platform, Sandbox, SlowHttpApp, QUICK_SCALING};

const APP: &str = "notes";
const ALIAS: &str = "web";
const CLUSTER: &str = "notes.web";

static SERIAL: Mutex<()> = Mutex::new(());

/// The volumes every test's cartridge asks for: `keep` stays after undeploy, `scratch` goes.
fn persistence() -> Value {
    json!({
        "isRequired": true,
        "volume": [
            { "id": "keep", "size": "1", "mappingPath": "/data/keep", "removeOnTermination": false },
            { "id": "scratch", "size": 2, "mappingPath": "/data/scratch", "removeOnTermination": true }
        ]
    })
}

/// A platform (`extra` flags) with quick scaling.
fn start(sandbox: &Sandbox, extra: &[&str]) -> Platform {
    let mut args: Vec<&str> = QUICK_SCALING.to_vec();
    args.extend(extra);
    Platform::start(sandbox.path(), &args)
}

/// Deploys [`APP`] (one member of the sample server) with `iaas`, its cartridge given
/// [`persistence`] before the deploy.
fn deploy(platform: &Platform, sandbox: &Sandbox, iaas: support::Iaas<'_>) {
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port: free_port(),
        delay_ms: 1,
        threshold: 50.0,
        min: 1,
        max: 1,
        nps: &[("np1", 2)],
        iaas,
    };
    app.add(platform, sandbox.path());
    let file = sandbox.path().join("definitions").join("cartridge-slow-http.json");
    let mut cartridge: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    cartridge["persistence"] = persistence();
    std::fs::write(&file, serde_json::to_vec_pretty(&cartridge).unwrap()).unwrap();
    platform.ok(&["cartridge", "update", file.to_str().unwrap()]);
    app.deploy(platform);
}

/// The one active member of the cluster, once there is one (and only one).
fn active_member(platform: &Platform, within: Duration, not: Option<&str>) -> Value {
    let mut found = Value::Null;
    eventually(within, "one active member", || {
        let members = cluster_members(platform, CLUSTER);
        let active: Vec<&Value> = members.iter().filter(|m| m["status"] == "Active").collect();
        match active.as_slice() {
            [m] if members.len() == 1 && Some(id(m).as_str()) != not => {
                found = (*m).clone();
                Ok(())
            }
            _ => Err(format!("{} member(s), {} active", members.len(), active.len())),
        }
    });
    found
}

fn slot(member: &Value) -> String {
    member["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "slot")
        .map(|p| p["value"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// `stratos member exec MEMBER -- sh -c SCRIPT`.
fn exec(platform: &Platform, member: &str, script: &str) -> support::Output {
    let api = platform.api();
    support::stratos(&["member", "exec", "--api", &api, member, "--", "sh", "-c", script])
}

fn volumes(platform: &Platform) -> Vec<Value> {
    let out = platform.ok(&["volume", "list", APP, "-o", "json"]);
    let listed: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"));
    listed.as_array().cloned().unwrap_or_default()
}

/// Kills the member's processes with SIGKILL, as a crash would.
fn kill_9(sandbox: &Path, member: &str) {
    let groups: Vec<i32> =
        support::member_processes(sandbox).into_iter().filter(|p| p.member_id == member).map(|p| p.pgid).collect();
    assert!(!groups.is_empty(), "no process of {member}");
    for pgid in groups {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
    }
}

/// Writes into both volumes of the member in slot 0, kills it, and checks its
/// replacement (same slot) reads what it wrote; `kill` does the killing; `keep` reads
/// the file of volume `keep` in the replacement.
fn survives_kill(platform: &Platform, write: &str, read: &str, kill: impl FnOnce(&str)) -> String {
    let first = active_member(platform, Duration::from_secs(90), None);
    let first_id = id(&first);
    assert_eq!(slot(&first), "0", "{first}");
    let out = exec(platform, &first_id, write);
    assert!(out.success(), "{out}");

    let listed = volumes(platform);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for v in &listed {
        assert_eq!(v["clusterId"], CLUSTER, "{v}");
        assert_eq!(v["slot"], 0, "{v}");
        assert_eq!(v["memberId"], first_id.as_str(), "{v}");
        let keep = v["volumeId"] == "keep";
        assert_eq!(v["removeOnTermination"], !keep, "{v}");
        assert_eq!(v["mappingPath"], if keep { "/data/keep" } else { "/data/scratch" }, "{v}");
        assert_eq!(v["size"], if keep { 1 } else { 2 }, "{v}");
    }
    let table = platform.ok(&["volume", "list"]);
    assert!(table.stdout.contains("keep") && table.stdout.contains(&first_id), "{table}");

    kill(&first_id);
    let second = active_member(platform, Duration::from_secs(120), Some(&first_id));
    let second_id = id(&second);
    assert_eq!(slot(&second), "0", "the replacement takes the dead member's slot: {second}");
    let out = exec(platform, &second_id, read);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "written by the first member", "{out}");
    eventually(Duration::from_secs(10), "the volumes name the new member", || {
        let listed = volumes(platform);
        if listed.iter().all(|v| v["memberId"] == second_id.as_str()) {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    });
    second_id
}

/// Scales the cluster to 2 members (slots 0 and 1, each with its volumes), then back to
/// 1: a `scratch` volume is left only in a slot below the size or with a member, and
/// every `keep` volume stays.
fn scale_in_removes_only_unused_removable_volumes(platform: &Platform) {
    platform.ok(&["cluster", "scale", CLUSTER, "--min", "2", "--max", "2"]);
    eventually(Duration::from_secs(90), "two members, each with its volumes", || {
        let members = cluster_members(platform, CLUSTER);
        let slots: std::collections::BTreeSet<String> = members.iter().map(slot).collect();
        let listed = volumes(platform);
        if members.len() == 2 && slots.len() == 2 && listed.len() == 4 {
            Ok(())
        } else {
            Err(format!("slots {slots:?}, volumes {listed:?}"))
        }
    });
    platform.ok(&["cluster", "scale", CLUSTER, "--min", "1", "--max", "1"]);
    eventually(Duration::from_secs(90), "one member, the removable volumes of unused slots gone", || {
        let members = cluster_members(platform, CLUSTER);
        let listed = volumes(platform);
        let keep = listed.iter().filter(|v| v["volumeId"] == "keep").count();
        let stray =
            listed.iter().filter(|v| v["volumeId"] == "scratch" && v["slot"] != 0 && v["memberId"].is_null()).count();
        if members.len() == 1 && keep == 2 && stray == 0 {
            Ok(())
        } else {
            Err(format!("{} member(s), volumes {listed:?}", members.len()))
        }
    });
}

/// Undeploys and checks every `scratch` volume is removed, `keep` ones kept (and listed
/// with no member).
fn undeploy_keeps_only_keep(platform: &Platform) {
    let out = platform.cli(&["application", "undeploy", APP, "--timeout", "120s"]);
    assert!(out.success(), "{out}");
    eventually(Duration::from_secs(30), "only the kept volume is left", || {
        let listed = volumes(platform);
        let ids: Vec<&str> = listed.iter().filter_map(|v| v["volumeId"].as_str()).collect();
        if !ids.is_empty() && ids.iter().all(|i| *i == "keep") && listed.iter().all(|v| v["memberId"].is_null()) {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        }
    });
}

#[test]
fn a_local_volume_survives_kill_9_and_undeploy_honours_remove_on_termination() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let platform = start(&sandbox, &[]);
    deploy(&platform, &sandbox, support::Iaas::Local);
    let write = "echo 'written by the first member' > \"$STRATOS_VOLUME_KEEP/note\" \
                 && echo scratch > \"$STRATOS_VOLUME_SCRATCH/note\" \
                 && test -L volumes/keep && test \"$(cat volumes/keep/note)\" = 'written by the first member'";
    let read = "read -r line < \"$STRATOS_VOLUME_KEEP/note\" && echo \"$line\"";
    let sandbox_path = sandbox.path().to_path_buf();
    survives_kill(&platform, write, read, |member| kill_9(&sandbox_path, member));
    let listed = volumes(&platform);
    let keep_dir = listed.iter().find(|v| v["volumeId"] == "keep").unwrap()["name"].as_str().unwrap().to_string();
    let scratch_dir = listed.iter().find(|v| v["volumeId"] == "scratch").unwrap()["name"].as_str().unwrap().to_string();
    assert!(keep_dir.starts_with(sandbox.path().to_str().unwrap()), "{keep_dir}");
    scale_in_removes_only_unused_removable_volumes(&platform);
    undeploy_keeps_only_keep(&platform);
    assert!(Path::new(&keep_dir).join("note").is_file(), "{keep_dir} lost its file");
    assert!(!Path::new(&scratch_dir).exists(), "{scratch_dir} is still there");
}

#[test]
fn a_restarted_stateful_member_is_replaced_in_its_slot_and_finds_its_volume() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let platform = start(&sandbox, &[]);
    deploy(&platform, &sandbox, support::Iaas::Local);
    let first = active_member(&platform, Duration::from_secs(90), None);
    let first_id = id(&first);
    assert_eq!(slot(&first), "0", "{first}");
    let out = exec(&platform, &first_id, "echo 'before the restart' > \"$STRATOS_VOLUME_KEEP/note\"");
    assert!(out.success(), "{out}");

    // Terminate-first: the old member is gone before its replacement starts, in slot 0.
    let out = platform.cli(&["cluster", "restart", CLUSTER, "--timeout", "180s"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("1 member(s) replaced"), "{out}");
    let second = active_member(&platform, Duration::from_secs(120), Some(&first_id));
    let second_id = id(&second);
    assert_eq!(slot(&second), "0", "the replacement takes the slot its predecessor freed: {second}");
    let out = exec(&platform, &second_id, "read -r line < \"$STRATOS_VOLUME_KEEP/note\" && echo \"$line\"");
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "before the restart", "{out}");
    let listed = volumes(&platform);
    assert_eq!(listed.len(), 2, "no volume of another slot: {listed:?}");
    assert!(listed.iter().all(|v| v["slot"] == 0), "{listed:?}");
}

#[test]
fn a_task_runs_in_the_clusters_environment_and_leaves_nothing_running() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let platform = start(&sandbox, &[]);
    deploy(&platform, &sandbox, support::Iaas::Local);
    let member = id(&active_member(&platform, Duration::from_secs(90), None));
    let api = platform.api();
    let script = "echo \"task=$STRATOS_TASK app=$STRATOS_APP_ID cluster=$STRATOS_CLUSTER_ID\"; \
                  echo \"interval=$STRATOS_HEALTH_STATS_INTERVAL\"; echo \"bus=${STRATOS_BUS_PASSWORD:-none}\"; \
                  echo \"keep=${STRATOS_VOLUME_KEEP:-none}\"; sleep 600 & echo to-stderr >&2; exit 4";
    let started = std::time::Instant::now();
    let out = support::stratos(&["application", "run", "--api", &api, APP, "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(4), "{out}");
    // The background `sleep 600` did not hold the task up, nor outlive it.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert!(out.stdout.contains(&format!("task=true app={APP} cluster={CLUSTER}\n")), "{out}");
    // The cartridge's env.* property: the cluster's environment.
    assert!(out.stdout.contains("interval=1s\n"), "{out}");
    assert!(out.stdout.contains("bus=none\n"), "a task has no bus credentials: {out}");
    assert!(out.stdout.contains("keep=none\n"), "a task has no volumes: {out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");

    eventually(Duration::from_secs(10), "no task process left", || {
        let left: Vec<_> =
            support::member_processes(sandbox.path()).into_iter().filter(|p| p.member_id.contains(".task-")).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let dirs: Vec<String> = std::fs::read_dir(sandbox.path().join("members"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".task-"))
        .collect();
    assert!(dirs.is_empty(), "task directories left: {dirs:?}");
    // Not a member of the cluster: the cluster still has its one member.
    let members: Vec<String> = cluster_members(&platform, CLUSTER).iter().map(id).collect();
    assert_eq!(members, [member], "{members:?}");

    // A client that goes away takes its task with it, output or not.
    let mut command = Command::new(support::BIN);
    command.args(["application", "run", "--api", &api, APP, "--", "sh", "-c", "sleep 600"]);
    let client = support::spawn("stratos application run (to be killed)", command);
    eventually(Duration::from_secs(20), "the task runs", || {
        let tasks = support::member_processes(sandbox.path()).into_iter().filter(|p| p.member_id.contains(".task-"));
        if tasks.count() > 0 {
            Ok(())
        } else {
            Err("no task process yet".into())
        }
    });
    client.signal("KILL");
    drop(client);
    eventually(Duration::from_secs(20), "the task ended with its client", || {
        let left: Vec<_> =
            support::member_processes(sandbox.path()).into_iter().filter(|p| p.member_id.contains(".task-")).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });

    let out = support::stratos(&["application", "run", "--api", &api, APP, "--cluster", "nope", "--", "true"]);
    assert!(!out.success() && out.stderr.contains("cluster"), "{out}");
    let out = support::stratos(&["application", "run", "--api", &api, "no-such-app", "--", "true"]);
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
}

#[test]
fn a_docker_volume_survives_kill_9_and_undeploy_honours_remove_on_termination() {
    if !dk::engine_or_skip("a_docker_volume_survives_kill_9_and_undeploy_honours_remove_on_termination") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let image = dk::shell_image();
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = start(&sandbox, &[]);
    cleanup.platform(&platform_id(&platform));
    deploy(&platform, &sandbox, support::Iaas::Docker { image: &image, hosts: &[] });
    // As the members' unprivileged uid, at the volumes' mapping paths.
    let write = "test \"$STRATOS_VOLUME_KEEP\" = /data/keep \
                 && echo 'written by the first member' > \"$STRATOS_VOLUME_KEEP/note\" \
                 && echo scratch > /data/scratch/note";
    let read = "read -r line < /data/keep/note && echo \"$line\"";
    survives_kill(&platform, write, read, |member| {
        dk::docker(&["kill", &format!("stratos-{member}")]);
    });
    let listed = volumes(&platform);
    let name = |id: &str| listed.iter().find(|v| v["volumeId"] == id).unwrap()["name"].as_str().unwrap().to_string();
    let (keep, scratch) = (name("keep"), name("scratch"));
    assert!(listed.iter().all(|v| v["driver"] == "docker"), "{listed:?}");
    let label = dk::docker(&["volume", "inspect", "--format", "{{index .Labels \"io.stratos.slot\"}}", &keep]);
    assert_eq!(label, "0");
    undeploy_keeps_only_keep(&platform);
    assert!(dk::try_docker(&["volume", "inspect", &keep]).is_ok(), "{keep} is gone");
    assert!(dk::try_docker(&["volume", "inspect", &scratch]).is_err(), "{scratch} is still there");
}

#[test]
fn a_docker_task_runs_in_a_container_of_the_cluster_and_is_removed() {
    if !dk::engine_or_skip("a_docker_task_runs_in_a_container_of_the_cluster_and_is_removed") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let image = dk::shell_image();
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = start(&sandbox, &[]);
    let platform_id = platform_id(&platform);
    cleanup.platform(&platform_id);
    deploy(&platform, &sandbox, support::Iaas::Docker { image: &image, hosts: &[] });
    let member = id(&active_member(&platform, Duration::from_secs(90), None));
    let api = platform.api();
    let script = "echo \"task=$STRATOS_TASK cluster=$STRATOS_CLUSTER_ID interval=$STRATOS_HEALTH_STATS_INTERVAL\"; \
                  echo \"bus=${STRATOS_BUS_PASSWORD:-none}\"; echo to-stderr >&2; exit 5";
    let out = support::stratos(&["application", "run", "--api", &api, APP, "--", "/bin/sh", "-c", script]);
    assert_eq!(out.status.code(), Some(5), "{out}");
    assert!(out.stdout.contains(&format!("task=true cluster={CLUSTER} interval=1s\n")), "{out}");
    assert!(out.stdout.contains("bus=none\n"), "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    eventually(Duration::from_secs(20), "the task's container removed", || {
        let filter = format!("label=io.stratos.platform={platform_id}");
        let left = dk::docker(&["ps", "-a", "--filter", &filter, "--filter", "label=io.stratos.task", "-q"]);
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
    // A client that goes away: its task's container is removed (so stopped) too.
    let mut command = Command::new(support::BIN);
    let script = "echo started; exec /bin/sleep 600";
    command.args(["application", "run", "--api", &api, APP, "--", "/bin/sh", "-c", script]);
    let client = support::spawn("stratos application run (to be killed)", command);
    let tasks = || {
        let filter = format!("label=io.stratos.platform={platform_id}");
        dk::docker(&["ps", "-a", "--filter", &filter, "--filter", "label=io.stratos.task", "--format", "{{.Status}}"])
    };
    eventually(Duration::from_secs(30), "the task's output streams", || {
        if client.stdout().contains("started") && tasks().starts_with("Up") {
            Ok(())
        } else {
            Err(format!("containers: {:?}, client: {:?}", tasks(), client.stdout()))
        }
    });
    client.signal("KILL");
    drop(client);
    eventually(Duration::from_secs(30), "the task's container removed with its client", || {
        let left = tasks();
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
    let members: Vec<String> = cluster_members(&platform, CLUSTER).iter().map(id).collect();
    assert_eq!(members, [member], "{members:?}");
}
