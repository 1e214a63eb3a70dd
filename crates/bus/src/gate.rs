//! The gate: the embedded broker's public face, an MQTT-aware proxy that
//! authenticates every client and enforces the topic ACLs rumqttd does not have.
//!
//! Member credentials are an allow-list, not a revocation list: a member's HMAC
//! credential opens the gate only while the platform counts that member live
//! ([`Gate::admit`]: announced by `MemberCreatedEvent` in this run, or loaded from
//! the stored topology at start), and never again once it was terminated. A gate
//! that has not been told of a member (a platform just restarted, before it loaded
//! its topology) refuses it; the member's agent reconnects.
//!
//! rumqttd listens only on a loopback port with a random per-process credential, so
//! the gate is the only way in. For each client the gate reads the CONNECT, checks
//! its username and password ([`PlatformSecret::verify`]) and that a member is not
//! revoked, then opens its own connection to rumqttd with the internal credential and
//! relays packets both ways, frame by frame. Every PUBLISH of a member is checked
//! against [`may_publish`] (its topic) and [`body_is_about_itself`] (its body's member
//! and cluster ids), a CONNECT's will against [`may_publish`]: a forbidden publish
//! disconnects it with a WARN naming it. A SUBSCRIBE with a filter [`may_subscribe`] refuses is answered by
//! the gate with failure (0x80) for each of its filters and never reaches rumqttd.
//! Platform connections are relayed without parsing beyond the frame. With TLS on
//! (`EmbeddedBroker::start_tls`), the gate terminates it: only TLS is spoken on its port.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{check, FixedHeader, PacketType};
use rumqttc::{ConnAck, Connect, ConnectReturnCode, Login, Publish, SubAck, Subscribe, SubscribeReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::acl::{body_is_about_itself, may_publish, may_subscribe};
use crate::client::MAX_PACKET_SIZE;
use crate::credentials::{Credentials, Identity, PlatformSecret};

/// A member's agent sends small messages (status, statistics, log lines): a larger
/// packet from a member is refused before it is buffered.
const MEMBER_MAX_PACKET_SIZE: usize = 1024 * 1024;
/// Connections one member may hold at once (its agent needs one): a member cannot
/// use up the broker's connections.
const MEMBER_MAX_CONNECTIONS: usize = 4;
/// How long a new connection has to send its CONNECT.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// What the gate needs to know, shared by its connections.
pub(crate) struct Gate {
    secret: PlatformSecret,
    /// rumqttd's loopback address and the credential only the gate knows.
    internal: SocketAddr,
    internal_credentials: Credentials,
    members: Mutex<Members>,
}

/// The members whose credentials work (member id to cluster id), the terminated ones
/// (never admitted again in this run), and the open connections of every member (to
/// close them on termination).
#[derive(Default)]
struct Members {
    live: HashMap<String, String>,
    revoked: HashSet<String>,
    open: HashMap<String, Vec<(u64, watch::Sender<bool>)>>,
    next_connection: u64,
}

impl Gate {
    pub(crate) fn new(secret: PlatformSecret, internal: SocketAddr, internal_credentials: Credentials) -> Arc<Gate> {
        Arc::new(Gate { secret, internal, internal_credentials, members: Mutex::default() })
    }

    /// The member's credentials work from now on, unless it was terminated in this run.
    pub(crate) fn admit(&self, cluster_id: &str, member_id: &str) {
        let mut members = self.members.lock().unwrap();
        if !members.revoked.contains(member_id) {
            members.live.insert(member_id.to_string(), cluster_id.to_string());
        }
    }

    /// A terminated member's credentials stop working, and its open connections close.
    pub(crate) fn revoke(&self, member_id: &str) {
        let mut members = self.members.lock().unwrap();
        members.live.remove(member_id);
        if members.revoked.insert(member_id.to_string()) {
            if let Some(open) = members.open.remove(member_id) {
                info!(member_id, connections = open.len(), "member terminated: closing its bus connections");
                for (_, close) in open {
                    let _ = close.send(true);
                }
            }
        }
    }

    /// Accepts clients on `listener` for as long as the process lives; with `tls`, the
    /// listener speaks only TLS (a plain MQTT client fails its handshake).
    pub(crate) async fn serve(self: Arc<Gate>, listener: TcpListener, tls: Option<TlsAcceptor>) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let gate = self.clone();
                    match tls.clone() {
                        None => drop(tokio::spawn(async move { gate.handle(stream, peer).await })),
                        // The handshake runs in the connection's own task, with the same
                        // deadline as its CONNECT: a stalled client holds up no one else.
                        Some(acceptor) => drop(tokio::spawn(async move {
                            match tokio::time::timeout(CONNECT_WITHIN, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => gate.handle(stream, peer).await,
                                Ok(Err(e)) => debug!(%peer, error = %e, "bus client TLS handshake failed"),
                                Err(_) => debug!(%peer, "bus client TLS handshake timed out"),
                            }
                        })),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the bus gate cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn handle<S>(self: Arc<Gate>, client: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut client_rx, mut client_tx) = tokio::io::split(client);
        let mut buf = BytesMut::with_capacity(4096);
        // Until it authenticates, a client may send only a small CONNECT.
        let first = tokio::time::timeout(CONNECT_WITHIN, read_frame(&mut client_rx, &mut buf, MEMBER_MAX_PACKET_SIZE));
        let (header, frame) = match first.await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return debug!(%peer, error = %e, "bus client sent no valid CONNECT"),
            Err(_) => return debug!(%peer, "bus client sent no CONNECT in time"),
        };
        if !matches!(header.packet_type(), Ok(PacketType::Connect)) {
            return debug!(%peer, "bus client did not start with CONNECT");
        }
        let mut connect = match Connect::read(header, frame) {
            Ok(connect) => connect,
            Err(e) => {
                // Usually another protocol version: refuse it in MQTT 3.1.1's words.
                let _ = write_packet(&mut client_tx, |b| {
                    ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false).write(b)
                })
                .await;
                return debug!(%peer, error = %e, "unreadable CONNECT");
            }
        };
        let identity = match self.authenticate(&connect) {
            Ok(identity) => identity,
            Err((code, why)) => {
                let username = connect.login.as_ref().map(|l| l.username.as_str()).unwrap_or("");
                warn!(%peer, username, client_id = %connect.client_id, reason = why, "bus connection refused");
                let _ = write_packet(&mut client_tx, |b| ConnAck::new(code, false).write(b)).await;
                return;
            }
        };

        // Client ids are per identity: a member cannot take over (and so disconnect) a
        // platform component's session, or another member's, by reusing its id.
        connect.client_id = match &identity {
            Identity::Platform => format!("p-{}", connect.client_id),
            Identity::Member { member_id, .. } => format!("m-{member_id}-{}", connect.client_id),
        };
        connect.login = Some(Login::new(&self.internal_credentials.username, &self.internal_credentials.password));
        let (close_tx, mut closed) = watch::channel(false);
        // Unregistered when this connection ends, however it ends.
        let _registration = match self.register(&identity, close_tx) {
            Ok(id) => Registration { gate: self.clone(), identity: identity.clone(), id },
            Err(why) => {
                warn!(%peer, %identity, reason = why, "bus connection refused");
                let _ =
                    write_packet(&mut client_tx, |b| ConnAck::new(ConnectReturnCode::NotAuthorized, false).write(b))
                        .await;
                return;
            }
        };
        let broker = match TcpStream::connect(self.internal).await {
            Ok(s) => s,
            Err(e) => {
                warn!(%peer, error = %e, "the bus gate cannot reach the broker");
                let _ = write_packet(&mut client_tx, |b| {
                    ConnAck::new(ConnectReturnCode::ServiceUnavailable, false).write(b)
                })
                .await;
                return;
            }
        };
        let _ = broker.set_nodelay(true);
        let (broker_rx, mut broker_tx) = broker.into_split();
        if write_packet(&mut broker_tx, |b| connect.write(b)).await.is_err() {
            return;
        }

        debug!(%peer, %identity, "bus client connected");
        let client_tx = Arc::new(tokio::sync::Mutex::new(client_tx));
        let max = match identity {
            Identity::Platform => MAX_PACKET_SIZE,
            Identity::Member { .. } => MEMBER_MAX_PACKET_SIZE,
        };
        let upstream = relay_client(&identity, peer, client_rx, buf, broker_tx, client_tx.clone(), max);
        let downstream = relay_broker(broker_rx, client_tx);
        // Only a member's registration holds the sender: for the platform it is gone at
        // once, which must not read as a revocation.
        let revoked = async move {
            let revoked = closed.wait_for(|c| *c).await.is_ok();
            if !revoked {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            () = upstream => {}
            () = downstream => {}
            () = revoked => info!(%peer, %identity, "closed the connection of a terminated member"),
        }
    }

    fn authenticate(&self, connect: &Connect) -> Result<Identity, (ConnectReturnCode, &'static str)> {
        let login = connect.login.as_ref().ok_or((ConnectReturnCode::NotAuthorized, "no username and password"))?;
        let identity = self
            .secret
            .verify(&login.username, &login.password)
            .ok_or((ConnectReturnCode::BadUserNamePassword, "wrong username or password"))?;
        if let Identity::Member { cluster_id, member_id } = &identity {
            self.members
                .lock()
                .unwrap()
                .is_live(cluster_id, member_id)
                .map_err(|why| (ConnectReturnCode::NotAuthorized, why))?;
        }
        if let Some(will) = &connect.last_will {
            if !may_publish(&identity, &will.topic, will.retain) {
                return Err((ConnectReturnCode::NotAuthorized, "its will is on a topic it may not publish"));
            }
        }
        Ok(identity)
    }

    /// Remembers a member's connection so that its termination closes it (`None` for
    /// the platform, which is never revoked); refuses a revoked member, or one with too
    /// many connections already.
    fn register(&self, identity: &Identity, close: watch::Sender<bool>) -> Result<Option<u64>, &'static str> {
        let Identity::Member { cluster_id, member_id } = identity else { return Ok(None) };
        let mut members = self.members.lock().unwrap();
        members.is_live(cluster_id, member_id)?;
        if members.open.get(member_id).map_or(0, Vec::len) >= MEMBER_MAX_CONNECTIONS {
            return Err("the member has too many connections open");
        }
        members.next_connection += 1;
        let id = members.next_connection;
        members.open.entry(member_id.clone()).or_default().push((id, close));
        Ok(Some(id))
    }

    fn unregister(&self, identity: &Identity, id: Option<u64>) {
        let (Identity::Member { member_id, .. }, Some(id)) = (identity, id) else { return };
        let mut members = self.members.lock().unwrap();
        if let Some(open) = members.open.get_mut(member_id) {
            open.retain(|(i, _)| *i != id);
            if open.is_empty() {
                members.open.remove(member_id);
            }
        }
    }
}

