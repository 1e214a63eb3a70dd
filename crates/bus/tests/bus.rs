//! The bus against real brokers: the embedded one and Mosquitto.

#[path = "support/mod.rs"]
mod brokers;

use std::time::Duration;

use stratos_bus::events::*;
use stratos_bus::{AnyEvent, Bus, MemberRef};
use stratos_model::topology::{Cluster, ClusterStatus, Port, Service, ServiceType, Topology};
use stratos_model::Protocol;

const WAIT: Duration = Duration::from_secs(10);

fn member(id: &str) -> MemberRef {
    MemberRef {
        service_name: "php".into(),
        cluster_id: "app.php".into(),
        member_id: id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
    }
}

fn topology(clusters: usize) -> Topology {
    let mut service = Service {
        service_name: "php".into(),
        service_type: ServiceType::SingleTenant,
        ports: vec![],
        clusters: Default::default(),
    };
    for i in 0..clusters {
        let id = format!("app{i}.php");
        service.clusters.insert(
            id.clone(),
            Cluster {
                cluster_id: id,
                service_name: "php".into(),
                app_id: format!("app{i}"),
                alias: "php".into(),
                tenant_id: -1234,
                host_names: vec![format!("app{i}.php.stratos.local")],
                autoscale_policy_name: "a".into(),
                deployment_policy_name: "d".into(),
                status: ClusterStatus::Active,
                error: None,
                created_at: 0,
                members: Default::default(),
            },
        );
    }
    let mut t = Topology::default();
    t.services.insert("php".into(), service);
    t
}

#[tokio::test]
async fn typed_events_reach_matching_subscribers_only() {
    let (brokers, _keep) = brokers::both();
    for (name, url) in brokers {
        let publisher = Bus::connect(&url, &format!("pub-{name}")).await.unwrap();
        let listener = Bus::connect(&url, &format!("sub-{name}")).await.unwrap();
        let mut topology = listener.subscribe("topology/#").await.unwrap();
        let mut status = listener.subscribe("instance/status/+/+").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let activated = MemberActivatedEvent {
            member: member("m1"),
            default_private_ip: Some("127.0.0.1".into()),
            ports: vec![Port { protocol: Protocol::Http, value: 8080, proxy: 8280 }],
        };
        publisher.publish(&activated).await.unwrap();
        publisher.publish(&InstanceStartedEvent { member: member("m2") }).await.unwrap();

        let got = topology
            .wait_for(WAIT, |e| match e {
                AnyEvent::MemberActivatedEvent(e) => Some(e),
                _ => None,
            })
            .await;
        assert_eq!(got.as_ref(), Some(&activated), "{name}: topology subscriber gets the activation");
        let got = status
            .wait_for(WAIT, |e| match e {
                AnyEvent::InstanceStartedEvent(e) => Some(e),
                _ => None,
            })
            .await;
        assert_eq!(got.map(|e| e.member.member_id), Some("m2".to_string()), "{name}");
        // The status subscription never sees topology events and vice versa.
        let stray = topology
            .wait_for(Duration::from_millis(300), |e| matches!(e, AnyEvent::InstanceStartedEvent(_)).then_some(()))
            .await;
        assert!(stray.is_none(), "{name}: topology/# must not receive instance/status events");
    }
}

#[tokio::test]
async fn late_joiners_get_the_latest_complete_topology() {
    let (brokers, _keep) = brokers::both();
    for (name, url) in brokers {
        let controller = Bus::connect(&url, &format!("cc-{name}")).await.unwrap();
        controller.publish(&CompleteTopologyEvent { topology: topology(1) }).await.unwrap();
        // A big snapshot (5,000 clusters) replaces the first: the retained message is the newest.
        let big = topology(5_000);
        controller.publish(&CompleteTopologyEvent { topology: big.clone() }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;

        let late = Bus::connect(&url, &format!("lb-{name}")).await.unwrap();
        let mut sub = late.subscribe_to::<CompleteTopologyEvent>().await.unwrap();
        let got = sub
            .wait_for(WAIT, |e| match e {
                AnyEvent::CompleteTopologyEvent(e) => Some(e.topology),
                _ => None,
            })
            .await;
        assert_eq!(
            got.map(|t| t.services["php"].clusters.len()),
            Some(5_000),
            "{name}: late joiner gets the newest snapshot"
        );
    }
}

/// A raw MQTT client on `url` (with its credentials), its event loop driven by `polled`.
fn raw_client(url: &str, id: &str) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (host, port) = stratos_bus::parse_broker_url(url).unwrap();
    let mut options = rumqttc::MqttOptions::new(id, host, port);
    options.set_max_packet_size(stratos_bus::MAX_PACKET_SIZE, stratos_bus::MAX_PACKET_SIZE);
    if let (Some(c), _) = stratos_bus::split_credentials(url) {
        options.set_credentials(c.username, c.password);
    }
    rumqttc::AsyncClient::new(options, 10)
}

