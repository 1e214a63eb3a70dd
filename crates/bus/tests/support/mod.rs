//! Brokers for the bus tests: the embedded one and a real Mosquitto.

// Shared by several test crates, each using a part of it.
#![allow(dead_code, unused_imports)]

use stratos_bus::{EmbeddedBroker, MemberRef};
pub use stratos_test_kit::certs::GivenCertificate;
pub use stratos_test_kit::mosquitto::Mosquitto;
pub use stratos_test_kit::{free_port, wait_listening};

/// The cluster of the members in the trust tests.
pub const CLUSTER: &str = "app.php";

/// A member of [`CLUSTER`] as the events about it name it.
pub fn member_ref(id: &str) -> MemberRef {
    MemberRef {
        service_name: "php".into(),
        cluster_id: CLUSTER.into(),
        member_id: id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
    }
}

/// Both kinds of broker, each with a label; the Mosquitto handle must be kept alive.
pub fn both() -> (Vec<(&'static str, String)>, Option<Mosquitto>) {
    let embedded = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).expect("embedded broker");
    let mut urls = vec![("embedded", embedded.platform_url())];
    let mosquitto = Mosquitto::start(0);
    if let Some(m) = &mosquitto {
        urls.push(("mosquitto", m.url()));
    }
    (urls, mosquitto)
}
