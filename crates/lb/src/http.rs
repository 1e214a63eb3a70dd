//! The HTTP proxy: serves a client connection (HTTP/1.1, or h2c with prior knowledge)
//! and forwards each request to a member of the cluster its host (or tenant path) names.
//!
//! HTTP/1.1 connections start on the forwarding path of [`crate::h1`]; hyper serves h2c
//! and the HTTP/1 requests that path hands over.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::answers::{error_chain, Answer};
use crate::bodies::{ProxyBody, TrackedBody};
use crate::choice::{pick, sticky_cookie};
use crate::downstream::Downstream;
use crate::h1::{self, Rewind};
use crate::headers::{prepare_request, strip_hop_by_hop};
use crate::identity::{identify, Identity};
use crate::member_request::{bad_target, member_request};
use crate::outcome::{self, is_idempotent, may_try_another, Failure};
use crate::pool::{self, Conn};
use crate::request_body::ReclaimableBody;
use crate::shared::Shared;
use crate::stats::InFlight;
use crate::{tunnel, upgrade};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
                tunnel::join(tunnel, stream, &parts.read_buf).await;
                return;
            }
        }
        Err(e) if e.is_timeout() && !parts.read_buf.is_empty() => {
            debug!(%peer, port, "request head not complete in time: 408");
            let _ = stream.write_all(&Answer::head_timeout().to_bytes(true)).await;
        }
        // An idle keep-alive connection that timed out is closed without a word.
        Err(e) => debug!(%peer, port, error = %e, "client connection ended with an error"),
    }
    let _ = stream.shutdown().await;
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
    Ok(proxy(&downstream, req).await.unwrap_or_else(Answer::into_response))
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

async fn proxy(downstream: &Downstream, req: Request<Incoming>) -> Result<Response<ProxyBody>, Answer> {
    let (shared, port) = (&*downstream.shared, downstream.port);
    let host_header = requested_host(&req);
    let cookies = req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    let identified = identify(shared, port, host_header.as_ref().map(HeaderValue::as_bytes), req.uri().path(), cookies);
    let Identity { upstream, sticky } = identified.inspect_err(|_| shared.registry.unrouted())?;
    // Routed, so there is one.
    let host_header = host_header.ok_or_else(Answer::no_host)?;
    let started = upstream.stats.clock();
    let answered = forward(downstream, req, &upstream, sticky, host_header).await;
    // Measured to the response head here (the body streams on after).
    match &answered {
        Ok(response) => upstream.stats.answered(response.status().as_u16(), started),
        Err(answer) if answer.status.is_server_error() => upstream.stats.failed(answer.status.as_u16(), started),
        Err(answer) => upstream.stats.answered(answer.status.as_u16(), started),
    }
    answered
}

/// Sends a routed request to a member of `upstream` (another on a failure, as allowed).
async fn forward(
    downstream: &Downstream,
    req: Request<Incoming>,
    upstream: &Arc<crate::routing::Upstream>,
    sticky: Option<String>,
    host_header: HeaderValue,
) -> Result<Response<ProxyBody>, Answer> {
    let shared = &*downstream.shared;

    if let Some(protocol) = upgrade::requested(&req) {
        let (parts, _empty_body) = req.into_parts();
        return Ok(upgrade::proxy(downstream, parts, upstream, sticky.as_deref(), protocol, &host_header).await);
    }

    let (mut parts, body) = req.into_parts();
    prepare_request(&mut parts.headers, downstream.forwarded_for.as_ref(), &host_header);
    let end_of_stream = body.is_end_stream();
    let size_hint = body.size_hint();
    // hyper never polls a request body that is already at its end, so such a body (most
    // requests') needs no slot: it stays here, and is never sent.
    let (slot, _unsent_body) =
        if end_of_stream { (None, Some(body)) } else { (Some(Arc::new(Mutex::new(Some(body)))), None) };
    let idempotent = is_idempotent(parts.method.as_str().as_bytes());
    let body_sent = Arc::new(OnceLock::new());
    if slot.is_none() {
        let _ = body_sent.set(Instant::now());
    }
    let pool = &shared.pools[downstream.worker];

    let mut index = pick(shared, upstream, sticky.as_deref(), None);
    let mut retried = false;
    while let Some(i) = index {
        let member = &upstream.members[i];
        let in_flight = member.stats.start();
        let body = match &slot {
            Some(slot) => ReclaimableBody::Slot { slot: slot.clone(), taken: None, size_hint, sent: body_sent.clone() },
            None => ReclaimableBody::Empty(size_hint),
        };
        let request = member_request(&parts, member.authority_key(), body)?;
        let sent = pool.send(member.authority_key(), request);
        let sent = match shared.config.response_limit() {
            None => sent.await,
            // Dropping the exchange closes its connection: the member's late answer has no taker.
            Some(limit) => match answered_within(sent, limit, &body_sent).await {
                Some(sent) => sent,
                None => {
                    // Slow is not dead: not ejected, and not sent to another member.
                    debug!(member_id = %member.member_id, ?limit, "member did not answer in time");
                    return Err(Answer::did_not_answer(&member.member_id, &upstream.cluster_id, limit));
                }
            },
        };
        match sent {
            Ok((response, conn)) => {
                outcome::answered(shared, &member.stats, response.status().as_u16());
                let cookie = sticky_cookie(shared, sticky.as_deref(), &member.member_id);
                return Ok(client_response(response, in_flight, conn, cookie, shared.config.response_limit()));
            }
            Err(pool::Error::BadAuthority) => return Err(bad_target(&parts)),
            Err(e) => {
                drop(in_flight);
                let failure = if e.is_connect() { Failure::Connect } else { Failure::Exchange };
                let reason = failure.reason();
                debug!(member_id = %member.member_id, error = %e, error_source = ?e.source(), reason);
                outcome::failed(shared, &member.stats, failure);
                // The body is still in its slot if it never went out.
                let nothing_sent = slot.as_ref().is_none_or(|slot| slot.lock().unwrap().is_some());
                if !retried && may_try_another(failure, idempotent, nothing_sent, false) {
                    retried = true;
                    index = pick(shared, upstream, None, Some(i));
                    if index.is_some() {
                        continue;
                    }
                }
                return Err(Answer::member_failed(&member.member_id, &upstream.cluster_id, reason, &error_chain(&e)));
            }
        }
    }
    Err(Answer::no_member_left(&upstream.cluster_id))
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
