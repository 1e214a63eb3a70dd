//! The bus's trust boundary, against the real embedded broker over real
//! connections: a member, with the credentials the controller gives it, cannot forge
//! the platform's events, read anyone else's, or stay on the bus once terminated.

#[path = "support/mod.rs"]
mod brokers;

use std::time::{Duration, Instant};

use brokers::{member_ref, CLUSTER};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions, Packet, QoS,
};
use stratos_bus::events::*;
use stratos_bus::{AnyEvent, Bus, Credentials, EmbeddedBroker, Event, MemberRef, Subscription};
use stratos_model::topology::{Member, MemberStatus, Service, ServiceType, Topology};

const WAIT: Duration = Duration::from_secs(15);

fn broker() -> EmbeddedBroker {
    let _ = tracing_subscriber::fmt().with_env_filter("stratos_bus=debug,rumqttd=warn").with_test_writer().try_init();
    EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A bare MQTT client, to see exactly what the broker answers.
fn raw(broker: &EmbeddedBroker, client_id: &str, credentials: Option<&Credentials>) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.addr().port());
    options.set_max_packet_size(64 * 1024 * 1024, 64 * 1024 * 1024);
    if let Some(c) = credentials {
        options.set_credentials(c.username.clone(), c.password.clone());
    }
    AsyncClient::new(options, 100)
}

/// Polls until the connection is accepted; panics on anything else.
async fn connected(eventloop: &mut EventLoop) {
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => {}
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

/// Polls until the broker closes the connection; the packets received before.
async fn until_disconnected(eventloop: &mut EventLoop) -> Vec<Packet> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(p))) => seen.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return seen,
            Err(_) => panic!("the broker kept the connection open for {WAIT:?}; it received {seen:?}"),
        }
    }
}

/// What a connection attempt with `credentials` gets: `Ok` or the refusal code.
async fn try_connect(broker: &EmbeddedBroker, credentials: Option<&Credentials>) -> Result<(), ConnectReturnCode> {
    let (_client, mut eventloop) = raw(broker, "probe", credentials);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => Ok(()),
        Ok(Err(ConnectionError::ConnectionRefused(code))) => Err(code),
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

/// What a connection attempt gets while the gate may be changing its mind: `Ok`, the
/// refusal code, or `Err(None)` for anything else (a connection closed by a revocation).
async fn probe(broker: &EmbeddedBroker, credentials: &Credentials) -> Result<(), Option<ConnectReturnCode>> {
    let (_client, mut eventloop) = raw(broker, "probe", Some(credentials));
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => Ok(()),
        Ok(Err(ConnectionError::ConnectionRefused(code))) => Err(Some(code)),
        _ => Err(None),
    }
}

/// Waits for `marker` on `sub`, returning every other event that came before it.
async fn before_marker(sub: &mut Subscription, is_marker: impl Fn(&AnyEvent) -> bool) -> Vec<AnyEvent> {
    let mut others = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.recv()).await {
            Ok(Some(e)) if is_marker(&e) => return others,
            Ok(Some(e)) => others.push(e),
            _ => panic!("the marker never arrived; got {others:?}"),
        }
    }
}

fn marker(id: &str) -> ApplicationCreatedEvent {
    ApplicationCreatedEvent { application_id: id.into(), tenant_id: -1234 }
}

fn is_marker(id: &'static str) -> impl Fn(&AnyEvent) -> bool {
    move |e| matches!(e, AnyEvent::ApplicationCreatedEvent(m) if m.application_id == id)
}

fn fake_member(id: &str) -> Member {
    serde_json::from_value(serde_json::json!({
        "serviceName": "php", "clusterId": CLUSTER, "memberId": id, "networkPartitionId": "np1",
        "partitionId": "p1", "status": MemberStatus::Active, "defaultPrivateIp": "203.0.113.9",
        "ports": [], "initTime": 0
    }))
    .unwrap_or_else(|e| panic!("a member from JSON: {e}"))
}

