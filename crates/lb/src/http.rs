//! The HTTP proxy: serves a client connection (HTTP/1.1, or h2c with prior knowledge)
//! and forwards each request to a member of the cluster its host (or tenant path) names.
//!
//! HTTP/1.1 connections start on the forwarding path of [`crate::h1`]; hyper serves h2c
//! and the HTTP/1 requests that path hands over.

use std::cell::OnceCell;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::balance::{choose, sticky_choice, sticky_member, sticky_set_cookie, Candidate};
use crate::bodies::{ProxyBody, ReclaimableBody, TrackedBody};
use crate::h1::{self, Rewind};
use crate::pool::{self, Conn};
use crate::routing::{normalized_host, Upstream};
use crate::stats::InFlight;
use crate::upgrade::{self, Tunnel};
use crate::Shared;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the requests of one client connection share.
pub(crate) struct Downstream {
    pub shared: Arc<Shared>,
    /// The worker serving the connection: its requests use that worker's pools.
    pub worker: usize,
    pub port: u16,
    /// The client's address as `X-Forwarded-For` names it, made once per connection.
    pub forwarded_for: Option<HeaderValue>,
    /// A member connection that switched protocols, for the client's once hyper has
    /// sent the 101 and let go of it.
    pub tunnel: Mutex<Option<Tunnel>>,
}

/// Serves one client connection on proxy port `port`, on worker `worker`.
pub(crate) async fn serve(shared: Arc<Shared>, worker: usize, port: u16, stream: TcpStream, peer: SocketAddr) {
    let header_timeout = (!shared.config.header_timeout.is_zero()).then_some(shared.config.header_timeout);
    let deadline = tokio::time::Instant::now() + header_timeout.unwrap_or(Duration::from_secs(3600));
    let Some(h2) = sniff_h2(&stream, deadline).await else {
        debug!(%peer, port, "client sent nothing in time, or closed");
        return;
    };
    let max_header_bytes = shared.config.max_header_bytes.max(1024);
    let forwarded_for = HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok();
    let downstream =
        Arc::new(Downstream { shared: shared.clone(), worker, port, forwarded_for, tunnel: Mutex::new(None) });
    if h2 {
        let service = hyper::service::service_fn(move |req| handle(downstream.clone(), req));
        let result = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(e) = result {
            debug!(%peer, port, error = %e, "client connection ended with an error");
        }
        return;
    }
    let mut stream = stream;
    let Some(read) = h1::serve(&downstream, &mut stream).await else { return };
    debug!(%peer, port, "a request for the general HTTP/1 path: hyper serves the connection from here");
    serve_http1(downstream, Rewind::new(read, stream), peer).await;
}

/// Serves an HTTP/1 connection with hyper: requests the forwarding path in [`h1`] does
/// not take (chunked or `Expect` bodies, upgrades, `CONNECT`, HTTP/1.0).
async fn serve_http1<T>(downstream: Arc<Downstream>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = downstream.shared.clone();
    let port = downstream.port;
    let upgrades = downstream.clone();
    let header_timeout = (!shared.config.header_timeout.is_zero()).then_some(shared.config.header_timeout);
    let max_header_bytes = shared.config.max_header_bytes.max(1024);
    // Boxed so that the connection can be polled without shutting it down and its
    // socket taken back: a head that times out half-read gets a 408 first.
    let service = hyper::service::service_fn(move |req| Box::pin(handle(downstream.clone(), req)));
    let mut connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(max_header_bytes)
        // Room to read a head somewhat over the limit whole, so the 431 is not lost to a reset.
        .max_buf_size(max_header_bytes.saturating_add(64 * 1024).max(8192))
        .writev(false)
        .serve_connection(TokioIo::new(io), service);
    let result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await;
    let parts = connection.into_parts();
    let mut stream = parts.io.into_inner();
    match result {
        Ok(()) => {
            let tunnel = upgrades.tunnel.lock().unwrap().take();
            if let Some(tunnel) = tunnel {
                upgrade::join(tunnel, stream, &parts.read_buf).await;
                return;
            }
        }
        Err(e) if e.is_timeout() && !parts.read_buf.is_empty() => {
            debug!(%peer, port, "request head not complete in time: 408");
            let _ = stream.write_all(&request_timeout()).await;
        }
        // An idle keep-alive connection that timed out is closed without a word.
        Err(e) => debug!(%peer, port, error = %e, "client connection ended with an error"),
    }
    let _ = stream.shutdown().await;
}

