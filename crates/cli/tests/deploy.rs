//! End-to-end: deploy an application and see it run. The real `stratos up` with its
//! embedded broker and the `local` driver; members are real processes (the cartridge
//! agent and, as cartridges, `stratos sample-http` and Python's HTTP server, so `python3`
//! must be on PATH) answering on real ports.
//!
//! Members run in process groups of their own and outlive `stratos up`: every test keeps
//! its data directory in a [`Sandbox`], which kills whatever member is left when the test
//! ends, even by a panic.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use stratos_bus::AnyEvent;
use support::{
    cluster, eventually, http_get, id, member_list, member_processes, proc_stat, signal_group, topology_members,
    EventLog, MemberProcess, Output, Platform, Sandbox,
};

const APP: &str = "two";
const POLICY: &str = "ap";
/// The clusters of [`APP`]: (alias, min).
const CLUSTERS: &[(&str, u64)] = &[("api", 1), ("web", 2)];

/// `web`'s cartridge: the platform's sample HTTP server, which answers with its member's id.
/// `${PORT}` is the port the local driver allocates.
fn sample_http_command() -> Value {
    json!(["stratos", "sample-http", "--port", "${PORT}"])
}

/// `api`'s cartridge: a program of the system's (Python's HTTP server).
fn python_http_command() -> Value {
    json!(["python3", "-m", "http.server", "${PORT}", "--bind", "127.0.0.1"])
}

