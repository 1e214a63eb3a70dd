//! Members joining and leaving under continuous load: no request may fail.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use stratos_lb::LbConfig;
use stratos_model::topology::ServiceType;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_and_leave_under_load_without_a_failed_request() {
    let old = Backend::start("old").await;
    let stay = Backend::start("stay").await;
    let new = Backend::start("new").await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster(
            "app.web",
            -1234,
            &["web.test"],
            vec![http_member("app.web", "old", old.port()), http_member("app.web", "stay", stay.port())],
        )],
    );
    // Answers take a moment, so requests are in flight when membership changes.
    for b in [&old, &stay, &new] {
        b.delay_ms.store(2, Ordering::SeqCst);
    }
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(HTTP_PORT);

    // Four keep-alive clients in a loop until told to stop (at most 60 s).
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
            tokio::spawn(async move {
                let client = client();
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                    match get(&client, addr, "web.test", "/", None).await {
                        Ok(r) if r.status == StatusCode::OK => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{}: {}", r.status, r.body)),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    let wait_for_requests = |n: u64| {
        let ok = ok.clone();
        async move {
            let target = ok.load(Ordering::SeqCst) + n;
            while ok.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for_requests(200).await;

    // A member joins: measure how long until it serves a request.
    let published = Instant::now();
    env.bus.publish(&activated("app.web", "new", new.port())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while new.first_hit().is_none() {
        assert!(Instant::now() < deadline, "the new member never got a request");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let activation_to_first_request = new.first_hit().unwrap() - published;
    println!(
        "MemberActivatedEvent published -> first request routed to the new member: {activation_to_first_request:?}"
    );
    wait_for_requests(200).await;

    // A member leaves: ready to shut down, drained, stopped, terminated.
    old.delay_ms.store(50, Ordering::SeqCst);
    wait_for_requests(100).await;
    env.bus.publish(&ready_to_shutdown("app.web", "old")).await.unwrap();
    env.wait_routable("old", false).await;
    let in_flight_at_removal = env.lb.member("old").map_or(0, |m| m.in_flight);
    println!("requests in flight to the leaving member when it was removed: {in_flight_at_removal}");
    // Requests routed to it before the change finish (they are in flight, not failed);
    // a request that read the old table an instant before the swap has started by now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let drained = env
        .lb
        .wait_until(Duration::from_secs(10), |lb| {
            lb.member("old").map_or(Some(()), |m| (m.in_flight == 0).then_some(()))
        })
        .await;
    assert!(drained.is_some(), "the leaving member never drained");
    let old_hits_at_drain = old.hits();
    wait_for_requests(300).await;
    assert_eq!(old.hits(), old_hits_at_drain, "the leaving member got requests after it was removed");
    old.stop();
    env.bus.publish(&terminated("app.web", "old")).await.unwrap();
    wait_for_requests(300).await;

    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let total = ok.load(Ordering::SeqCst);
    println!(
        "{total} requests ok, {} failed; hits: old {}, stay {}, new {}",
        failures.len(),
        old.hits(),
        stay.hits(),
        new.hits()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(new.hits() >= 100, "the new member got little traffic: {}", new.hits());
    assert!(stay.hits() >= 100);
    assert_eq!(old.hits(), old_hits_at_drain);
    assert_eq!(old.hits() + stay.hits() + new.hits(), total);
}
