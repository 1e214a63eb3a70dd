//! Backup and restore of the platform's own state, end to end: the real `stratos up`
//! with real members of the `local` driver, `stratos backup` through the API, the old
//! platform stopped while its members run on, `stratos restore` into a fresh data
//! directory (the key files and the members directory moved as an operator would, as
//! `restore` says), and `stratos up` there.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use support::{
    cluster_host, cluster_members, eventually, free_port, id, member_processes, member_through_lb, signal_group,
    stratos, stratos_in, Platform, Sandbox, SlowHttpApp,
};

const PASSWORD: &str = "a long enough password";

/// The process groups of each member's processes under `dir`.
fn groups_by_member(dir: &Path) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for p in member_processes(dir) {
        out.entry(p.member_id).or_default().insert(p.pgid);
    }
    out
}

/// The ids of the cluster's members, once there are `n` of them, all Active, none of `gone`.
fn active_members(platform: &Platform, cluster: &str, n: usize, gone: &[&String]) -> BTreeSet<String> {
    eventually(Duration::from_secs(90), &format!("{n} active members in {cluster}, none of {gone:?}"), || {
        let members = cluster_members(platform, cluster);
        let active: BTreeSet<String> = members.iter().filter(|m| m["status"] == "Active").map(id).collect();
        if members.len() == n && active.len() == n && !gone.iter().any(|g| active.contains(*g)) {
            Ok(active)
        } else {
            Err(format!("{members:#?}"))
        }
    })
}

/// The platform id `stratos up` printed in its banner.
fn banner_platform_id(platform: &Platform) -> String {
    let out = platform.proc.stdout();
    let line = out.lines().find(|l| l.contains("(platform ")).unwrap_or_else(|| panic!("no platform id in\n{out}"));
    line.rsplit("(platform ").next().unwrap().trim_end_matches(')').to_owned()
}

