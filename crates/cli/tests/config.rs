//! An application's configuration and secrets through the real platform (`stratos up` with
//! the local driver, members that are real `stratos sample-http` processes):
//! `stratos config set|unset|list` (plain values and secrets in members' environments,
//! seen through `stratos member exec -- env`; a change replaces the members, `--no-restart`
//! leaves them; a docker member's too), the secret in no API answer (the backup holds it
//! sealed), no log line of `stratos up` at debug level and not in the SQLite file, `stratos config rotate-key` (sealed again under a new key, still
//! reaching members), and refusals (bad keys named, 404 for another tenant, 403 for viewers).
//!
//! The tests run one at a time (a lock): each starts a platform and a few members.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use stratos_store::app_config::{AppConfig, ConfigValue};
use stratos_test_kit::docker as dk;
use support::containers::{platform_id, Cleanup};
use support::{cluster_members, eventually, free_port, id, Iaas, Platform, Sandbox, SlowHttpApp, QUICK_SCALING};

const APP: &str = "shop";
const ALIAS: &str = "web";
const CLUSTER: &str = "shop.web";

static SERIAL: Mutex<()> = Mutex::new(());

fn app(proxy_port: u16) -> SlowHttpApp<'static> {
    app_on(proxy_port, Iaas::Local)
}

fn app_on(proxy_port: u16, iaas: Iaas<'_>) -> SlowHttpApp<'_> {
    SlowHttpApp {
        app: APP,
        alias: ALIAS,
        proxy_port,
        delay_ms: 5,
        threshold: 50.0,
        min: 1,
        max: 1,
        nps: &[("np1", 4)],
        iaas,
    }
}

/// A value no other part of the test run could print by chance.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{what}-{}-{nanos:x}", std::process::id())
}

fn ids(members: &[Value]) -> BTreeSet<String> {
    members.iter().map(id).collect()
}

/// Waits until the cluster has exactly `n` members, all active.
fn active(platform: &Platform, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    eventually(Duration::from_secs(60), &format!("{n} active member(s)"), || {
        found = cluster_members(platform, CLUSTER);
        let active = found.iter().filter(|m| m["status"] == "Active").count();
        if found.len() == n && active == n {
            Ok(())
        } else {
            Err(format!("{} member(s), {active} active", found.len()))
        }
    });
    found
}

/// The environment of `member`'s app, through `stratos member exec -- env`.
fn member_env(platform: &Platform, member: &str) -> String {
    let api = platform.api();
    let out = support::stratos(&["member", "exec", "--api", &api, member, "--", "env"]);
    assert!(out.success(), "{out}");
    out.stdout
}

/// `stratos ARGS` with `stdin`, as the admin (its token is in the shared config home).
fn with_stdin(platform: &Platform, args: &[&str], stdin: &str) -> support::Output {
    support::stratos_in(support::config_home(), &support::with_api(args, &platform.api()), stdin)
}

/// Reads the stored configuration of [`APP`] (the platform stopped: SQLite is its process's alone).
fn stored_config(data_dir: &Path) -> AppConfig {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = stratos_store::Store::open_sqlite(&data_dir.join("stratos.db")).await.unwrap();
        store.get_record::<AppConfig>(stratos_model::SUPER_TENANT, APP).await.unwrap().expect("a stored configuration")
    })
}

