//! An operator's hand on a running cluster, through the real platform (`stratos up` with
//! the local driver, members that are real `stratos sample-http` processes, the built-in
//! load balancer): `stratos cluster scale` (new bounds, members started or drained at
//! once, bad input refused with its field, only the cluster's tenant's writers allowed)
//! and `stratos cluster restart` (every member replaced one at a time under continuous
//! load with no failed request; a second restart refused while one runs), and
//! `stratos member exec` (a command in a member's environment, as its user, without its
//! bus credentials, its output and exit code passed on).
//!
//! The tests run one at a time (a lock): each starts a platform and a few members.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use support::{cluster_members, eventually, free_port, id, Load, Platform, Sandbox, SlowHttpApp, BIN, QUICK_SCALING};

const APP: &str = "shop";
const ALIAS: &str = "web";
const CLUSTER: &str = "shop.web";

static SERIAL: Mutex<()> = Mutex::new(());

/// A platform with [`APP`] deployed: one cluster of the sample server (`delay_ms` per
/// request) in one partition of `partition_max` members, `min`..`max` members.
struct Deployed {
    platform: Platform,
    proxy_port: u16,
    /// Last: the member processes are killed once the platform is stopped.
    sandbox: Sandbox,
}

fn deploy(min: u32, max: u32, partition_max: u32, delay_ms: u64) -> Deployed {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    let proxy_port = free_port();
    let nps: &[(&str, u32)] = &[("np1", partition_max)];
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms,
        threshold: 50.0,
        min,
        max,
        nps,
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    Deployed { platform, proxy_port, sandbox }
}

impl Deployed {
    fn members(&self) -> Vec<Value> {
        cluster_members(&self.platform, CLUSTER)
    }

    /// The cluster of `application status -o json`.
    fn runtime(&self) -> Value {
        let out = self.platform.ok(&["application", "status", APP, "-o", "json"]);
        let runtime: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"));
        support::cluster(&runtime, ALIAS).clone()
    }

    /// Waits until the cluster has exactly `n` members, all active.
    fn wait_for_active(&self, n: usize, within: Duration) -> Vec<Value> {
        let mut found = Vec::new();
        eventually(within, &format!("{n} active member(s)"), || {
            found = self.members();
            let active = found.iter().filter(|m| m["status"] == "Active").count();
            if found.len() == n && active == n {
                Ok(())
            } else {
                Err(format!("{} member(s), {active} active", found.len()))
            }
        });
        found
    }
}

fn ids(members: &[Value]) -> BTreeSet<String> {
    members.iter().map(id).collect()
}

/// `stratos ARGS --api API` with its own config directory (so its own login).
fn stratos_as(config: &Path, api: &str, args: &[&str], stdin: &str) -> support::Output {
    support::stratos_in(config, &support::with_api(args, api), stdin)
}

/// A user `name` with `role` (in tenant `tenant`, else the admin's), logged in in a
/// config directory of its own.
fn user(d: &Deployed, name: &str, role: &str, tenant: Option<&str>) -> tempfile::TempDir {
    let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let token = d.platform.admin_token();
    args.extend(["--token", &token]);
    let out = stratos_as(support::config_home(), &d.platform.api(), &args, "a long enough password\n");
    assert!(out.success(), "{out}");
    let config = tempfile::tempdir().unwrap();
    let out = stratos_as(
        config.path(),
        &d.platform.api(),
        &["login", "--user", name, "--password-stdin"],
        "a long enough password\n",
    );
    assert!(out.success(), "{out}");
    config
}