/// Writes `definition` as JSON in `dir` and adds it with `stratos KIND add`.
fn add(platform: &Platform, dir: &Path, kind: &str, definition: Value) {
    let defs = dir.join("definitions");
    std::fs::create_dir_all(&defs).unwrap();
    let id = ["id", "type", "applicationId"].iter().find_map(|f| definition[f].as_str()).unwrap().to_owned();
    let file = defs.join(format!("{kind}-{id}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&definition).unwrap()).unwrap();
    let out = platform.ok(&[kind, "add", file.to_str().unwrap()]);
    assert!(out.stdout.contains("added"), "`{kind} add` printed\n{out}");
}

fn cartridge(cartridge_type: &str, iaas: Value) -> Value {
    json!({
        "type": cartridge_type,
        "category": "framework",
        "multiTenant": false,
        "portMapping": [{ "name": "http", "protocol": "http", "port": 8000, "proxyPort": 8280 }],
        "iaasProvider": [iaas]
    })
}

fn subscription(cartridge_type: &str, alias: &str, min: u64, max: u64) -> Value {
    json!({
        "type": cartridge_type,
        "cartridgeMin": min,
        "cartridgeMax": max,
        "subscribableInfo": { "alias": alias, "autoscalingPolicy": "asp", "deploymentPolicy": "dp" }
    })
}

/// The network partition, the policies, the two cartridges and the application [`APP`]:
/// `api` (1 member) starts before `web` (2..4 members).
fn add_definitions(platform: &Platform, dir: &Path) {
    add(
        platform,
        dir,
        "network-partition",
        json!({ "id": "np-test", "provider": "local", "partitions": [{ "id": "p1" }] }),
    );
    add(
        platform,
        dir,
        "autoscaling-policy",
        json!({ "id": "asp", "loadThresholds": { "requestsInFlight": { "threshold": 80 } } }),
    );
    add(
        platform,
        dir,
        "deployment-policy",
        json!({
            "id": "dp",
            "networkPartitions": [{
                "id": "np-test",
                "partitionAlgo": "one-after-another",
                "partitions": [{ "id": "p1", "partitionMax": 10 }]
            }]
        }),
    );
    add(
        platform,
        dir,
        "application-policy",
        json!({ "id": POLICY, "algorithm": "one-after-another", "networkPartitions": ["np-test"] }),
    );
    add(
        platform,
        dir,
        "cartridge",
        cartridge("web-http", json!({ "type": "local", "command": sample_http_command() })),
    );
    add(
        platform,
        dir,
        "cartridge",
        cartridge("api-http", json!({ "type": "local", "command": python_http_command() })),
    );
    add(
        platform,
        dir,
        "application",
        json!({
            "applicationId": APP,
            "components": {
                // `web` first: the startup order, not the listing order, decides.
                "cartridges": [subscription("web-http", "web", 2, 4), subscription("api-http", "api", 1, 2)],
                "dependencies": { "startupOrders": [{ "aliases": ["cartridge.api", "cartridge.web"] }] }
            }
        }),
    );
}

/// `stratos application status APP -o json`.
fn status(platform: &Platform, app: &str) -> Value {
    let out = platform.ok(&["application", "status", app, "-o", "json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("`application status -o json` is not JSON: {e}\n{out}"))
}

/// The port the member's cartridge listens on (the allocated one, in the topology).
fn port(member: &Value) -> u16 {
    let port = member["ports"][0]["value"].as_u64().unwrap_or_else(|| panic!("a member without a port: {member:#}"));
    u16::try_from(port).unwrap()
}

/// GET / on the member's port answers 200; the sample HTTP server (`web`) names its member.
fn answers_http(member: &Value) -> Result<(), String> {
    let (id, port) = (id(member), port(member));
    match http_get(port, "/") {
        Ok((200, _)) if member["clusterId"] != format!("{APP}.web") => Ok(()),
        Ok((200, body)) if body == format!("member {id} path /\n") => Ok(()),
        Ok((status, body)) => Err(format!("GET / on port {port} of member {id} answered {status}: {body:?}")),
        Err(e) => Err(format!("GET / on port {port} of member {id}: {e}")),
    }
}

fn assert_answers_http(member: &Value) {
    if let Err(e) = answers_http(member) {
        panic!("{e}");
    }
}

/// Deploys [`APP`] with the CLI, which waits until every cluster has its minimum active.
fn deploy(platform: &Platform) -> Output {
    let out = platform.cli(&["application", "deploy", APP, "--policy", POLICY, "--timeout", "60s", "-o", "json"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    out
}

/// Every cluster of [`APP`] has exactly its minimum of members, all active and answering.
fn clusters_at_minimum(platform: &Platform) -> Result<Vec<Value>, String> {
    let members = topology_members(&platform.topology());
    for (alias, min) in CLUSTERS {
        let of: Vec<&Value> = members.iter().filter(|m| m["clusterId"] == format!("{APP}.{alias}")).collect();
        if of.len() as u64 != *min || of.iter().any(|m| m["status"] != "Active") {
            return Err(format!("cluster {alias}: {of:#?}"));
        }
    }
    for m in &members {
        answers_http(m)?;
    }
    Ok(members)
}

/// Member id → the process groups of its processes.
fn groups_by_member(processes: &[MemberProcess]) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for p in processes {
        out.entry(p.member_id.clone()).or_default().insert(p.pgid);
    }
    out
}

fn member_dirs(data_dir: &Path, with: &str) -> BTreeSet<String> {
    std::fs::read_dir(data_dir.join("members"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join(with).exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn deploy_two_clusters_all_members_activate_and_answer() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    let events = EventLog::topology(&platform);

    let out = deploy(&platform);
    assert!(out.stderr.contains("deployed"), "{out}");
    let printed: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"));
    assert_eq!(printed["status"], "deployed", "{printed:#}");

    let runtime = status(&platform, APP);
    assert_eq!(runtime["status"], "deployed", "{runtime:#}");
    assert_eq!(runtime["applicationPolicyId"], POLICY, "{runtime:#}");
    for (alias, min) in CLUSTERS {
        let c = cluster(&runtime, alias);
        assert_eq!(c["activeMembers"].as_u64(), Some(*min), "cluster {alias}: {c:#}");
        assert_eq!(c["min"].as_u64(), Some(*min), "cluster {alias}: {c:#}");
        assert_eq!(c["status"], "Active", "cluster {alias}: {c:#}");
        assert_eq!(c["members"].as_array().map(Vec::len), Some(*min as usize), "cluster {alias}: {c:#}");
        assert!(c["error"].is_null(), "cluster {alias}: {c:#}");
        let host = format!("{APP}.{alias}.stratos.local");
        assert!(c["hostNames"].as_array().unwrap().iter().any(|h| h == host.as_str()), "no {host}: {c:#}");
    }

    // Every member is Active in `member list`, on a port of its own that answers HTTP.
    let members = member_list(&platform);
    assert_eq!(members.len(), 3, "{members:#?}");
    let mut ports = BTreeSet::new();
    for m in &members {
        assert_eq!(m["status"], "Active", "{m:#}");
        assert_eq!(m["defaultPrivateIp"], "127.0.0.1", "{m:#}");
        assert_eq!(m["networkPartitionId"], "np-test", "{m:#}");
        assert_eq!(m["partitionId"], "p1", "{m:#}");
        assert!(ports.insert(port(m)), "two members on port {}: {members:#?}", port(m));
        assert_answers_http(m);
    }
    let table = platform.ok(&["member", "list"]);
    for m in &members {
        let row =
            table.stdout.lines().find(|l| l.contains(&id(m))).unwrap_or_else(|| panic!("no row for {m}\n{table}"));
        assert!(row.contains("Active"), "{row}");
        assert!(row.contains(&format!("127.0.0.1:{}", port(m))), "{row}");
    }

    // Each member is one process group: the agent and the cartridge it runs.
    let groups = groups_by_member(&member_processes(sandbox.path()));
    let ids: BTreeSet<String> = members.iter().map(id).collect();
    assert_eq!(groups.keys().cloned().collect::<BTreeSet<_>>(), ids, "member processes: {groups:?}");
    assert!(groups.values().all(|g| g.len() == 1), "a member spans several process groups: {groups:?}");

    // Startup order: `api` was active before the first `web` member was created.
    let events = events.events();
    let api_active = events
        .iter()
        .position(|e| matches!(e, AnyEvent::MemberActivatedEvent(a) if a.member.cluster_id == "two.api"))
        .unwrap_or_else(|| panic!("no MemberActivatedEvent for two.api: {events:#?}"));
    let web_created = events
        .iter()
        .position(|e| matches!(e, AnyEvent::MemberCreatedEvent(c) if c.member.cluster_id == "two.web"))
        .unwrap_or_else(|| panic!("no MemberCreatedEvent for two.web: {events:#?}"));
    assert!(api_active < web_created, "a web member was created before api was active: {events:#?}");
    let init_time = |alias: &str| -> Vec<u64> {
        members
            .iter()
            .filter(|m| m["clusterId"] == format!("{APP}.{alias}"))
            .map(|m| m["initTime"].as_u64().unwrap())
            .collect()
    };
    let (api, web) = (init_time("api"), init_time("web"));
    assert!(web.iter().all(|w| api.iter().all(|a| a < w)), "initTime: api {api:?}, web {web:?}");
}

#[test]
fn killed_member_is_replaced() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    deploy(&platform);
    let before: BTreeSet<String> = member_list(&platform).iter().map(id).collect();
    let events = EventLog::topology(&platform);

    // kill -9 the whole member: its agent and its HTTP server.
    let victim = member_list(&platform).into_iter().find(|m| m["clusterId"] == "two.web").unwrap();
    let victim_id = id(&victim);
    let processes: Vec<MemberProcess> =
        member_processes(sandbox.path()).into_iter().filter(|p| p.member_id == victim_id).collect();
    let pgid = processes.first().unwrap_or_else(|| panic!("no process of member {victim_id}")).pgid;
    assert!(signal_group(pgid, "KILL"), "kill -KILL -- -{pgid}");

    let started = Instant::now();
    let members = eventually(Duration::from_secs(20), "the killed member replaced", || {
        let members = clusters_at_minimum(&platform)?;
        if members.iter().any(|m| id(m) == victim_id) {
            return Err(format!("{victim_id} is still in the topology"));
        }
        Ok(members)
    });
    eprintln!("the killed member was replaced in {:?}", started.elapsed());
    let new: Vec<&Value> = members.iter().filter(|m| !before.contains(&id(m))).collect();
    assert_eq!(new.len(), 1, "exactly one new member: {members:#?}");
    assert_eq!(new[0]["clusterId"], "two.web", "{:#}", new[0]);
    assert_answers_http(new[0]);
    assert!(http_get(port(&victim), "/").is_err(), "the killed member's port still answers");

    let terminated = events.wait_for(
        Duration::from_secs(10),
        "MemberTerminatedEvent of the killed member",
        |e| matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == victim_id),
    );
    let AnyEvent::MemberTerminatedEvent(terminated) = terminated else { unreachable!() };
    assert_eq!(terminated.member.cluster_id, "two.web");
    assert!(!terminated.reason.is_empty(), "no reason given");
    events.wait_for(
        Duration::from_secs(10),
        "MemberActivatedEvent of the new member",
        |e| matches!(e, AnyEvent::MemberActivatedEvent(a) if a.member.member_id == id(new[0])),
    );

    let runtime = status(&platform, APP);
    assert_eq!(cluster(&runtime, "web")["activeMembers"].as_u64(), Some(2), "{runtime:#}");
    assert_eq!(cluster(&runtime, "api")["activeMembers"].as_u64(), Some(1), "{runtime:#}");
    // The member's process group is gone for good, and no other member has a second one.
    let groups = groups_by_member(&member_processes(sandbox.path()));
    assert!(!groups.contains_key(&victim_id), "{groups:?}");
    assert_eq!(groups.len(), 3, "{groups:?}");

    // kill -9 only the agent of the `api` member (Python's server lives on in its group): the
    // member is replaced all the same, and what was left of it is stopped.
    let victim = members.iter().find(|m| m["clusterId"] == "two.api").unwrap().clone();
    let victim_id = id(&victim);
    let processes: Vec<MemberProcess> =
        member_processes(sandbox.path()).into_iter().filter(|p| p.member_id == victim_id).collect();
    let agent = processes.iter().find(|p| p.pid == p.pgid).unwrap_or_else(|| panic!("no agent: {processes:?}"));
    assert!(processes.len() >= 2, "the agent and its app: {processes:?}");
    let status = Command::new("kill").args(["-KILL", &agent.pid.to_string()]).status().unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(20), "the member whose agent was killed replaced", || {
        let members = clusters_at_minimum(&platform)?;
        match members.iter().find(|m| id(m) == victim_id) {
            Some(_) => Err(format!("{victim_id} is still in the topology")),
            None => Ok(()),
        }
    });
    let left: Vec<MemberProcess> =
        member_processes(sandbox.path()).into_iter().filter(|p| p.member_id == victim_id).collect();
    assert!(left.is_empty(), "the app of a member whose agent died runs on: {left:?}");
    assert!(http_get(port(&victim), "/").is_err(), "the app of a member whose agent died still answers");
    events.wait_for(
        Duration::from_secs(10),
        "MemberTerminatedEvent of the member whose agent was killed",
        |e| matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == victim_id),
    );
}

#[test]
fn controller_restart_adopts_members() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    deploy(&platform);
    let members = member_list(&platform);
    let ids: BTreeSet<String> = members.iter().map(id).collect();
    let groups = groups_by_member(&member_processes(sandbox.path()));
    assert_eq!(groups.keys().cloned().collect::<BTreeSet<_>>(), ids, "{groups:?}");

    let (data_dir, api_port, mqtt_port) = (platform.data_dir.clone(), platform.api_port, platform.mqtt_port);
    platform.kill();
    // The members live on without the platform.
    assert_eq!(groups_by_member(&member_processes(sandbox.path())), groups, "members died with the platform");

    let some_member = ids.iter().next().unwrap();
    let orphan_id = "two.web.0123456789ab";
    let (mut orphan, orphan_dir) = plant_orphan(&data_dir, some_member, orphan_id, "two.web");
    let orphan_pid = orphan.id() as i32;

    let platform = Platform::start_again(&data_dir, api_port, mqtt_port, &[]);
    let restarted = Instant::now();

    // The orphan is terminated (SIGTERM to its group) and its record retired.
    let exit = eventually(Duration::from_secs(20), "the orphan terminated", || {
        let exit = orphan.try_wait().unwrap().ok_or_else(|| format!("`sleep` (pid {orphan_pid}) still runs"))?;
        if orphan_dir.join("member.json").exists() {
            return Err("the orphan's record is still active".into());
        }
        Ok(exit)
    });
    assert!(!exit.success(), "the orphan ended on its own: {exit}");
    assert!(orphan_dir.join("member.terminated.json").exists(), "the orphan's record was not retired");

    // Every agent reconnected to the restarted broker.
    eventually(Duration::from_secs(20), "every agent reconnected", || {
        for id in &ids {
            let log = std::fs::read_to_string(data_dir.join("members").join(id).join("agent.log")).unwrap_or_default();
            if !log.contains("reconnected to the event bus") {
                return Err(format!("{id}'s agent.log:\n{log}"));
            }
        }
        Ok(())
    });

    // For a while (several reconcile rounds): the same members, Active, answering, no new one.
    let expected_dirs: BTreeSet<String> = ids.iter().cloned().chain([orphan_id.to_owned()]).collect();
    while restarted.elapsed() < Duration::from_secs(8) {
        let now = member_list(&platform);
        assert_eq!(now.iter().map(id).collect::<BTreeSet<_>>(), ids, "members changed: {now:#?}");
        assert!(now.iter().all(|m| m["status"] == "Active"), "{now:#?}");
        assert_eq!(member_dirs(&data_dir, ""), expected_dirs, "member directories");
        assert_eq!(member_dirs(&data_dir, "member.json"), ids, "member records");
        // The same processes: no member started twice, none restarted.
        assert_eq!(groups_by_member(&member_processes(sandbox.path())), groups, "member processes");
        std::thread::sleep(Duration::from_millis(500));
    }
    for m in &members {
        assert_answers_http(m);
    }
    let runtime = status(&platform, APP);
    for (alias, min) in CLUSTERS {
        let c = cluster(&runtime, alias);
        assert_eq!(c["activeMembers"].as_u64(), Some(*min), "{c:#}");
        assert_eq!(c["status"], "Active", "{c:#}");
    }
}

/// An orphan: a process with a member record (the local driver's `member.json`) of
/// this platform (as `known_member`'s records it) that no topology names, in
/// `cluster_id`. (Another platform's, or one with no platform id, would make the
/// platform refuse to start: tests/routing.rs.) Its process and directory.
fn plant_orphan(
    data_dir: &Path,
    known_member: &str,
    orphan_id: &str,
    cluster_id: &str,
) -> (std::process::Child, std::path::PathBuf) {
    let some_member = data_dir.join("members").join(known_member).join("member.json");
    let platform_id: Value = serde_json::from_slice(&std::fs::read(some_member).unwrap()).unwrap();
    let platform_id = platform_id["platformId"].as_str().expect("members record their platform id").to_string();
    let orphan_dir = data_dir.join("members").join(orphan_id);
    std::fs::create_dir_all(&orphan_dir).unwrap();
    let orphan = {
        use std::os::unix::process::CommandExt;
        Command::new("sleep")
            .arg("300")
            .current_dir(&orphan_dir)
            .env("STRATOS_MEMBER_ID", orphan_id)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let orphan_pid = orphan.id() as i32;
    let (_, _, start_ticks) = proc_stat(orphan_pid).expect("the orphan's /proc/<pid>/stat");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let record = json!({
        "memberId": orphan_id,
        "clusterId": cluster_id,
        "pid": orphan_pid,
        "startTicks": start_ticks,
        "address": "127.0.0.1",
        "ports": [],
        "startedAt": now_ms,
        "platformId": platform_id
    });
    std::fs::write(orphan_dir.join("member.json"), serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    (orphan, orphan_dir)
}

/// A cluster whose stored topology document cannot be read (corrupted while the
/// platform was stopped) is frozen: after a restart its members run on (not reaped as
/// orphans, though no topology the controller could read names them), no member is
/// started in their place, `application status` names the document, and the other
/// application runs as before.
#[test]
fn an_unreadable_cluster_document_freezes_its_cluster() {
    use stratos_model::topology::Cluster;
    use stratos_store::Record;

    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    add(
        &platform,
        sandbox.path(),
        "application",
        json!({ "applicationId": "solo", "components": { "cartridges": [subscription("web-http", "web", 1, 2)] } }),
    );
    deploy(&platform);
    let out = platform.cli(&["application", "deploy", "solo", "--policy", POLICY, "--timeout", "60s"]);
    assert!(out.success(), "`application deploy solo` failed\n{out}\n{}", platform.proc.describe());
    let members = member_list(&platform);
    let of =
        |cluster: &str| -> BTreeSet<String> { members.iter().filter(|m| m["clusterId"] == cluster).map(id).collect() };
    let (solo, two) = (of("solo.web"), of("two.web").into_iter().chain(of("two.api")).collect::<BTreeSet<_>>());
    assert_eq!(solo.len(), 1, "{members:#?}");
    let groups = groups_by_member(&member_processes(sandbox.path()));
    let (data_dir, api_port, mqtt_port) = (platform.data_dir.clone(), platform.api_port, platform.mqtt_port);
    platform.kill();

    // While it is stopped: solo.web's document becomes JSON that is no cluster, written
    // with the store's raw API (the store is the platform's alone while it runs).
    let db = data_dir.join("stratos.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = stratos_store::Store::open_sqlite(&db).await.unwrap();
        let bad = json!({ "clusterId": "solo.web", "members": "lost" });
        store.put(stratos_model::SUPER_TENANT, Cluster::COLLECTION, "solo.web", &bad).await.unwrap();
    });
    // A real orphan beside it: once it is reaped, the reconcile that would have reaped
    // solo.web's member has run.
    let orphan_id = "two.web.0123456789ab";
    let (mut orphan, _) = plant_orphan(&data_dir, two.iter().next().unwrap(), orphan_id, "two.web");

    let platform = Platform::start_again(&data_dir, api_port, mqtt_port, &[]);
    eventually(Duration::from_secs(30), "the orphan terminated", || {
        orphan.try_wait().unwrap().map(|_| ()).ok_or_else(|| "the planted orphan still runs".to_string())
    });
    // Reconciles go on while the other application converges and answers.
    eventually(Duration::from_secs(30), "two's members active and answering", || {
        let now: Vec<Value> = member_list(&platform).into_iter().filter(|m| two.contains(&id(m))).collect();
        if now.len() != two.len() || now.iter().any(|m| m["status"] != "Active") {
            return Err(format!("{now:#?}"));
        }
        now.iter().try_for_each(answers_http)
    });

    // solo.web's member still runs, the same processes; no other member was started.
    let after = groups_by_member(&member_processes(sandbox.path()));
    for member in &solo {
        assert_eq!(after.get(member), groups.get(member), "solo.web's member {member} was stopped or restarted");
    }
    let listed: BTreeSet<String> = member_list(&platform).iter().map(id).collect();
    assert_eq!(listed, two, "members in the topology (solo.web's is in no readable document)");
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), &two | &solo, "member processes: {after:?}");

    // `application status` names the document; the other application is as it was.
    let runtime = status(&platform, "solo");
    let c = cluster(&runtime, "web");
    assert_eq!(c["status"], "Unreadable", "{runtime:#}");
    let error = c["error"].as_str().unwrap_or_default();
    assert!(error.contains("topology-cluster/solo.web") && error.contains("tenant -1234"), "{runtime:#}");
    let table = platform.ok(&["application", "status", "solo"]);
    assert!(table.stdout.contains("topology-cluster/solo.web"), "{table}");
    let runtime = status(&platform, APP);
    for (alias, min) in CLUSTERS {
        let c = cluster(&runtime, alias);
        assert_eq!((c["activeMembers"].as_u64(), &c["status"]), (Some(*min), &json!("Active")), "{c:#}");
        assert!(c["error"].is_null(), "{c:#}");
    }
}

#[test]
fn undeploy_leaves_no_process() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    deploy(&platform);
    let members = member_list(&platform);
    assert_eq!(members.len(), 3, "{members:#?}");
    assert!(!member_processes(sandbox.path()).is_empty());

    let out = platform.cli(&["application", "undeploy", APP, "--timeout", "60s"]);
    assert!(out.success(), "`application undeploy` failed\n{out}\n{}", platform.proc.describe());
    assert!(out.stderr.contains("undeployed"), "{out}");

    let runtime = status(&platform, APP);
    assert_eq!(runtime["status"], "not-deployed", "{runtime:#}");
    assert_eq!(runtime["clusters"], json!([]), "{runtime:#}");
    let table = platform.ok(&["application", "status", APP]);
    assert!(table.stdout.contains("not-deployed"), "{table}");
    assert_eq!(member_list(&platform), Vec::<Value>::new());
    let table = platform.ok(&["member", "list"]);
    assert!(table.stdout.contains("no members"), "{table}");
    assert_eq!(platform.topology()["services"], json!({}), "the topology keeps services");

    let left = member_processes(sandbox.path());
    assert!(left.is_empty(), "member processes outlive the undeploy: {left:?}");
    for m in &members {
        let addr = ([127, 0, 0, 1], port(m)).into();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "port {} of member {} still accepts connections",
            port(m),
            id(m)
        );
    }
    assert!(member_dirs(sandbox.path(), "member.json").is_empty(), "member records remain");

    // Undeployed, it is no longer deployed, and can be removed.
    let out = platform.cli(&["application", "undeploy", APP]);
    assert!(!out.success() && out.stderr.contains("not deployed"), "{out}");
    platform.ok(&["application", "remove", APP]);

    // Added and deployed again, it runs again, with new members.
    let file = sandbox.path().join("definitions").join(format!("application-{APP}.json"));
    platform.ok(&["application", "add", file.to_str().unwrap()]);
    deploy(&platform);
    let again =
        eventually(Duration::from_secs(10), "the clusters back at their minimum", || clusters_at_minimum(&platform));
    let old: BTreeSet<String> = members.iter().map(id).collect();
    assert!(again.iter().all(|m| !old.contains(&id(m))), "a member id came back: {again:#?}");
}

