//! The embedded MQTT broker (rumqttd behind the gate) that `stratos up` starts by default.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::info;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::client::{with_credentials, MAX_PACKET_SIZE};
use crate::credentials::{random_hex, Credentials, PlatformSecret, SecretError};
use crate::events::{AnyEvent, Event as _, MemberCreatedEvent, MemberTerminatedEvent};
use crate::gate::Gate;

/// A broker running on its own threads for the life of the process: rumqttd on a
/// loopback port only the gate knows the credential of, and the gate (`gate.rs`) on
/// the public address, which authenticates clients and enforces the topic ACLs.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    secret: PlatformSecret,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gate: Arc<Gate>,
    /// The gate's runtime, where listeners added later are served.
    runtime: tokio::runtime::Handle,
    /// Listeners added later ([`EmbeddedBroker::listen_also`]), by address.
    extra: std::sync::Mutex<HashMap<std::net::IpAddr, SocketAddr>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl EmbeddedBroker {
    /// Starts a broker on `addr` (port 0 picks a free port) with a new random platform
    /// secret, and waits until it accepts connections.
    pub fn start(addr: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        EmbeddedBroker::start_with_secret(addr, PlatformSecret::generate()?)
    }

    /// Starts a broker on `addr` whose platform components and members authenticate
    /// with credentials of `secret`.
    pub fn start_with_secret(addr: SocketAddr, secret: PlatformSecret) -> Result<EmbeddedBroker, BrokerError> {
        EmbeddedBroker::start_tls(addr, secret, None)
    }

    /// Starts a broker as [`EmbeddedBroker::start_with_secret`] does; with `tls`, its
    /// public port speaks only MQTT over TLS (`mqtts://`) with that server
    /// configuration. rumqttd's own port stays plain, on loopback only.
    pub fn start_tls(
        addr: SocketAddr,
        secret: PlatformSecret,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<EmbeddedBroker, BrokerError> {
        let with_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let kept_acceptor = acceptor.clone();
        let listen_err = |e: std::io::Error| BrokerError::Listen { addr, reason: e.to_string() };
        // The public listener first: a taken port fails here, clearly.
        let public = TcpListener::bind(addr).map_err(listen_err)?;
        public.set_nonblocking(true).map_err(listen_err)?;
        let addr = public.local_addr().map_err(listen_err)?;

        // rumqttd cannot report the port it bound, so pick a free one first.
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
        let internal = TcpListener::bind(loopback).and_then(|p| p.local_addr()).map_err(listen_err)?;
        let internal_credentials = Credentials { username: "gate".into(), password: random_hex(32)? };
        let mut broker = Broker::new(config(internal, &internal_credentials));
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(listen_err)?;
        wait_listening(internal).map_err(|reason| BrokerError::Listen { addr: internal, reason })?;

        let gate = Gate::new(secret.clone(), internal, internal_credentials.clone());
        let served = gate.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mqtt-gate")
            .enable_all()
            .build()
            .map_err(listen_err)?;
        let handle = runtime.handle().clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("mqtt-gate".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(public) {
                        Ok(l) => l,
                        Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                    };
                    let gate = served;
                    let lifecycle = match watch_members(gate.clone(), internal, &internal_credentials).await {
                        Ok(task) => task,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        () = gate.serve(listener, acceptor) => {}
                        () = lifecycle => {}
                    }
                })
            })
            .map_err(listen_err)?;
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(BrokerError::Listen { addr, reason }),
            Err(_) => {
                return Err(BrokerError::Listen { addr, reason: "the bus gate did not start within 20 s".into() })
            }
        }
        info!(%addr, tls = with_tls, "embedded MQTT broker listening (authenticated, with topic ACLs)");
        Ok(EmbeddedBroker { addr, secret, tls: kept_acceptor, gate, runtime: handle, extra: Default::default() })
    }

    /// Serves the gate on `ip` too (the port of the main address if it is free there,
    /// else any), for clients that cannot reach the main address: members in
    /// containers reach the host on their network's gateway address, not on its
    /// loopback. The gate is the same (credentials, ACLs, TLS); asking again for an
    /// address already served returns it. Returns the address listened on.
    pub fn listen_also(&self, ip: std::net::IpAddr) -> Result<SocketAddr, BrokerError> {
        let mut extra = self.extra.lock().unwrap();
        if ip == self.addr.ip() || self.addr.ip().is_unspecified() {
            return Ok(SocketAddr::new(ip, self.addr.port()));
        }
        if let Some(addr) = extra.get(&ip) {
            return Ok(*addr);
        }
        let wanted = SocketAddr::new(ip, self.addr.port());
        let err = |e: std::io::Error| BrokerError::Listen { addr: wanted, reason: e.to_string() };
        let listener = TcpListener::bind(wanted).or_else(|_| TcpListener::bind(SocketAddr::new(ip, 0))).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
        self.runtime.spawn(self.gate.clone().serve(listener, self.tls.clone()));
        extra.insert(ip, addr);
        info!(%addr, "embedded MQTT broker also listening (same gate)");
        Ok(addr)
    }

    /// The URL of a listener of this broker ([`EmbeddedBroker::listen_also`]'s address).
    pub fn url_of(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://{addr}")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address clients connect to: `mqtt://host:port` (`mqtts://` with TLS),
    /// without credentials.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        // Listening on every address: clients here reach it on loopback, which a
        // certificate names (0.0.0.0 is no name a certificate holds).
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
        }
        format!("{scheme}://{addr}")
    }

    /// The address with the platform's credentials in it, for platform components in
    /// this process (and tests). Never hand it to a member, nor log it.
    pub fn platform_url(&self) -> String {
        with_credentials(&self.url(), &self.secret.platform_credentials())
    }

    /// The platform secret: platform components' password, and the key of members' credentials.
    pub fn secret(&self) -> &PlatformSecret {
        &self.secret
    }

    /// Issues the credentials a member of `cluster_id` gets when it is started: they
    /// work from now on, until the member's `MemberTerminatedEvent`.
    pub fn member_credentials(&self, cluster_id: &str, member_id: &str) -> Credentials {
        self.gate.admit(cluster_id, member_id);
        self.secret.member_credentials(cluster_id, member_id)
    }

    /// Admits members the platform knows as live without having issued their
    /// credentials in this run: those of the stored topology, at start. A member
    /// credential works only for a member admitted here, issued by
    /// [`EmbeddedBroker::member_credentials`], or announced by a `MemberCreatedEvent`
    /// (as the controller does before the driver starts it); never for one terminated
    /// in this run. Until the platform has admitted its stored members, their agents
    /// are refused and reconnect.
    pub fn admit_members<'a>(&self, members: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut count = 0usize;
        for (cluster_id, member_id) in members {
            self.gate.admit(cluster_id, member_id);
            count += 1;
        }
        info!(members = count, "bus credentials of the stored topology's members admitted");
    }
}

