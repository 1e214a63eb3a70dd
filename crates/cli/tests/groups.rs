//! End-to-end: the group and application monitors, and a failed member's retry in another
//! partition, with the real `stratos up` (its embedded broker, the `local` driver) and
//! members that are real processes (the cartridge agent running `stratos sample-http`).
//! The same behaviours on the `simulated` driver: crates/cloud/tests/simulated.rs.
//!
//! Members run in process groups of their own and outlive `stratos up`: every test keeps
//! its data directory in a [`Sandbox`], which kills whatever member is left when the test
//! ends, even by a panic.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratos_bus::AnyEvent;
use support::{
    add_definition, cluster, eventually, free_port, http_get, id, member_processes, signal_group, topology_members,
    EventLog, Platform, Sandbox, BIN,
};

/// Evaluations (and so the monitors' periodic roll-up) every 2 s; the clusters have
/// min = max, so the autoscaler never resizes them.
const UP: &[&str] = &["--evaluation-interval", "2s"];

/// A cartridge of the local driver running `command`, one HTTP port (the probe that
/// activates the member) exposed on `proxy_port`.
fn cartridge(cartridge_type: &str, proxy_port: u16, command: Value) -> Value {
    json!({
        "type": cartridge_type,
        "category": "framework",
        "multiTenant": false,
        "portMapping": [{ "name": "http", "protocol": "http", "port": 8000, "proxyPort": proxy_port }],
        "iaasProvider": [{ "type": "local", "command": command }]
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

/// A `local` network partition `np` with `partitions`, the deployment policy `dp` over all
/// of them with `algorithm`, the autoscaling policy `asp` and the application policy `ap`.
fn add_policies(platform: &Platform, dir: &Path, partitions: &[&str], algorithm: &str) {
    let ids: Vec<Value> = partitions.iter().map(|p| json!({ "id": p })).collect();
    add_definition(platform, dir, "network-partition", &json!({ "id": "np", "provider": "local", "partitions": ids }));
    add_definition(
        platform,
        dir,
        "autoscaling-policy",
        &json!({ "id": "asp", "loadThresholds": { "requestsInFlight": { "threshold": 80 } } }),
    );
    let maxes: Vec<Value> = partitions.iter().map(|p| json!({ "id": p, "partitionMax": 5 })).collect();
    add_definition(
        platform,
        dir,
        "deployment-policy",
        &json!({ "id": "dp", "networkPartitions": [{ "id": "np", "partitionAlgo": algorithm, "partitions": maxes }] }),
    );
    add_definition(
        platform,
        dir,
        "application-policy",
        &json!({ "id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np"] }),
    );
}

/// `stratos application status APP -o json`.
fn status(platform: &Platform, app: &str) -> Value {
    let out = platform.ok(&["application", "status", app, "-o", "json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("`application status -o json` is not JSON: {e}\n{out}"))
}

/// GET /api/applications/APP/runtime (what `application status` shows), without starting a
/// CLI process: for polling.
fn runtime(platform: &Platform, app: &str) -> Value {
    let path = format!("/api/applications/{app}/runtime");
    let (code, body) = platform.api_get(&path);
    assert_eq!(code, 200, "GET {path} answered {code}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

/// GET / on the member's (allocated) port is sample-http's answer naming the member.
fn answers_http(member: &Value) -> Result<(), String> {
    let id = id(member);
    let port = member["ports"][0]["value"].as_u64().ok_or_else(|| format!("a member without a port: {member:#}"))?;
    match http_get(u16::try_from(port).unwrap(), "/") {
        Ok((200, body)) if body == format!("member {id} path /\n") => Ok(()),
        Ok((code, body)) => Err(format!("GET / on port {port} of member {id} answered {code}: {body:?}")),
        Err(e) => Err(format!("GET / on port {port} of member {id}: {e}")),
    }
}

/// The members of one cluster in the topology (GET /api/topology).
fn members_of(platform: &Platform, cluster_id: &str) -> Vec<Value> {
    topology_members(&platform.topology()).into_iter().filter(|m| m["clusterId"] == cluster_id).collect()
}

/// `group <alias> <status>` / `application <status>` for the monitors' status events of `app`.
fn status_change(app: &str, e: &AnyEvent) -> Option<String> {
    Some(match e {
        AnyEvent::GroupActivatedEvent(e) if e.application_id == app => format!("group {} Active", e.group_alias),
        AnyEvent::GroupInactivatedEvent(e) if e.application_id == app => format!("group {} Inactive", e.group_alias),
        AnyEvent::GroupTerminatingEvent(e) if e.application_id == app => {
            format!("group {} Terminating", e.group_alias)
        }
        AnyEvent::ApplicationActivatedEvent(e) if e.application_id == app => "application Active".into(),
        AnyEvent::ApplicationInactivatedEvent(e) if e.application_id == app => "application Inactive".into(),
        AnyEvent::ApplicationTerminatingEvent(e) if e.application_id == app => "application Terminating".into(),
        _ => return None,
    })
}

/// The status changes of `app` among the events logged from index `from` on.
fn changes_since(events: &EventLog, app: &str, from: usize) -> Vec<String> {
    events.events().iter().skip(from).filter_map(|e| status_change(app, e)).collect()
}

/// Waits until the status changes since `from` satisfy `done`; returns them.
fn wait_changes(
    events: &EventLog,
    app: &str,
    from: usize,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    eventually(Duration::from_secs(30), what, || {
        let changes = changes_since(events, app, from);
        if done(&changes) {
            Ok(changes)
        } else {
            Err(format!("status changes so far: {changes:?}"))
        }
    })
}

const APP: &str = "shop";

/// `shop`: `web` on its own, and the group `backend` of `db` and `cache`; one member each
/// of `stratos sample-http`.
fn add_shop(platform: &Platform, dir: &Path) {
    add_policies(platform, dir, &["p1"], "one-after-another");
    add_definition(
        platform,
        dir,
        "cartridge",
        &cartridge("sample-http", free_port(), json!(["stratos", "sample-http", "--port", "${PORT}"])),
    );
    add_definition(platform, dir, "cartridge-group", &json!({ "name": "backend", "cartridges": ["sample-http"] }));
    add_definition(
        platform,
        dir,
        "application",
        &json!({
            "applicationId": APP,
            "components": {
                "cartridges": [subscription("sample-http", "web", 1, 1)],
                "groups": [{
                    "name": "backend",
                    "alias": "backend",
                    "groupMinInstances": 1,
                    "groupMaxInstances": 1,
                    "cartridges": [subscription("sample-http", "db", 1, 1), subscription("sample-http", "cache", 1, 1)]
                }]
            }
        }),
    );
}

/// `application status -o json` shows the group and the application `status`, and every
/// cluster Active with its member answering.
fn assert_shop_status(platform: &Platform, expected: &str) {
    let runtime = status(platform, APP);
    assert_eq!(runtime["status"], "deployed", "{runtime:#}");
    assert_eq!(runtime["applicationStatus"], expected, "{runtime:#}");
    let groups = runtime["groups"].as_array().unwrap_or_else(|| panic!("no groups: {runtime:#}"));
    assert_eq!(groups.len(), 1, "{runtime:#}");
    assert_eq!(groups[0]["alias"], "backend", "{runtime:#}");
    assert_eq!(groups[0]["status"], expected, "{runtime:#}");
    assert_eq!(groups[0]["clusters"], json!(["db", "cache"]), "{runtime:#}");
    for (alias, group) in [("web", Value::Null), ("db", json!("backend")), ("cache", json!("backend"))] {
        let c = cluster(&runtime, alias);
        assert_eq!(c["group"], group, "cluster {alias}: {c:#}");
        assert_eq!(c["status"], "Active", "cluster {alias}: {c:#}");
        assert_eq!(c["activeMembers"].as_u64(), Some(1), "cluster {alias}: {c:#}");
        assert!(c["error"].is_null(), "cluster {alias}: {c:#}");
        for m in c["members"].as_array().unwrap() {
            if let Err(e) = answers_http(m) {
                panic!("{e}");
            }
        }
    }
}

#[test]
fn group_and_application_status_roll_up_with_real_members() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), UP);
    add_shop(&platform, sandbox.path());
    let events = EventLog::subscribe(&platform, &["application/#", "topology/#"]);
    let started = Instant::now();

    // Deployed: the group is active before the application around it.
    let out = platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "60s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    let order =
        wait_changes(&events, APP, 0, "the application active", |c| c.iter().any(|s| s == "application Active"));
    assert_eq!(order, ["group backend Active", "application Active"]);
    assert_shop_status(&platform, "Active");
    eprintln!("active after {:?}", started.elapsed());

    // kill -9 the process group of db's only member (its agent and its HTTP server): backend
    // and the application are inactive until the member is replaced, then active again.
    let victim = members_of(&platform, "shop.db").pop().unwrap_or_else(|| panic!("no member in shop.db"));
    let victim_id = id(&victim);
    let pgid = member_processes(sandbox.path())
        .into_iter()
        .find(|p| p.member_id == victim_id)
        .unwrap_or_else(|| panic!("no process of member {victim_id}"))
        .pgid;
    let from = events.events().len();
    assert!(signal_group(pgid, "KILL"), "kill -KILL -- -{pgid}");
    let order = wait_changes(&events, APP, from, "the application active again", |c| {
        c.last().map(String::as_str) == Some("application Active")
    });
    assert_eq!(order, ["group backend Inactive", "application Inactive", "group backend Active", "application Active"]);
    let replaced = events.events()[from..]
        .iter()
        .filter_map(|e| match e {
            AnyEvent::MemberTerminatedEvent(t) => Some(format!("terminated {}", t.member.member_id)),
            AnyEvent::MemberActivatedEvent(a) => Some(format!("activated {}", a.member.member_id)),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(replaced.first(), Some(&format!("terminated {victim_id}")), "{replaced:?}");
    assert_eq!(replaced.len(), 2, "one member terminated, one activated: {replaced:?}");
    let db = members_of(&platform, "shop.db");
    assert_eq!(db.len(), 1, "{db:#?}");
    assert_ne!(id(&db[0]), victim_id, "{db:#?}");
    assert_eq!(replaced[1], format!("activated {}", id(&db[0])), "{replaced:?}");
    assert_shop_status(&platform, "Active");
    assert!(member_processes(sandbox.path()).iter().all(|p| p.member_id != victim_id), "the killed member lives on");
    eprintln!("replaced after {:?}", started.elapsed());

    // Undeployed: the group, then the application, are terminating; no member process is left.
    let members: BTreeSet<String> = topology_members(&platform.topology()).iter().map(id).collect();
    assert_eq!(members.len(), 3, "{members:?}");
    let from = events.events().len();
    let out = platform.cli(&["application", "undeploy", APP, "--timeout", "60s"]);
    assert!(out.success(), "`application undeploy` failed\n{out}\n{}", platform.proc.describe());
    let order = wait_changes(&events, APP, from, "the application terminating", |c| c.len() >= 2);
    assert_eq!(order, ["group backend Terminating", "application Terminating"]);
    let left = member_processes(sandbox.path());
    assert!(left.is_empty(), "member processes outlive the undeploy: {left:?}");
    let runtime = status(&platform, APP);
    assert_eq!(runtime["status"], "not-deployed", "{runtime:#}");
    assert_eq!(runtime["groups"], json!([]), "{runtime:#}");
    let terminated: BTreeSet<String> = events.events()[from..]
        .iter()
        .filter_map(|e| match e {
            AnyEvent::MemberTerminatedEvent(t) => Some(t.member.member_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(terminated, members, "every member terminated on the bus");
    // Nothing more from the monitors once undeployed.
    std::thread::sleep(Duration::from_secs(3));
    let order = changes_since(&events, APP, from);
    assert_eq!(order, ["group backend Terminating", "application Terminating"]);
    eprintln!("undeployed after {:?}", started.elapsed());
}

/// Exits 3 in partition p1 before listening; serves HTTP in any other.
fn fails_in_p1() -> Value {
    let script = format!(
        "if [ \"$STRATOS_PARTITION_ID\" = p1 ]; then echo failing in p1 >&2; exit 3; fi; \
         exec '{BIN}' sample-http --port \"$PORT\""
    );
    json!(["sh", "-c", script])
}

/// (member id, partition id) of every `MemberCreatedEvent` of the cluster, in order.
fn created_in(events: &[AnyEvent], cluster_id: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            AnyEvent::MemberCreatedEvent(c) if c.member.cluster_id == cluster_id => {
                Some((c.member.member_id.clone(), c.member.partition_id.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_that_fails_in_one_partition_is_retried_in_the_other() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), UP);
    let dir = sandbox.path();
    add_policies(&platform, dir, &["p1", "p2"], "round-robin");
    add_definition(&platform, dir, "cartridge", &cartridge("flaky", free_port(), fails_in_p1()));
    add_definition(
        &platform,
        dir,
        "application",
        &json!({ "applicationId": "flaky", "components": { "cartridges": [subscription("flaky", "svc", 1, 1)] } }),
    );
    let events = EventLog::topology(&platform);
    let started = Instant::now();

    platform.ok(&["application", "deploy", "flaky", "--policy", "ap", "--no-wait"]);
    // Until a member is active: the cluster's error, as `application status` shows it.
    let mut errors: Vec<String> = Vec::new();
    let active = eventually(Duration::from_secs(40), "a member of flaky.svc active", || {
        let again = created_in(&events.events(), "flaky.svc").into_iter().skip(1).find(|(_, p)| p == "p1");
        assert!(again.is_none(), "a member was created in p1 again: {again:?}");
        let rt = runtime(&platform, "flaky");
        let c = cluster(&rt, "svc");
        if let Some(e) = c["error"].as_str() {
            if errors.last().map(String::as_str) != Some(e) {
                errors.push(e.to_owned());
            }
        }
        match c["members"].as_array().map(Vec::as_slice) {
            Some([m]) if m["status"] == "Active" => Ok(m.clone()),
            _ => Err(format!("{c:#}")),
        }
    });
    eprintln!("active after {:?}; the cluster's errors meanwhile: {errors:#?}", started.elapsed());

    // One try in p1, which failed there; the retry in p2, not p1 again.
    let events = events.events();
    let created = created_in(&events, "flaky.svc");
    let partitions: Vec<&str> = created.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(partitions, ["p1", "p2"], "one try in p1, then p2: {created:?}");
    let (failed, retry) = (&created[0].0, &created[1].0);
    let reason = events
        .iter()
        .find_map(|e| match e {
            AnyEvent::MemberTerminatedEvent(t) if &t.member.member_id == failed => Some(t.reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no MemberTerminatedEvent for the member in p1 ({failed}): {events:#?}"));
    assert!(reason.contains("start failed"), "{reason}");
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(reason.contains("failing in p1"), "the reason does not carry the app's stderr: {reason}");
    let terminated_at = events
        .iter()
        .position(|e| matches!(e, AnyEvent::MemberTerminatedEvent(t) if &t.member.member_id == failed))
        .unwrap();
    let retry_created_at = events
        .iter()
        .position(|e| matches!(e, AnyEvent::MemberCreatedEvent(c) if &c.member.member_id == retry))
        .unwrap();
    assert!(terminated_at < retry_created_at, "the retry was created before the failed member went: {events:#?}");

    // While no member was active, the cluster showed why; it is cleared by the activation.
    assert!(
        errors.iter().any(|e| e.contains(failed.as_str()) && e.contains("failing in p1")),
        "the cluster's error never named the failure in p1: {errors:#?}"
    );
    assert_eq!(id(&active), *retry, "{active:#}");
    assert_eq!(active["partitionId"], "p2", "{active:#}");
    assert_eq!(active["networkPartitionId"], "np", "{active:#}");
    if let Err(e) = answers_http(&active) {
        panic!("{e}");
    }
    let rt = status(&platform, "flaky");
    let c = cluster(&rt, "svc");
    assert!(c["error"].is_null(), "the activation did not clear the error: {c:#}");
    assert_eq!(c["status"], "Active", "{c:#}");
    assert_eq!(c["activeMembers"].as_u64(), Some(1), "{c:#}");

    // The final topology: only the member in p2; the failed one's process is gone.
    let members = members_of(&platform, "flaky.svc");
    assert_eq!(members.len(), 1, "{members:#?}");
    assert_eq!(id(&members[0]), *retry, "{members:#?}");
    assert_eq!(members[0]["partitionId"], "p2", "{members:#?}");
    assert_eq!(members[0]["status"], "Active", "{members:#?}");
    let topology = platform.topology();
    let svc = topology["services"]
        .as_object()
        .into_iter()
        .flat_map(|s| s.values())
        .find_map(|s| s["clusters"].get("flaky.svc"))
        .unwrap_or_else(|| panic!("no cluster flaky.svc in the topology: {topology:#}"));
    assert!(svc["error"].is_null(), "the topology keeps the error: {svc:#}");
    let processes: BTreeSet<String> = member_processes(sandbox.path()).into_iter().map(|p| p.member_id).collect();
    assert_eq!(processes, BTreeSet::from([retry.clone()]), "member processes");
}

/// The group `backend` gives its deployment policy (partition p2 only) to every cartridge
/// under it, nested too, and the controller places their members there, while `web`, on
/// its own policy, goes to p1; members' ports come from --member-ports. Around it, what a
/// user meets at the CLI: cartridge groups added, shown, refused while in use; a network
/// partition with a provider this platform has no driver for, warned of and refused at
/// deploy; `application list` with its status; tables cut to $COLUMNS; a closed pipe.
#[test]
fn a_group_policy_places_its_members_and_the_cli_edges_hold() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path();
    // 40 ports somewhere in 40000-59999, apart from other test processes' ranges.
    let first = 40000 + (std::process::id() % 500) as u16 * 40;
    let range = format!("{first}-{}", first + 39);
    let platform = Platform::start(dir, &["--evaluation-interval", "2s", "--member-ports", &range]);
    add_policies(&platform, dir, &["p1", "p2"], "one-after-another");
    let only = |id: &str, partition: &str| {
        json!({ "id": id, "networkPartitions": [{ "id": "np", "partitionAlgo": "one-after-another",
            "partitions": [{ "id": partition, "partitionMax": 5 }] }] })
    };
    add_definition(&platform, dir, "deployment-policy", &only("dp-p1", "p1"));
    add_definition(&platform, dir, "deployment-policy", &only("dp-p2", "p2"));
    add_definition(
        &platform,
        dir,
        "cartridge",
        &cartridge("sample-http", free_port(), json!(["stratos", "sample-http", "--port", "${PORT}"])),
    );
    // A 4.1 group as 4.1 writes it, with a nested group.
    let group = json!({ "name": "backend", "cartridges": ["sample-http"], "groupScalingEnabled": false,
        "groups": [{ "name": "cache-group", "cartridges": ["sample-http"] }] });
    add_definition(&platform, dir, "cartridge-group", &group);
    let shown: Value = serde_json::from_str(&platform.ok(&["cartridge-group", "show", "backend", "-o", "json"]).stdout)
        .expect("`cartridge-group show -o json` is JSON");
    assert_eq!(shown["groups"][0]["name"], "cache-group", "{shown:#}");
    let listed = platform.ok(&["cartridge-group", "list"]);
    assert!(listed.stdout.contains("backend") && listed.stdout.contains("cache-group"), "{listed}");

    let in_group = |alias: &str| {
        json!({ "type": "sample-http", "cartridgeMin": 1, "cartridgeMax": 1,
            "subscribableInfo": { "alias": alias, "autoscalingPolicy": "asp" } })
    };
    let mut web = subscription("sample-http", "web", 1, 1);
    web["subscribableInfo"]["deploymentPolicy"] = json!("dp-p1");
    let app = "placed";
    add_definition(
        &platform,
        dir,
        "application",
        &json!({ "applicationId": app, "components": {
            "cartridges": [web],
            "groups": [{ "name": "backend", "alias": "be", "deploymentPolicy": "dp-p2",
                "cartridges": [in_group("db")],
                "groups": [{ "name": "cache-group", "alias": "cg", "cartridges": [in_group("cache")] }] }] } }),
    );
    // Naming its own policy inside the group is refused, with the field.
    let mut own = in_group("db2");
    own["subscribableInfo"]["deploymentPolicy"] = json!("dp-p1");
    let refused = json!({ "applicationId": "refused", "components": { "groups": [{ "name": "backend", "alias": "b2",
        "deploymentPolicy": "dp-p2", "cartridges": [own],
        "groups": [{ "name": "cache-group", "alias": "c2", "cartridges": [in_group("cache2")] }] }] } });
    let file = dir.join("refused.json");
    std::fs::write(&file, refused.to_string()).unwrap();
    let out = platform.cli(&["application", "add", file.to_str().unwrap()]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("components.groups[0].cartridges[0].subscribableInfo.deploymentPolicy"), "{out}");

    let out = platform.cli(&["application", "deploy", app, "--policy", "ap", "--timeout", "60s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    let placements = eventually(Duration::from_secs(30), "every member active where its policy says", || {
        let members = topology_members(&platform.topology());
        let placed: Vec<(String, String, String)> = members
            .iter()
            .map(|m| {
                let s = |f: &str| m[f].as_str().unwrap_or_default().to_owned();
                (s("clusterId"), s("partitionId"), s("status"))
            })
            .collect();
        if placed.len() == 3 && placed.iter().all(|(_, _, status)| status == "Active") {
            Ok(members)
        } else {
            Err(format!("{placed:?}"))
        }
    });
    for m in &placements {
        let expected = if m["clusterId"] == "placed.web" { "p1" } else { "p2" };
        assert_eq!(m["partitionId"], expected, "{m:#}");
        let port = m["ports"][0]["value"].as_u64().unwrap_or(0);
        assert!((u64::from(first)..u64::from(first) + 40).contains(&port), "port {port} is outside {range}: {m:#}");
        answers_http(m).unwrap_or_else(|e| panic!("{e}"));
    }
    // The clusters in the topology carry the policy they were placed by.
    let topology = platform.topology();
    for (cluster_id, policy) in [("placed.web", "dp-p1"), ("placed.db", "dp-p2"), ("placed.cache", "dp-p2")] {
        let found = topology["services"]["sample-http"]["clusters"][cluster_id]["deploymentPolicyName"].clone();
        assert_eq!(found, policy, "{cluster_id}: {topology:#}");
    }

    // `application list`: deployed, with the monitor's status.
    let status_row = eventually(Duration::from_secs(30), "the application listed as active", || {
        let out = platform.ok(&["application", "list"]);
        match out.stdout.lines().find(|l| l.contains(app)) {
            Some(row) if row.contains("deployed, Active") => Ok(row.to_owned()),
            _ => Err(out.stdout),
        }
    });
    assert!(status_row.contains("be") || status_row.contains("web"), "{status_row}");

    // Tables fit $COLUMNS when piped, cut with an ellipsis; -o json keeps every value whole.
    let narrow = client(&platform, &["application", "status", app], &[("COLUMNS", "60")]);
    let table = String::from_utf8_lossy(&narrow.stdout).into_owned();
    assert!(narrow.status.success(), "{table}");
    for line in table.lines().filter(|l| l.starts_with(['│', '┌', '└', '╞', '├'])) {
        assert!(line.chars().count() <= 60, "{line:?} is wider than 60:\n{table}");
    }
    assert!(table.contains('…'), "nothing was cut at 60 columns:\n{table}");
    assert!(status(&platform, app)["clusters"][0]["hostNames"][0].as_str().unwrap().ends_with(".stratos.local"));

    // A reader that goes away: the command ends quietly, without a panic.
    let closed = client_with_closed_stdout(&platform, &["application", "status", app]);
    assert!(!closed.1.contains("panicked") && !closed.1.contains("Broken pipe"), "stderr: {}", closed.1);
    assert!(
        closed.0.success() || std::os::unix::process::ExitStatusExt::signal(&closed.0) == Some(13),
        "exit {:?}, stderr: {}",
        closed.0,
        closed.1
    );

    // A provider this platform has no driver for: warned of when added, refused at deploy.
    let np = json!({ "id": "np-ec2", "provider": "ec2", "partitions": [{ "id": "z1" }] });
    let file = dir.join("np-ec2.json");
    std::fs::write(&file, np.to_string()).unwrap();
    let out = platform.ok(&["network-partition", "add", file.to_str().unwrap()]);
    assert!(
        out.stderr.contains("warning:")
            && out.stderr.contains("\"ec2\"")
            && out.stderr.contains("its drivers: local")
            && out.stderr.contains("mock)"),
        "{out}"
    );
    add_definition(
        &platform,
        dir,
        "deployment-policy",
        &json!({ "id": "dp-ec2", "networkPartitions": [{ "id": "np-ec2",
        "partitionAlgo": "one-after-another", "partitions": [{ "id": "z1", "partitionMax": 1 }] }] }),
    );
    add_definition(
        &platform,
        dir,
        "application-policy",
        &json!({ "id": "ap-ec2", "algorithm": "one-after-another", "networkPartitions": ["np-ec2"] }),
    );
    let mut on_ec2 = subscription("sample-http", "w", 1, 1);
    on_ec2["subscribableInfo"]["deploymentPolicy"] = json!("dp-ec2");
    add_definition(
        &platform,
        dir,
        "application",
        &json!({ "applicationId": "on-ec2", "components": { "cartridges": [on_ec2] } }),
    );
    let out = platform.cli(&["application", "deploy", "on-ec2", "--policy", "ap-ec2", "--timeout", "5s"]);
    assert!(!out.success(), "{out}");
    // Which drivers there are is the running platform's word: local, docker when its engine answers, mock.
    for needle in [r#"network partition "np-ec2""#, r#"provider "ec2""#, "its drivers: local", "mock"] {
        assert!(out.stderr.contains(needle), "{needle} not in\n{out}");
    }
    assert_eq!(status(&platform, "on-ec2")["status"], "not-deployed");

    // In use: the group cannot go, and the error names the application.
    let out = platform.cli(&["cartridge-group", "remove", "backend"]);
    assert!(!out.success() && out.stderr.contains("application \"placed\""), "{out}");
    platform.ok(&["application", "undeploy", app, "--timeout", "60s"]);
    platform.ok(&["application", "remove", app]);
    let out = platform.ok(&["cartridge-group", "remove", "backend"]);
    assert!(out.stdout.contains("removed"), "{out}");
}

/// `stratos ARGS --api <platform>` with `env` set, stdout captured, to its end.
fn client(platform: &Platform, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(BIN);
    command.args(args).args(["--api", &platform.api()]);
    for var in ["STRATOS_API", "STRATOS_TOKEN", "RUST_LOG"] {
        command.env_remove(var);
    }
    command.env("XDG_CONFIG_HOME", support::config_home()).envs(env.iter().copied());
    command.output().expect("run stratos")
}

/// Runs a client command whose stdout is a pipe already closed by its reader (as after
/// `| head -3` has read its lines): (exit status, stderr).
fn client_with_closed_stdout(platform: &Platform, args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut command = std::process::Command::new(BIN);
    command.args(args).args(["--api", &platform.api()]);
    command.env_remove("STRATOS_API").env_remove("STRATOS_TOKEN").env("XDG_CONFIG_HOME", support::config_home());
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("run stratos");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn a_bad_member_port_range_is_a_clear_error() {
    let sandbox = Sandbox::new();
    for (range, why) in [("30000-20000", "ends before it starts"), ("20000", "FIRST-LAST"), ("0-10", "not a port")] {
        let out = support::stratos(&["up", "--data-dir", sandbox.path().to_str().unwrap(), "--member-ports", range]);
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains("--member-ports") && out.stderr.contains(why), "{range}: {out}");
    }
}
