//! Members are watched, not trusted: the real `stratos up` (run as root here), the `local`
//! driver's member processes, the built-in load balancer. A member whose app freezes
//! (SIGSTOP on the app, its agent still reporting) leaves the load balancer's rotation and
//! is replaced; one that answers again before its threshold stays; members run with uids of
//! their own; repositories on the platform's machine are refused.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratos_bus::AnyEvent;
use support::{
    add_definition, cluster_host, cluster_members, eventually, free_port, id, member_processes, member_through_lb,
    EventLog, Platform, Sandbox,
};

const APP: &str = "watched";
const ALIAS: &str = "web";
const CLUSTER: &str = "watched.web";

/// An application of one cluster of two `stratos sample-http` members (which answer with
/// their member id), behind the load balancer on `proxy_port`, checked every second with
/// 1 s to answer and `threshold` failures in a row; health stats every second too.
fn add_watched_app(platform: &Platform, dir: &Path, proxy_port: u16, threshold: u32) {
    add_definition(
        platform,
        dir,
        "network-partition",
        &json!({ "id": "np", "provider": "local", "partitions": [{ "id": "p1" }] }),
    );
    add_definition(
        platform,
        dir,
        "autoscaling-policy",
        &json!({ "id": "asp", "loadThresholds": { "requestsInFlight": { "threshold": 1000 } } }),
    );
    add_definition(
        platform,
        dir,
        "deployment-policy",
        &json!({
            "id": "dp",
            "networkPartitions": [{ "id": "np", "partitionAlgo": "one-after-another", "partitions": [{ "id": "p1", "partitionMax": 10 }] }]
        }),
    );
    add_definition(
        platform,
        dir,
        "application-policy",
        &json!({ "id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np"] }),
    );
    add_definition(
        platform,
        dir,
        "cartridge",
        &json!({
            "type": "watched-http",
            "category": "framework",
            "portMapping": [{
                "name": "http", "protocol": "http", "port": 8000, "proxyPort": proxy_port,
                "healthCheck": { "path": "/health", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": threshold }
            }],
            "iaasProvider": [{
                "type": "local",
                "command": ["stratos", "sample-http", "--port", "${PORT}"],
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
                "type": "watched-http", "cartridgeMin": 2, "cartridgeMax": 2,
                "subscribableInfo": { "alias": ALIAS, "autoscalingPolicy": "asp", "deploymentPolicy": "dp" }
            }] }
        }),
    );
    let out = platform.cli(&["application", "deploy", APP, "--policy", "ap", "--timeout", "60s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
}

/// One request through the load balancer on a fresh connection, 5 s at most: the member
/// that answered.
fn get_through_lb(proxy_port: u16) -> Result<String, String> {
    member_through_lb(proxy_port, &cluster_host(APP, ALIAS), "/x", Duration::from_secs(5))
}

/// The ids of the cluster's Active members.
fn active(platform: &Platform) -> BTreeSet<String> {
    cluster_members(platform, CLUSTER).iter().filter(|m| m["status"] == "Active").map(id).collect()
}

/// The member's app: its agent's child (the agent leads the member's process group).
fn app_pid(sandbox: &Sandbox, member_id: &str) -> i32 {
    let processes: Vec<_> = member_processes(sandbox.path()).into_iter().filter(|p| p.member_id == member_id).collect();
    let app = processes.iter().find(|p| p.pid != p.pgid);
    app.unwrap_or_else(|| panic!("no app process of {member_id}: {processes:?}")).pid
}

/// `kill -SIGNAL PID` on a member process of this test's platform.
fn signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_frozen_app_leaves_the_rotation_and_is_replaced() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let proxy_port = free_port();
    add_watched_app(&platform, sandbox.path(), proxy_port, 3);
    let before = eventually(Duration::from_secs(30), "two active members", || match active(&platform) {
        a if a.len() == 2 => Ok(a),
        a => Err(format!("{a:?}")),
    });
    eventually(Duration::from_secs(15), "both members served through the load balancer", || {
        let served: BTreeSet<String> = (0..10).filter_map(|_| get_through_lb(proxy_port).ok()).collect();
        if served == before {
            Ok(())
        } else {
            Err(format!("served by {served:?}"))
        }
    });
    let events = EventLog::topology(&platform);

    let victim = before.iter().next().unwrap().clone();
    let frozen_at = Instant::now();
    signal(app_pid(&sandbox, &victim), "STOP");

    let suspended = events.wait_for(
        Duration::from_secs(30),
        "MemberSuspendedEvent of the frozen member",
        |e| matches!(e, AnyEvent::MemberSuspendedEvent(s) if s.member.member_id == victim),
    );
    let out_of_rotation = frozen_at.elapsed();
    let AnyEvent::MemberSuspendedEvent(suspended) = suspended else { unreachable!() };
    assert!(suspended.reason.contains("port 8000 failed 3 health checks in a row"), "{}", suspended.reason);
    assert!(suspended.reason.contains("/health did not answer within 1 s"), "{}", suspended.reason);
    eprintln!("the frozen member left the rotation {out_of_rotation:?} after SIGSTOP");

    // Every request now goes to the other member (or already to the replacement), answered at once.
    let other = before.iter().find(|m| **m != victim).unwrap().clone();
    for i in 0..20 {
        match get_through_lb(proxy_port) {
            Ok(member) => assert_ne!(member, victim, "request {i} went to the frozen member"),
            Err(e) => panic!("request {i} after the suspension failed: {e}"),
        }
    }

    let now = eventually(Duration::from_secs(60), "the frozen member replaced", || {
        let now = active(&platform);
        if now.len() == 2 && !now.contains(&victim) {
            Ok(now)
        } else {
            Err(format!("active: {now:?}"))
        }
    });
    eprintln!("the frozen member was replaced {:?} after SIGSTOP", frozen_at.elapsed());
    let terminated = events.wait_for(
        Duration::from_secs(30),
        "MemberTerminatedEvent of the frozen member",
        |e| matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == victim),
    );
    let AnyEvent::MemberTerminatedEvent(terminated) = terminated else { unreachable!() };
    assert!(terminated.reason.starts_with("unhealthy: port 8000"), "{}", terminated.reason);
    assert!(member_processes(sandbox.path()).iter().all(|p| p.member_id != victim), "the frozen member still runs");
    let replacement = now.iter().find(|m| **m != other).unwrap().clone();
    eventually(Duration::from_secs(15), "the replacement served through the load balancer", || {
        let served: BTreeSet<String> = (0..10).filter_map(|_| get_through_lb(proxy_port).ok()).collect();
        if served.contains(&replacement) {
            Ok(())
        } else {
            Err(format!("served by {served:?}"))
        }
    });
}