/// The SQLite file and its WAL, as bytes.
fn raw_store(data_dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(data_dir.join("stratos.db")).unwrap();
    bytes.extend(std::fs::read(data_dir.join("stratos.db-wal")).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn config_and_secrets_reach_members_and_secrets_appear_nowhere_else() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    // Every log line of the platform, at debug level.
    let log = [("RUST_LOG", Path::new("debug,rumqttd=off"))];
    let platform = Platform::start_with_env(sandbox.path(), free_port(), free_port(), QUICK_SCALING, &log)
        .unwrap_or_else(|proc| panic!("`stratos up` did not start\n{}", proc.describe()));
    let app = app(free_port());
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let first = ids(&active(&platform, 1));

    // A plain value without a restart: the member keeps its environment.
    let out = platform.ok(&["config", "set", APP, "GREETING=hello", "--no-restart"]);
    assert!(out.stdout.contains("changed GREETING") && out.stdout.contains("running members keep"), "{out}");
    // And it stays so over the next reconciles (one a second).
    for _ in 0..10 {
        assert_eq!(ids(&cluster_members(&platform, CLUSTER)), first, "--no-restart replaced the member");
        std::thread::sleep(Duration::from_millis(300));
    }
    let member = first.iter().next().unwrap().clone();
    assert!(!member_env(&platform, &member).contains("GREETING="), "a running member's environment changed");

    // A secret, its value from standard input: the member is replaced, and the new one
    // has both (the plain value reaches members started from then on).
    let secret = unique("s3cr3t");
    let out = with_stdin(&platform, &["config", "set", APP, "API_TOKEN", "--secret", "--timeout", "90s"], &secret);
    assert!(out.success(), "{out}\n{}", platform.proc.describe());
    assert!(out.stdout.contains("cluster shop.web restarted: 1 member(s) replaced"), "{out}");
    assert!(out.stderr.contains("old member(s) left"), "no progress shown: {out}");
    let second = ids(&active(&platform, 1));
    assert!(second.is_disjoint(&first), "the member was not replaced: {first:?} {second:?}");
    let env = member_env(&platform, second.iter().next().unwrap());
    assert!(env.lines().any(|l| l == "GREETING=hello"), "{env}");
    assert!(env.lines().any(|l| l == format!("API_TOKEN={secret}")), "{env}");

    // The same value again: nothing changes, nothing restarts.
    let out = with_stdin(&platform, &["config", "set", APP, "API_TOKEN", "--secret"], &format!("{secret}\n"));
    assert!(out.success() && out.stdout.contains("unchanged API_TOKEN"), "{out}");
    assert!(!out.stdout.contains("restarted"), "{out}");

    // A new value: the member is replaced again, the new one sees it.
    let secret2 = unique("n3w-s3cr3t");
    let set = format!("API_TOKEN={secret2}");
    let out = platform.ok(&["config", "set", APP, &set, "--secret", "--cluster", ALIAS, "--timeout", "90s"]);
    assert!(out.stdout.contains("restarted"), "{out}");
    let third = ids(&active(&platform, 1));
    assert!(third.is_disjoint(&second), "{second:?} {third:?}");
    let env = member_env(&platform, third.iter().next().unwrap());
    assert!(env.lines().any(|l| l == format!("API_TOKEN={secret2}")), "the cluster's value wins: {env}");

    // list: the plain value, the secrets by name and revision only.
    let out = platform.ok(&["config", "list", APP]);
    assert!(out.stdout.contains("GREETING") && out.stdout.contains("hello"), "{out}");
    assert!(out.stdout.contains("API_TOKEN") && out.stdout.contains("(secret, key"), "{out}");
    let listed: Value = serde_json::from_str(&platform.ok(&["config", "list", APP, "-o", "json"]).stdout).unwrap();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{listed:#}");
    let app_token = entries.iter().find(|e| e["key"] == "API_TOKEN" && e["scope"] == "application").unwrap();
    assert_eq!((app_token["secret"].as_bool(), app_token["revision"].as_u64()), (Some(true), Some(1)), "{listed:#}");
    assert!(app_token.get("value").is_none(), "{listed:#}");
    let effective: Value =
        serde_json::from_str(&platform.ok(&["config", "list", APP, "--cluster", ALIAS, "-o", "json"]).stdout).unwrap();
    let tokens: Vec<&Value> =
        effective["entries"].as_array().unwrap().iter().filter(|e| e["key"] == "API_TOKEN").collect();
    assert_eq!(tokens.len(), 1, "{effective:#}");
    assert_eq!(tokens[0]["scope"], ALIAS, "{effective:#}");

    // No answer of the API carries either secret.
    let mut answers = String::new();
    for path in [
        "/api/applications/shop/config",
        "/api/applications/shop/config?cluster=web",
        "/api/applications/shop/runtime",
        "/api/applications/shop",
        "/api/topology",
        "/api/clusters/shop.web/restart",
        "/api/clusters/shop.web/scalingHistory",
        "/api/openapi.json",
    ] {
        let (status, body) = platform.api_get(path);
        assert_eq!(status, 200, "{path}: {body}");
        answers.push_str(&body);
    }
    for args in [
        &["member", "list", "-o", "json"][..],
        &["application", "status", APP, "-o", "json"],
        &["config", "list", APP, "-o", "yaml"],
    ] {
        answers.push_str(&platform.ok(args).stdout);
    }
    // The backup (GET /api/backup) holds secrets as stored: sealed.
    let backup = platform.ok(&["backup"]).stdout;
    answers.push_str(&backup);
    for s in [&secret, &secret2] {
        assert!(!answers.contains(s.as_str()), "an API answer carries a secret");
    }

    // Nor does any line the platform logged, nor its store's file: only the ciphertext is there.
    let data_dir = sandbox.path().to_owned();
    let proc = platform.stop();
    let logged = format!("{}{}", proc.stdout(), proc.stderr());
    assert!(logged.contains("DEBUG"), "not logging at debug level");
    assert!(logged.contains("application configuration changed"), "the change is not logged");
    for s in [&secret, &secret2] {
        assert!(!logged.contains(s.as_str()), "the platform logged a secret");
        assert!(!contains(&raw_store(&data_dir), s), "the store's file holds a secret in the clear");
    }
    let stored = stored_config(&data_dir);
    let ConfigValue::Secret(sealed) = &stored.app["API_TOKEN"].value else { panic!("{stored:?}") };
    assert_eq!(sealed.plaintext_len(), secret.len());
    assert!(contains(&raw_store(&data_dir), &sealed.ciphertext), "the ciphertext is what is stored");
    assert!(backup.contains(&sealed.ciphertext), "the backup lacks the sealed secret");
    assert_eq!(stored.app["GREETING"].value, ConfigValue::Plain("hello".into()));
}

#[test]
fn rotate_key_reseals_secrets_that_members_still_get() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    let app = app(free_port());
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    active(&platform, 1);
    let secret = unique("r0tat3d");
    platform.ok(&["config", "set", APP, &format!("DB_PASSWORD={secret}"), "--secret", "--no-restart"]);

    // The ciphertext and key as stored before (read with the platform stopped).
    let (dir, api_port, mqtt_port) = (sandbox.path().to_owned(), platform.api_port, platform.mqtt_port);
    drop(platform.stop());
    let key_file = dir.join("secrets.key");
    let before = stored_config(&dir).app["DB_PASSWORD"].value.clone();
    let ConfigValue::Secret(before) = before else { panic!("{before:?}") };
    let platform = Platform::start_again(&dir, api_port, mqtt_port, QUICK_SCALING);

    // Only platform admins rotate.
    let out = with_stdin(
        &platform,
        &["user", "add", "dev2", "--role", "developer", "--password-stdin"],
        "a long enough password\n",
    );
    assert!(out.success(), "{out}");
    let dev = login(&platform, "dev2");
    let out = support::stratos_in(dev.path(), &support::with_api(&["config", "rotate-key"], &platform.api()), "");
    assert!(!out.success() && out.stderr.contains("(403)"), "{out}");

    let out = platform.ok(&["config", "rotate-key"]);
    assert!(out.stdout.contains("1 secret(s) sealed again") && out.stdout.contains(&before.key_id), "{out}");
    let file = std::fs::read_to_string(&key_file).unwrap();
    assert!(!file.contains(&before.key_id), "the old key is still in the key file");
    let listed: Value = serde_json::from_str(&platform.ok(&["config", "list", APP, "-o", "json"]).stdout).unwrap();
    let key_id = listed["entries"][0]["keyId"].as_str().unwrap().to_owned();
    assert_ne!(key_id, before.key_id);
    assert!(file.contains(&key_id), "{file}");

    // A member started after the rotation still gets the value.
    let old = ids(&active(&platform, 1));
    platform.ok(&["cluster", "restart", CLUSTER, "--timeout", "90s"]);
    let new = ids(&active(&platform, 1));
    assert!(new.is_disjoint(&old), "{old:?} {new:?}");
    let env = member_env(&platform, new.iter().next().unwrap());
    assert!(env.lines().any(|l| l == format!("DB_PASSWORD={secret}")), "{env}");

    drop(platform.stop());
    let ConfigValue::Secret(after) = stored_config(&dir).app["DB_PASSWORD"].value.clone() else { panic!() };
    assert_eq!(after.key_id, key_id);
    assert_ne!(after.ciphertext, before.ciphertext, "the stored ciphertext did not change");
    assert!(!contains(&raw_store(&dir), &secret));
}

/// A config directory of its own, logged in as `user` (whose password is the one the tests give).
fn login(platform: &Platform, user: &str) -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let api = platform.api();
    let args = support::with_api(&["login", "--user", user, "--password-stdin"], &api);
    let out = support::stratos_in(config.path(), &args, "a long enough password\n");
    assert!(out.success(), "{out}");
    config
}

