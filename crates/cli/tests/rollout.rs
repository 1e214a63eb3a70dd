//! Revisions and rolling updates through the real platform (`stratos up`, the local
//! driver, members that are real `stratos sample-http` processes naming their version,
//! the built-in load balancer under continuous keep-alive load):
//! - a deployed cartridge edited is not what new members of the running deployment
//!   start from (scaling up still starts the pinned revision) until `stratos application
//!   update`, which replaces every member one at a time with no failed request, every
//!   answer from the old version or the new;
//! - a rollout whose new version exits at once fails and is rolled back: the old
//!   members (the same ids) keep serving, and `application status` says why;
//! - who may: tenant writers update, viewers read, another tenant's application is absent;
//! - the same rollout on the docker driver (containers replaced under load).
//!
//! The tests run one at a time (a lock): each starts a platform and a few members.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use support::{cluster_members, eventually, free_port, id, Load, Platform, Sandbox, SlowHttpApp, BIN, QUICK_SCALING};

const APP: &str = "shop";
const ALIAS: &str = "web";
const CLUSTER: &str = "shop.web";

static SERIAL: Mutex<()> = Mutex::new(());

struct Deployed {
    platform: Platform,
    proxy_port: u16,
    /// Last: the member processes are killed once the platform is stopped.
    sandbox: Sandbox,
}

/// The sample cartridge (see `support::slow_http_cartridge`) answering `version`, or
/// running `command` instead.
fn cartridge(proxy_port: u16, version: &str, command: Option<&[&str]>) -> Value {
    let mut c = support::slow_http_cartridge("slow-http", proxy_port, 5);
    c["iaasProvider"][0]["property"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "env.SAMPLE_HTTP_VERSION", "value": version }));
    if let Some(command) = command {
        c["iaasProvider"][0]["command"] = json!(command);
    }
    c
}

/// Writes a cartridge file in a directory of its own, for `apply -f` / `update -f`.
fn cartridge_dir(root: &Path, name: &str, cartridge: &Value) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cartridge.json"), serde_json::to_vec_pretty(cartridge).unwrap()).unwrap();
    dir
}

/// [`APP`] deployed with `n` members of the cartridge answering `v1`.
fn deploy(n: u32) -> Deployed {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    let proxy_port = free_port();
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms: 5,
        threshold: 1000.0,
        min: n,
        max: n,
        nps: &[("np1", 8)],
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    let v1 = cartridge_dir(sandbox.path(), "v1", &cartridge(proxy_port, "v1", None));
    platform.ok(&["apply", "-f", v1.to_str().unwrap()]);
    app.deploy(&platform);
    Deployed { platform, proxy_port, sandbox }
}