#[test]
fn failing_command_reports_a_clear_error() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    let dir = sandbox.path();
    add(
        &platform,
        dir,
        "cartridge",
        cartridge("broken", json!({ "type": "local", "command": ["no-such-program-xyz"] })),
    );
    add(
        &platform,
        dir,
        "application",
        json!({ "applicationId": "broken", "components": { "cartridges": [subscription("broken", "bad", 1, 2)] } }),
    );
    let events = EventLog::topology(&platform);

    let started = Instant::now();
    let out = platform.cli(&["application", "deploy", "broken", "--policy", POLICY, "--timeout", "15s"]);
    let waited = started.elapsed();
    assert!(!out.success(), "deploying a cartridge that cannot start succeeded\n{out}");
    assert!(out.stderr.contains("no-such-program-xyz"), "the error does not name the program\n{out}");
    assert!(out.stderr.contains("15s"), "the error does not say how long it waited\n{out}");

    let runtime = status(&platform, "broken");
    let c = cluster(&runtime, "bad");
    let error = c["error"].as_str().unwrap_or_else(|| panic!("no error on the cluster: {c:#}"));
    assert!(error.contains("no-such-program-xyz"), "{error}");
    assert!(error.contains("failed start"), "the error does not count failed starts: {error}");
    assert_eq!(c["activeMembers"].as_u64(), Some(0), "{c:#}");
    let table = platform.ok(&["application", "status", "broken"]);
    assert!(table.stdout.contains("no-such-program-xyz"), "{table}");
    assert!(table.stdout.contains("failed start"), "{table}");

    // Back-off: over the deploy's wait (≥ 15 s) only a handful of members were tried.
    let created = events
        .events()
        .iter()
        .filter(|e| matches!(e, AnyEvent::MemberCreatedEvent(c) if c.member.cluster_id == "broken.bad"))
        .count();
    eprintln!("{created} member(s) tried in {waited:?}; the cluster's error: {error}");
    assert!(created >= 2, "the failed member was not retried within {waited:?} ({created} created)");
    assert!(created <= 6, "{created} members created in {waited:?}: no back-off");
}

