//! The bus's trust boundary end to end on an external Mosquitto 2 with its
//! dynamic-security plugin: `stratos up --mosquitto-dynsec` gives each member it starts
//! a client of its own there; real members (agents and apps) reach the bus with it
//! and activate, cannot read beyond their own topics, and lose it at undeploy.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use stratos_bus::mosquitto::{mosquitto_conf, DYNSEC_PLUGIN};
use stratos_bus::{Credentials, PlatformSecret};
use support::{eventually, free_port, member_list, wait_listening, Platform, Proc, Sandbox};

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

#[test]
fn members_reach_mosquitto_with_their_own_dynamic_security_clients() {
    if std::env::var("STRATOS_SKIP_MOSQUITTO").as_deref() == Ok("1") {
        return println!("skipped: STRATOS_SKIP_MOSQUITTO=1");
    }
    assert!(
        Path::new(DYNSEC_PLUGIN).exists(),
        "this test needs Mosquitto 2 with {DYNSEC_PLUGIN}: apt-get install -y mosquitto"
    );
    let sandbox = Sandbox::new();
    let broker_dir = tempfile::tempdir().unwrap();
    let secret = PlatformSecret::generate().unwrap();
    let password_file = broker_dir.path().join("bus-password");
    std::fs::write(&password_file, secret.platform_credentials().password).unwrap();

    // The broker set up as the README says.
    let dynsec = broker_dir.path().join("dynamic-security.json");
    let init = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&dynsec)
        .args(["stratos", &secret.platform_credentials().password])
        .output()
        .expect("mosquitto_ctrl");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let port = free_port();
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let conf = broker_dir.path().join("mosquitto.conf");
    let text = mosquitto_conf(&format!("127.0.0.1:{port}"), &dynsec, DYNSEC_PLUGIN);
    std::fs::write(&conf, format!("{text}user {user}\n")).unwrap();
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&conf);
    let _mosquitto = Proc::spawn("mosquitto", command);
    wait_listening(port, "mosquitto");

    let broker = format!("mqtt://127.0.0.1:{port}");
    let platform = Platform::start(
        sandbox.path(),
        &["--broker", &broker, "--bus-password-file", password_file.to_str().unwrap(), "--mosquitto-dynsec"],
    );
    platform.add_php_web();
    let out = platform.cli(&["application", "deploy", "php-web", "--policy", "burst-local", "--timeout", "90"]);
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
    assert!(try_member(port, &stranger).is_err(), "credentials the platform never issued");

    // Undeployed: the member's client is gone from Mosquitto.
    let out = platform.cli(&["application", "undeploy", "php-web"]);
    assert!(out.success(), "{out}");
    eventually(Duration::from_secs(60), "the undeployed member's credentials are refused", || {
        match try_member(port, &credentials) {
            Err(e) => Ok(e),
            Ok(codes) => Err(format!("still accepted: {codes:?}")),
        }
    });
    drop(platform.stop());
}