#[test]
fn bad_keys_are_refused_by_name_and_only_the_applications_tenant_writes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    app(free_port()).add(&platform, sandbox.path());

    let big = format!("BIG={}", "x".repeat(40 * 1024));
    for (entry, field, reason) in [
        ("STRATOS_MEMBER_ID=x", "set.STRATOS_MEMBER_ID", "STRATOS_MEMBER_ID is reserved"),
        ("PORT=80", "set.PORT", "PORT is reserved"),
        ("LD_PRELOAD=/x.so", "set.LD_PRELOAD", "reserved"),
        ("1ABC=x", "set.1ABC", "not an environment variable name"),
        ("A-B=x", "set.A-B", "not an environment variable name"),
        (big.as_str(), "set.BIG", "at most 32768"),
    ] {
        let out = platform.cli(&["config", "set", APP, entry]);
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains("(400)") && out.stderr.contains(&format!("{field}: ")), "{out}");
        assert!(out.stderr.contains(reason), "{out}");
    }
    let out = platform.cli(&["config", "set", APP, "A=1", "--cluster", "nope"]);
    assert!(!out.success() && out.stderr.contains("(400)") && out.stderr.contains("cluster: "), "{out}");
    let out = platform.cli(&["config", "unset", APP, "HOME"]);
    assert!(!out.success() && out.stderr.contains("unset[0]: HOME is reserved"), "{out}");
    let out = platform.cli(&["config", "list", "no-such-app"]);
    assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    // Nothing was stored.
    let out = platform.ok(&["config", "list", APP]);
    assert!(out.stdout.contains("has no configuration"), "{out}");

    // Not deployed: stored for the deploy, no restart.
    let out = platform.ok(&["config", "set", APP, "A=1", "--secret"]);
    assert!(out.stdout.contains("not deployed"), "{out}");

    // Viewers read, do not write; another tenant's users do not see the application.
    for (name, role, tenant) in [("viewer1", "viewer", None), ("dev1", "developer", Some("acme.test"))] {
        if let Some(t) = tenant {
            platform.ok(&["tenant", "add", t]);
        }
        let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let out = with_stdin(&platform, &args, "a long enough password\n");
        assert!(out.success(), "{out}");
    }
    let as_user =
        |config: &Path, args: &[&str]| support::stratos_in(config, &support::with_api(args, &platform.api()), "");
    let viewer = login(&platform, "viewer1");
    let out = as_user(viewer.path(), &["config", "list", APP]);
    assert!(out.success() && out.stdout.contains("(secret, key"), "{out}");
    let out = as_user(viewer.path(), &["config", "set", APP, "B=2"]);
    assert!(!out.success() && out.stderr.contains("(403)"), "{out}");
    let other = login(&platform, "dev1");
    for args in [&["config", "list", APP][..], &["config", "set", APP, "B=2"], &["config", "unset", APP, "A"]] {
        let out = as_user(other.path(), args);
        assert!(!out.success() && out.stderr.contains("(404)"), "{out}");
    }
}

