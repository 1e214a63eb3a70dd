//! The bus's trust boundary end to end on an external Mosquitto 2 with its
//! dynamic-security plugin: `stratos up --mosquitto-dynsec` gives each member it starts
//! a client of its own there; real members (agents and apps) reach the bus with it
//! and activate, cannot read beyond their own topics, and lose it at undeploy. And a
//! component that fails for real (the broker refuses the autoscaler's subscription) ends
//! `stratos up` with its error.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use stratos_bus::mosquitto::{mosquitto_conf, DYNSEC_PLUGIN};
use stratos_bus::{Credentials, PlatformSecret};
use stratos_test_kit::mosquitto::{self, Mosquitto};
use support::{eventually, free_port, member_list, spawn, stratos, Platform, Sandbox, BIN};

/// What a member with `credentials` gets from the broker: refused, or its SUBACK to `#`.
fn try_member(port: u16, credentials: &Credentials) -> Result<Vec<SubscribeReasonCode>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut options = MqttOptions::new("probe-member", "127.0.0.1", port);
        options.set_credentials(credentials.username.clone(), credentials.password.clone());
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let answer = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.subscribe("#", QoS::AtLeastOnce).await.map_err(|e| e.to_string())?
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => return Ok(ack.return_codes),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), answer).await.map_err(|_| "no answer".to_string())?
    })
}

/// Mosquitto 2 with its dynamic-security plugin, set up as the README says: the platform's
/// user `stratos` is its admin.
struct DynsecBroker {
    _mosquitto: Mosquitto,
    port: u16,
    secret: PlatformSecret,
    password_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl DynsecBroker {
    /// `None` (the test skips) when STRATOS_SKIP_MOSQUITTO=1; `deny_subscribe` are topic
    /// filters the platform's user may not subscribe to (a role of the highest priority).
    fn start(deny_subscribe: &[&str]) -> Option<DynsecBroker> {
        if !mosquitto::dynsec_available(DYNSEC_PLUGIN) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = PlatformSecret::generate().unwrap();
        let password_file = dir.path().join("bus-password");
        std::fs::write(&password_file, secret.platform_credentials().password).unwrap();
        let credentials = secret.platform_credentials();
        let dynsec = mosquitto::dynsec_init(dir.path(), &credentials.username, &credentials.password);
        if !deny_subscribe.is_empty() {
            // Written into the plugin's file before the broker reads it: no race with
            // the platform's own changes to its roles.
            let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&dynsec).unwrap()).unwrap();
            let acls: Vec<serde_json::Value> = deny_subscribe
                .iter()
                .map(|t| serde_json::json!({"acltype": "subscribePattern", "topic": t, "priority": 0, "allow": false}))
                .collect();
            config["roles"].as_array_mut().unwrap().push(serde_json::json!({"rolename": "denied", "acls": acls}));
            let client = config["clients"].as_array_mut().unwrap().iter_mut().find(|c| c["username"] == "stratos");
            let roles = client.expect("the admin client").get_mut("roles").unwrap().as_array_mut().unwrap();
            roles.push(serde_json::json!({"rolename": "denied", "priority": 100}));
            std::fs::write(&dynsec, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        }
        let port = free_port();
        let conf = mosquitto_conf(&format!("127.0.0.1:{port}"), &dynsec, DYNSEC_PLUGIN);
        let mosquitto = Mosquitto::start_configured(dir.path(), &conf, port)?;
        Some(DynsecBroker { _mosquitto: mosquitto, port, secret, password_file, _dir: dir })
    }

    /// `stratos up` flags for this broker, with `--mosquitto-dynsec`.
    fn flags(&self) -> Vec<String> {
        let broker = format!("mqtt://127.0.0.1:{}", self.port);
        let file = self.password_file.to_str().unwrap().to_owned();
        vec!["--broker".into(), broker, "--bus-password-file".into(), file, "--mosquitto-dynsec".into()]
    }
}

