//! The MQTT transport: publish typed events, subscribe by topic filter.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::credentials::Credentials;
use crate::events::{AnyEvent, DecodeError, Event};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bad broker address {0:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")]
    BadUrl(String),
    #[error("cannot reach the MQTT broker at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("the MQTT broker at {addr} refused the connection: {code} (check the bus username and password)")]
    Refused { addr: String, code: String },
    #[error("MQTT client: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the MQTT broker refused the subscription to {filter:?} (not allowed for this client)")]
    SubscribeRefused { filter: String },
}

/// How long `subscribe` waits for the broker's acknowledgement before going on
/// without it (the subscription still stands, as before acknowledgements were awaited).
const SUBACK_WAIT: Duration = Duration::from_secs(30);

/// Subscribers waiting for the broker's SUBACK. rumqttc does not hand out the packet
/// id of a subscribe, but it sends subscribes in the order they were queued and
/// reports each as `Outgoing::Subscribe(pkid)`: queued waiters are matched to packet
/// ids in that order (subscribes are queued under the `publishing` turn, so the
/// order is the queue's), and each SUBACK to its packet id.
#[derive(Default)]
struct Acks {
    queued: VecDeque<Option<oneshot::Sender<bool>>>,
    sent: HashMap<u16, oneshot::Sender<bool>>,
}

/// Largest message either side accepts: a complete topology of 100k members fits.
pub const MAX_PACKET_SIZE: usize = 64 * 1024 * 1024;

/// Splits `mqtt://host:port`, `mqtts://host:port`, `tcp://host:port` or `host:port`
/// (credentials, if the URL has them, are left out: see [`split_credentials`]).
pub fn parse_broker_url(url: &str) -> Result<(String, u16), BusError> {
    let (_, plain) = split_credentials(url);
    let rest = ["mqtts://", "mqtt://", "tcp://"].iter().find_map(|p| plain.strip_prefix(p)).unwrap_or(&plain);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| BusError::BadUrl(redact(url)))?;
    let port = port.parse().map_err(|_| BusError::BadUrl(redact(url)))?;
    if host.is_empty() {
        return Err(BusError::BadUrl(redact(url)));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

/// Whether `url` asks for MQTT over TLS (`mqtts://`).
pub fn is_tls_url(url: &str) -> bool {
    url.starts_with("mqtts://")
}

/// For a `mqtts://` url, makes `options` speak TLS trusting `ca_cert` (else the system's
/// roots), the certificate checked for `name` if given (else for the url's host).
pub(crate) fn use_tls_if_asked(
    options: &mut MqttOptions,
    url: &str,
    ca_cert: Option<&Path>,
    name: Option<&str>,
) -> Result<(), BusError> {
    if is_tls_url(url) {
        let config = crate::tls::client_config_for(ca_cert, name)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))));
    }
    Ok(())
}

/// Takes the credentials out of `mqtt://user:password@host:port`: they and the URL
/// without them. The username may contain `/` (a member's does); the password must
/// not contain `@`.
pub fn split_credentials(url: &str) -> (Option<Credentials>, String) {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let credentials = Credentials { username: username.to_string(), password: password.to_string() };
            (Some(credentials), format!("{scheme}{host}"))
        }
        None => (None, url.to_string()),
    }
}

/// `url` with `credentials` in it (`mqtt://user:password@host:port`).
pub fn with_credentials(url: &str, credentials: &Credentials) -> String {
    let (_, plain) = split_credentials(url);
    let (scheme, rest) = plain.split_once("://").unwrap_or(("mqtt", plain.as_str()));
    format!("{scheme}://{}:{}@{rest}", credentials.username, credentials.password)
}

/// `url` as it may be logged: the password replaced.
pub fn redact(url: &str) -> String {
    match split_credentials(url) {
        (Some(c), plain) => with_credentials(&plain, &Credentials { username: c.username, password: "***".into() }),
        (None, plain) => plain,
    }
}