impl Deployed {
    fn members(&self) -> Vec<Value> {
        cluster_members(&self.platform, CLUSTER)
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

    /// What `$SAMPLE_HTTP_VERSION` is in `member`'s environment.
    fn version_of(&self, member: &str) -> String {
        let out = self.platform.ok(&["member", "exec", member, "--", "sh", "-c", "echo $SAMPLE_HTTP_VERSION"]);
        out.stdout.trim().to_string()
    }

    fn load(&self) -> Load {
        Load::start(self.proxy_port, &support::cluster_host(APP, ALIAS), 4)
    }
}

fn ids(members: &[Value]) -> BTreeSet<String> {
    members.iter().map(id).collect()
}

/// The `revision` property of a member in the topology.
fn revision(member: &Value) -> Option<String> {
    member["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "revision")
        .and_then(|p| p["value"].as_str())
        .map(str::to_string)
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
fn an_edited_cartridge_waits_for_an_update_which_rolls_out_with_no_failed_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = deploy(2);
    let before = d.wait_for_active(2, Duration::from_secs(60));
    assert!(before.iter().all(|m| revision(m).as_deref() == Some("1")), "pinned at deploy: {before:#?}");
    let load = d.load();

    // The cartridge edited: the running deployment is not touched, and a member started
    // now (scaling up) still runs revision 1, v1.
    let v2 = cartridge_dir(d.sandbox.path(), "v2", &cartridge(d.proxy_port, "v2", None));
    d.platform.ok(&["apply", "-f", v2.to_str().unwrap()]);
    d.platform.ok(&["cluster", "scale", CLUSTER, "--min", "3", "--max", "3"]);
    let three = d.wait_for_active(3, Duration::from_secs(60));
    let added: Vec<&Value> = three.iter().filter(|m| !ids(&before).contains(&id(m))).collect();
    assert_eq!(added.len(), 1, "{three:#?}");
    assert_eq!(revision(added[0]).as_deref(), Some("1"), "{three:#?}");
    assert_eq!(d.version_of(&id(added[0])), "v1", "a new member started from the edited cartridge");

    // The update (applying the same files again): one member at a time, waiting, with progress.
    let mut command = Command::new(BIN);
    command.args(["application", "update", APP, "-f", v2.to_str().unwrap(), "--deadline", "3m"]);
    command.args(["--api", &d.platform.api()]);
    let mut update = support::spawn("stratos application update", command);
    let (mut most, mut fewest_active) = (0, usize::MAX);
    let status = loop {
        let members = d.members();
        let on = ["Created", "Initialized", "Starting", "Active"];
        most = most.max(members.iter().filter(|m| on.iter().any(|s| m["status"] == *s)).count());
        fewest_active = fewest_active.min(members.iter().filter(|m| m["status"] == "Active").count());
        if let Some(status) = update.try_status() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", update.describe());
    assert!(update.stderr().contains("[rollout 1 progressing]"), "no progress shown: {}", update.describe());
    assert!(update.stdout().contains("rollout 1: complete"), "{}", update.describe());
    assert!(most <= 4, "{most} members starting or in service at once (a surge of one)");
    assert!(fewest_active >= 3, "only {fewest_active} member(s) active at one point");

    let after = d.wait_for_active(3, Duration::from_secs(60));
    assert!(ids(&three).is_disjoint(&ids(&after)), "old members left: {three:#?} {after:#?}");
    assert!(after.iter().all(|m| revision(m).as_deref() == Some("2")), "{after:#?}");
    assert_eq!(d.version_of(&id(&after[0])), "v2");
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_eq!(report.failed, 0, "requests failed during the rollout: {:?}", report.failures);
    let versions: BTreeSet<&str> = report.versions.keys().map(String::as_str).collect();
    assert_eq!(versions, BTreeSet::from(["v1", "v2"]), "answers by version: {:?}", report.versions);
    eprintln!("rollout under load: {} ok, {} failed, {:?}", report.ok, report.failed, report.versions);

    // Nothing changed since: nothing to roll out. The history has the one rollout.
    let out = d.platform.ok(&["application", "update", APP]);
    assert!(out.stderr.contains("nothing to roll out"), "{out}");
    let out = d.platform.ok(&["application", "rollout", "history", APP, "-o", "json"]);
    let history: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history:#}");
    assert_eq!(history[0]["status"], "complete");
    assert_eq!(
        (history[0]["clusters"][0]["from"].as_u64(), history[0]["clusters"][0]["to"].as_u64()),
        (Some(1), Some(2))
    );

    // Undo: back to revision 1, rolling again; the first rollout reads as rolled back.
    let out = d.platform.ok(&["application", "rollout", "undo", APP]);
    assert!(out.stdout.contains("rollout 2: complete") && out.stdout.contains("undoing rollout 1"), "{out}");
    let undone = d.wait_for_active(3, Duration::from_secs(60));
    assert!(undone.iter().all(|m| revision(m).as_deref() == Some("1")), "{undone:#?}");
    assert_eq!(d.version_of(&id(&undone[0])), "v1");
    let out = d.platform.ok(&["application", "rollout", "history", APP]);
    assert!(out.stdout.contains("rolled-back") && out.stdout.contains("shop.web 2→1"), "{out}");
}

#[test]
fn a_rollout_whose_new_version_exits_at_once_is_rolled_back_with_the_old_members_untouched() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = deploy(2);
    let before = d.wait_for_active(2, Duration::from_secs(60));
    let load = d.load();

    // Who may: a viewer reads but does not update; another tenant sees no application.
    let viewer = user(&d, "viewer1", "viewer", None);
    d.platform.ok(&["tenant", "add", "acme.test"]);
    let other = user(&d, "dev1", "developer", Some("acme.test"));
    let api = d.platform.api();
    let out = stratos_as(viewer.path(), &api, &["application", "update", APP], "");
    assert!(!out.success() && out.stderr.contains("(403)"), "{out}");
    let out = stratos_as(other.path(), &api, &["application", "update", APP], "");
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    let out = d.platform.cli(&["application", "update", APP, "--max-surge", "0"]);
    assert!(!out.success() && out.stderr.contains("(400)") && out.stderr.contains("maxSurge: "), "{out}");

    let broken = cartridge(d.proxy_port, "v2", Some(&["sh", "-c", "echo broken >&2; exit 1"]));
    let dir = cartridge_dir(d.sandbox.path(), "broken", &broken);
    let out = d.platform.cli(&["application", "update", APP, "-f", dir.to_str().unwrap(), "--deadline", "2m"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("rollout 1 of application \"shop\" is failed"), "{out}");
    assert!(out.stdout.contains("failed in a row"), "{out}");

    // The new members drain; the old ones, the same, serve on at revision 1.
    let after = d.wait_for_active(2, Duration::from_secs(60));
    assert_eq!(ids(&before), ids(&after), "the old members were replaced");
    let out = d.platform.ok(&["application", "status", APP]);
    assert!(out.stdout.contains("rollout 1: failed") && out.stdout.contains("reason: cluster shop.web"), "{out}");
    let out = stratos_as(viewer.path(), &api, &["application", "rollout", "status", APP], "");
    assert!(out.success() && out.stdout.contains("rollout 1: failed"), "{out}");
    let out = stratos_as(other.path(), &api, &["application", "rollout", "status", APP], "");
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    // A failed rollout went back already: nothing to undo.
    let out = d.platform.cli(&["application", "rollout", "undo", APP]);
    assert!(!out.success() && out.stderr.contains("(409)"), "{out}");

    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_eq!(report.failed, 0, "requests failed: {:?}", report.failures);
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["v1"], "{:?}", report.versions);
}

/// The same rollout on the docker driver: containers of the new revision replace the
/// old ones under load, with no failed request (the planner knows no driver).
#[test]
fn a_rollout_replaces_containers_on_the_docker_driver() {
    use stratos_test_kit::docker as dk;
    if !dk::engine_or_skip("a_rollout_replaces_containers_on_the_docker_driver") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cleanup = support::containers::Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    cleanup.platform(&support::containers::platform_id(&platform));
    let proxy_port = free_port();
    let image = dk::shell_image();
    let app = SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms: 5,
        threshold: 1000.0,
        min: 2,
        max: 2,
        nps: &[("np1", 8)],
        iaas: support::Iaas::Docker { image: &image, hosts: &[] },
    };
    app.add(&platform, sandbox.path());
    let docker_cartridge = |version: &str| {
        let mut c = support::slow_http_cartridge("slow-http", proxy_port, 5);
        c["iaasProvider"] = json!([{
            "type": "docker", "imageId": image, "cpu": "0.5", "memory": "128Mi",
            "command": ["stratos", "sample-http", "--port", "${PORT}", "--bind", "0.0.0.0", "--delay", "5ms"],
            "property": [{ "name": "env.STRATOS_HEALTH_STATS_INTERVAL", "value": "1s" },
                         { "name": "env.SAMPLE_HTTP_VERSION", "value": version }]
        }]);
        c
    };
    let v1 = cartridge_dir(sandbox.path(), "v1", &docker_cartridge("v1"));
    platform.ok(&["apply", "-f", v1.to_str().unwrap()]);
    app.deploy(&platform);
    let d = Deployed { platform, proxy_port, sandbox };
    let before = d.wait_for_active(2, Duration::from_secs(120));
    let load = d.load();
    let v2 = cartridge_dir(d.sandbox.path(), "v2", &docker_cartridge("v2"));
    let out = d.platform.ok(&["application", "update", APP, "-f", v2.to_str().unwrap(), "--deadline", "3m"]);
    assert!(out.stdout.contains("rollout 1: complete"), "{out}");
    let after = d.wait_for_active(2, Duration::from_secs(60));
    assert!(ids(&before).is_disjoint(&ids(&after)), "{before:#?} {after:#?}");
    assert!(after.iter().all(|m| revision(m).as_deref() == Some("2")), "{after:#?}");
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_eq!(report.failed, 0, "requests failed during the rollout: {:?}", report.failures);
    let versions: BTreeSet<&str> = report.versions.keys().map(String::as_str).collect();
    assert_eq!(versions, BTreeSet::from(["v1", "v2"]), "answers by version: {:?}", report.versions);
    drop(d);
    drop(cleanup);
}