#[test]
fn deploy_errors_are_4xx() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    let dir = sandbox.path();
    // A cartridge only Docker can run, in an application whose partition is `local`.
    add(&platform, dir, "cartridge", cartridge("docker-only", json!({ "type": "docker", "imageId": "nginx:1" })));
    add(
        &platform,
        dir,
        "application",
        json!({ "applicationId": "dockerized", "components": { "cartridges": [subscription("docker-only", "d", 1, 1)] } }),
    );

    let fails = |args: &[&str], code: &str, words: &[&str]| {
        let out = platform.cli(args);
        assert!(!out.success(), "`stratos {}` succeeded\n{out}", args.join(" "));
        assert!(out.stderr.contains(&format!("({code})")), "`stratos {}`: not a {code}\n{out}", args.join(" "));
        for w in words {
            assert!(out.stderr.contains(w), "`stratos {}`: no {w:?} in\n{out}", args.join(" "));
        }
    };
    fails(&["application", "deploy", "nope", "--policy", POLICY], "404", &["does not exist", "nope"]);
    fails(&["application", "deploy", APP, "--policy", "nope"], "404", &["does not exist", "nope"]);
    fails(
        &["application", "deploy", "dockerized", "--policy", POLICY],
        "400",
        &["components.cartridges[0].type", "iaasProvider", "\"local\"", "docker-only"],
    );
    assert_eq!(status(&platform, "dockerized")["status"], "not-deployed", "a refused deploy was stored");
    fails(&["application", "status", "nope"], "404", &["does not exist"]);
    fails(&["application", "undeploy", APP], "404", &["not deployed"]);

    platform.ok(&["application", "deploy", APP, "--policy", POLICY, "--no-wait"]);
    fails(&["application", "deploy", APP, "--policy", POLICY], "409", &["already deployed"]);
    fails(&["application", "remove", APP], "409", &["undeploy it first"]);
    fails(&["application-policy", "remove", POLICY], "409", &["deployed application", "undeploy it first"]);
    platform.ok(&["application", "show", APP]);
    platform.ok(&["application-policy", "show", POLICY]);
    assert_eq!(status(&platform, APP)["status"], "deployed");
}

