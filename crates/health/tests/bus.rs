//! Health processing on a real (embedded) broker: stats in, summaries and faults out.

use std::time::Duration;

use stratos_bus::events::{InFlightRequestsEvent, MemberActivatedEvent, MemberHealthStatEvent};
use stratos_bus::{now_millis, AnyEvent, Bus, EmbeddedBroker, MemberRef};
use stratos_health::HealthConfig;

fn member(id: &str) -> MemberRef {
    MemberRef {
        service_name: "php".into(),
        cluster_id: "app.web".into(),
        member_id: id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
    }
}

#[tokio::test]
async fn stats_become_summaries_and_silence_becomes_a_fault() {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let bus = Bus::connect(&broker.platform_url(), "health-under-test").await.unwrap();
    let config = HealthConfig {
        window: Duration::from_secs(60),
        interval: Duration::from_millis(300),
        fault_after: Duration::from_secs(2),
    };
    tokio::spawn(stratos_health::run(bus, config));
    let client = Bus::connect(&broker.platform_url(), "health-client").await.unwrap();
    let mut out = client.subscribe("summarized-health-stats/#").await.unwrap();
    let mut faults = client.subscribe("health/MemberFaultEvent").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let now = now_millis();
    for (i, load) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let stat = MemberHealthStatEvent {
            member: member("busy"),
            load_average: Some(load),
            memory_consumption: Some(50.0),
            timestamp: now - 2000 + i as u64 * 1000,
        };
        client.publish(&stat).await.unwrap();
    }
    client
        .publish(&InFlightRequestsEvent {
            cluster_id: "app.web".into(),
            network_partition_id: "np1".into(),
            member_id: None,
            in_flight: 12.0,
            timestamp: now,
        })
        .await
        .unwrap();
    client
        .publish(&MemberActivatedEvent { member: member("quiet"), default_private_ip: None, ports: vec![] })
        .await
        .unwrap();

    // One summary for the cluster, with the load balancer's figure, the cluster's
    // mean and each member's own load (what the autoscaler picks a member to remove by).
    let summary = out
        .wait_for(Duration::from_secs(10), |e| match e {
            AnyEvent::ClusterHealthSummaryEvent(s) if s.requests_in_flight.is_some() && s.load_average.is_some() => {
                Some(s)
            }
            _ => None,
        })
        .await
        .expect("a cluster summary with load and requests in flight");
    assert_eq!(summary.cluster_id, "app.web");
    let load = summary.load_average.unwrap();
    assert_eq!((load.average, load.gradient), (20.0, 10.0), "average 20, rising 10 per second");
    assert_eq!(summary.requests_in_flight.unwrap().average, 12.0);
    let busy = summary.members.iter().find(|m| m.member_id == "busy").expect("the member that reported");
    assert_eq!(busy.load_average.unwrap().average, 20.0);
    assert!(summary.members.iter().all(|m| m.member_id != "quiet"), "a member without statistics has no figures");

    let fault = faults
        .wait_for(Duration::from_secs(10), |e| match e {
            AnyEvent::MemberFaultEvent(f) if f.member.member_id == "quiet" => Some(f.reason),
            _ => None,
        })
        .await;
    assert!(
        fault.is_some_and(|reason| reason.contains("no health statistics")),
        "a member that never reports is faulty"
    );
}

/// A statistic whose body names another member than its topic is forged (only a
/// broker weaker than ours would pass it): it counts for no one.
#[tokio::test]
async fn a_statistic_about_another_member_than_its_topic_is_dropped() {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let bus = Bus::connect(&broker.platform_url(), "health-under-test").await.unwrap();
    let config = HealthConfig {
        window: Duration::from_secs(60),
        interval: Duration::from_millis(300),
        fault_after: Duration::from_secs(60),
    };
    tokio::spawn(stratos_health::run(bus, config));
    let client = Bus::connect(&broker.platform_url(), "health-client").await.unwrap();
    let mut out = client.subscribe("summarized-health-stats/#").await.unwrap();

    // The platform may publish anything: it stands in for a member on a weaker broker.
    let platform = broker.secret().platform_credentials();
    let mut options = rumqttc::MqttOptions::new("forger", "127.0.0.1", broker.addr().port());
    options.set_credentials(platform.username, platform.password);
    let (raw, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let now = now_millis();
    let forged = MemberHealthStatEvent {
        member: MemberRef { cluster_id: "victim.web".into(), ..member("victim") },
        load_average: Some(1000.0),
        memory_consumption: Some(99.0),
        timestamp: now,
    };
    let topic = <MemberHealthStatEvent as stratos_bus::Event>::topic_for("m1");
    raw.publish(topic, rumqttc::QoS::AtLeastOnce, false, serde_json::to_vec(&forged).unwrap()).await.unwrap();
    let honest = MemberHealthStatEvent {
        member: member("m1"),
        load_average: Some(5.0),
        memory_consumption: None,
        timestamp: now,
    };
    // After the forgery on the same connection, so it arrives after it.
    raw.publish(
        <MemberHealthStatEvent as stratos_bus::Event>::topic_for("m1"),
        rumqttc::QoS::AtLeastOnce,
        false,
        serde_json::to_vec(&honest).unwrap(),
    )
    .await
    .unwrap();

    let summaries = out
        .wait_for(Duration::from_secs(10), |e| match e {
            AnyEvent::ClusterHealthSummaryEvent(s) if s.members.iter().any(|m| m.member_id == "m1") => Some(s),
            _ => None,
        })
        .await
        .expect("a summary with the honest member");
    assert_eq!(summaries.load_average.unwrap().average, 5.0);
    assert!(summaries.members.iter().all(|m| m.member_id != "victim"));
    // No summary for the cluster the forgery named, ever since.
    let victim = out
        .wait_for(Duration::from_secs(1), |e| match e {
            AnyEvent::ClusterHealthSummaryEvent(s) if s.cluster_id == "victim.web" => Some(s),
            _ => None,
        })
        .await;
    assert!(victim.is_none(), "the forged statistic was counted: {victim:?}");
}
