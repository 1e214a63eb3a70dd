//! The event bus over TLS end to end: `stratos up --mqtt-tls-self-signed` serves the
//! embedded broker in TLS only, its components connect over `mqtts://`, and a real
//! member (agent and app, local driver) trusts the generated certificate through
//! `STRATOS_BUS_CA_CERT` and activates; so does a member in a container, which reaches
//! the broker on its network's gateway address and checks the certificate for the name
//! the platform's own clients use (`STRATOS_BUS_TLS_NAME`).

mod support;

use stratos_bus::{Bus, PlatformSecret};
use stratos_test_kit::certs::GivenCertificate;
use stratos_test_kit::docker as dk;
use support::containers::{platform_id, Cleanup};
use support::{free_port, Iaas, Platform, Sandbox, SlowHttpApp};

#[test]
fn members_activate_over_a_tls_only_bus() {
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &["--mqtt-tls-self-signed"]);
    let banner = platform.proc.stdout();
    let bus_line = banner.lines().find(|l| l.contains("event bus")).unwrap_or_else(|| panic!("{banner}"));
    assert!(bus_line.contains(&format!("mqtts://127.0.0.1:{}", platform.mqtt_port)), "{bus_line}");
    assert!(banner.contains("SHA-256 fingerprint"), "{banner}");
    let cert = sandbox.path().join("mqtt-cert.pem");
    assert!(cert.exists(), "no certificate written for clients\n{banner}");

    // Plain MQTT with the platform's own credentials gets nowhere; mqtts:// trusting the file does.
    let secret = PlatformSecret::read(&sandbox.path().join("bus-password")).unwrap();
    let plain = stratos_bus::with_credentials(&platform.broker_url(), &secret.platform_credentials());
    let tls = plain.replacen("mqtt://", "mqtts://", 1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(runtime.block_on(Bus::connect_trusting(&plain, "plain-probe", None, None)).is_err());
    let bus = runtime.block_on(Bus::connect_trusting(&tls, "tls-probe", None, Some(&cert))).unwrap();
    runtime.block_on(bus.close());

    // A member's agent reaches the bus over TLS with the CA it was handed: deploy waits
    // for it to activate, then for the load balancer to route to it.
    let app = one_member("tlsapp", Default::default());
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    drop(platform.stop());
}

/// `stratos up --mqtt-tls-cert/--mqtt-tls-key` with given files (a server certificate
/// signed by a CA made here, as an operator's would be), the CA handed over in
/// `STRATOS_BUS_CA_CERT`: the embedded broker speaks only TLS with that certificate,
/// a client trusting the CA gets in, one trusting another CA or the system's roots does
/// not, and a real member trusts the CA through the same variable and activates.
#[test]
fn the_embedded_broker_serves_a_given_certificate() {
    let sandbox = Sandbox::new();
    let files = tempfile::tempdir().unwrap();
    let GivenCertificate { ca_cert: ca, cert, key } = GivenCertificate::make(files.path(), "bus");
    let other_ca = GivenCertificate::make(files.path(), "other").ca_cert;

    let extra = ["--mqtt-tls-cert", cert.to_str().unwrap(), "--mqtt-tls-key", key.to_str().unwrap()];
    let platform = Platform::start_with_env(
        sandbox.path(),
        free_port(),
        free_port(),
        &extra,
        &[(stratos_bus::tls::CA_CERT_ENV, ca.as_path())],
    )
    .unwrap_or_else(|proc| panic!("`stratos up` did not start\n{}", proc.describe()));
    let banner = platform.proc.stdout();
    assert!(banner.contains(&format!("mqtts://127.0.0.1:{}", platform.mqtt_port)), "{banner}");

    let secret = PlatformSecret::read(&sandbox.path().join("bus-password")).unwrap();
    let tls = stratos_bus::with_credentials(
        &format!("mqtts://127.0.0.1:{}", platform.mqtt_port),
        &secret.platform_credentials(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(Bus::connect_trusting(&tls, "given-ca", None, Some(&ca))).unwrap();
    runtime.block_on(bus.close());
    for (what, trusted) in [("another CA", Some(other_ca.as_path())), ("the system's roots", None)] {
        let refused = runtime.block_on(Bus::connect_trusting(&tls, "wrong-ca", None, trusted));
        assert!(refused.is_err(), "a client trusting {what} got in");
    }

    let app = one_member("givenapp", Default::default());
    app.add(&platform, sandbox.path());
    app.deploy(&platform);
    drop(platform.stop());
}

#[test]
fn containers_activate_over_a_tls_only_bus() {
    if !dk::engine_or_skip("containers_activate_over_a_tls_only_bus") {
        return;
    }
    let image = dk::shell_image();
    let cleanup = Cleanup::default();
    let sandbox = Sandbox::new();
    let platform = Platform::start(sandbox.path(), &["--mqtt-tls-self-signed"]);
    cleanup.platform(&platform_id(&platform));
    let app = one_member("tlsbox", Iaas::Docker { image: &image, hosts: &[] });
    app.add(&platform, sandbox.path());
    // Waits for the container's agent to activate over mqtts://, then for the route.
    app.deploy(&platform);
    drop(platform.stop());
}

/// An application of one member (`web`) behind the load balancer on a free port.
fn one_member<'a>(app: &'a str, iaas: Iaas<'a>) -> SlowHttpApp<'a> {
    SlowHttpApp {
        app,
        alias: "web",
        proxy_port: free_port(),
        delay_ms: 0,
        threshold: 100.0,
        min: 1,
        max: 1,
        nps: &[("np1", 1)],
        iaas,
    }
}