/// Every forged event of the issue, published with a member's own credentials: the
/// broker disconnects the member at each, and no platform subscriber ever sees one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_forge_platform_events_or_another_members_status() {
    let broker = broker();
    let platform = Bus::connect(&broker.platform_url(), "platform-watch").await.unwrap();
    let mut everything = platform.subscribe("#").await.unwrap();
    // The platform's own retained snapshot, which a forgery must not replace.
    let real = Topology::default();
    platform.publish(&CompleteTopologyEvent { topology: real.clone() }).await.unwrap();

    let mut forged_topology = Topology::default();
    let evil = Service {
        service_name: "evil".into(),
        service_type: ServiceType::SingleTenant,
        ports: vec![],
        clusters: Default::default(),
    };
    forged_topology.services.insert("evil".into(), evil);
    let forgeries: Vec<(&str, AnyEvent)> = vec![
        (
            "retained CompleteTopologyEvent",
            AnyEvent::CompleteTopologyEvent(CompleteTopologyEvent { topology: forged_topology }),
        ),
        ("MemberCreatedEvent", AnyEvent::MemberCreatedEvent(MemberCreatedEvent { member: fake_member("evil-1") })),
        (
            "MemberTerminatedEvent",
            AnyEvent::MemberTerminatedEvent(MemberTerminatedEvent {
                member: member_ref("victim"),
                reason: "forged".into(),
            }),
        ),
        (
            "MemberFaultEvent",
            AnyEvent::MemberFaultEvent(MemberFaultEvent { member: member_ref("victim"), reason: "forged".into() }),
        ),
        (
            "InFlightRequestsEvent",
            AnyEvent::InFlightRequestsEvent(InFlightRequestsEvent {
                cluster_id: CLUSTER.into(),
                network_partition_id: "np1".into(),
                member_id: None,
                in_flight: 100_000.0,
                timestamp: now_millis(),
            }),
        ),
        (
            "InstanceCleanupClusterEvent",
            AnyEvent::InstanceCleanupClusterEvent(InstanceCleanupClusterEvent { cluster_id: CLUSTER.into() }),
        ),
        (
            "InstanceActivatedEvent for another member",
            AnyEvent::InstanceActivatedEvent(InstanceActivatedEvent { member: member_ref("victim") }),
        ),
    ];
    let attacker = broker.member_credentials(CLUSTER, "attacker");
    for (what, event) in &forgeries {
        let (client, mut eventloop) = raw(&broker, &format!("forger-{}", what.len()), Some(&attacker));
        connected(&mut eventloop).await;
        let (topic, body, retain) = event.encode().unwrap();
        client.publish(topic, QoS::AtLeastOnce, retain, body).await.unwrap();
        let answers = until_disconnected(&mut eventloop).await;
        assert!(
            !answers.iter().any(|p| matches!(p, Packet::PubAck(_))),
            "{what}: the broker acknowledged a forged publish"
        );
    }
    // The same forgeries over the bus client, which reconnects and retries: still nothing.
    let forger = Bus::connect_with(&broker.url(), "forger-bus", Some(attacker.clone())).await.unwrap();
    for (_, event) in &forgeries {
        forger.publish_any(event).await.unwrap();
    }

    platform.publish(&marker("after-forgeries")).await.unwrap();
    let seen = before_marker(&mut everything, is_marker("after-forgeries")).await;
    let forged: Vec<&AnyEvent> =
        seen.iter().filter(|e| !matches!(e, AnyEvent::CompleteTopologyEvent(c) if c.topology == real)).collect();
    assert!(forged.is_empty(), "platform components received forged events: {forged:?}");

    // A component that joins now gets the platform's snapshot, not the forged one.
    let late = Bus::connect(&broker.platform_url(), "late-joiner").await.unwrap();
    let mut snapshot = late.subscribe_to::<CompleteTopologyEvent>().await.unwrap();
    let got = snapshot
        .wait_for(WAIT, |e| match e {
            AnyEvent::CompleteTopologyEvent(c) => Some(c.topology),
            _ => None,
        })
        .await;
    assert_eq!(got, Some(real), "the retained topology is the platform's");
    forger.close().await;
}

