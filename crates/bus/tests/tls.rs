//! MQTT over TLS against the real embedded broker over real connections: the gate
//! terminates TLS with a self-signed certificate, clients that trust it talk over
//! `mqtts://`, anything else (plain MQTT, a client trusting other roots) gets nowhere,
//! and a member is as confined over TLS as without it.

#[path = "support/mod.rs"]
mod brokers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokers::{member_ref, CLUSTER};
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use stratos_bus::events::*;
use stratos_bus::{AnyEvent, Bus, BusError, Credentials, EmbeddedBroker, Event};
use stratos_model::topology::{Service, ServiceType, Topology};

const WAIT: Duration = Duration::from_secs(15);

/// A self-signed certificate for localhost and 127.0.0.1: the server's configuration,
/// and the certificate's PEM file (what clients trust) in `dir`.
fn self_signed(dir: &Path, name: &str) -> (Arc<rustls::ServerConfig>, PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert_file = dir.join(format!("{name}-cert.pem"));
    std::fs::write(&cert_file, generated.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
    (Arc::new(config), cert_file)
}

/// A broker speaking only TLS with a new self-signed certificate, and that certificate's file.
fn tls_broker(dir: &Path) -> (EmbeddedBroker, PathBuf) {
    let _ = tracing_subscriber::fmt().with_env_filter("stratos_bus=debug,rumqttd=warn").with_test_writer().try_init();
    let (config, cert_file) = self_signed(dir, "broker");
    let secret = stratos_bus::PlatformSecret::generate().unwrap();
    let broker = EmbeddedBroker::start_tls("127.0.0.1:0".parse().unwrap(), secret, Some(config)).unwrap();
    (broker, cert_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_clients_publish_and_receive_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = tls_broker(dir.path());
    assert!(broker.url().starts_with("mqtts://"), "{}", broker.url());

    let subscriber = Bus::connect_trusting(&broker.platform_url(), "tls-sub", None, Some(&ca)).await.unwrap();
    let mut topology = subscriber.subscribe_to::<CompleteTopologyEvent>().await.unwrap();
    let publisher = Bus::connect_trusting(&broker.platform_url(), "tls-pub", None, Some(&ca)).await.unwrap();
    publisher.publish(&CompleteTopologyEvent { topology: Topology::default() }).await.unwrap();

    let got = topology
        .wait_for(WAIT, |e| match e {
            AnyEvent::CompleteTopologyEvent(t) => Some(t),
            _ => None,
        })
        .await;
    assert!(got.is_some(), "the subscriber over mqtts:// never received the topology");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mqtt_to_the_tls_port_gets_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _ca) = tls_broker(dir.path());
    let plain = broker.platform_url().replacen("mqtts://", "mqtt://", 1);
    let err = Bus::connect_trusting(&plain, "plain", None, None).await.err().expect("a plain client must not connect");
    assert!(matches!(err, BusError::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_certificate_gets_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _ca) = tls_broker(dir.path());
    // Trusting another self-signed certificate (with the same names).
    let (_, other) = self_signed(dir.path(), "other");
    let err = Bus::connect_trusting(&broker.platform_url(), "distrust", None, Some(&other)).await.err();
    let err = err.expect("a client trusting another certificate must not connect");
    assert!(matches!(err, BusError::Connect { .. }), "{err}");
    // Trusting the system's roots, which never signed it (or no roots at all).
    let err = Bus::connect_trusting(&broker.platform_url(), "system-roots", None, None).await.err();
    let err = err.expect("a client trusting only the system's roots must not connect");
    assert!(matches!(err, BusError::Connect { .. } | BusError::Tls(_)), "{err}");
    // A CA file that is not one is named in the error.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = Bus::connect_trusting(&broker.platform_url(), "junk", None, Some(&junk)).await.err().expect("junk CA");
    assert!(err.to_string().contains("junk.pem") && err.to_string().contains("STRATOS_BUS_CA_CERT"), "{err}");
}

/// A bare MQTT client over TLS trusting `ca`, to see exactly what the broker answers.
fn raw_tls(broker: &EmbeddedBroker, ca: &Path, client_id: &str, credentials: &Credentials) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.addr().port());
    options.set_credentials(credentials.username.clone(), credentials.password.clone());
    let config = stratos_bus::tls::client_config(Some(ca)).unwrap();
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))));
    AsyncClient::new(options, 100)
}