/// The snapshot travels compressed through either broker, a tenth of its JSON or
/// less, and arrives typed; a plain JSON snapshot (published by hand, or by an older
/// build) is still read.
#[tokio::test]
async fn the_complete_topology_goes_compressed_and_plain_json_is_still_read() {
    let (brokers, _keep) = brokers::both();
    for (name, url) in brokers {
        let big = topology(2_000);
        let json = serde_json::to_vec(&CompleteTopologyEvent { topology: big.clone() }).unwrap();
        let controller = Bus::connect(&url, &format!("cc-z-{name}")).await.unwrap();
        controller.publish(&CompleteTopologyEvent { topology: big.clone() }).await.unwrap();

        // On the wire (the retained message, as a raw client gets it): a zstd frame, small.
        let (raw, mut eventloop) = raw_client(&url, &format!("raw-z-{name}"));
        raw.subscribe(CompleteTopologyEvent::FILTER, rumqttc::QoS::AtLeastOnce).await.unwrap();
        let on_wire = tokio::time::timeout(WAIT, async {
            loop {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = eventloop.poll().await.unwrap() {
                    return p.payload;
                }
            }
        })
        .await
        .expect("no retained snapshot");
        assert!(stratos_bus::body::is_compressed(&on_wire), "{name}: the snapshot is not compressed on the wire");
        assert!(on_wire.len() * 10 < json.len(), "{name}: {} bytes compressed, {} of JSON", on_wire.len(), json.len());
        assert_eq!(stratos_bus::body::expand(&on_wire).unwrap(), json, "{name}: it expands to the event's JSON");

        // Plain JSON on the same topic is read as the snapshot too.
        let reader = Bus::connect(&url, &format!("lb-z-{name}")).await.unwrap();
        let mut sub = reader.subscribe_to::<CompleteTopologyEvent>().await.unwrap();
        let first = sub.recv().await;
        assert!(
            matches!(&first, Some(AnyEvent::CompleteTopologyEvent(e)) if e.topology == big),
            "{name}: the compressed snapshot arrives typed"
        );
        let plain = topology(3);
        let plain_json = serde_json::to_vec(&CompleteTopologyEvent { topology: plain.clone() }).unwrap();
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        raw.publish(CompleteTopologyEvent::FILTER, rumqttc::QoS::AtLeastOnce, true, plain_json).await.unwrap();
        let got = sub
            .wait_for(WAIT, |e| match e {
                AnyEvent::CompleteTopologyEvent(e) => Some(e.topology),
                _ => None,
            })
            .await;
        assert_eq!(got, Some(plain), "{name}: a plain JSON snapshot is read");
    }
}