/// A member may speak for itself: its own status, health and logs reach the
/// platform. A body about another member on its own topic is dropped by every
/// consumer (the bus client), with the events around it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_speaks_only_for_itself_and_platform_components_see_it() {
    let broker = broker();
    let platform = Bus::connect(&broker.platform_url(), "platform").await.unwrap();
    let mut everything = platform.subscribe("#").await.unwrap();
    let me =
        Bus::connect_with(&broker.url(), "agent-m1", Some(broker.member_credentials(CLUSTER, "m1"))).await.unwrap();

    me.publish(&InstanceStartedEvent { member: member_ref("m1") }).await.unwrap();
    me.publish(&MemberHealthStatEvent {
        member: member_ref("m1"),
        load_average: Some(1.0),
        memory_consumption: None,
        timestamp: 1,
    })
    .await
    .unwrap();
    me.publish(&LogEvent {
        member: member_ref("m1"),
        tenant_id: -1234,
        stream: "stdout".into(),
        line: "hello".into(),
        timestamp: 1,
    })
    .await
    .unwrap();
    // On its own topic, a body about another member, or its own member in another
    // cluster: the broker disconnects it.
    let own = broker.member_credentials(CLUSTER, "m1");
    for body in [
        serde_json::to_vec(&InstanceActivatedEvent { member: member_ref("victim") }).unwrap(),
        serde_json::to_vec(&MemberHealthStatEvent {
            member: MemberRef { cluster_id: "victim.cluster".into(), ..member_ref("m1") },
            load_average: Some(1000.0),
            memory_consumption: None,
            timestamp: 1,
        })
        .unwrap(),
    ] {
        let (raw_me, mut eventloop) = raw(&broker, "agent-m1-raw", Some(&own));
        connected(&mut eventloop).await;
        raw_me.publish(InstanceActivatedEvent::topic_for("m1"), QoS::AtLeastOnce, false, body).await.unwrap();
        let answers = until_disconnected(&mut eventloop).await;
        assert!(!answers.iter().any(|p| matches!(p, Packet::PubAck(_))), "a forged body was acknowledged");
    }
    // A broker with weaker rules (an open one) would pass such a body: the consumer
    // drops it. The platform may publish anything, so it stands in for that broker.
    let forged = serde_json::to_vec(&InstanceActivatedEvent { member: member_ref("victim") }).unwrap();
    let (raw_platform, mut eventloop) = raw(&broker, "weak-broker", Some(&broker.secret().platform_credentials()));
    connected(&mut eventloop).await;
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    raw_platform.publish(InstanceActivatedEvent::topic_for("m1"), QoS::AtLeastOnce, false, forged).await.unwrap();
    me.publish(&InstanceActivatedEvent { member: member_ref("m1") }).await.unwrap();

    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 4 && Instant::now() < deadline {
        match tokio::time::timeout(WAIT, everything.recv()).await {
            Ok(Some(e)) => got.push(e),
            _ => break,
        }
    }
    let names: Vec<&str> = got.iter().map(|e| e.name()).collect();
    assert!(names.contains(&"InstanceStartedEvent"), "{names:?}");
    assert!(names.contains(&"MemberHealthStatEvent"), "{names:?}");
    assert!(names.contains(&"LogEvent"), "{names:?}");
    let activated: Vec<String> = got
        .iter()
        .filter_map(|e| match e {
            AnyEvent::InstanceActivatedEvent(a) => Some(a.member.member_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(activated, vec!["m1".to_string()], "only the member's own activation is taken");
}

/// A member subscribing to `#` (and other wide filters) is refused, and receives
/// nothing of anyone else's, while what is addressed to it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_subscribed_to_everything_reads_nothing_of_anyone_elses() {
    let broker = broker();
    let platform = Bus::connect(&broker.platform_url(), "platform").await.unwrap();
    let other =
        Bus::connect_with(&broker.url(), "agent-m2", Some(broker.member_credentials(CLUSTER, "m2"))).await.unwrap();
    let (client, mut eventloop) = raw(&broker, "snoop", Some(&broker.member_credentials(CLUSTER, "m1")));
    connected(&mut eventloop).await;

    for filter in ["#", "log/+/LogEvent", "instance/status/#", "topology/#", "instance/notifier/cluster/+/#"] {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let ack = next_suback(&mut eventloop).await;
        assert_eq!(ack.return_codes, vec![rumqttc::SubscribeReasonCode::Failure], "{filter} must be refused");
    }
    let own = format!("{}/m1/#", InstanceCleanupMemberEvent::PREFIX);
    client.subscribe(own.as_str(), QoS::AtLeastOnce).await.unwrap();
    let ack = next_suback(&mut eventloop).await;
    assert!(matches!(ack.return_codes[..], [rumqttc::SubscribeReasonCode::Success(_)]), "{own}: {ack:?}");

    // Everybody else's traffic, then the marker addressed to the member.
    let log = |id: &str| LogEvent {
        member: member_ref(id),
        tenant_id: -1234,
        stream: "stdout".into(),
        line: "secret".into(),
        timestamp: 1,
    };
    other.publish(&log("m2")).await.unwrap();
    other.publish(&InstanceActivatedEvent { member: member_ref("m2") }).await.unwrap();
    platform.publish(&log("m3")).await.unwrap();
    platform.publish(&CompleteTopologyEvent { topology: Topology::default() }).await.unwrap();
    platform.publish(&InstanceCleanupMemberEvent { member_id: "m2".into() }).await.unwrap();
    platform.publish(&InstanceCleanupClusterEvent { cluster_id: "other.cluster".into() }).await.unwrap();
    platform.publish(&InstanceCleanupMemberEvent { member_id: "m1".into() }).await.unwrap();

    let mut received = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::Publish(p)))) => {
                let mine = p.topic == InstanceCleanupMemberEvent::topic_for("m1");
                received.push(p.topic);
                if mine {
                    break;
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("the member's own notification never arrived ({other:?}); received {received:?}"),
        }
    }
    assert_eq!(received, vec![InstanceCleanupMemberEvent::topic_for("m1")], "the member read others' events");
    // Nor does anything of theirs come after it, within a bounded wait.
    let after = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Ok(MqttEvent::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                return p.topic;
            }
        }
    })
    .await;
    assert!(after.is_err(), "the member read {after:?} after its own notification");
}