#[test]
fn scale_sets_bounds_that_members_follow_and_refuses_bad_ones_with_the_field() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // cartridgeMax 2, partitions for 4.
    let d = deploy(1, 2, 4, 10);
    d.wait_for_active(1, Duration::from_secs(30));

    // Bad input: refused, naming the field; nothing changes.
    for (args, field, reason) in [
        (&["--min", "3"][..], "min", "min 3 is above max 2"),
        (&["--max", "5"][..], "max", "hold (4 member(s) at most)"),
        (&["--min", "0"][..], "min", "at least 1"),
    ] {
        let mut all = vec!["cluster", "scale", CLUSTER];
        all.extend(args);
        let out = d.platform.cli(&all);
        assert!(!out.success(), "{out}");
        assert!(
            out.stderr.contains("(400)") && out.stderr.contains(&format!("{field}: ")) && out.stderr.contains(reason),
            "{out}"
        );
    }
    let out = d.platform.cli(&["cluster", "scale", "shop.nothing", "--max", "3"]);
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    let runtime = d.runtime();
    assert_eq!((runtime["min"].as_u64(), runtime["max"].as_u64()), (Some(1), Some(2)), "{runtime:#}");

    // Raise min past cartridgeMax: members start at once.
    let out = d.platform.ok(&["cluster", "scale", CLUSTER, "--min", "3", "--max", "4"]);
    assert!(out.stdout.contains("min 3 max 4"), "{out}");
    let three = d.wait_for_active(3, Duration::from_secs(30));
    let runtime = d.runtime();
    assert_eq!((runtime["min"].as_u64(), runtime["max"].as_u64()), (Some(3), Some(4)), "{runtime:#}");

    // Lower max below the members running: drained down to it.
    d.platform.ok(&["cluster", "scale", CLUSTER, "--min", "1", "--max", "1"]);
    let one = d.wait_for_active(1, Duration::from_secs(30));
    assert!(ids(&three).is_superset(&ids(&one)), "a member left and another came: {three:#?} {one:#?}");

    // Only the cluster's tenant's writers: a viewer is refused, another tenant sees no cluster.
    let viewer = user(&d, "viewer1", "viewer", None);
    let out = stratos_as(viewer.path(), &d.platform.api(), &["cluster", "scale", CLUSTER, "--max", "3"], "");
    assert!(!out.success() && out.stderr.contains("(403)"), "{out}");
    d.platform.ok(&["tenant", "add", "acme.test"]);
    let other = user(&d, "dev1", "developer", Some("acme.test"));
    let out = stratos_as(other.path(), &d.platform.api(), &["cluster", "scale", CLUSTER, "--max", "3"], "");
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    let out = stratos_as(other.path(), &d.platform.api(), &["cluster", "restart", CLUSTER], "");
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    let runtime = d.runtime();
    assert_eq!(runtime["max"].as_u64(), Some(1), "{runtime:#}");
}