#[test]
fn members_reach_mosquitto_with_their_own_dynamic_security_clients() {
    let Some(broker) = DynsecBroker::start(&[]) else { return };
    let (port, secret) = (broker.port, &broker.secret);
    let sandbox = Sandbox::new();
    let flags = broker.flags();
    let platform = Platform::start(sandbox.path(), &flags.iter().map(String::as_str).collect::<Vec<_>>());
    platform.add_php_web();
    let out = platform.cli(&["application", "deploy", "php-web", "--policy", "burst-local", "--timeout", "90s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    let members = member_list(&platform);
    assert!(!members.is_empty());
    for m in &members {
        assert_eq!(m["status"], "Active", "{m:#}");
    }

    // A member's credentials (as its agent has them) are confined on Mosquitto.
    let first = &members[0];
    let credentials =
        secret.member_credentials(first["clusterId"].as_str().unwrap(), first["memberId"].as_str().unwrap());
    assert_eq!(try_member(port, &credentials), Ok(vec![SubscribeReasonCode::Failure]), "a member subscribing to #");
    let stranger = PlatformSecret::generate().unwrap().member_credentials("php-web.php", "nobody");
    let refused = try_member(port, &stranger);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("refused")),
        "credentials the platform never issued: {refused:?}"
    );

    // Undeployed: the member's client is gone from Mosquitto.
    let out = platform.cli(&["application", "undeploy", "php-web"]);
    assert!(out.success(), "{out}");
    eventually(Duration::from_secs(60), "the undeployed member's credentials are refused", || {
        match try_member(port, &credentials) {
            Err(e) if e.contains("refused") => Ok(e),
            Err(e) => Err(e),
            Ok(codes) => Err(format!("still accepted: {codes:?}")),
        }
    });
    drop(platform.stop());
}

/// The supervisor of `stratos up`: a component that fails ends the platform, with a non-zero
/// exit and the component's error, rather than leaving it "up" without the component. Here the
/// broker refuses the autoscaler's subscription to the health summaries, for real.
#[test]
fn a_component_that_fails_ends_the_platform_with_its_error() {
    let Some(broker) = DynsecBroker::start(&["summarized-health-stats/#"]) else { return };
    let sandbox = Sandbox::new();
    let mut command = Command::new(BIN);
    command
        .arg("up")
        .args(["--api-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(sandbox.path())
        .args(broker.flags());
    let mut up = spawn("stratos up", command);
    let Some(status) = up.wait_exit(Duration::from_secs(60)) else {
        panic!("`stratos up` still runs 60 s after its autoscaler failed\n{}", up.describe());
    };
    assert_eq!(status.code(), Some(1), "{}", up.describe());
    let said =
        "error: the autoscaler failed: the MQTT broker refused the subscription to \"summarized-health-stats/#\"";
    assert!(up.stderr().contains(said), "no {said:?} on stderr\n{}", up.describe());
    assert!(up.stderr().contains("a component of the platform ended"), "{}", up.describe());
}

/// `stratos lb` run on its own reaches the embedded broker with the platform password
/// from `stratos up`'s data directory, and without it is refused, clearly.
#[test]
fn a_separate_load_balancer_needs_the_platform_password() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let broker = platform.broker_url();
    let password_file = sandbox.path().join("bus-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the platform password file is readable by others");
    }
    let banner = platform.proc.stdout();
    assert!(
        banner.contains(password_file.to_str().unwrap()),
        "the banner does not say where the password is:\n{banner}"
    );
    let secret = std::fs::read_to_string(&password_file).unwrap();
    assert!(
        !banner.contains(secret.trim()) && !platform.proc.stderr().contains(secret.trim()),
        "the secret was printed"
    );

    let out = stratos(&["lb", "--broker", &broker]);
    assert!(!out.success(), "an anonymous load balancer was let in\n{out}");
    assert!(out.stderr.contains("refused") && out.stderr.contains("password"), "{out}");

    let in_url = format!("mqtt://stratos:{}@127.0.0.1:{}", secret.trim(), platform.mqtt_port);
    let out = stratos(&["lb", "--broker", &in_url]);
    assert!(!out.success() && out.stderr.contains("--bus-password-file"), "{out}");
    assert!(!out.stderr.contains(secret.trim()), "the password was echoed\n{out}");

    let mut command = Command::new(BIN);
    command.args(["lb", "--broker", &broker, "--bus-password-file", password_file.to_str().unwrap()]);
    let mut lb = spawn("stratos lb", command);
    eventually(Duration::from_secs(20), "stratos lb connects", || {
        if let Some(status) = lb.try_status() {
            return Err(format!("stratos lb exited ({status}):\n{}", lb.stderr()));
        }
        let stderr = lb.stderr();
        if stderr.contains("connected to the event bus") {
            Ok(())
        } else {
            Err(stderr)
        }
    });
    assert!(!lb.stderr().contains(secret.trim()), "the password was logged");
    lb.signal("TERM");
    drop(platform.stop());
}