async fn next_suback(eventloop: &mut EventLoop) -> rumqttc::SubAck {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::SubAck(ack)))) => return ack,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK: {other:?}"),
        }
    }
}

/// No credentials, a wrong password, another member's password, a password for
/// another cluster: refused.
#[tokio::test]
async fn wrong_credentials_are_refused() {
    let broker = broker();
    let good = broker.member_credentials(CLUSTER, "m1");
    assert_eq!(try_connect(&broker, Some(&good)).await, Ok(()));
    assert_eq!(try_connect(&broker, Some(&broker.secret().platform_credentials())).await, Ok(()));
    assert!(try_connect(&broker, None).await.is_err(), "anonymous");
    let wrong = Credentials { username: good.username.clone(), password: "0".repeat(64) };
    assert_eq!(try_connect(&broker, Some(&wrong)).await, Err(ConnectReturnCode::BadUserNamePassword));
    let others =
        Credentials { username: good.username.clone(), password: broker.member_credentials(CLUSTER, "m2").password };
    assert_eq!(try_connect(&broker, Some(&others)).await, Err(ConnectReturnCode::BadUserNamePassword));
    let moved = Credentials { username: "member/other.cluster/m1".into(), password: good.password.clone() };
    assert_eq!(try_connect(&broker, Some(&moved)).await, Err(ConnectReturnCode::BadUserNamePassword));
    let platform_guess = Credentials { username: "stratos".into(), password: good.password.clone() };
    assert_eq!(try_connect(&broker, Some(&platform_guess)).await, Err(ConnectReturnCode::BadUserNamePassword));
    // Another broker's secret: its members are strangers here.
    let stranger = stratos_bus::PlatformSecret::generate().unwrap().member_credentials(CLUSTER, "m1");
    assert_eq!(try_connect(&broker, Some(&stranger)).await, Err(ConnectReturnCode::BadUserNamePassword));
    // The bus client says so clearly.
    let err = Bus::connect_with(&broker.url(), "wrong", Some(wrong)).await.err().expect("refused");
    assert!(err.to_string().contains("refused"), "{err}");
}

/// Once the controller announces a member terminated, its open connection closes
/// and its credentials are refused; other members are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_members_credentials_stop_working() {
    let broker = broker();
    let platform = Bus::connect(&broker.platform_url(), "controller").await.unwrap();
    let doomed = broker.member_credentials(CLUSTER, "m1");
    let (_client, mut eventloop) = raw(&broker, "agent-m1", Some(&doomed));
    connected(&mut eventloop).await;

    platform.publish(&MemberTerminatedEvent { member: member_ref("m1"), reason: "scale-down".into() }).await.unwrap();
    until_disconnected(&mut eventloop).await;
    assert_eq!(try_connect(&broker, Some(&doomed)).await, Err(ConnectReturnCode::NotAuthorized));
    assert_eq!(try_connect(&broker, Some(&broker.member_credentials(CLUSTER, "m2"))).await, Ok(()));
}