/// A member that takes its whole grace period to stop holds up nothing else: while the
/// controller waits for it, a member of another application that dies is replaced.
#[test]
fn a_member_slow_to_stop_holds_up_nothing_else() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_definitions(&platform, sandbox.path());
    let dir = sandbox.path();
    // An app that never listens and ignores SIGTERM: its agent waits out its grace (10 s)
    // before killing it, and the driver waits for the member's processes all that time.
    let stubborn = json!(["sh", "-c", "trap '' TERM; exec sleep 600"]);
    add(&platform, dir, "cartridge", cartridge("stubborn", json!({ "type": "local", "command": stubborn })));
    add(
        &platform,
        dir,
        "application",
        json!({ "applicationId": "slow", "components": { "cartridges": [subscription("stubborn", "slow", 1, 1)] } }),
    );
    deploy(&platform);
    let events = EventLog::topology(&platform);
    let out = platform.cli(&["application", "deploy", "slow", "--policy", POLICY, "--no-wait"]);
    assert!(out.success(), "{out}");
    let started = events.wait_for(
        Duration::from_secs(30),
        "the stubborn member started",
        |e| matches!(e, AnyEvent::MemberStartedEvent(s) if s.member.cluster_id == "slow.slow"),
    );
    let AnyEvent::MemberStartedEvent(started) = started else { unreachable!() };
    let slow_member = started.member.member_id;

    // Undeployed before it is active: the controller stops it at once, with SIGTERM.
    let out = platform.cli(&["application", "undeploy", "slow", "--no-wait"]);
    assert!(out.success(), "{out}");
    std::thread::sleep(Duration::from_secs(1));
    let victim = member_list(&platform).into_iter().find(|m| m["clusterId"] == "two.web").map(|m| id(&m)).unwrap();
    let pgid = member_processes(sandbox.path()).into_iter().find(|p| p.member_id == victim).map(|p| p.pgid).unwrap();
    assert!(signal_group(pgid, "KILL"), "kill -KILL -- -{pgid}");
    let killed_at = Instant::now();

    let replaced = events.wait_for(
        Duration::from_secs(30),
        "a web member created after the kill",
        |e| matches!(e, AnyEvent::MemberCreatedEvent(c) if c.member.cluster_id == "two.web"),
    );
    let AnyEvent::MemberCreatedEvent(replacement) = replaced else { unreachable!() };
    let activated = |e: &AnyEvent| matches!(e, AnyEvent::MemberActivatedEvent(a) if a.member.member_id == replacement.member.member_id);
    let slow_gone = |e: &AnyEvent| matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == slow_member);
    events.wait_for(Duration::from_secs(30), "the replacement active", activated);
    eprintln!("the killed member's replacement was active {:?} after the kill", killed_at.elapsed());
    events.wait_for(Duration::from_secs(30), "the stubborn member terminated", slow_gone);
    eprintln!("the stubborn member was terminated {:?} after the kill", killed_at.elapsed());
    let log = events.events();
    let (replacement_at, slow_gone_at) =
        (log.iter().position(activated).unwrap(), log.iter().position(slow_gone).unwrap());
    assert!(
        replacement_at < slow_gone_at,
        "the replacement activated only after the stubborn member was stopped: the controller waited for it"
    );
    assert!(
        member_processes(sandbox.path()).iter().all(|p| p.member_id != slow_member),
        "the stubborn member outlived its termination"
    );
}
