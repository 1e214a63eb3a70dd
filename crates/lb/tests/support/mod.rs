//! Test helpers: real backends (HTTP and TCP), topology builders, an embedded broker
//! with a load balancer on it, and HTTP clients.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stratos_bus::events::{
    CompleteTopologyEvent, MemberActivatedEvent, MemberReadyToShutdownEvent, MemberRef, MemberTerminatedEvent,
};
use stratos_bus::{Bus, EmbeddedBroker};
use stratos_lb::{Lb, LbConfig};
use stratos_model::topology::{Cluster, ClusterStatus, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const HTTP_PORT: u16 = 8280;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("stratos_lb=info,stratos_lb_extension=info")),
        )
        .with_test_writer()
        .try_init();
}

/// A small HTTP server that answers every request with its own name.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    first_hit: Arc<OnceLock<Instant>>,
    /// Milliseconds to wait before answering.
    pub delay_ms: Arc<AtomicU64>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let first_hit = Arc::new(OnceLock::new());
        let delay_ms = Arc::new(AtomicU64::new(0));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (name, hits, first_hit, delay_ms, connections) =
                (name.to_string(), hits.clone(), first_hit.clone(), delay_ms.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (name, hits, first_hit, delay_ms) =
                        (name.clone(), hits.clone(), first_hit.clone(), delay_ms.clone());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (name, hits, first_hit, delay_ms) =
                            (name.clone(), hits.clone(), first_hit.clone(), delay_ms.clone());
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let _ = first_hit.set(Instant::now());
                            let delay = delay_ms.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let seen = |h: &str| {
                                req.headers().get(h).map(|v| v.to_str().unwrap_or("?").to_string()).unwrap_or_default()
                            };
                            let response = Response::builder()
                                .header("x-backend", name.as_str())
                                .header("x-seen-path", req.uri().path())
                                .header("x-seen-host", seen("host"))
                                .header("x-seen-forwarded-for", seen("x-forwarded-for"))
                                .header("x-seen-forwarded-proto", seen("x-forwarded-proto"))
                                .header("x-seen-forwarded-host", seen("x-forwarded-host"))
                                .body(Full::new(Bytes::from(name.clone())))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let task = tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                    connections.lock().unwrap().push(task);
                }
            })
        };
        Backend { name: name.to_string(), addr, hits, first_hit, delay_ms, accept, connections }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn first_hit(&self) -> Option<Instant> {
        self.first_hit.get().copied()
    }

    /// Stops accepting and closes every connection, like a terminated member.
    pub fn stop(&self) {
        self.accept.abort();
        for c in self.connections.lock().unwrap().iter() {
            c.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on: connections are refused.
pub async fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A TCP server that answers each read with `<name>:<data>`.
pub async fn tcp_echo(name: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let name = name.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let mut out = format!("{name}:").into_bytes();
                            out.extend_from_slice(&buf[..n]);
                            if stream.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

pub fn member_ref(cluster_id: &str, member_id: &str) -> MemberRef {
    MemberRef {
        service_name: service_of(cluster_id).into(),
        cluster_id: cluster_id.into(),
        member_id: member_id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
    }
}

/// Cluster ids are `<app>.<service>`.
fn service_of(cluster_id: &str) -> &str {
    cluster_id.rsplit('.').next().unwrap()
}

pub fn port(protocol: Protocol, value: u16, proxy: u16) -> Port {
    Port { protocol, value: value.into(), proxy: proxy.into() }
}

pub fn member(cluster_id: &str, member_id: &str, status: MemberStatus, ports: Vec<Port>) -> Member {
    Member {
        service_name: service_of(cluster_id).into(),
        cluster_id: cluster_id.into(),
        member_id: member_id.into(),
        network_partition_id: "np1".into(),
        partition_id: "p1".into(),
        status,
        default_private_ip: Some("127.0.0.1".into()),
        default_public_ip: None,
        ports,
        init_time: 0,
        properties: vec![],
    }
}

/// An active HTTP member listening on `value`, exposed on [`HTTP_PORT`].
pub fn http_member(cluster_id: &str, member_id: &str, value: u16) -> Member {
    member(cluster_id, member_id, MemberStatus::Active, vec![port(Protocol::Http, value, HTTP_PORT)])
}

pub fn cluster(cluster_id: &str, tenant_id: i64, hosts: &[&str], members: Vec<Member>) -> Cluster {
    Cluster {
        cluster_id: cluster_id.into(),
        service_name: service_of(cluster_id).into(),
        app_id: cluster_id.split('.').next().unwrap().into(),
        alias: service_of(cluster_id).into(),
        tenant_id,
        host_names: hosts.iter().map(|h| h.to_string()).collect(),
        autoscale_policy_name: "autoscale".into(),
        deployment_policy_name: "deploy".into(),
        status: ClusterStatus::Active,
        error: None,
        created_at: 0,
        members: members.into_iter().map(|m| (m.member_id.clone(), m)).collect(),
    }
}

/// A topology of services built from clusters (`<app>.<service>` ids).
/// One single-tenant `web` cluster per `(host, member port)`: cluster `<first label>.web`
/// with member `<host>-1`.
pub fn web_topology(members: &[(&str, u16)]) -> Topology {
    let clusters = members
        .iter()
        .map(|(host, port)| {
            let cluster_id = format!("{}.web", host.split('.').next().unwrap());
            cluster(&cluster_id, -1234, &[host], vec![http_member(&cluster_id, &format!("{host}-1"), *port)])
        })
        .collect();
    topology(&[("web", ServiceType::SingleTenant)], clusters)
}

pub fn topology(services: &[(&str, ServiceType)], clusters: Vec<Cluster>) -> Topology {
    let mut map: BTreeMap<String, Service> = services
        .iter()
        .map(|(name, service_type)| {
            (
                name.to_string(),
                Service {
                    service_name: name.to_string(),
                    service_type: *service_type,
                    ports: vec![],
                    clusters: BTreeMap::new(),
                },
            )
        })
        .collect();
    for c in clusters {
        map.get_mut(&c.service_name).expect("service of the cluster").clusters.insert(c.cluster_id.clone(), c);
    }
    Topology { services: map }
}

pub fn activated(cluster_id: &str, member_id: &str, value: u16) -> MemberActivatedEvent {
    MemberActivatedEvent {
        member: member_ref(cluster_id, member_id),
        default_private_ip: Some("127.0.0.1".into()),
        ports: vec![port(Protocol::Http, value, HTTP_PORT)],
    }
}

pub fn ready_to_shutdown(cluster_id: &str, member_id: &str) -> MemberReadyToShutdownEvent {
    MemberReadyToShutdownEvent { member: member_ref(cluster_id, member_id) }
}

pub fn terminated(cluster_id: &str, member_id: &str) -> MemberTerminatedEvent {
    MemberTerminatedEvent { member: member_ref(cluster_id, member_id), reason: "scale-down".into() }
}

/// A broker, a bus client and a load balancer following the topology published on it.
pub struct Env {
    pub broker: EmbeddedBroker,
    pub bus: Bus,
    pub lb: Lb,
}

impl Env {
    /// Publishes `topology` (retained), starts the load balancer with `config` (on
    /// ephemeral ports) and waits until it routes every cluster.
    pub async fn start(topology: Topology, config: LbConfig) -> Env {
        init_tracing();
        let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let bus = Bus::connect(&broker.platform_url(), "lb-test").await.unwrap();
        let clusters = topology.services.values().map(|s| s.clusters.len()).sum::<usize>();
        bus.publish(&CompleteTopologyEvent { topology: topology.clone() }).await.unwrap();
        let lb_bus = Bus::connect(&broker.platform_url(), "lb-under-test").await.unwrap();
        let lb = stratos_lb::start(lb_bus, LbConfig { ephemeral_ports: true, ..config }).await.unwrap();
        let ports: Vec<u16> = topology
            .services
            .values()
            .flat_map(|s| s.clusters.values())
            .flat_map(|c| c.members.values())
            .flat_map(|m| m.ports.iter().map(|p| p.proxy as u16))
            .collect();
        lb.wait_until(Duration::from_secs(10), |lb| {
            let table = lb.table();
            let routed = table.clusters().len();
            (routed == clusters && ports.iter().all(|p| lb.addr_for_port(*p).is_some())).then_some(())
        })
        .await
        .expect("the load balancer routes the topology");
        Env { broker, bus, lb }
    }

    pub fn addr(&self, proxy_port: u16) -> SocketAddr {
        self.lb.addr_for_port(proxy_port).expect("listener bound")
    }

    /// Waits until `member_id` is routable (or not).
    pub async fn wait_routable(&self, member_id: &str, routable: bool) {
        self.lb
            .wait_until(Duration::from_secs(10), |lb| {
                (lb.table().routable_members().contains_key(member_id) == routable).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("member {member_id} routable={routable} within 10 s"));
    }
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A keep-alive HTTP/1.1 client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

/// GET `path` from the proxy at `addr` with `Host: host` (and cookies).
pub async fn get(
    client: &HttpClient,
    addr: SocketAddr,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> Result<Answer, String> {
    let mut request = Request::builder().uri(format!("http://{addr}{path}")).header("host", host);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let response = client.request(request.body(Empty::new()).unwrap()).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Sends raw bytes on a new connection and reads until the server closes it or `wait` passes.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A member that accepts upgrades to `websocket` on `/ws` and then answers every
/// byte it gets in upper case; it declines any other upgrade with a 426 naming
/// the forwarded headers it saw.
pub async fn upgrading_member() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                let wants = req.headers().get("upgrade").map(|v| v.to_str().unwrap().to_string());
                let forwarded_for = req.headers().get("x-forwarded-for").map(|v| v.to_str().unwrap().to_string());
                let key = req.headers().get("sec-websocket-key").map(|v| v.to_str().unwrap().to_string());
                if req.uri().path() != "/ws" || wants.as_deref() != Some("websocket") {
                    let text = format!("no upgrade to {wants:?}; forwarded for {forwarded_for:?}");
                    let response =
                        Response::builder().status(StatusCode::UPGRADE_REQUIRED).body(Full::new(Bytes::from(text)));
                    return Ok::<_, Infallible>(response.unwrap());
                }
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(on_upgrade.await.expect("the proxy completes the upgrade"));
                    let mut buf = [0u8; 4096];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                let upper: Vec<u8> = buf[..n].to_ascii_uppercase();
                                if io.write_all(&upper).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
                let response = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-accept", websocket_accept(key.as_deref().unwrap_or_default()))
                    .header("x-forwarded-for-seen", forwarded_for.unwrap_or_default())
                    .body(Full::new(Bytes::new()));
                Ok(response.unwrap())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    port
}

/// Reads from `stream` until `buf` ends with `end`.
pub async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, end: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(end) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("nothing more in 5 s; got {:?}", String::from_utf8_lossy(buf)))
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The `Sec-WebSocket-Accept` that answers `key` (RFC 6455 §4.2.2).
fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    let digest = sha1_smol::Sha1::from(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).digest().bytes();
    base64::engine::general_purpose::STANDARD.encode(digest)
}