/// A connection to the event bus. Cheap to clone; every clone shares one MQTT session.
#[derive(Clone)]
pub struct Bus {
    client: AsyncClient,
    routes: Arc<Mutex<Vec<Route>>>,
    url: String,
    /// Publishers take turns for the client's request queue. When it is full, each
    /// publisher waiting on it directly is a waker in a list the queue scans on every
    /// send it completes: 100,000 members reporting through one connection (the
    /// simulated driver) spent the CPU in that scan and their statistics arrived
    /// minutes late. Behind this lock, which queues its waiters in constant time,
    /// at most one publisher waits on the request queue.
    publishing: Arc<tokio::sync::Mutex<()>>,
    acks: Arc<Mutex<Acks>>,
    /// Counts what this connection publishes and receives, once set ([`Bus::count_into`]).
    metrics: Arc<OnceLock<stratos_metrics::BusMetrics>>,
}

struct Route {
    filter: String,
    tx: mpsc::UnboundedSender<AnyEvent>,
}

/// The events matching one subscription, in arrival order.
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<AnyEvent>,
}

impl Subscription {
    /// The next event; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<AnyEvent> {
        self.rx.recv().await
    }

    /// An event already received, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<AnyEvent> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for an event `pick` accepts, skipping the others.
    pub async fn wait_for<T>(&mut self, timeout: Duration, mut pick: impl FnMut(AnyEvent) -> Option<T>) -> Option<T> {
        tokio::time::timeout(timeout, async {
            while let Some(ev) = self.rx.recv().await {
                if let Some(t) = pick(ev) {
                    return Some(t);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

impl Bus {
    /// Connects to the broker at `url` (`mqtt://host:port`, or with credentials
    /// `mqtt://user:password@host:port`) and waits for it to accept the session.
    pub async fn connect(url: &str, client_id: &str) -> Result<Bus, BusError> {
        let (credentials, plain) = split_credentials(url);
        Bus::connect_with(&plain, client_id, credentials).await
    }

    /// Connects to the broker at `url` with `credentials` (none: anonymously) and
    /// waits for it to accept the session. A `mqtts://` broker's certificate must be
    /// signed by the CA file in `STRATOS_BUS_CA_CERT` or, that unset, the system's roots,
    /// and be valid for `STRATOS_BUS_TLS_NAME` if set (else for the url's host).
    pub async fn connect_with(url: &str, client_id: &str, credentials: Option<Credentials>) -> Result<Bus, BusError> {
        let (ca_cert, name) = (crate::tls::ca_cert_from_env(), crate::tls::tls_name_from_env());
        Bus::connect_as(url, client_id, credentials, ca_cert.as_deref(), name.as_deref()).await
    }

    /// Connects as [`Bus::connect_with`] does, a `mqtts://` broker's certificate checked
    /// against `ca_cert` (a PEM file: the CA, or the self-signed certificate itself) or,
    /// if none, the system's roots. The environment is not read.
    pub async fn connect_trusting(
        url: &str,
        client_id: &str,
        credentials: Option<Credentials>,
        ca_cert: Option<&Path>,
    ) -> Result<Bus, BusError> {
        Bus::connect_as(url, client_id, credentials, ca_cert, None).await
    }

    /// [`Bus::connect_trusting`], a `mqtts://` broker's certificate checked for
    /// `tls_name` (a DNS name or IP address) if given rather than for the url's host.
    pub async fn connect_as(
        url: &str,
        client_id: &str,
        credentials: Option<Credentials>,
        ca_cert: Option<&Path>,
        tls_name: Option<&str>,
    ) -> Result<Bus, BusError> {
        let (url_credentials, plain) = split_credentials(url);
        let credentials = credentials.or(url_credentials);
        let url = plain.as_str();
        let (host, port) = parse_broker_url(url)?;
        // Brokers differ in the client ids they accept; letters, digits and '-' pass everywhere.
        let client_id: String =
            client_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).take(64).collect();
        let client_id = client_id.as_str();
        let mut options = MqttOptions::new(client_id, host.clone(), port);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
        options.set_clean_session(true);
        // QoS 1 publishes wait for the broker's acknowledgement; with rumqttc's default
        // window of 100 a busy controller was held to a few thousand events per second.
        options.set_inflight(1000);
        if let Some(c) = &credentials {
            options.set_credentials(c.username.clone(), c.password.clone());
        }
        use_tls_if_asked(&mut options, url, ca_cert, tls_name)?;
        let (client, mut eventloop) = AsyncClient::new(options, 1024);

        // The first poll performs the connection, so a bad address fails here, clearly.
        let addr = format!("{host}:{port}");
        let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await;
        match first {
            Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => {}
            Ok(Err(ConnectionError::ConnectionRefused(code))) => {
                return Err(BusError::Refused { addr, code: format!("{code:?}") })
            }
            Ok(Ok(other)) => return Err(BusError::Connect { addr, reason: format!("unexpected {other:?}") }),
            Ok(Err(e)) => return Err(BusError::Connect { addr, reason: e.to_string() }),
            Err(_) => return Err(BusError::Connect { addr, reason: "no answer within 10 s".into() }),
        }
        info!(broker = %url, client_id, "connected to the event bus");
        let routes = Arc::new(Mutex::new(Vec::new()));
        let publishing: Arc<tokio::sync::Mutex<()>> = Default::default();
        let acks: Arc<Mutex<Acks>> = Default::default();
        let metrics: Arc<OnceLock<stratos_metrics::BusMetrics>> = Default::default();
        let lines = Lines {
            client: client.clone(),
            routes: routes.clone(),
            publishing: publishing.clone(),
            acks: acks.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(drive(eventloop, lines, url.to_string()));
        Ok(Bus { client, routes, url: url.to_string(), publishing, acks, metrics })
    }

    /// Counts this connection's publishes and receipts (by event type) into `metrics`,
    /// from now on; a second call changes nothing.
    pub fn count_into(&self, metrics: stratos_metrics::BusMetrics) {
        let _ = self.metrics.set(metrics);
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Publishes an event on its topic at QoS 1 (retained if the event type says so).
    pub async fn publish<E: Event>(&self, event: &E) -> Result<(), BusError> {
        let body = crate::events::encode_body(event)?;
        let _turn = self.publishing.lock().await;
        self.client.publish(event.topic(), QoS::AtLeastOnce, E::RETAIN, body).await?;
        if let Some(m) = self.metrics.get() {
            m.published(E::NAME);
        }
        Ok(())
    }

    /// Publishes any event.
    pub async fn publish_any(&self, event: &AnyEvent) -> Result<(), BusError> {
        let (topic, body, retain) = event.encode()?;
        let _turn = self.publishing.lock().await;
        self.client.publish(topic, QoS::AtLeastOnce, retain, body).await?;
        if let Some(m) = self.metrics.get() {
            m.published(event.name());
        }
        Ok(())
    }

    /// Subscribes to a topic filter (`topology/#`, `instance/status/+`, or one topic),
    /// and returns once the broker has acknowledged it: an event published after
    /// that reaches the subscription. Retained events on matching topics arrive first.
    pub async fn subscribe(&self, filter: &str) -> Result<Subscription, BusError> {
        self.subscribe_many(&[filter.to_string()]).await
    }

    /// Subscribes to several filters, their events in one subscription; returns once
    /// the broker has acknowledged every one.
    pub async fn subscribe_many(&self, filters: &[String]) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut waiting = Vec::new();
        for filter in filters {
            self.routes.lock().unwrap().push(Route { filter: filter.clone(), tx: tx.clone() });
            waiting.push((filter, queue_subscribe(&self.client, &self.publishing, &self.acks, filter, true).await?));
        }
        for (filter, ack) in waiting {
            let Some(ack) = ack else { continue };
            match tokio::time::timeout(SUBACK_WAIT, ack).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err(BusError::SubscribeRefused { filter: filter.clone() }),
                // The connection dropped before the acknowledgement: the subscription
                // is made again on reconnecting.
                Ok(Err(_)) => {}
                Err(_) => {
                    warn!(filter = %filter, after = ?SUBACK_WAIT, "no acknowledgement of a subscription yet; going on")
                }
            }
        }
        Ok(Subscription { rx })
    }

    /// Subscribes to one event type (of every member or cluster, for a scoped one).
    pub async fn subscribe_to<E: Event>(&self) -> Result<Subscription, BusError> {
        self.subscribe(E::FILTER).await
    }

    /// Disconnects after pending publishes are sent.
    pub async fn close(&self) {
        let _ = self.client.disconnect().await;
    }
}

/// Queues a SUBSCRIBE in its turn; with `wait`, the receiver of its acknowledgement.
async fn queue_subscribe(
    client: &AsyncClient,
    publishing: &tokio::sync::Mutex<()>,
    acks: &Mutex<Acks>,
    filter: &str,
    wait: bool,
) -> Result<Option<oneshot::Receiver<bool>>, BusError> {
    let _turn = publishing.lock().await;
    let (tx, rx) = if wait { Some(oneshot::channel()) } else { None }.unzip();
    acks.lock().unwrap().queued.push_back(tx);
    if let Err(e) = client.subscribe(filter, QoS::AtLeastOnce).await {
        // Still this turn's: the entry at the back is the one just queued.
        acks.lock().unwrap().queued.pop_back();
        return Err(e.into());
    }
    Ok(rx)
}

/// What the event loop shares with the `Bus` handles.
struct Lines {
    client: AsyncClient,
    routes: Arc<Mutex<Vec<Route>>>,
    publishing: Arc<tokio::sync::Mutex<()>>,
    acks: Arc<Mutex<Acks>>,
    metrics: Arc<OnceLock<stratos_metrics::BusMetrics>>,
}

/// Runs the MQTT event loop: routes incoming events to subscriptions, answers
/// subscribers waiting for their SUBACK, and after a reconnect subscribes again
/// (the broker forgot a clean session).
async fn drive(mut eventloop: EventLoop, lines: Lines, url: String) {
    let Lines { client, routes, publishing, acks, metrics } = lines;
    let mut backoff = Duration::from_millis(100);
    let mut owner_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        // One poll is never abandoned half-way: once it has taken a request off the
        // queue, dropping it while the socket is busy loses that packet (a subscribe,
        // or a publish, silently never sent) or leaves it unsent in the write buffer.
        let poll = eventloop.poll();
        tokio::pin!(poll);
        let polled = loop {
            tokio::select! {
                polled = &mut poll => break polled,
                _ = owner_check.tick() => {
                    // Only this task holds the routes: every `Bus` handle is gone.
                    if Arc::strong_count(&routes) == 1 {
                        let _ = client.try_disconnect();
                        return;
                    }
                }
            }
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                backoff = Duration::from_millis(100);
                // No subscription wants it any more (each was dropped): not decoded, which
                // for a complete topology of 100k members is a good part of a second.
                let wanted = {
                    let mut routes = routes.lock().unwrap();
                    routes.retain(|r| !r.tx.is_closed());
                    routes.iter().any(|r| topic_matches(&r.filter, &p.topic))
                };
                if !wanted {
                    continue;
                }
                match AnyEvent::decode(&p.topic, &p.payload) {
                    Some(Ok(event)) => {
                        if let Some(m) = metrics.get() {
                            m.received(event.name(), crate::age::age_seconds(&event, crate::now_millis()));
                        }
                        let routes = routes.lock().unwrap();
                        for r in routes.iter().filter(|r| topic_matches(&r.filter, &p.topic)) {
                            let _ = r.tx.send(event.clone());
                        }
                    }
                    Some(Err(e @ DecodeError::ScopeMismatch { .. })) => {
                        warn!(topic = %p.topic, error = %e, "dropping a forged event: its body is about another member or cluster than its topic")
                    }
                    Some(Err(e)) => warn!(topic = %p.topic, error = %e, "dropping a malformed event"),
                    None => debug!(topic = %p.topic, "ignoring a message on a foreign topic"),
                }
            }
            Ok(MqttEvent::Outgoing(Outgoing::Subscribe(pkid))) => {
                let mut acks = acks.lock().unwrap();
                if let Some(Some(waiter)) = acks.queued.pop_front() {
                    acks.sent.insert(pkid, waiter);
                }
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                if let Some(waiter) = acks.lock().unwrap().sent.remove(&ack.pkid) {
                    let _ = waiter.send(ack.return_codes.iter().all(|c| !matches!(c, SubscribeReasonCode::Failure)));
                }
            }
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                info!(broker = %url, "reconnected to the event bus");
                if !ack.session_present {
                    let filters: Vec<String> = routes.lock().unwrap().iter().map(|r| r.filter.clone()).collect();
                    // From another task: with the request queue full of publishes, waiting
                    // here for room would stop the very loop that empties it (a deadlock).
                    let (client, publishing, acks) = (client.clone(), publishing.clone(), acks.clone());
                    tokio::spawn(async move {
                        for f in filters {
                            let _ = queue_subscribe(&client, &publishing, &acks, &f, false).await;
                        }
                    });
                }
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                // Subscribes sent and not acknowledged are made again after the reconnect;
                // their waiters go on (dropping the sender tells them).
                acks.lock().unwrap().sent.clear();
                warn!(broker = %url, error = %e, retry_in = ?backoff, "event bus connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// MQTT topic filter matching with `+` (one level) and `#` (the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(topic_matches("topology/#", "topology/MemberActivatedEvent"));
        assert!(topic_matches("instance/+/InstanceStartedEvent", "instance/status/InstanceStartedEvent"));
        assert!(!topic_matches("topology/+", "instance/status/InstanceStartedEvent"));
        assert!(topic_matches("log/LogEvent", "log/LogEvent"));
        assert!(!topic_matches("log/LogEvent", "log/LogEvent/x"));
    }

    #[test]
    fn urls() {
        assert_eq!(parse_broker_url("mqtt://127.0.0.1:1883").unwrap(), ("127.0.0.1".into(), 1883));
        assert_eq!(parse_broker_url("localhost:1").unwrap(), ("localhost".into(), 1));
        assert!(parse_broker_url("mqtt://nohost").is_err());
        assert!(parse_broker_url("mqtt://:12").is_err());
        assert_eq!(parse_broker_url("mqtt://member/c/m:pw@127.0.0.1:1883").unwrap(), ("127.0.0.1".into(), 1883));
    }

    #[test]
    fn credentials_in_urls() {
        let (c, plain) = split_credentials("mqtt://member/c.x/m-1:abc@127.0.0.1:1883");
        assert_eq!(c, Some(Credentials { username: "member/c.x/m-1".into(), password: "abc".into() }));
        assert_eq!(plain, "mqtt://127.0.0.1:1883");
        assert_eq!(split_credentials("mqtt://h:1").0, None);
        let url =
            with_credentials("mqtt://h:1", &Credentials { username: "stratos".into(), password: "s3cret".into() });
        assert_eq!(url, "mqtt://stratos:s3cret@h:1");
        assert_eq!(redact(&url), "mqtt://stratos:***@h:1");
        assert!(!format!("{}", parse_broker_url("mqtt://u:s3cret@h:x").unwrap_err()).contains("s3cret"));
    }
}