#[test]
fn an_app_that_answers_again_before_its_threshold_is_kept() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let proxy_port = free_port();
    add_watched_app(&platform, sandbox.path(), proxy_port, 5);
    let before = eventually(Duration::from_secs(30), "two active members", || match active(&platform) {
        a if a.len() == 2 => Ok(a),
        a => Err(format!("{a:?}")),
    });
    let topology = EventLog::topology(&platform);
    let victim = before.iter().next().unwrap().clone();
    let agent_log = sandbox.path().join("members").join(&victim).join("agent.log");

    let app = app_pid(&sandbox, &victim);
    signal(app, "STOP");
    eventually(Duration::from_secs(30), "a failed health check in the agent's log", || {
        let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
        if log.contains("health check failed") {
            Ok(())
        } else {
            Err(log)
        }
    });
    signal(app, "CONT");

    // The member's own health stats (every second) measure the time its checks had: past
    // its threshold (5 checks a second apart) had it stayed frozen.
    let health = EventLog::subscribe(&platform, &["health/#"]);
    eventually(Duration::from_secs(30), "eight more health stats from the member", || {
        let n = health
            .events()
            .iter()
            .filter(|e| matches!(e, AnyEvent::MemberHealthStatEvent(h) if h.member.member_id == victim))
            .count();
        if n >= 8 {
            Ok(())
        } else {
            Err(format!("{n} so far"))
        }
    });
    let suspended: Vec<AnyEvent> =
        topology.events().into_iter().filter(|e| matches!(e, AnyEvent::MemberSuspendedEvent(_))).collect();
    assert!(suspended.is_empty(), "a member that answered again was suspended: {suspended:?}");
    assert_eq!(active(&platform), before, "the members changed");
    let served: BTreeSet<String> = (0..10).filter_map(|_| get_through_lb(proxy_port).ok()).collect();
    assert!(served.contains(&victim), "the member no longer serves: {served:?}");
}