/// Polls until `pick` accepts an incoming packet; panics if the connection ends first.
async fn next<T>(eventloop: &mut EventLoop, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(p))) => {
                if let Some(t) = pick(&p) {
                    return t;
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("the awaited packet never came: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_confined_over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = tls_broker(dir.path());
    let platform = Bus::connect_trusting(&broker.platform_url(), "platform", None, Some(&ca)).await.unwrap();
    let mut topology = platform.subscribe("topology/#").await.unwrap();

    let own = broker.member_credentials(CLUSTER, "m1");
    let (member, mut eventloop) = raw_tls(&broker, &ca, "agent-m1", &own);
    next(&mut eventloop, |p| matches!(p, Packet::ConnAck(_)).then_some(())).await;

    // Reading everything is refused; its own topic is not.
    member.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    let ack = next(&mut eventloop, |p| match p {
        Packet::SubAck(a) => Some(a.clone()),
        _ => None,
    })
    .await;
    assert_eq!(ack.return_codes, vec![rumqttc::SubscribeReasonCode::Failure], "# must be refused over TLS");
    // Its own status is accepted.
    let started = serde_json::to_vec(&InstanceStartedEvent { member: member_ref("m1") }).unwrap();
    member.publish(InstanceStartedEvent::topic_for("m1"), QoS::AtLeastOnce, false, started).await.unwrap();
    next(&mut eventloop, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;

    // A forged topology: the gate disconnects it, unacknowledged.
    let mut evil = Topology::default();
    let service = Service {
        service_name: "evil".into(),
        service_type: ServiceType::SingleTenant,
        ports: vec![],
        clusters: Default::default(),
    };
    evil.services.insert("evil".into(), service);
    let forgery = CompleteTopologyEvent { topology: evil };
    member.publish(forgery.topic(), QoS::AtLeastOnce, true, serde_json::to_vec(&forgery).unwrap()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, eventloop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::PubAck(_)))) => panic!("the forged topology was acknowledged"),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("the gate kept a forging member connected for {WAIT:?}"),
        }
    }
    // The platform's own topology is the first it sees: the forgery never got through.
    platform.publish(&CompleteTopologyEvent { topology: Topology::default() }).await.unwrap();
    let first = tokio::time::timeout(WAIT, topology.recv()).await.expect("no topology arrived").unwrap();
    match first {
        AnyEvent::CompleteTopologyEvent(t) => {
            assert!(t.topology.services.is_empty(), "the member's forgery got through")
        }
        other => panic!("unexpected {}", other.name()),
    }
}

/// A member in a container reaches the broker on an address the certificate does not
/// name (its network's gateway): it checks the certificate for the name the platform
/// gives it (`STRATOS_BUS_TLS_NAME`), still against the trusted CA; any other name, or
/// none, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_an_address_the_certificate_does_not_name_checks_it_for_the_name_given() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ca) = tls_broker(dir.path());
    let other = broker.listen_also("127.0.0.2".parse().unwrap()).unwrap();
    let (credentials, _) = stratos_bus::split_credentials(&broker.platform_url());
    let url = broker.url_of(other);
    let err = Bus::connect_as(&url, "unnamed", credentials.clone(), Some(&ca), None).await.err();
    assert!(err.is_some(), "127.0.0.2 is not a name of the certificate");
    let err = Bus::connect_as(&url, "misnamed", credentials.clone(), Some(&ca), Some("stratos.example")).await.err();
    assert!(err.is_some(), "nor is stratos.example");
    let (_, another_ca) = self_signed(dir.path(), "another");
    let err = Bus::connect_as(&url, "distrust", credentials.clone(), Some(&another_ca), Some("127.0.0.1")).await.err();
    assert!(err.is_some(), "the name does not lift the check against the trusted CA");
    let bus = Bus::connect_as(&url, "named", credentials, Some(&ca), Some("127.0.0.1")).await;
    assert!(bus.is_ok(), "checked for 127.0.0.1, which it names: {:?}", bus.err());
    let err = Bus::connect_as(&url, "bad-name", None, Some(&ca), Some("not a name!")).await.err().unwrap();
    assert!(err.to_string().contains("STRATOS_BUS_TLS_NAME"), "{err}");
}
