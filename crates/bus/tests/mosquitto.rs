//! The trust boundary on a real Mosquitto 2 with its dynamic-security plugin: the
//! provisioner gives each member announced by the controller its own client and
//! role, and takes them away at its termination.

#[path = "support/mod.rs"]
mod brokers;

use std::path::Path;
use std::time::{Duration, Instant};

use brokers::{member_ref, CLUSTER};
use rumqttc::{AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions, Packet, QoS};
use stratos_bus::events::*;
use stratos_bus::mosquitto::{mosquitto_conf, MosquittoProvisioner, DYNSEC_PLUGIN};
use stratos_bus::{with_credentials, AnyEvent, Bus, Credentials, PlatformSecret};
use stratos_model::topology::{Member, MemberStatus, Topology};
use stratos_test_kit::mosquitto;

const WAIT: Duration = Duration::from_secs(20);

fn member(id: &str) -> Member {
    serde_json::from_value(serde_json::json!({
        "serviceName": "php", "clusterId": CLUSTER, "memberId": id, "networkPartitionId": "np1",
        "partitionId": "p1", "status": MemberStatus::Created, "ports": [], "initTime": 0
    }))
    .unwrap()
}

/// Mosquitto with the configuration of `mosquitto_conf`, its dynamic security
/// initialised with the platform's user and password as the README says.
fn mosquitto(dir: &Path, secret: &PlatformSecret) -> Option<brokers::Mosquitto> {
    if !mosquitto::dynsec_available(DYNSEC_PLUGIN) {
        return None;
    }
    let credentials = secret.platform_credentials();
    let dynsec = mosquitto::dynsec_init(dir, &credentials.username, &credentials.password);
    let port = brokers::free_port();
    let conf = mosquitto_conf(&format!("127.0.0.1:{port}"), &dynsec, DYNSEC_PLUGIN);
    brokers::Mosquitto::start_configured(dir, &conf, port)
}

fn raw(url: &str, client_id: &str, c: &Credentials) -> (AsyncClient, EventLoop) {
    let (host, port) = stratos_bus::parse_broker_url(url).unwrap();
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_credentials(c.username.clone(), c.password.clone());
    AsyncClient::new(options, 100)
}