/// The same on `stratos up`'s embedded broker: the controller's members connect with
/// their own credentials, are confined, and are refused once undeployed.
#[test]
fn embedded_broker_members_are_confined_and_revoked_at_undeploy() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let secret = PlatformSecret::read(&sandbox.path().join("bus-password")).unwrap();
    platform.add_php_web();
    let out = platform.cli(&["application", "deploy", "php-web", "--policy", "burst-local", "--timeout", "90s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    let members = member_list(&platform);
    assert!(!members.is_empty());
    let first = &members[0];
    let credentials =
        secret.member_credentials(first["clusterId"].as_str().unwrap(), first["memberId"].as_str().unwrap());
    assert_eq!(try_member(platform.mqtt_port, &credentials), Ok(vec![SubscribeReasonCode::Failure]), "# is refused");
    let out = platform.cli(&["application", "undeploy", "php-web"]);
    assert!(out.success(), "{out}");
    eventually(Duration::from_secs(60), "the undeployed member's credentials are refused", || {
        match try_member(platform.mqtt_port, &credentials) {
            Err(e) if e.contains("refused") => Ok(e),
            Err(e) => Err(e),
            Ok(codes) => Err(format!("still accepted: {codes:?}")),
        }
    });
    let log = platform.proc.stderr();
    assert!(!log.contains(&secret.platform_credentials().password), "the platform secret was logged");
    assert!(!log.contains(&credentials.password), "a member's password was logged");
    drop(platform.stop());
}

/// Bus credentials of ended members stay dead across a platform restart on the same
/// data directory: the gate admits only members the platform knows as live (issued in
/// this run, or in the stored topology at start), so a member replaced before the
/// restart is refused after it, while the live members' agents reconnect.
#[test]
fn an_ended_members_credentials_stay_dead_across_a_restart() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &[]);
    let secret = PlatformSecret::read(&sandbox.path().join("bus-password")).unwrap();
    platform.add_php_web();
    let out = platform.cli(&["application", "deploy", "php-web", "--policy", "burst-local", "--timeout", "90s"]);
    assert!(out.success(), "`application deploy` failed\n{out}\n{}", platform.proc.describe());
    let before = member_list(&platform);
    let credentials_of = |m: &serde_json::Value| {
        secret.member_credentials(m["clusterId"].as_str().unwrap(), m["memberId"].as_str().unwrap())
    };

    // One member dies (its process group killed): the controller terminates it and replaces it.
    let victim = before[0]["memberId"].as_str().unwrap().to_string();
    let dead = credentials_of(&before[0]);
    let group = support::member_processes(sandbox.path())
        .into_iter()
        .find(|p| p.member_id == victim && p.pid == p.pgid)
        .unwrap_or_else(|| panic!("no agent process for {victim}"));
    assert!(support::signal_group(group.pgid, "KILL"));
    let live = eventually(Duration::from_secs(90), "the killed member replaced", || {
        let now = member_list(&platform);
        if now.iter().any(|m| m["memberId"] == victim.as_str()) {
            return Err(format!("{victim} is still listed"));
        }
        if now.len() < before.len() || now.iter().any(|m| m["status"] != "Active") {
            return Err(format!("not all replaced and active: {now:#?}"));
        }
        Ok(now)
    });
    eventually(Duration::from_secs(30), "the killed member's credentials refused", || {
        match try_member(platform.mqtt_port, &dead) {
            Err(e) if e.contains("refused") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    let log_of = |m: &serde_json::Value| {
        let path = sandbox.path().join("members").join(m["memberId"].as_str().unwrap()).join("agent.log");
        std::fs::read_to_string(path).unwrap_or_default()
    };
    let logged_before: Vec<usize> = live.iter().map(|m| log_of(m).len()).collect();
    let platform = platform.restart();
    // At once after the restart (no MemberTerminatedEvent this run): the ended member is out.
    let refused = try_member(platform.mqtt_port, &dead);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("refused")),
        "an ended member got in after a restart: {refused:?}"
    );
    // The live members: let in, and their agents reconnected by themselves.
    for (m, from) in live.iter().zip(logged_before) {
        assert_eq!(try_member(platform.mqtt_port, &credentials_of(m)), Ok(vec![SubscribeReasonCode::Failure]), "{m}");
        eventually(Duration::from_secs(60), "the live member's agent reconnected after the restart", || {
            let log = log_of(m);
            if log.get(from..).is_some_and(|new| new.contains("reconnected to the event bus")) {
                Ok(())
            } else {
                Err(format!("{}'s agent.log:\n{log}", m["memberId"]))
            }
        });
    }
    eventually(Duration::from_secs(30), "the members stay active", || {
        let now = member_list(&platform);
        let ids = |l: &[serde_json::Value]| l.iter().map(|m| m["memberId"].to_string()).collect::<Vec<_>>();
        if ids(&now) == ids(&live) && now.iter().all(|m| m["status"] == "Active") {
            Ok(())
        } else {
            Err(format!("{now:#?}"))
        }
    });
    drop(platform.stop());
}