#[test]
fn a_secret_reaches_a_containers_app_and_none_of_its_labels() {
    if !dk::engine_or_skip("a_secret_reaches_a_containers_app_and_none_of_its_labels") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let image = dk::shell_image();
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), QUICK_SCALING);
    cleanup.platform(&platform_id(&platform));
    let app = app_on(free_port(), Iaas::Docker { image: &image, hosts: &[] });
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let before = ids(&active(&platform, 1));

    let secret = unique("c0ntain3d");
    platform.ok(&["config", "set", APP, "GREETING=hi", "--timeout", "120s", "--no-restart"]);
    let set = format!("API_TOKEN={secret}");
    let out = platform.ok(&["config", "set", APP, &set, "--secret", "--timeout", "120s"]);
    assert!(out.stdout.contains("restarted: 1 member(s) replaced"), "{out}");
    let after = ids(&active(&platform, 1));
    assert!(after.is_disjoint(&before), "{before:?} {after:?}");
    let member = after.into_iter().next().unwrap();
    // Shell builtins only: the image has a shell and little else.
    let api = platform.api();
    let script = "echo \"token=[$API_TOKEN] greeting=[$GREETING]\"";
    let out = support::stratos(&["member", "exec", "--api", &api, &member, "--", "sh", "-c", script]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(&format!("token=[{secret}] greeting=[hi]")), "{out}");
    // The container's labels (what the driver lists members by) carry no value.
    let container = stratos_cloud::docker::labels::container_name(&member);
    let labels = dk::docker(&["inspect", "--format", "{{json .Config.Labels}}", &container]);
    assert!(labels.contains(&member) && !labels.contains(&secret), "{labels}");
    drop(platform.stop());
}