/// Sent, as HAProxy does, when a request head does not arrive in time.
pub(crate) fn request_timeout() -> Vec<u8> {
    let body = serde_json::json!({"error": "the request head did not arrive in time"}).to_string();
    format!(
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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

async fn handle(downstream: Arc<Downstream>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    Ok(proxy(&downstream, req).await.unwrap_or_else(|error| error))
}

pub(crate) fn error_response(status: StatusCode, body: serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Own(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The host the client asked for, as it sent it: its `Host` header if readable, else
/// (HTTP/2) the `:authority`.
fn requested_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(host) = req.headers().get(header::HOST).filter(|v| v.to_str().is_ok()) {
        // A cheap clone: the value shares the buffer the request head was read into.
        return Some(host.clone());
    }
    // An authority is visible ASCII, always a valid header value.
    req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

async fn proxy(downstream: &Downstream, req: Request<Incoming>) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
    let (shared, port) = (&*downstream.shared, downstream.port);
    let host_header = requested_host(&req).ok_or_else(|| {
        error_response(StatusCode::BAD_REQUEST, serde_json::json!({"error": "the request has no Host header"}))
    })?;
    let raw_host = host_header.to_str().unwrap_or_default();
    let host = normalized_host(raw_host).ok_or_else(|| {
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

    if let Some(protocol) = upgrade::requested(&req) {
        let (parts, _empty_body) = req.into_parts();
        return Ok(upgrade::proxy(downstream, parts, &upstream, sticky.as_deref(), protocol, &host_header).await);
    }

    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts.headers, downstream.forwarded_for.as_ref(), &host_header);
    let end_of_stream = body.is_end_stream();
    let size_hint = body.size_hint();
    // hyper never polls a request body that is already at its end, so such a body (most
    // requests') needs no slot: it stays here, and is never sent.
    let (slot, _unsent_body) =
        if end_of_stream { (None, Some(body)) } else { (Some(Arc::new(Mutex::new(Some(body)))), None) };
    let idempotent = is_idempotent(&parts.method);
    let body_sent = Arc::new(OnceLock::new());
    if slot.is_none() {
        let _ = body_sent.set(Instant::now());
    }
    let pool = &shared.pools[downstream.worker];

    let mut index = pick(shared, &upstream, sticky.as_deref(), None);
    let mut retried = false;
    while let Some(i) = index {
        let member = &upstream.members[i];
        let in_flight = member.stats.start();
        let body = match &slot {
            Some(slot) => ReclaimableBody::Slot { slot: slot.clone(), taken: None, size_hint, sent: body_sent.clone() },
            None => ReclaimableBody::Empty(size_hint),
        };
        let request = upstream_request(&parts, member.authority_key(), body)?;
        let sent = pool.send(member.authority_key(), request);
        let sent = match shared.config.response_limit() {
            None => sent.await,
            // Dropping the exchange closes its connection: the member's late answer has no taker.
            Some(limit) => match answered_within(sent, limit, &body_sent).await {
                Some(sent) => sent,
                None => {
                    // Slow is not dead: not ejected, and not sent to another member.
                    debug!(member_id = %member.member_id, ?limit, "member did not answer in time");
                    let body = did_not_answer(&member.member_id, &upstream.cluster_id, limit);
                    return Err(error_response(StatusCode::GATEWAY_TIMEOUT, body));
                }
            },
        };
        match sent {
            Ok((response, conn)) => {
                if response.status().is_server_error() {
                    shared.eject(&member.stats, &format!("answered {}", response.status()));
                } else {
                    member.stats.record_success_at(Instant::now);
                }
                let cookie = (shared.config.sticky && sticky.as_deref() != Some(member.member_id.as_str()))
                    .then(|| sticky_set_cookie(&member.member_id));
                return Ok(client_response(response, in_flight, conn, cookie, shared.config.response_limit()));
            }
            Err(pool::Error::BadAuthority) => return Err(bad_target(&parts)),
            Err(e) => {
                drop(in_flight);
                let reason = if e.is_connect() { "cannot connect" } else { "request failed" };
                debug!(member_id = %member.member_id, error = %e, error_source = ?e.source(), reason);
                shared.eject(&member.stats, reason);
                let nothing_sent = slot.as_ref().is_none_or(|slot| slot.lock().unwrap().is_some());
                if !retried && nothing_sent && (e.is_connect() || idempotent) {
                    retried = true;
                    index = pick(shared, &upstream, None, Some(i));
                    if index.is_some() {
                        continue;
                    }
                }
                let body = member_failed(&member.member_id, &upstream.cluster_id, reason, &error_chain(&e));
                return Err(error_response(StatusCode::BAD_GATEWAY, body));
            }
        }
    }
    Err(error_response(StatusCode::SERVICE_UNAVAILABLE, no_member_left(&upstream.cluster_id)))
}

/// `exchange`'s answer, unless the member takes longer than `limit` once the request
/// body has gone out whole (`body_sent`): a slow client's upload is not the member's delay.
async fn answered_within<F: std::future::Future>(
    exchange: F,
    limit: Duration,
    body_sent: &OnceLock<Instant>,
) -> Option<F::Output> {
    tokio::pin!(exchange);
    let mut deadline = Instant::now() + limit;
    loop {
        if let Ok(answer) = tokio::time::timeout_at(deadline.into(), &mut exchange).await {
            return Some(answer);
        }
        deadline = match body_sent.get() {
            Some(&sent) if sent + limit <= Instant::now() => return None,
            Some(&sent) => sent + limit,
            // Still uploading: look again in a while.
            None => Instant::now() + limit.min(Duration::from_secs(1)),
        };
    }
}

/// The body of a 503 when every member of the cluster failed or is ejected.
pub(crate) fn no_member_left(cluster_id: &str) -> serde_json::Value {
    serde_json::json!({
        "error": format!("cluster {cluster_id} has no member left to try"),
        "clusterId": cluster_id,
    })
}

/// The body of a 502: which member of which cluster failed, how, and the detail.
pub(crate) fn member_failed(member_id: &str, cluster_id: &str, reason: &str, detail: &str) -> serde_json::Value {
    serde_json::json!({
        "error": format!("member {member_id} of cluster {cluster_id}: {reason}: {detail}"),
        "clusterId": cluster_id,
        "memberId": member_id,
    })
}

/// The body of a 504: which member of which cluster, and the limit it overran.
pub(crate) fn did_not_answer(member_id: &str, cluster_id: &str, limit: Duration) -> serde_json::Value {
    serde_json::json!({
        "error": format!("member {member_id} of cluster {cluster_id} did not answer within {limit:?}"),
        "clusterId": cluster_id,
        "memberId": member_id,
    })
}

pub(crate) fn error_chain(e: &dyn StdError) -> String {
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
    // The clock is read only if a member has been ejected: most requests need not.
    let clock = OnceCell::new();
    let now = || *clock.get_or_init(Instant::now);
    let members = &upstream.members;
    if sticky.is_some() {
        let pinned = sticky_choice(members.iter().map(|m| (m.member_id.as_str(), !m.stats.is_ejected_at(now))), sticky);
        if let Some(i) = pinned.filter(|&i| Some(i) != exclude) {
            return Some(i);
        }
    }
    // Candidate k is member k, or k + 1 from the excluded one on.
    let member_of = |k: usize| match exclude {
        Some(x) if k >= x => k + 1,
        _ => k,
    };
    let count = members.len() - usize::from(exclude.is_some_and(|x| x < members.len()));
    let candidate = |k: usize| {
        let stats = &members[member_of(k)].stats;
        Candidate { in_flight: stats.in_flight(), healthy: !stats.is_ejected_at(now) }
    };
    // A snapshot (counts change under our feet), on the stack for clusters of usual size:
    // this runs for every request.
    const ON_STACK: usize = 16;
    let turn = upstream.stats.next_turn();
    let chosen = if count <= ON_STACK {
        let mut candidates = [Candidate { in_flight: 0, healthy: false }; ON_STACK];
        for (k, c) in candidates[..count].iter_mut().enumerate() {
            *c = candidate(k);
        }
        choose(shared.config.algorithm, &candidates[..count], turn)
    } else {
        let candidates: Vec<Candidate> = (0..count).map(candidate).collect();
        choose(shared.config.algorithm, &candidates, turn)
    };
    chosen.map(member_of)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// Headers meaningful for one connection only (RFC 9110 §7.6.1), never forwarded.
/// Names, not strings: removing by a string would parse it on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there is none: a look at each name costs less than nine removals.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
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
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Readies the client's headers for the member: drops hop-by-hop headers, adds the
/// client (`forwarded_for`, its address) to `X-Forwarded-For`, and sets `Host` and
/// `X-Forwarded-Host` to the host the client asked for.
pub(crate) fn prepare_headers(headers: &mut HeaderMap, forwarded_for: Option<&HeaderValue>, host: &HeaderValue) {
    strip_hop_by_hop(headers);
    if let Some(client) = forwarded_for {
        let previous: Vec<&str> =
            headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).map(str::trim).collect();
        let value = if previous.is_empty() {
            Some(client.clone())
        } else {
            let client = client.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{}, {client}", previous.join(", "))).ok()
        };
        if let Some(value) = value {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_HOST, host.clone());
    // HTTP/2 clients name the host in :authority; members get HTTP/1.1 with Host.
    headers.insert(header::HOST, host.clone());
}

/// The request target the member gets: the client's, in origin form.
fn target(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |p| p.as_str())
}

pub(crate) fn bad_target(parts: &Parts) -> Response<ProxyBody> {
    let path = target(parts);
    error_response(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("bad request target {path:?}")}))
}

/// The request for the member at `authority`.
#[allow(clippy::result_large_err)]
pub(crate) fn upstream_request(
    parts: &Parts,
    authority: &str,
    body: ReclaimableBody,
) -> Result<Request<ReclaimableBody>, Response<ProxyBody>> {
    let uri = match parts.uri.path_and_query() {
        // CONNECT names the member (authority form), as hyper-util's client had it.
        _ if parts.method == Method::CONNECT => authority.parse().map_err(|_| bad_target(parts))?,
        None => Uri::from_static("/"),
        // The target the member gets, in origin form: it must be one (or a bare query).
        Some(p) if p.as_str().starts_with(['/', '?']) => Uri::from(p.clone()),
        Some(_) => return Err(bad_target(parts)),
    };
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = parts.headers.clone();
    Ok(request)
}

fn client_response(
    response: Response<Incoming>,
    in_flight: InFlight,
    conn: Conn,
    cookie: Option<String>,
    idle_limit: Option<Duration>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.append(header::SET_COOKIE, value);
    }
    Response::from_parts(parts, ProxyBody::Member(TrackedBody::pooled(body, in_flight, conn, idle_limit)))
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
        let client = HeaderValue::from_static("10.1.2.3");
        prepare_headers(&mut h, Some(&client), &HeaderValue::from_static("Web.Example.com:8280"));
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