impl Members {
    /// Whether a member's (verified) credentials are to be accepted now, and if not why.
    fn is_live(&self, cluster_id: &str, member_id: &str) -> Result<(), &'static str> {
        if self.revoked.contains(member_id) {
            return Err("the member was terminated");
        }
        match self.live.get(member_id) {
            Some(cluster) if cluster == cluster_id => Ok(()),
            Some(_) => Err("the member belongs to another cluster"),
            None => Err("the platform does not know the member as live (yet)"),
        }
    }
}

/// A member's connection in the gate's registry, for as long as it lives.
struct Registration {
    gate: Arc<Gate>,
    identity: Identity,
    id: Option<u64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.gate.unregister(&self.identity, self.id);
    }
}

type ClientWriter<S> = Arc<tokio::sync::Mutex<tokio::io::WriteHalf<S>>>;

/// Client to broker: every frame a member sends is checked first.
async fn relay_client<S>(
    identity: &Identity,
    peer: SocketAddr,
    mut client_rx: tokio::io::ReadHalf<S>,
    mut buf: BytesMut,
    mut broker_tx: tokio::net::tcp::OwnedWriteHalf,
    client_tx: ClientWriter<S>,
    max: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let (header, frame) = match read_frame(&mut client_rx, &mut buf, max).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => return warn!(%peer, %identity, error = %e, "bus client sent a bad packet; disconnected"),
        };
        if *identity != Identity::Platform {
            match header.packet_type() {
                Ok(PacketType::Publish) => match Publish::read(header, frame.clone()) {
                    Ok(p)
                        if may_publish(identity, &p.topic, p.retain) && body_is_about_itself(identity, &p.payload) => {}
                    Ok(p) => {
                        return warn!(%peer, %identity, topic = %p.topic, retain = p.retain, "forbidden publish (topic, retain flag, or a body about another member or cluster): bus client disconnected")
                    }
                    Err(e) => return warn!(%peer, %identity, error = %e, "unreadable PUBLISH; disconnected"),
                },
                Ok(PacketType::Subscribe) => match Subscribe::read(header, frame.clone()) {
                    Ok(s) => {
                        let refused: Vec<&str> =
                            s.filters.iter().map(|f| f.path.as_str()).filter(|f| !may_subscribe(identity, f)).collect();
                        if !refused.is_empty() {
                            warn!(%peer, %identity, filters = ?refused, "forbidden subscription refused");
                            let codes = vec![SubscribeReasonCode::Failure; s.filters.len()];
                            let mut client = client_tx.lock().await;
                            if write_packet(&mut *client, |b| SubAck::new(s.pkid, codes).write(b)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                    Err(e) => return warn!(%peer, %identity, error = %e, "unreadable SUBSCRIBE; disconnected"),
                },
                Ok(PacketType::Connect) => return warn!(%peer, %identity, "a second CONNECT; disconnected"),
                _ => {}
            }
        }
        if broker_tx.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Broker to client, frame by frame (so that a SUBACK of the gate's never lands inside one).
async fn relay_broker<S>(mut broker_rx: tokio::net::tcp::OwnedReadHalf, client_tx: ClientWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // The broker's own limit is MAX_PACKET_SIZE; a frame header's few bytes on top.
    while let Ok(Some((_, frame))) = read_frame(&mut broker_rx, &mut buf, MAX_PACKET_SIZE + 16).await {
        let mut client = client_tx.lock().await;
        if client.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = client_tx.lock().await.shutdown().await;
}

/// Reads one whole MQTT frame; `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> std::io::Result<Option<(FixedHeader, Bytes)>> {
    loop {
        match check(buf.iter(), max) {
            Ok(header) => return Ok(Some((header, buf.split_to(header.frame_length()).freeze()))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(more)) => {
                buf.reserve(more.min(max));
                if r.read_buf(buf).await? == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed inside a packet"))
                    };
                }
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}

async fn write_packet<W: AsyncWrite + Unpin>(
    w: &mut W,
    encode: impl FnOnce(&mut BytesMut) -> Result<usize, rumqttc::mqttbytes::Error>,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode(&mut out).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    w.write_all(&out).await?;
    w.flush().await
}