#[test]
fn a_backup_restored_into_a_fresh_data_directory_adopts_the_running_members_and_replaces_the_dead() {
    let sandbox = Sandbox::new();
    let (old, new) = (sandbox.path().join("old"), sandbox.path().join("new"));
    let platform = Platform::start(&old, &[]);
    let api = platform.api();
    let app = SlowHttpApp {
        app: "shop",
        alias: "web",
        proxy_port: free_port(),
        delay_ms: 0,
        threshold: 1000.0,
        min: 2,
        max: 2,
        nps: &[("np1", 4)],
        iaas: Default::default(),
    };
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    let cluster = "shop.web";
    let members = active_members(&platform, cluster, 2, &[]);
    // A tenant with its admin, who may not take a backup.
    platform.ok(&["tenant", "add", "acme.test"]);
    let admin = platform.admin_token();
    let add_user = ["user", "add", "acme-admin", "--role", "tenant-admin", "--tenant", "acme.test", "--password-stdin"];
    let args: Vec<&str> = add_user.iter().copied().chain(["--api", &api, "--token", &admin]).collect();
    let out = stratos_in(support::config_home(), &args, &format!("{PASSWORD}\n"));
    assert!(out.success(), "{out}");
    let tenant_admin = tempfile::tempdir().unwrap();
    let login = ["login", "--api", &api, "--user", "acme-admin", "--password-stdin"];
    let out = stratos_in(tenant_admin.path(), &login, &format!("{PASSWORD}\n"));
    assert!(out.success(), "{out}");
    let out = stratos_in(tenant_admin.path(), &["backup", "--api", &api], "");
    assert!(!out.success() && out.stderr.contains("(403)") && out.stdout.is_empty(), "a tenant admin's backup: {out}");

    // The backup, through the API.
    let out = platform.ok(&["backup"]);
    assert!(out.stderr.contains("documents in") && out.stderr.contains("not in it"), "{out}");
    let file = sandbox.path().join("stratos-backup.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    let (header, documents) = stratos_store::backup::read(out.stdout.as_bytes()).unwrap();
    let platform_id = banner_platform_id(&platform);
    assert_eq!(header.platform_id.as_deref(), Some(platform_id.as_str()));
    for collection in ["cartridge", "application", "deployment", "topology-cluster", "tenant", "user", "api-token"] {
        assert!(header.collections.contains_key(collection), "{collection} in {:?}", header.collections);
    }
    assert!(documents.iter().any(|d| d.collection == "user" && d.id == "acme-admin"));
    assert!(!out.stdout.contains(PASSWORD) && !out.stdout.contains(&admin), "a secret in clear in the backup");

    // Not into the running platform's store (it is locked), nor into any non-empty store.
    let file_arg = file.to_str().unwrap();
    let out = stratos(&["restore", file_arg, "--data-dir", old.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("a platform is running on"), "{out}");

    // The platform stops; its members run on. One of them dies before the restore.
    let mqtt_port = platform.mqtt_port;
    let before = groups_by_member(sandbox.path());
    assert_eq!(before.keys().cloned().collect::<BTreeSet<_>>(), members, "{before:?}");
    drop(platform.stop());
    assert_eq!(groups_by_member(sandbox.path()), before, "members stopped with the platform");
    let out = stratos(&["restore", file_arg, "--data-dir", old.to_str().unwrap()]);
    assert!(!out.success() && out.stderr.contains("only into an empty store"), "{out}");
    assert!(out.stderr.contains("document(s)"), "{out}");
    let victim = members.iter().next().unwrap().clone();
    let survivor = members.iter().nth(1).unwrap().clone();
    for pgid in &before[&victim] {
        signal_group(*pgid, "KILL");
    }
    eventually(Duration::from_secs(10), "the victim's processes gone", || {
        match groups_by_member(sandbox.path()).get(&victim) {
            None => Ok(()),
            Some(groups) => Err(format!("{groups:?}")),
        }
    });

    // Restore into a fresh data directory, then do what it says.
    let out = stratos(&["restore", file_arg, "--data-dir", new.to_str().unwrap()]);
    assert!(out.success(), "{out}");
    println!("{out}");
    assert!(out.stdout.contains(&format!("restored {} documents", documents.len())), "{out}");
    assert!(out.stderr.contains("writing") && out.stderr.contains("one transaction"), "progress: {out}");
    assert!(out.stdout.contains(&format!("platform id {platform_id}")), "{out}");
    for said in ["bus-password", "[missing]", "secrets.key", "mqtt-cert.pem", "mv OLD/members", "--mqtt-listen"] {
        assert!(out.stdout.contains(said), "{said:?} in\n{out}");
    }
    std::fs::copy(old.join("bus-password"), new.join("bus-password")).unwrap();
    std::fs::rename(old.join("members"), new.join("members")).unwrap();
    // A second restore finds the store it wrote.
    let again = stratos(&["restore", file_arg, "--data-dir", new.to_str().unwrap()]);
    assert!(!again.success() && again.stderr.contains("only into an empty store"), "{again}");

    // `stratos up` on it: the same platform, its survivor adopted, the dead member replaced.
    let platform = Platform::start_again(&new, free_port(), mqtt_port, &[]);
    assert_eq!(banner_platform_id(&platform), platform_id, "the restored platform's id");
    let now = active_members(&platform, cluster, 2, &[&victim]);
    assert!(now.contains(&survivor), "the running member was not adopted: {now:?}");
    assert!(!now.contains(&victim), "the dead member is still counted: {now:?}");
    let replacement = now.iter().find(|m| **m != survivor).unwrap().clone();
    // The same processes for the survivor, one new member, nothing else.
    let groups = groups_by_member(sandbox.path());
    assert_eq!(groups.keys().cloned().collect::<BTreeSet<_>>(), now, "member processes: {groups:?}");
    assert_eq!(groups[&survivor], before[&survivor], "the survivor was restarted");
    eventually(Duration::from_secs(30), "the survivor's agent reconnected", || {
        let log = std::fs::read_to_string(new.join("members").join(&survivor).join("agent.log")).unwrap_or_default();
        if log.contains("reconnected to the event bus") {
            Ok(())
        } else {
            Err(log)
        }
    });
    // Both serve through the load balancer.
    let host = cluster_host(app.app, app.alias);
    let answered = eventually(Duration::from_secs(30), "both members answer through the load balancer", || {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            seen.insert(member_through_lb(app.proxy_port, &host, "/", Duration::from_secs(2))?);
        }
        if seen == now {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert!(answered.contains(&replacement));
    // For a few reconcile rounds: no member added or removed.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let ids: BTreeSet<String> = cluster_members(&platform, cluster).iter().map(id).collect();
        assert_eq!(ids, now, "the members changed");
    }

    // Definitions, the deployment, tenants and users are all there; the tenant admin's password works.
    assert!(platform.list("cartridge").to_string().contains("slow-http"));
    assert!(platform.list("application").to_string().contains("shop"));
    let status = platform.ok(&["application", "status", "shop", "-o", "json"]);
    assert!(status.stdout.contains("\"Active\""), "{status}");
    let tenants = platform.ok(&["tenant", "list", "-o", "json"]);
    assert!(tenants.stdout.contains("acme.test"), "{tenants}");
    let users = platform.ok(&["user", "list", "-o", "json"]);
    assert!(users.stdout.contains("acme-admin"), "{users}");
    let relogin = tempfile::tempdir().unwrap();
    let api = platform.api();
    let login = ["login", "--api", &api, "--user", "acme-admin", "--password-stdin"];
    let out = stratos_in(relogin.path(), &login, &format!("{PASSWORD}\n"));
    assert!(out.success(), "the restored password hash: {out}");
    // And a second backup holds the same definitions, users and tenants.
    let second = platform.ok(&["backup"]);
    let (_, after) = stratos_store::backup::read(second.stdout.as_bytes()).unwrap();
    let kept = ["cartridge", "application", "deployment-policy", "tenant", "user", "platform"];
    assert_eq!(of(&after, &kept), of(&documents, &kept), "after the restore");
    drop(platform.stop());
}

/// The documents of a backup in `collections`, for comparing what two platforms hold.
fn of(documents: &[stratos_store::Document], collections: &[&str]) -> Vec<stratos_store::Document> {
    documents.iter().filter(|d| collections.contains(&d.collection.as_str())).cloned().collect()
}

/// A SQLite platform's backup restored into PostgreSQL (`--store-url`), and a platform
/// started there with another data directory: the same definitions, tenants and users;
/// the PostgreSQL store refused once it holds them; its own backup says `postgres`.
#[test]
fn a_sqlite_backup_restores_into_postgresql() {
    let Some(server) = support::postgres::server_url() else { return };
    let schema = support::postgres::PgSchema::create(&server);
    let url = schema.url();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let platform = Platform::start(one.path(), &[]);
    platform.add_php_web();
    platform.ok(&["tenant", "add", "acme.test"]);
    let out = platform.ok(&["backup"]);
    let file = one.path().join("backup.jsonl");
    std::fs::write(&file, &out.stdout).unwrap();
    let (header, documents) = stratos_store::backup::read(out.stdout.as_bytes()).unwrap();
    assert_eq!(header.store, "sqlite");
    drop(platform.stop());

    let file_arg = file.to_str().unwrap();
    let data_arg = two.path().to_str().unwrap();
    let out = stratos(&["restore", file_arg, "--store-url", &url, "--data-dir", data_arg]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("restored") && out.stdout.contains("into postgres://"), "{out}");
    assert!(!out.to_string().contains("stratos:stratos@"), "the password shows: {out}");
    let out = stratos(&["restore", file_arg, "--store-url", &url]);
    assert!(!out.success() && out.stderr.contains("only into an empty store"), "{out}");

    let platform = Platform::start(two.path(), &["--store", &url]);
    let out = platform.ok(&["backup"]);
    let (header, after) = stratos_store::backup::read(out.stdout.as_bytes()).unwrap();
    assert_eq!(header.store, "postgres");
    let kept = ["cartridge", "network-partition", "autoscaling-policy", "deployment-policy", "application-policy"];
    let kept: Vec<&str> = kept.iter().copied().chain(["application", "tenant", "user", "platform"]).collect();
    assert_eq!(of(&after, &kept), of(&documents, &kept), "what the PostgreSQL platform holds");
    assert!(platform.ok(&["tenant", "list", "-o", "json"]).stdout.contains("acme.test"));
    drop(platform.stop());
}