/// Member credentials are an allow-list: a valid HMAC opens the gate only for a member
/// the platform knows as live (announced by `MemberCreatedEvent`, issued by the broker,
/// or admitted from the stored topology), never for one terminated in this run. A
/// broker started again with the same secret (a platform restart) knows no member until
/// it is told: the terminated one stays out, the live one is let in once admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_credentials_work_only_for_members_known_live() {
    let _ = tracing_subscriber::fmt().with_env_filter("stratos_bus=debug,rumqttd=warn").with_test_writer().try_init();
    let secret = stratos_bus::PlatformSecret::generate().unwrap();
    let broker = EmbeddedBroker::start_with_secret("127.0.0.1:0".parse().unwrap(), secret.clone()).unwrap();
    let platform = Bus::connect(&broker.platform_url(), "controller").await.unwrap();
    // The credentials a controller computes from the secret, as it does for members it starts.
    let (m1, m2) = (secret.member_credentials(CLUSTER, "m1"), secret.member_credentials(CLUSTER, "m2"));
    assert_eq!(try_connect(&broker, Some(&m1)).await, Err(ConnectReturnCode::NotAuthorized), "never announced");

    // Announced by the controller: let in (once the gate has seen the event).
    platform.publish(&MemberCreatedEvent { member: fake_member("m1") }).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while probe(&broker, &m1).await != Ok(()) {
        assert!(Instant::now() < deadline, "an announced member was never let in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Admitted from the store: let in at once. In another cluster's name: refused.
    broker.admit_members([(CLUSTER, "m2")]);
    assert_eq!(try_connect(&broker, Some(&m2)).await, Ok(()));
    broker.admit_members([("other.cluster", "m3")]);
    let m3 = secret.member_credentials(CLUSTER, "m3");
    assert_eq!(try_connect(&broker, Some(&m3)).await, Err(ConnectReturnCode::NotAuthorized), "another cluster's m3");

    // Terminated: out, and admitting it again (a stale snapshot) does not bring it back.
    platform.publish(&MemberTerminatedEvent { member: member_ref("m1"), reason: "scale-down".into() }).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while probe(&broker, &m1).await != Err(Some(ConnectReturnCode::NotAuthorized)) {
        assert!(Instant::now() < deadline, "a terminated member was still let in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.admit_members([(CLUSTER, "m1")]);
    assert_eq!(try_connect(&broker, Some(&m1)).await, Err(ConnectReturnCode::NotAuthorized));
    platform.close().await;

    // "Restarted": a new broker with the same secret lets in only what it is told is live.
    let again = EmbeddedBroker::start_with_secret("127.0.0.1:0".parse().unwrap(), secret.clone()).unwrap();
    assert_eq!(try_connect(&again, Some(&m2)).await, Err(ConnectReturnCode::NotAuthorized), "before loading");
    again.admit_members([(CLUSTER, "m2")]);
    assert_eq!(try_connect(&again, Some(&m2)).await, Ok(()));
    assert_eq!(try_connect(&again, Some(&m1)).await, Err(ConnectReturnCode::NotAuthorized), "the terminated m1");
}

/// A member cannot use up the broker's connections: a few at once, no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_holds_only_a_few_connections() {
    let broker = broker();
    let creds = broker.member_credentials(CLUSTER, "m1");
    let mut open = Vec::new();
    for i in 0..4 {
        let (client, mut eventloop) = raw(&broker, &format!("c{i}"), Some(&creds));
        connected(&mut eventloop).await;
        open.push((client, eventloop));
    }
    assert_eq!(try_connect(&broker, Some(&creds)).await, Err(ConnectReturnCode::NotAuthorized));
    // Other members and the platform are not affected.
    assert_eq!(try_connect(&broker, Some(&broker.member_credentials(CLUSTER, "m2"))).await, Ok(()));
    // One closed, one more may come (once the gate has seen it go).
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    while try_connect(&broker, Some(&creds)).await.is_err() {
        assert!(Instant::now() < deadline, "a closed connection was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `subscribe` returns once the broker acknowledged: an event another client
/// publishes right after it returns is delivered (before, the subscribe could
/// still be on its way through the gate, and the event was lost); a filter the
/// broker refuses is an error naming it, not a silent subscription to nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_returns_once_acknowledged_and_a_refused_filter_is_an_error() {
    let broker = broker();
    let publisher = Bus::connect(&broker.platform_url(), "publisher").await.unwrap();
    for round in 0..20u64 {
        let subscriber = Bus::connect(&broker.platform_url(), &format!("subscriber-{round}")).await.unwrap();
        let mut sub = subscriber.subscribe("tenant/#").await.unwrap();
        publisher.publish(&TenantRemovedEvent { tenant_id: round as i64 }).await.unwrap();
        let got = sub
            .wait_for(WAIT, |ev| match ev {
                AnyEvent::TenantRemovedEvent(e) if e.tenant_id == round as i64 => Some(()),
                _ => None,
            })
            .await;
        assert!(got.is_some(), "round {round}: an event published after subscribe returned was lost");
        subscriber.close().await;
    }

    let member =
        Bus::connect_with(&broker.url(), "agent-m9", Some(broker.member_credentials(CLUSTER, "m9"))).await.unwrap();
    match member.subscribe("#").await {
        Err(e) => assert!(e.to_string().contains("refused the subscription to \"#\""), "{e}"),
        Ok(_) => panic!("a member's subscription to # was accepted"),
    }
}
