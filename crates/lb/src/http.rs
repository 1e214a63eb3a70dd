//! The HTTP proxy: serves a client connection (HTTP/1.1, or h2c with prior knowledge)
//! and forwards each request to a member of the cluster its host (or tenant path) names.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use crate::balance::{choose, sticky_choice, sticky_member, sticky_set_cookie, Candidate};
use crate::routing::{normalize_host, Upstream};
use crate::stats::InFlight;
use crate::{LbConfig, Shared};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type UpstreamClient = Client<HttpConnector, ReclaimableBody>;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) fn upstream_client(config: &LbConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Serves one client connection on proxy port `port`.
pub(crate) async fn serve(shared: Arc<Shared>, port: u16, stream: TcpStream, peer: SocketAddr) {
    let header_timeout = (!shared.config.header_timeout.is_zero()).then_some(shared.config.header_timeout);
    let deadline = tokio::time::Instant::now() + header_timeout.unwrap_or(Duration::from_secs(3600));
    let Some(h2) = sniff_h2(&stream, deadline).await else {
        debug!(%peer, port, "client sent nothing in time, or closed");
        return;
    };
    let max_header_bytes = shared.config.max_header_bytes.max(1024);
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| handle(shared.clone(), port, peer, req))
    };
    let io = TokioIo::new(stream);
    let result = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_header_size(max_header_bytes)
            // Room to read a head somewhat over the limit whole, so the 431 is not lost to a reset.
            .max_buf_size(max_header_bytes.saturating_add(64 * 1024).max(8192))
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = result {
        debug!(%peer, port, error = %e, "client connection ended with an error");
    }
}

/// Peeks at the first bytes: `Some(true)` for the HTTP/2 preface, `Some(false)` for
/// anything else (HTTP/1), `None` when the client closes or sends nothing by `deadline`.
async fn sniff_h2(stream: &TcpStream, deadline: tokio::time::Instant) -> Option<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A preface in pieces: wait for the rest (peek returns what is there at once).
        tokio::time::sleep(Duration::from_millis(5)).await;
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    port: u16,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(proxy(&shared, port, peer, req).await.unwrap_or_else(|error| error))
}

fn error_response(status: StatusCode, body: serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn proxy(
    shared: &Shared,
    port: u16,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
    let raw_host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .ok_or_else(|| {
            error_response(StatusCode::BAD_REQUEST, serde_json::json!({"error": "the request has no Host header"}))
        })?;
    let host = normalize_host(&raw_host).ok_or_else(|| {
        error_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("bad Host header {raw_host:?}"), "host": raw_host}),
        )
    })?;
    let table = shared.table();
    let upstream = table.route_http(port, &host, req.uri().path()).cloned().ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no cluster serves host {host:?} on port {port}"), "host": host}),
        )
    })?;
    drop(table);
    if upstream.members.is_empty() {
        return Err(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "error": format!("cluster {} has no active member", upstream.cluster_id),
                "clusterId": upstream.cluster_id,
            }),
        ));
    }
    let sticky = if shared.config.sticky {
        sticky_member(req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()))
    } else {
        None
    };

    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts.headers, peer, &raw_host);
    let end_of_stream = body.is_end_stream();
    let size_hint = body.size_hint();
    let slot = Arc::new(Mutex::new(Some(body)));
    let idempotent = is_idempotent(&parts.method);

    let mut index = pick(shared, &upstream, sticky.as_deref(), None);
    let mut retried = false;
    while let Some(i) = index {
        let member = &upstream.members[i];
        let in_flight = member.stats.start();
        let body = ReclaimableBody { slot: slot.clone(), taken: None, end_of_stream, size_hint };
        let request = upstream_request(&parts, &member.authority(), body)?;
        match shared.client.request(request).await {
            Ok(response) => {
                if response.status().is_server_error() {
                    shared.eject(&member.stats, &format!("answered {}", response.status()));
                } else {
                    member.stats.record_success(Instant::now());
                }
                let cookie = (shared.config.sticky && sticky.as_deref() != Some(member.member_id.as_str()))
                    .then(|| sticky_set_cookie(&member.member_id));
                return Ok(client_response(response, in_flight, cookie));
            }
            Err(e) => {
                drop(in_flight);
                let reason = if e.is_connect() { "cannot connect" } else { "request failed" };
                debug!(member_id = %member.member_id, error = %e, error_source = ?e.source(), reason);
                shared.eject(&member.stats, reason);
                let nothing_sent = slot.lock().unwrap().is_some();
                if !retried && nothing_sent && (e.is_connect() || idempotent) {
                    retried = true;
                    index = pick(shared, &upstream, None, Some(i));
                    if index.is_some() {
                        continue;
                    }
                }
                return Err(error_response(
                    StatusCode::BAD_GATEWAY,
                    serde_json::json!({
                        "error": format!("member {} of cluster {}: {reason}: {}", member.member_id, upstream.cluster_id, error_chain(&e)),
                        "clusterId": upstream.cluster_id,
                        "memberId": member.member_id,
                    }),
                ));
            }
        }
    }
    Err(error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({
            "error": format!("cluster {} has no member left to try", upstream.cluster_id),
            "clusterId": upstream.cluster_id,
        }),
    ))
}

fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Picks a member of `upstream`: the sticky one if it is still there and healthy, else
/// by the configured algorithm, never `exclude`.
pub(crate) fn pick(
    shared: &Shared,
    upstream: &Upstream,
    sticky: Option<&str>,
    exclude: Option<usize>,
) -> Option<usize> {
    let now = Instant::now();
    let healthy: Vec<bool> = upstream.members.iter().map(|m| !m.stats.is_ejected(now)).collect();
    let pinned =
        sticky_choice(upstream.members.iter().map(|m| m.member_id.as_str()).zip(healthy.iter().copied()), sticky);
    if let Some(i) = pinned.filter(|&i| Some(i) != exclude) {
        return Some(i);
    }
    let indexes: Vec<usize> = (0..upstream.members.len()).filter(|&i| Some(i) != exclude).collect();
    let candidates: Vec<Candidate> = indexes
        .iter()
        .map(|&i| Candidate { in_flight: upstream.members[i].stats.in_flight(), healthy: healthy[i] })
        .collect();
    choose(shared.config.algorithm, &candidates, upstream.stats.next_turn()).map(|k| indexes[k])
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// Headers meaningful for one connection only (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn prepare_headers(headers: &mut HeaderMap, peer: SocketAddr, raw_host: &str) {
    strip_hop_by_hop(headers);
    let client = peer.ip().to_canonical().to_string();
    let previous: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).map(str::trim).collect();
    let forwarded_for = if previous.is_empty() { client } else { format!("{}, {client}", previous.join(", ")) };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(v) = HeaderValue::from_str(raw_host) {
        headers.insert("x-forwarded-host", v.clone());
        // HTTP/2 clients name the host in :authority; members get HTTP/1.1 with Host.
        headers.insert(header::HOST, v);
    }
}

#[allow(clippy::result_large_err)]
fn upstream_request(
    parts: &Parts,
    authority: &str,
    body: ReclaimableBody,
) -> Result<Request<ReclaimableBody>, Response<ProxyBody>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("http://{authority}{path}").parse().map_err(|_| {
        error_response(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("bad request target {path:?}")}))
    })?;
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = parts.headers.clone();
    Ok(request)
}

fn client_response(response: Response<Incoming>, in_flight: InFlight, cookie: Option<String>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.append(header::SET_COOKIE, value);
    }
    let body = TrackedBody { inner: body, _in_flight: in_flight }.map_err(BoxError::from).boxed_unsync();
    Response::from_parts(parts, body)
}

/// The client's request body, handed to the member's request only when first polled:
/// if connecting fails, the body is still in the slot and can go to another member.
pub(crate) struct ReclaimableBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    taken: Option<Incoming>,
    end_of_stream: bool,
    size_hint: SizeHint,
}

impl Body for ReclaimableBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.taken.is_none() {
            let body = self.slot.lock().unwrap().take();
            match body {
                Some(body) => self.taken = Some(body),
                None => return Poll::Ready(None),
            }
        }
        Pin::new(self.taken.as_mut().expect("taken above")).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.taken.as_ref().map_or(self.end_of_stream, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.taken.as_ref().map_or(self.size_hint, Body::size_hint)
    }
}

/// A member's response body; the request stays in flight until it is streamed (or dropped).
struct TrackedBody {
    inner: Incoming,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        h.insert("x-app", HeaderValue::from_static("kept"));
        prepare_headers(&mut h, "10.1.2.3:5555".parse().unwrap(), "Web.Example.com:8280");
        for gone in ["connection", "x-secret", "keep-alive", "upgrade", "te"] {
            assert!(!h.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "Web.Example.com:8280");
        assert_eq!(h[header::HOST], "Web.Example.com:8280");
        assert_eq!(h["x-app"], "kept");
    }

    #[test]
    fn idempotent_methods() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
