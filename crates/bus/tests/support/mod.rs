//! Brokers for the bus tests: the embedded one and a real Mosquitto.

// Shared by several test crates, each using a part of it.
#![allow(dead_code)]

use stratos_bus::{EmbeddedBroker, MemberRef};
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

/// Files of a certificate authority made for a test and a server certificate it signed
/// for `localhost` and 127.0.0.1 (what an operator would be given): all PEM.
pub struct GivenCertificate {
    pub ca_cert: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl GivenCertificate {
    /// Makes them in `dir`, their names starting with `name`.
    pub fn make(dir: &std::path::Path, name: &str) -> GivenCertificate {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let out = GivenCertificate {
            ca_cert: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&out.ca_cert, ca.pem()).unwrap();
        std::fs::write(&out.cert, cert.pem()).unwrap();
        std::fs::write(&out.key, key.serialize_pem()).unwrap();
        out
    }
}