/// Connects with `c` until the broker accepts it (the provisioner works beside us).
async fn connect_when_provisioned(url: &str, c: &Credentials) -> (AsyncClient, EventLoop) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (client, mut eventloop) = raw(url, "agent-m1", c);
        match tokio::time::timeout(WAIT, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => return (client, eventloop),
            other => assert!(Instant::now() < deadline, "the member was never let in: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn next(eventloop: &mut EventLoop, want: impl Fn(&Packet) -> bool) -> Packet {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(p))) if want(&p) => return p,
            Ok(Ok(_)) => {}
            other => panic!("not received: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_dynamic_security_confines_members_and_revokes_them() {
    let dir = tempfile::tempdir().unwrap();
    let secret = PlatformSecret::generate().unwrap();
    let Some(broker) = mosquitto(dir.path(), &secret) else { return };
    let platform_credentials = secret.platform_credentials();
    let provisioner =
        MosquittoProvisioner::connect(&broker.url(), &platform_credentials, secret.clone()).await.unwrap();
    tokio::spawn(provisioner.run());
    let platform_url = with_credentials(&broker.url(), &platform_credentials);
    let platform = Bus::connect(&platform_url, "platform").await.unwrap();
    let mut everything = platform.subscribe("#").await.unwrap();
    // The platform's user may publish anything once the provisioner gave it its role.
    platform.publish(&CompleteTopologyEvent { topology: Topology::default() }).await.unwrap();

    // Unknown to Mosquitto until the controller announces the member.
    let creds = secret.member_credentials(CLUSTER, "m1");
    let (_c, mut refused) = raw(&broker.url(), "early", &creds);
    assert!(matches!(refused.poll().await, Err(ConnectionError::ConnectionRefused(_))), "an unannounced member");

    platform.publish(&MemberCreatedEvent { member: member("m1") }).await.unwrap();
    let (client, mut eventloop) = connect_when_provisioned(&broker.url(), &creds).await;

    // Wide subscriptions are refused; its own notifier topic is granted.
    for filter in ["#", "log/+/LogEvent", "instance/notifier/cluster/+/#"] {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let Packet::SubAck(ack) = next(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await else {
            unreachable!()
        };
        assert_eq!(ack.return_codes, [rumqttc::SubscribeReasonCode::Failure], "{filter}");
    }
    client.subscribe(format!("{}/m1/#", InstanceCleanupMemberEvent::PREFIX), QoS::AtLeastOnce).await.unwrap();
    let Packet::SubAck(ack) = next(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await else { unreachable!() };
    assert!(matches!(ack.return_codes[..], [rumqttc::SubscribeReasonCode::Success(_)]));

    // Forgeries are dropped by Mosquitto; its own status goes through, after them.
    let forged = [
        AnyEvent::CompleteTopologyEvent(CompleteTopologyEvent { topology: Topology::default() }),
        AnyEvent::MemberTerminatedEvent(MemberTerminatedEvent { member: member_ref("victim"), reason: "x".into() }),
        AnyEvent::MemberFaultEvent(MemberFaultEvent { member: member_ref("victim"), reason: "x".into() }),
        AnyEvent::InstanceCleanupClusterEvent(InstanceCleanupClusterEvent { cluster_id: CLUSTER.into() }),
        AnyEvent::InstanceActivatedEvent(InstanceActivatedEvent { member: member_ref("victim") }),
    ];
    for event in &forged {
        let (topic, body, _) = event.encode().unwrap();
        client.publish(topic, QoS::AtLeastOnce, false, body).await.unwrap();
    }
    let (topic, body, _) =
        AnyEvent::InstanceActivatedEvent(InstanceActivatedEvent { member: member_ref("m1") }).encode().unwrap();
    client.publish(topic, QoS::AtLeastOnce, false, body).await.unwrap();
    // Drive the member's connection while the platform waits for its activation.
    let driver = tokio::spawn(async move {
        while eventloop.poll().await.is_ok() {}
        eventloop
    });
    let mut seen = Vec::new();
    let got = everything
        .wait_for(WAIT, |e| {
            let own = matches!(&e, AnyEvent::InstanceActivatedEvent(a) if a.member.member_id == "m1");
            if !own {
                seen.push(e.name());
            }
            own.then_some(())
        })
        .await;
    assert!(got.is_some(), "the member's own activation never arrived");
    let forged_seen: Vec<_> =
        seen.iter().filter(|n| **n != "CompleteTopologyEvent" && **n != "MemberCreatedEvent").collect();
    assert!(forged_seen.is_empty(), "forged events reached the platform: {forged_seen:?}");

    // Terminated: Mosquitto disconnects the member and refuses its credentials.
    platform.publish(&MemberTerminatedEvent { member: member_ref("m1"), reason: "scale-down".into() }).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_c, mut probe) = raw(&broker.url(), "agent-m1-again", &creds);
        if matches!(probe.poll().await, Err(ConnectionError::ConnectionRefused(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "the terminated member's credentials still work");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(WAIT, driver).await.expect("the terminated member's connection stayed open").unwrap();
}

/// Whether Mosquitto refuses `c` now.
async fn refused(url: &str, c: &Credentials) -> bool {
    let (_c, mut probe) = raw(url, "probe", c);
    matches!(tokio::time::timeout(WAIT, probe.poll()).await, Ok(Err(ConnectionError::ConnectionRefused(_))))
}

/// Members that ended while the platform was down lose their Mosquitto clients when it
/// starts again: the provisioner reconciles dynamic security's `member/...` clients
/// against the stored topology and deletes the rest, and a snapshot retained from
/// before the stop does not bring them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_provisioner_deletes_the_clients_of_members_that_ended_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let secret = PlatformSecret::generate().unwrap();
    let Some(broker) = mosquitto(dir.path(), &secret) else { return };
    let platform_credentials = secret.platform_credentials();
    let provisioner =
        MosquittoProvisioner::connect(&broker.url(), &platform_credentials, secret.clone()).await.unwrap();
    let first_run = tokio::spawn(provisioner.run());
    let platform = Bus::connect(&with_credentials(&broker.url(), &platform_credentials), "platform").await.unwrap();
    let (m1, m2) = (secret.member_credentials(CLUSTER, "m1"), secret.member_credentials(CLUSTER, "m2"));
    platform.publish(&MemberCreatedEvent { member: member("m1") }).await.unwrap();
    platform.publish(&MemberCreatedEvent { member: member("m2") }).await.unwrap();
    drop(connect_when_provisioned(&broker.url(), &m1).await);
    drop(connect_when_provisioned(&broker.url(), &m2).await);
    // The last snapshot before the platform stopped: both members live.
    let before: Topology = serde_json::from_value(serde_json::json!({"services": {"php": {
        "serviceName": "php", "serviceType": "SingleTenant", "ports": [], "clusters": {CLUSTER: {
            "clusterId": CLUSTER, "serviceName": "php", "appId": "app", "alias": "php", "tenantId": -1234,
            "hostNames": [], "autoscalePolicyName": "a", "deploymentPolicyName": "d", "status": "Active",
            "members": {"m1": member("m1"), "m2": member("m2")}
        }}
    }}}))
    .unwrap();
    assert_eq!(before.members().count(), 2);
    platform.publish(&CompleteTopologyEvent { topology: before }).await.unwrap();
    platform.close().await;
    // The platform stops; m1 ends while it is down (no MemberTerminatedEvent anyone sees).
    first_run.abort();
    let _ = first_run.await;

    // Started again: the stored topology holds only m2.
    let mut provisioner =
        MosquittoProvisioner::connect(&broker.url(), &platform_credentials, secret.clone()).await.unwrap();
    let deleted = provisioner.reconcile([(CLUSTER, "m2")]).await.unwrap();
    assert_eq!(deleted, 1, "m1's client, and only it");
    assert!(refused(&broker.url(), &m1).await, "the ended member's credentials still work");
    assert!(!refused(&broker.url(), &m2).await, "the live member was refused");
    tokio::spawn(provisioner.run());
    // The provisioner has handled what it received before: a member announced now is
    // provisioned after the retained snapshot was (or was not) acted on.
    let platform = Bus::connect(&with_credentials(&broker.url(), &platform_credentials), "platform-2").await.unwrap();
    platform.publish(&MemberCreatedEvent { member: member("m3") }).await.unwrap();
    drop(connect_when_provisioned(&broker.url(), &secret.member_credentials(CLUSTER, "m3")).await);
    assert!(refused(&broker.url(), &m1).await, "the stale snapshot gave the ended member its client back");
    assert!(!refused(&broker.url(), &m2).await);
}
