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