/// `Uid:` of /proc/PID/status: real, effective, saved and filesystem uids.
fn uids(pid: i32) -> [u32; 4] {
    stratos_test_kit::proc::uids(pid as u32).unwrap_or_else(|| panic!("no Uid: in /proc/{pid}/status"))
}

#[test]
fn members_run_with_uids_of_their_own_when_the_platform_is_root() {
    if uids(std::process::id() as i32)[1] != 0 {
        eprintln!("skipped: the platform must run as root for its members to drop privileges");
        return;
    }
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_watched_app(&platform, sandbox.path(), free_port(), 3);
    let members = eventually(Duration::from_secs(30), "two active members", || match active(&platform) {
        a if a.len() == 2 => Ok(a),
        a => Err(format!("{a:?}")),
    });
    let mut member_uids = BTreeSet::new();
    for member in &members {
        let processes: Vec<_> =
            member_processes(sandbox.path()).into_iter().filter(|p| p.member_id == *member).collect();
        assert!(processes.len() >= 2, "the agent and its app: {processes:?}");
        let of_member: BTreeSet<u32> = processes.iter().flat_map(|p| uids(p.pid)).collect();
        assert_eq!(of_member.len(), 1, "{member}: one uid for all its processes: {of_member:?}");
        let uid = *of_member.first().unwrap();
        assert!(uid >= 1_900_000, "{member} runs as uid {uid}");
        member_uids.insert(uid);

        let dir = sandbox.path().join("members").join(member);
        let work = std::fs::metadata(dir.join("work")).unwrap();
        assert_eq!((work.uid(), work.permissions().mode() & 0o777), (uid, 0o700), "{member}'s work directory");
        let record = std::fs::metadata(dir.join("member.json")).unwrap();
        assert_eq!(record.uid(), 0, "the record naming the process group to signal stays the platform's");
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 0);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o711);
    }
    assert_eq!(member_uids.len(), 2, "each member has a uid of its own: {member_uids:?}");
    // What the platform keeps in the data directory, which members can search, is its own.
    let store = std::fs::metadata(sandbox.path().join("stratos.db")).unwrap();
    assert_eq!(store.permissions().mode() & 0o077, 0, "the store is readable by members");
}

/// Adds an application whose cluster clones `repo`; the CLI's output.
fn add_app_with_repo(platform: &Platform, dir: &Path, app: &str, repo: &str) -> support::Output {
    let file = dir.join(format!("application-{app}.json"));
    let definition = json!({
        "applicationId": app,
        "components": { "cartridges": [{
            "type": "watched-http", "cartridgeMin": 1, "cartridgeMax": 1,
            "subscribableInfo": {
                "alias": "web", "autoscalingPolicy": "asp", "deploymentPolicy": "dp",
                "artifactRepository": { "repoUrl": repo }
            }
        }] }
    });
    std::fs::write(&file, serde_json::to_vec(&definition).unwrap()).unwrap();
    platform.cli(&["application", "add", file.to_str().unwrap()])
}