/// Many tasks sharing one connection, as members of the simulated driver do: far
/// more publishers than the request queue holds all get their events through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_from_many_tasks_sharing_a_connection_all_arrive() {
    let broker = stratos_bus::EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let publisher = Bus::connect(&broker.platform_url(), "many-publishers").await.unwrap();
    let subscriber = Bus::connect(&broker.platform_url(), "many-publishers-sub").await.unwrap();
    let mut stats = subscriber.subscribe_to::<MemberHealthStatEvent>().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    const TASKS: usize = 5_000;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let bus = publisher.clone();
            tokio::spawn(async move {
                let stat = MemberHealthStatEvent {
                    member: member(&format!("m{i}")),
                    load_average: Some(i as f64),
                    memory_consumption: None,
                    timestamp: 0,
                };
                bus.publish(&stat).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < TASKS {
        match tokio::time::timeout(WAIT, stats.recv()).await {
            Ok(Some(AnyEvent::MemberHealthStatEvent(e))) => {
                seen.insert(e.member.member_id);
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), TASKS, "every member's statistics arrive once");
}

/// A broker that stops reading for a while (busy, or a congested network) holds up
/// publishes; none is lost. The client's event loop used to be abandoned mid-write
/// by a once-a-second timer, which dropped the packet being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_survive_a_broker_that_stops_reading_for_a_while() {
    let broker = stratos_bus::EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let stalled = stalling_relay(broker.addr(), Duration::from_millis(2500)).await;
    let through_relay =
        stratos_bus::with_credentials(&format!("mqtt://{stalled}"), &broker.secret().platform_credentials());
    let publisher = Bus::connect(&through_relay, "stalled-publisher").await.unwrap();
    let subscriber = Bus::connect(&broker.platform_url(), "stalled-subscriber").await.unwrap();
    let mut stats = subscriber.subscribe_to::<MemberHealthStatEvent>().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Large enough to fill the socket buffers while the relay is not reading.
    const EVENTS: usize = 40;
    let padding = "x".repeat(512 * 1024);
    for i in 0..EVENTS {
        let stat = MemberHealthStatEvent {
            // The padding in the body: the member id is a topic level, and topics are short.
            member: MemberRef { member_id: format!("m{i}"), service_name: padding.clone(), ..member("") },
            load_average: Some(i as f64),
            memory_consumption: None,
            timestamp: 0,
        };
        publisher.publish(&stat).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < EVENTS {
        match tokio::time::timeout(WAIT, stats.recv()).await {
            Ok(Some(AnyEvent::MemberHealthStatEvent(e))) => {
                seen.insert(e.load_average.unwrap() as usize);
            }
            _ => break,
        }
    }
    let missing: Vec<usize> = (0..EVENTS).filter(|i| !seen.contains(i)).collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
}

/// Forwards TCP connections to `target`, not reading from the client for `stall`
/// once the connection has carried its first bytes (the MQTT handshake).
async fn stalling_relay(target: std::net::SocketAddr, stall: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(target).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut stalled = false;
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    if !stalled {
                        // Let the connection and subscription through, then stop reading.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        stalled = true;
                        tokio::time::sleep(stall).await;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_malformed_message_does_not_stop_the_subscription() {
    let (brokers, _keep) = brokers::both();
    for (name, url) in brokers {
        let listener = Bus::connect(&url, &format!("l-{name}")).await.unwrap();
        let mut sub = listener.subscribe("instance/status/#").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (host, port) = stratos_bus::parse_broker_url(&url).unwrap();
        let mut options = rumqttc::MqttOptions::new(format!("raw-{name}"), host, port);
        if let (Some(c), _) = stratos_bus::split_credentials(&url) {
            options.set_credentials(c.username, c.password);
        }
        let (raw, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        raw.publish(InstanceStartedEvent::topic_for("x"), rumqttc::QoS::AtLeastOnce, false, b"{not json".to_vec())
            .await
            .unwrap();
        let good = Bus::connect(&url, &format!("g-{name}")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        good.publish(&InstanceStartedEvent { member: member("after") }).await.unwrap();
        let got = sub
            .wait_for(WAIT, |e| match e {
                AnyEvent::InstanceStartedEvent(e) => Some(e.member.member_id),
                _ => None,
            })
            .await;
        assert_eq!(got.as_deref(), Some("after"), "{name}");
    }
}

#[tokio::test]
async fn subscriptions_survive_a_broker_restart() {
    let port = brokers::free_port();
    let Some(first) = brokers::Mosquitto::start(port) else { return };
    let url = first.url();
    let listener = Bus::connect(&url, "survivor").await.unwrap();
    let mut sub = listener.subscribe("topology/#").await.unwrap();
    first.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _second = brokers::Mosquitto::start(port).unwrap();
    // The listener reconnects with back-off and subscribes again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let publisher = Bus::connect(&url, "after-restart").await.unwrap();
    publisher.publish(&MemberStartedEvent { member: member("m9") }).await.unwrap();
    let got = sub
        .wait_for(WAIT, |e| match e {
            AnyEvent::MemberStartedEvent(e) => Some(e.member.member_id),
            _ => None,
        })
        .await;
    assert_eq!(got.as_deref(), Some("m9"));
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error() {
    let port = brokers::free_port();
    let err = Bus::connect(&format!("mqtt://127.0.0.1:{port}"), "nobody").await.err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(Bus::connect("http://x", "bad").await.is_err());
}

#[test]
fn every_topic_is_its_type_path_with_its_scope() {
    let activated = InstanceActivatedEvent { member: member("m1") };
    assert_eq!(activated.topic(), "instance/status/m1/InstanceActivatedEvent");
    assert_eq!(InstanceActivatedEvent::FILTER, "instance/status/+/InstanceActivatedEvent");
    assert_eq!(
        MemberMaintenanceModeEvent { member: member("m1") }.topic(),
        "topology/member/m1/MemberMaintenanceModeEvent"
    );
    assert_eq!(
        InstanceCleanupMemberEvent { member_id: "m1".into() }.topic(),
        "instance/notifier/member/m1/InstanceCleanupMemberEvent"
    );
    assert_eq!(
        InstanceCleanupClusterEvent { cluster_id: "app.php".into() }.topic(),
        "instance/notifier/cluster/app.php/InstanceCleanupClusterEvent"
    );
    let stat =
        MemberHealthStatEvent { member: member("m1"), load_average: None, memory_consumption: None, timestamp: 0 };
    assert_eq!(stat.topic(), "health/member/m1/MemberHealthStatEvent");
    assert_eq!(CompleteTopologyEvent { topology: Topology::default() }.topic(), "topology/CompleteTopologyEvent");
    assert_eq!(MemberFaultEvent::FILTER, "health/MemberFaultEvent");
    const { assert!(CompleteTopologyEvent::RETAIN) };
    const { assert!(!MemberActivatedEvent::RETAIN) };
    let mut seen = std::collections::HashSet::new();
    for filter in AnyEvent::FILTERS {
        assert!(seen.insert(filter), "filter {filter} used twice");
        let prefix = filter.rsplit_once('/').unwrap().0;
        assert!(
            [
                "topology",
                "topology/member/+",
                "instance/status/+",
                "instance/notifier/member/+",
                "instance/notifier/cluster/+",
                "application",
                "cluster/status",
                "tenant",
                "health",
                "health/member/+",
                "summarized-health-stats",
                "autoscaler",
                "log/+"
            ]
            .contains(&prefix),
            "{filter}"
        );
    }
}

/// A body about another member than its topic names is forged: decoding refuses it.
#[test]
fn a_body_about_another_member_than_its_topic_is_refused() {
    let body = serde_json::to_vec(&InstanceActivatedEvent { member: member("m2") }).unwrap();
    let decoded = AnyEvent::decode("instance/status/m1/InstanceActivatedEvent", &body).unwrap();
    assert!(matches!(decoded, Err(stratos_bus::DecodeError::ScopeMismatch { .. })), "{decoded:?}");
    let decoded = AnyEvent::decode("instance/status/m2/InstanceActivatedEvent", &body).unwrap();
    assert!(decoded.is_ok());
    let cleanup = serde_json::to_vec(&InstanceCleanupClusterEvent { cluster_id: "a".into() }).unwrap();
    let decoded = AnyEvent::decode("instance/notifier/cluster/b/InstanceCleanupClusterEvent", &cleanup).unwrap();
    assert!(decoded.is_err());
    // Old unscoped topics, wildcards and extra levels are not the platform's topics.
    assert!(AnyEvent::decode("instance/status/InstanceActivatedEvent", &body).is_none());
    assert!(AnyEvent::decode("instance/status/+/InstanceActivatedEvent", &body).is_none());
    assert!(AnyEvent::decode("instance/status/m2/x/InstanceActivatedEvent", &body).is_none());
}

#[test]
fn events_keep_stratos_field_names() {
    let e = MemberTerminatedEvent { member: member("m1"), reason: "undeployed".into() };
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["memberId"], "m1");
    assert_eq!(json["networkPartitionId"], "np1");
    let (topic, body, _) = AnyEvent::MemberTerminatedEvent(e.clone()).encode().unwrap();
    assert_eq!(topic, "topology/member/m1/MemberTerminatedEvent");
    assert_eq!(AnyEvent::decode(&topic, &body).unwrap().unwrap(), AnyEvent::MemberTerminatedEvent(e));
    assert!(AnyEvent::decode("foreign/topic", b"{}").is_none());
}

/// The embedded broker serves its gate on another address too (as for members in
/// containers, on their network's gateway): the same credentials and ACLs there, a
/// member's own topics allowed, and asking again gives the same address.
#[tokio::test]
async fn the_gate_serves_another_address_alike() {
    let broker = stratos_bus::EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let addr = broker.listen_also(other).unwrap();
    assert_eq!(addr.ip(), other);
    assert_eq!(broker.listen_also(other).unwrap(), addr, "a second ask listens again");
    let url = broker.url_of(addr);
    let platform = Bus::connect(&stratos_bus::with_credentials(&url, &broker.secret().platform_credentials()), "p")
        .await
        .expect("the platform connects on the other address");
    let mut seen = platform.subscribe("instance/status/#").await.unwrap();
    let credentials = broker.member_credentials("app.php", "m1");
    let agent = Bus::connect(&stratos_bus::with_credentials(&url, &credentials), "m1").await.expect("the member too");
    agent.publish(&InstanceStartedEvent { member: member("m1") }).await.unwrap();
    let got = seen.wait_for(WAIT, |e| matches!(e, AnyEvent::InstanceStartedEvent(_)).then_some(())).await;
    assert!(got.is_some(), "the member's event did not arrive");
    // Without credentials: refused, as on the main address.
    assert!(Bus::connect(&url, "nobody").await.is_err());
}