/// Waits (up to 10 s) until `addr` accepts TCP connections.
fn wait_listening(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err("broker did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Subscribes (straight to rumqttd, as the platform) to members' creations and
/// terminations, and returns once the subscriptions are in place a task that admits
/// each created member's credentials in the gate and revokes each terminated one's. A
/// raw client, to know when the broker confirmed the subscriptions: a member announced
/// right after start must not be missed.
async fn watch_members(
    gate: Arc<Gate>,
    internal: SocketAddr,
    credentials: &Credentials,
) -> Result<impl std::future::Future<Output = ()>, String> {
    let mut options = MqttOptions::new("stratos-bus-gate", internal.ip().to_string(), internal.port());
    options.set_credentials(credentials.username.clone(), credentials.password.clone());
    options.set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
    options.set_keep_alive(Duration::from_secs(15));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let subscribe = |client: &AsyncClient| {
        let filters = [MemberCreatedEvent::FILTER, MemberTerminatedEvent::FILTER]
            .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
        client.try_subscribe_many(filters)
    };
    let confirmed = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => subscribe(&client).map_err(|e| e.to_string())?,
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        return Err("the broker refused the gate's subscription".to_string());
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), confirmed)
        .await
        .map_err(|_| "the broker did not confirm the gate's subscription within 10 s".to_string())??;
    Ok(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => match AnyEvent::decode(&p.topic, &p.payload) {
                    Some(Ok(AnyEvent::MemberCreatedEvent(e))) => gate.admit(&e.member.cluster_id, &e.member.member_id),
                    Some(Ok(AnyEvent::MemberTerminatedEvent(e))) => gate.revoke(&e.member.member_id),
                    _ => {}
                },
                // A new session after a reconnect: subscribe again.
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = subscribe(&client);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the bus gate lost its connection to the broker; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}

fn config(listen: SocketAddr, credentials: &Credentials) -> Config {
    let server = ServerSettings {
        name: "stratos".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: MAX_PACKET_SIZE,
            max_inflight_count: 500,
            auth: Some(HashMap::from([(credentials.username.clone(), credentials.password.clone())])),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            // Each topic's log is kept in memory up to segments x size: 10 x 100 MiB
            // let a 100k-member platform (statistics, member events, topology
            // snapshots of tens of MB each) grow the broker by gigabytes. A subscriber
            // that falls further behind than this skips ahead; subscribers here keep up
            // within an interval. A larger message takes a segment of its own.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            // Only the latest topology snapshot is worth sending to a subscriber of the
            // snapshots alone (the health service): each is 1.5 MB compressed (32 MB of
            // JSON) at 100k members, and four of them were kept. (`topology/#` keeps them with the member events.)
            custom_segment: Some(HashMap::from([(
                crate::events::CompleteTopologyEvent::FILTER.to_string(),
                rumqttd::SegmentConfig { max_segment_size: 1024, max_segment_count: 1 },
            )])),
            ..Default::default()
        },
        v4: Some(HashMap::from([("stratos".to_string(), server)])),
        ..Default::default()
    }
}