fn application_ids(platform: &Platform) -> Vec<String> {
    let list: Value = platform.list("application");
    list.as_array().unwrap().iter().map(|a| a["applicationId"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn repositories_on_the_platform_machine_are_refused_unless_allowed() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_watched_app(&platform, sandbox.path(), free_port(), 3);
    let field = "components.cartridges[0].subscribableInfo.artifactRepository.repoUrl";
    let local = sandbox.path().join("repo");
    for (app, repo) in [
        ("by-file-url", format!("file://{}", local.display())),
        ("by-path", local.display().to_string()),
        ("by-fd", "fd::17".to_string()),
    ] {
        let out = add_app_with_repo(&platform, sandbox.path(), app, &repo);
        assert!(!out.success(), "{repo} accepted\n{out}");
        assert!(out.stderr.contains("(400)"), "{out}");
        assert!(out.stderr.contains(field), "the field is named\n{out}");
        assert!(!application_ids(&platform).contains(&app.to_string()), "{app} was stored");
    }
    let out = add_app_with_repo(&platform, sandbox.path(), "by-https", "https://git.example.com/org/app.git");
    assert!(out.success(), "{out}");
    let out = add_app_with_repo(&platform, sandbox.path(), "by-scp", "git@git.example.com:org/app.git");
    assert!(out.success(), "{out}");
    drop(platform);

    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &["--allow-local-repos"]);
    add_watched_app(&platform, sandbox.path(), free_port(), 3);
    let out = add_app_with_repo(&platform, sandbox.path(), "by-path", &local.display().to_string());
    assert!(out.success(), "an administrator allowed local repositories\n{out}");
    let out = add_app_with_repo(&platform, sandbox.path(), "by-fd", "fd::17");
    assert!(!out.success() && out.stderr.contains(field), "git's remote helpers stay refused\n{out}");
}

#[test]
fn a_hanging_clone_fails_the_start_with_a_clear_error() {
    // A git daemon that takes connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_watched_app(&platform, sandbox.path(), free_port(), 3);
    let cartridge = json!({
        "type": "cloned-http",
        "category": "framework",
        "portMapping": [{ "protocol": "http", "port": 8000, "proxyPort": 0 }],
        "iaasProvider": [{
            "type": "local",
            "command": ["stratos", "sample-http", "--port", "${PORT}"],
            "property": [{ "name": "env.STRATOS_GIT_TIMEOUT", "value": "2s" }]
        }]
    });
    add_definition(&platform, sandbox.path(), "cartridge", &cartridge);
    let app = json!({
        "applicationId": "cloned",
        "components": { "cartridges": [{
            "type": "cloned-http", "cartridgeMin": 1, "cartridgeMax": 1,
            "subscribableInfo": {
                "alias": "web", "autoscalingPolicy": "asp", "deploymentPolicy": "dp",
                "artifactRepository": { "repoUrl": format!("git://127.0.0.1:{silent_port}/app.git") }
            }
        }] }
    });
    add_definition(&platform, sandbox.path(), "application", &app);
    let out = platform.cli(&["application", "deploy", "cloned", "--policy", "ap", "--timeout", "1s", "-o", "json"]);
    eprintln!("deploy (not waiting for it to succeed):\n{out}");
    let error = eventually(Duration::from_secs(60), "the clone's failure on the cluster", || {
        let status = platform.ok(&["application", "status", "cloned", "-o", "json"]).stdout;
        let status: Value = serde_json::from_str(&status).map_err(|e| e.to_string())?;
        let error = support::cluster(&status, "web")["error"].as_str().unwrap_or_default().to_owned();
        if error.contains("git clone") {
            Ok(error)
        } else {
            Err(format!("{status:#}"))
        }
    });
    assert!(error.contains("git clone did not finish within 2 s and was killed"), "{error}");
    assert!(!error.contains("did not activate"), "reported as the start failure, not a timeout: {error}");
}

#[test]
fn a_member_whose_app_exits_is_replaced() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    add_watched_app(&platform, sandbox.path(), free_port(), 3);
    let before = eventually(Duration::from_secs(30), "two active members", || match active(&platform) {
        a if a.len() == 2 => Ok(a),
        a => Err(format!("{a:?}")),
    });
    let events = EventLog::topology(&platform);
    let victim = before.iter().next().unwrap().clone();
    // The app alone: its agent lives on, sees it go and ends the member.
    signal(app_pid(&sandbox, &victim), "KILL");
    let terminated = events.wait_for(
        Duration::from_secs(30),
        "MemberTerminatedEvent of the member",
        |e| matches!(e, AnyEvent::MemberTerminatedEvent(t) if t.member.member_id == victim),
    );
    let AnyEvent::MemberTerminatedEvent(terminated) = terminated else { unreachable!() };
    eprintln!("terminated: {}", terminated.reason);
    eventually(Duration::from_secs(60), "the member replaced", || {
        let now = active(&platform);
        if now.len() == 2 && !now.contains(&victim) {
            Ok(())
        } else {
            Err(format!("active: {now:?}"))
        }
    });
    assert!(member_processes(sandbox.path()).iter().all(|p| p.member_id != victim), "the member's agent runs on");
    let log = std::fs::read_to_string(sandbox.path().join("members").join(&victim).join("work/app.log")).unwrap();
    assert!(log.contains("app was killed by signal 9"), "the agent's note in app.log:\n{log}");
}
