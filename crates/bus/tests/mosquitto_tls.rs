//! MQTT over TLS on an external Mosquitto 2 with a given certificate (signed by a CA
//! made here, as an operator's would be): the platform's bus clients and the
//! dynamic-security provisioner trust that CA through `STRATOS_BUS_CA_CERT`, a member
//! with its own credentials talks over TLS, and a client trusting no such CA (the
//! system's roots, another CA) gets nowhere. A test binary of its own: it sets the
//! process's environment.

#[path = "support/mod.rs"]
mod brokers;

use std::time::{Duration, Instant};

use brokers::{member_ref, GivenCertificate, CLUSTER};
use stratos_bus::events::*;
use stratos_bus::mosquitto::{mosquitto_conf, MosquittoProvisioner, DYNSEC_PLUGIN};
use stratos_bus::{with_credentials, AnyEvent, Bus, PlatformSecret};
use stratos_model::topology::{Member, MemberStatus};
use stratos_test_kit::mosquitto;

const WAIT: Duration = Duration::from_secs(20);

fn member(id: &str) -> Member {
    serde_json::from_value(serde_json::json!({
        "serviceName": "php", "clusterId": CLUSTER, "memberId": id, "networkPartitionId": "np1",
        "partitionId": "p1", "status": MemberStatus::Created, "ports": [], "initTime": 0
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_mosquitto_over_tls_with_a_given_certificate() {
    if !mosquitto::dynsec_available(DYNSEC_PLUGIN) {
        return;
    }
    let _ = tracing_subscriber::fmt().with_env_filter("stratos_bus=debug").with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let given = GivenCertificate::make(dir.path(), "bus");
    let stranger = GivenCertificate::make(dir.path(), "other");
    let secret = PlatformSecret::generate().unwrap();

    // Mosquitto as the README sets it up, its one listener in TLS with the given files.
    let credentials = secret.platform_credentials();
    let dynsec = mosquitto::dynsec_init(dir.path(), &credentials.username, &credentials.password);
    let port = brokers::free_port();
    let conf = format!(
        "{}certfile {}\nkeyfile {}\n",
        mosquitto_conf(&format!("127.0.0.1:{port}"), &dynsec, DYNSEC_PLUGIN),
        given.cert.display(),
        given.key.display()
    );
    let Some(_mosquitto) = brokers::Mosquitto::start_configured(dir.path(), &conf, port) else { return };
    let url = format!("mqtts://127.0.0.1:{port}");
    // What `stratos up` and members are given; the only test in this process.
    std::env::set_var(stratos_bus::tls::CA_CERT_ENV, &given.ca_cert);

    let platform_credentials = secret.platform_credentials();
    let provisioner = MosquittoProvisioner::connect(&url, &platform_credentials, secret.clone()).await.unwrap();
    tokio::spawn(provisioner.run());
    let platform = Bus::connect(&with_credentials(&url, &platform_credentials), "platform").await.unwrap();
    let mut statuses = platform.subscribe("instance/status/#").await.unwrap();

    // A member, with the credentials the controller issues, over TLS.
    platform.publish(&MemberCreatedEvent { member: member("m1") }).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let agent = loop {
        match Bus::connect_with(&url, "agent-m1", Some(secret.member_credentials(CLUSTER, "m1"))).await {
            Ok(bus) => break bus,
            Err(e) => assert!(Instant::now() < deadline, "the member never got in over TLS: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(agent.subscribe("#").await.is_err(), "a member read everything over TLS");
    agent.publish(&InstanceActivatedEvent { member: member_ref("m1") }).await.unwrap();
    let got = statuses
        .wait_for(WAIT, |e| match e {
            AnyEvent::InstanceActivatedEvent(a) if a.member.member_id == "m1" => Some(()),
            _ => None,
        })
        .await;
    assert!(got.is_some(), "the member's activation never arrived over TLS");

    // Nobody gets in trusting something else: the system's roots, another CA, or no TLS at all.
    let platform_url = with_credentials(&url, &platform_credentials);
    for (what, ca) in [("the system's roots", None), ("another CA", Some(stranger.ca_cert.as_path()))] {
        let refused = Bus::connect_trusting(&platform_url, "no-trust", None, ca).await;
        assert!(refused.is_err(), "a client trusting {what} connected");
    }
    let plain = with_credentials(&format!("mqtt://127.0.0.1:{port}"), &platform_credentials);
    assert!(Bus::connect_trusting(&plain, "plain", None, None).await.is_err(), "plain MQTT on the TLS listener");
    agent.close().await;
    platform.close().await;
}