#[test]
fn restart_replaces_every_member_one_at_a_time_with_no_failed_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = deploy(2, 2, 4, 20);
    let before = d.wait_for_active(2, Duration::from_secs(30));
    let load = Load::start(d.proxy_port, &support::cluster_host(APP, ALIAS), 4);

    // The CLI waits and shows progress; meanwhile a second restart is refused.
    let mut command = Command::new(BIN);
    command.args(["cluster", "restart", CLUSTER, "--timeout", "90s", "--api", &d.platform.api()]);
    let mut restart = support::spawn("stratos cluster restart", command);
    eventually(Duration::from_secs(10), "the restart runs", || {
        let (status, body) = d.platform.api_get(&format!("/api/clusters/{CLUSTER}/restart"));
        if status == 200 && body.contains("\"running\":true") {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    });
    let second = d.platform.cli(&["cluster", "restart", CLUSTER, "--no-wait"]);
    assert!(!second.success() && second.stderr.contains("(409)"), "{second}");

    // Never more than one member beyond the two (one replacement at a time), never fewer
    // than two active (an old member leaves only after its replacement is active).
    let (mut most, mut fewest_active) = (0, usize::MAX);
    let status = loop {
        let members = d.members();
        let starting_or_active = ["Created", "Initialized", "Starting", "Active"];
        most = most.max(members.iter().filter(|m| starting_or_active.iter().any(|s| m["status"] == *s)).count());
        fewest_active = fewest_active.min(members.iter().filter(|m| m["status"] == "Active").count());
        if let Some(status) = restart.try_status() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = restart.stderr();
    assert!(status.success(), "{}", restart.describe());
    assert!(stderr.contains("old member(s) left"), "no progress shown: {stderr}");
    assert!(restart.stdout().contains("2 member(s) replaced"), "{}", restart.describe());
    assert!(most <= 3, "{most} members starting or in service at once");
    assert!(fewest_active >= 2, "only {fewest_active} member(s) active at one point");

    let after = d.wait_for_active(2, Duration::from_secs(30));
    assert!(ids(&before).is_disjoint(&ids(&after)), "old members left: {before:#?} {after:#?}");
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_eq!(report.failed, 0, "requests failed during the restart: {:?}", report.failures);
    for m in ids(&after) {
        assert!(report.first_served(&m).is_some(), "{m} served nothing: {:?}", report.served.keys());
    }
    eprintln!("restart under load: {} ok, {} failed", report.ok, report.failed);
}

#[test]
fn a_restart_goes_on_after_the_platform_restarts_and_leaves_no_extra_member() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = deploy(2, 2, 4, 10);
    let before = d.wait_for_active(2, Duration::from_secs(30));
    d.platform.ok(&["cluster", "restart", CLUSTER, "--no-wait"]);
    // Once a replacement exists, the platform stops and starts again.
    eventually(Duration::from_secs(20), "a replacement", || {
        let members = d.members();
        if members.iter().any(|m| !ids(&before).contains(&id(m))) {
            Ok(())
        } else {
            Err(format!("{members:#?}"))
        }
    });
    let Deployed { platform, proxy_port, sandbox } = d;
    let d = Deployed { platform: platform.restart(), proxy_port, sandbox };
    let after = d.wait_for_active(2, Duration::from_secs(60));
    assert!(ids(&before).is_disjoint(&ids(&after)), "old members left: {before:#?} {after:#?}");
    let (status, body) = d.platform.api_get(&format!("/api/clusters/{CLUSTER}/restart"));
    assert!(status == 200 && body.contains("\"running\":false"), "{status} {body}");
    // And it stays at two over the next reconciles (one a second).
    for _ in 0..10 {
        assert_eq!(d.members().len(), 2, "{:#?}", d.members());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn exec_runs_a_command_as_the_member_in_its_environment() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = deploy(1, 1, 4, 10);
    let member = id(&d.wait_for_active(1, Duration::from_secs(30))[0]);
    let script = "echo \"member=$STRATOS_MEMBER_ID\"; pwd; id -u; env; echo to-stderr >&2; exit 3";
    // `--api` before `--`: what follows is the command.
    let api = d.platform.api();
    let out = support::stratos(&["member", "exec", "--api", &api, &member, "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert!(out.stdout.contains(&format!("member={member}\n")), "{out}");
    assert!(out.stdout.contains(&format!("/members/{member}/work\n")), "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    // Its environment, less what lets it speak on the bus.
    assert!(out.stdout.contains(&format!("STRATOS_MEMBER_ID={member}")), "{out}");
    assert!(!out.stdout.contains("STRATOS_BUS_"), "bus credentials shown: {out}");
    // As the member's own user.
    let agent = support::member_processes(d.sandbox.path())
        .into_iter()
        .find(|p| p.member_id == member)
        .unwrap_or_else(|| panic!("no process of {member}"));
    let uid = stratos_test_kit::proc::uids(agent.pid as u32).expect("the agent's uids")[1];
    assert!(out.stdout.lines().any(|l| l == uid.to_string()), "not uid {uid}: {out}");

    let out = support::stratos(&["member", "exec", "--api", &api, "no-such-member", "--", "true"]);
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    let viewer = user(&d, "viewer2", "viewer", None);
    let out = stratos_as(viewer.path(), &api, &["member", "exec", &member, "--", "true"], "");
    assert!(!out.success() && out.stderr.contains("(403)"), "{out}");
}
