//! The HTTP/1.1 forwarding path: requests are parsed where they lie in the connection's
//! buffer (`httparse`), their heads rewritten into one buffer and written to a member
//! over a plain keep-alive socket, and responses relayed with their framing as it is
//! (a length, chunks, or until the member closes). Nothing is decoded or copied into
//! header maps, and no task but the client connection's takes part.
//!
//! hyper's client and server pair did the same work with a header map per message, a
//! request and response channel between two tasks per exchange and a body stream per
//! response: that was about a third of the proxy's CPU time per request (measured), the
//! rest being the kernel's TCP path.
//!
//! It takes only what it can forward plainly: HTTP/1.1 requests with an origin-form
//! target and no body or a `Content-Length` one. A request with anything else
//! (`Transfer-Encoding`, `Upgrade`, `Expect`, `CONNECT`, HTTP/1.0, a doubtful length)
//! hands the connection, with what was read of it, to the general path in
//! [`crate::http`], which serves it from then on.

mod chunked;
mod members;
mod rewind;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::balance::{sticky_member, sticky_set_cookie};
use crate::http::{did_not_answer, member_failed, no_member_left, pick, request_timeout, Downstream};
use crate::routing::{normalized_host, Upstream};

use chunked::ChunkedEnd;
pub(crate) use members::MemberPool;
pub(crate) use rewind::Rewind;

/// The most header fields a request or response may have (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// The most bytes one read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// The largest response head a member may send.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Headers meaningful for one connection only (RFC 9110 §7.6.1), never forwarded, and
/// those the proxy sets itself. `Transfer-Encoding` is hop-by-hop too, but only in
/// requests: a request carrying it goes to the general path, and a response's chunks
/// are relayed as they are, so its `Transfer-Encoding` stays true.
const REQUEST_DROPPED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];
const RESPONSE_DROPPED: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "trailer", "upgrade"];

/// Serves the HTTP/1 client connection `client` until it closes. Returns what has been
/// read of it when a request is better served by the general path: the caller hands
/// the connection over with those bytes in front.
pub(crate) async fn serve(down: &Downstream, client: &mut TcpStream) -> Option<Vec<u8>> {
    let shared = &*down.shared;
    let max_head = shared.config.max_header_bytes.max(1024);
    let header_timeout = shared.config.header_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut scratch = Scratch::default();
    loop {
        // Wait for a request head (or the rest of one).
        let deadline = (!header_timeout.is_zero()).then(|| tokio::time::Instant::now() + header_timeout);
        // How much of the buffer has been looked at for the end of a head.
        let mut scanned = 0;
        let prepared = loop {
            // The first look parses at once: most heads come whole in one read.
            if !buf.is_empty() && (scanned == 0 || head_may_end(&buf, scanned)) {
                match read_request(down, &buf, max_head, &mut scratch.request) {
                    Step::Forward(prepared) => break prepared,
                    Step::NeedMore => {}
                    Step::HandOff => return Some(buf),
                    Step::Answer { response, close, body } => {
                        let close = close || body > 0;
                        if client.write_all(&response).await.is_err() || close {
                            linger_close(client).await;
                            return None;
                        }
                        let consumed = buf.len().min(head_len_of(&buf));
                        buf.drain(..consumed);
                        scanned = 0;
                        continue;
                    }
                }
            }
            scanned = buf.len();
            if buf.len() > max_head {
                let _ = client
                    .write_all(&own_response(
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        &head_too_large(max_head),
                        true,
                    ))
                    .await;
                linger_close(client).await;
                return None;
            }
            buf.reserve(READ_CHUNK);
            let read = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, client.read_buf(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) if buf.is_empty() => return None,
                    Err(_) => {
                        debug!(port = down.port, "request head not complete in time: 408");
                        let _ = client.write_all(&request_timeout()).await;
                        linger_close(client).await;
                        return None;
                    }
                },
                None => client.read_buf(&mut buf).await,
            };
            if !matches!(read, Ok(n) if n > 0) {
                return None;
            }
        };
        match forward(down, client, &mut buf, prepared, &mut scratch).await {
            Ok(true) => {
                // A large head or body grew a buffer: it is not kept for the connection's
                // life, which for keep-alive clients may be long and mostly idle.
                scratch.shrink();
                if buf.is_empty() && buf.capacity() > 2 * READ_CHUNK {
                    buf = Vec::with_capacity(READ_CHUNK);
                }
            }
            Ok(false) => {
                let _ = client.shutdown().await;
                return None;
            }
            Err(ClientGone) => return None,
        }
    }
}

/// Buffers a connection reuses from one request to the next.
#[derive(Default)]
struct Scratch {
    /// The request head (and the body bytes read with it) as the member gets it.
    request: Vec<u8>,
    /// What the member sends.
    member: Vec<u8>,
    /// The response head (and first body bytes) as the client gets it.
    response: Vec<u8>,
}

impl Scratch {
    /// Lets go of buffers grown past what a usual exchange needs.
    fn shrink(&mut self) {
        for buffer in [&mut self.request, &mut self.member, &mut self.response] {
            if buffer.capacity() > 2 * READ_CHUNK {
                *buffer = Vec::new();
            }
        }
    }
}

/// The client connection failed: it is closed without a word.
struct ClientGone;

/// What to do with the bytes read from the client so far.
enum Step {
    Forward(Prepared),
    /// Not a whole request head yet.
    NeedMore,
    /// A request for the general path.
    HandOff,
    /// Answered by the proxy itself; `body` is the length of the request body, unread.
    Answer {
        response: Vec<u8>,
        close: bool,
        body: u64,
    },
}

/// A request head, read and rewritten for the member.
struct Prepared {
    upstream: Arc<Upstream>,
    /// Length of the head in the client's buffer.
    head_len: usize,
    content_length: u64,
    /// The client asked for the connection to close after this exchange.
    close: bool,
    /// A `HEAD` request: the response has no body, whatever its headers say.
    head_method: bool,
    idempotent: bool,
    sticky: Option<String>,
}

/// Whether the bytes from `scanned` on (with the three before, where an end may
/// straddle two reads) hold an empty line, without which no head is complete: a head
/// arriving a few bytes at a time is not parsed again from its start after every read,
/// which would cost time in the square of its length.
fn head_may_end(buf: &[u8], scanned: usize) -> bool {
    let tail = &buf[scanned.saturating_sub(3).min(buf.len())..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Length of the (complete) request head at the start of `buf`.
fn head_len_of(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => buf.len(),
    }
}

fn read_request(down: &Downstream, buf: &[u8], max_head: usize, out: &mut Vec<u8>) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head => Step::Answer {
            response: own_response(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, &head_too_large(max_head), true),
            close: true,
            body: 0,
        },
        Ok(httparse::Status::Complete(n)) => prepare(down, &req, n, out),
        Ok(httparse::Status::Partial) => Step::NeedMore,
        Err(httparse::Error::TooManyHeaders) => Step::Answer {
            response: own_response(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                &serde_json::json!({"error": format!("more than {MAX_HEADERS} header fields")}),
                true,
            ),
            close: true,
            body: 0,
        },
        Err(e) => Step::Answer {
            response: own_response(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": format!("malformed request head: {e}")}),
                true,
            ),
            close: true,
            body: 0,
        },
    }
}

fn head_too_large(max_head: usize) -> serde_json::Value {
    serde_json::json!({"error": format!("the request head is over {max_head} bytes")})
}

/// Reads a complete request head: routes it, and writes the head the member gets into `out`.
fn prepare(down: &Downstream, req: &httparse::Request<'_, '_>, head_len: usize, out: &mut Vec<u8>) -> Step {
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Step::HandOff;
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Step::HandOff;
    }
    let mut host: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut close = false;
    // Headers the Connection header names are hop-by-hop too (rare beyond these two).
    let mut named: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "more than one Host header"}),
                    true,
                    0,
                );
            }
            host = Some(h.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let Some(length) = parse_length(h.value) else { return Step::HandOff };
            if content_length.is_some_and(|l| l != length) {
                return Step::HandOff;
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Step::HandOff;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    named.push(token);
                }
            }
        }
    }
    let body = content_length.unwrap_or(0);
    let Some(raw_host) = host else {
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "the request has no Host header"}),
            close,
            body,
        );
    };
    let Some(host) = std::str::from_utf8(raw_host).ok().and_then(|raw| normalized_host(raw).map(|h| (raw, h))) else {
        let raw = String::from_utf8_lossy(raw_host);
        return answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("bad Host header {raw:?}"), "host": raw}),
            close,
            body,
        );
    };
    let (raw_host, host) = host;
    let shared = &*down.shared;
    let port = down.port;
    let Some(upstream) = shared.table().route_http(port, &host, path).cloned() else {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no cluster serves host {host:?} on port {port}"), "host": host}),
            close,
            body,
        );
    };
    if upstream.members.is_empty() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "error": format!("cluster {} has no active member", upstream.cluster_id),
                "clusterId": upstream.cluster_id,
            }),
            close,
            body,
        );
    }
    let sticky = if shared.config.sticky {
        sticky_member(
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
                .filter_map(|h| std::str::from_utf8(h.value).ok()),
        )
    } else {
        None
    };

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.extend(h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()));
        }
        if REQUEST_DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d))
            || named.iter().any(|n| n.eq_ignore_ascii_case(h.name.as_bytes()))
        {
            continue;
        }
        push_header(out, h.name.as_bytes(), h.value);
    }
    push_header(out, b"Host", raw_host.as_bytes());
    if let Some(client) = &down.forwarded_for {
        out.extend_from_slice(b"X-Forwarded-For: ");
        for previous in forwarded_for {
            out.extend_from_slice(previous);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
    push_header(out, b"X-Forwarded-Host", raw_host.as_bytes());
    out.extend_from_slice(b"\r\n");

    Step::Forward(Prepared {
        upstream,
        head_len,
        content_length: body,
        close,
        head_method: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"),
        sticky,
    })
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Content-Length` value: digits only (no sign, no list), as RFC 9110 §8.6 has it.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn answer(status: StatusCode, body: serde_json::Value, close: bool, request_body: u64) -> Step {
    let close = close || request_body > 0;
    Step::Answer { response: own_response(status, &body, close), close, body: request_body }
}

/// An answer of the proxy's own: a JSON body saying what went wrong.
fn own_response(status: StatusCode, body: &serde_json::Value, close: bool) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        if close { "connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

/// Closes a connection the proxy is done with although the client may still be
/// sending (a head too large, a body not read): its answer would be lost to the reset
/// that closing a socket with unread bytes sends. So it stops writing, then reads and
/// drops what comes for a moment, as nginx's `lingering_close` does.
async fn linger_close(client: &mut TcpStream) {
    let _ = client.shutdown().await;
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut total = 0usize;
        while let Ok(n) = client.read(&mut sink).await {
            total += n;
            if n == 0 || total > 1 << 20 {
                break;
            }
        }
    })
    .await;
}

/// A member connection whose reads and writes each fail with [`ResponseTimedOut`]
/// after `limit`.
struct Member<'a> {
    stream: &'a mut TcpStream,
    limit: Option<Duration>,
}

impl Member<'_> {
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        within(self.limit, self.stream.read_buf(buf)).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        within(self.limit, self.stream.write_all(bytes)).await
    }
}

async fn within<T>(limit: Option<Duration>, io: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    match limit {
        None => io.await,
        Some(limit) => tokio::time::timeout(limit, io)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, ResponseTimedOut))),
    }
}

/// The response timeout ran out: told apart from the kernel's own `ETIMEDOUT` (a
/// member gone unreachable, which is a failure to eject for, not slowness).
#[derive(Debug)]
struct ResponseTimedOut;

impl std::fmt::Display for ResponseTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the member took too long")
    }
}

impl std::error::Error for ResponseTimedOut {}

fn is_response_timeout(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<ResponseTimedOut>())
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// When the member closes the connection.
    UntilClose,
}

/// A member's response head, parsed.
struct ResponseHead {
    status: u16,
    head_len: usize,
    framing: Framing,
    /// The member keeps the connection open after this response.
    keep_alive: bool,
}

/// Why no response came from a member.
enum MemberError {
    Connect(io::Error),
    /// The exchange failed; `answered` is whether any byte of a response had come.
    Exchange {
        error: io::Error,
        answered: bool,
    },
    /// The member's answer is no HTTP/1.1 response the proxy can relay.
    Invalid(String),
    /// The client went away while its request body was being sent.
    ClientGone,
    /// The member took longer than the response timeout to answer (or to take the request).
    Timeout(Duration),
}

/// A failed attempt, and whether it was on a connection that served before.
struct Attempt {
    error: MemberError,
    reused: bool,
}

/// One attempt at a member: a connection, the request, and the response head.
async fn attempt(
    pool: &MemberPool,
    authority: &str,
    client: &mut TcpStream,
    client_buf: &mut Vec<u8>,
    scratch: &mut Scratch,
    body_left: &mut u64,
    head_method: bool,
) -> Result<(TcpStream, ResponseHead), Attempt> {
    let mut conn = pool.get(authority).await.map_err(|e| Attempt { error: MemberError::Connect(e), reused: false })?;
    let member = Member { stream: &mut conn.stream, limit: pool.io_limit };
    match exchange(member, client, client_buf, &scratch.request, body_left, &mut scratch.member, head_method).await {
        Ok(head) => Ok((conn.stream, head)),
        Err(error) => Err(Attempt { error, reused: conn.reused }),
    }
}

/// Forwards the prepared request and relays the response. Ok(true) when the client
/// connection can take another request.
async fn forward(
    down: &Downstream,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    p: Prepared,
    scratch: &mut Scratch,
) -> Result<bool, ClientGone> {
    let shared = &*down.shared;
    let upstream = &p.upstream;
    // The body bytes that came with the head go out with it.
    let body_here = p.content_length.min((buf.len() - p.head_len) as u64) as usize;
    scratch.request.extend_from_slice(&buf[p.head_len..p.head_len + body_here]);
    buf.drain(..p.head_len + body_here);
    let mut body_left = p.content_length - body_here as u64;
    // With the whole body in hand, the request can be sent again.
    let replayable = body_left == 0;
    let pool = &shared.member_pools[down.worker];

    let mut index = pick(shared, upstream, p.sticky.as_deref(), None);
    let mut tried_another = false;
    let mut retried_stale = false;
    while let Some(i) = index {
        let member = &upstream.members[i];
        let in_flight = member.stats.start();
        let attempt = attempt(pool, member.authority_key(), client, buf, scratch, &mut body_left, p.head_method).await;
        let (mut stream, head) = match attempt {
            Ok(exchanged) => exchanged,
            Err(Attempt { error: MemberError::Exchange { answered: false, .. }, reused: true })
                if replayable && !retried_stale =>
            {
                // A keep-alive connection the member closed as the request went out:
                // the usual race of HTTP/1.1, not a failure of the member.
                retried_stale = true;
                continue;
            }
            Err(Attempt { error: MemberError::ClientGone, .. }) => return Err(ClientGone),
            Err(Attempt { error: MemberError::Timeout(limit), .. }) => {
                // Slow is not dead: the member is not ejected, and the request, which it
                // may be working on, is not sent to another.
                drop(in_flight);
                debug!(member_id = %member.member_id, ?limit, "member did not answer in time");
                let body = did_not_answer(&member.member_id, &upstream.cluster_id, limit);
                let response = own_response(StatusCode::GATEWAY_TIMEOUT, &body, p.close || body_left > 0);
                client.write_all(&response).await.map_err(|_| ClientGone)?;
                return Ok(!p.close && body_left == 0);
            }
            Err(Attempt { error, .. }) => {
                drop(in_flight);
                let (reason, detail, retry) = match &error {
                    MemberError::Connect(e) => {
                        ("cannot connect", format!("client error (Connect): tcp connect error: {e}"), true)
                    }
                    MemberError::Exchange { error, answered } => {
                        ("request failed", format!("client error (SendRequest): {error}"), p.idempotent && !answered)
                    }
                    MemberError::Invalid(what) => ("invalid response", what.clone(), false),
                    MemberError::ClientGone | MemberError::Timeout(_) => unreachable!("matched above"),
                };
                debug!(member_id = %member.member_id, reason, detail, "member failed");
                shared.eject(&member.stats, reason);
                if !tried_another && retry && replayable {
                    tried_another = true;
                    index = pick(shared, upstream, None, Some(i));
                    if index.is_some() {
                        continue;
                    }
                }
                let body = member_failed(&member.member_id, &upstream.cluster_id, reason, &detail);
                let response = own_response(StatusCode::BAD_GATEWAY, &body, p.close || body_left > 0);
                client.write_all(&response).await.map_err(|_| ClientGone)?;
                return Ok(!p.close && body_left == 0);
            }
        };
        if head.status >= 500 {
            shared.eject(&member.stats, &format!("answered {}", head.status));
        } else {
            member.stats.record_success_at(Instant::now);
        }
        let cookie = (shared.config.sticky && p.sticky.as_deref() != Some(member.member_id.as_str()))
            .then(|| sticky_set_cookie(&member.member_id));
        let close_client = p.close || head.framing == Framing::UntilClose;
        let member_io = Member { stream: &mut stream, limit: pool.io_limit };
        let member_clean = relay(client, member_io, &head, scratch, cookie.as_deref(), close_client).await?;
        drop(in_flight);
        if member_clean && head.keep_alive {
            pool.put(member.authority_key(), stream);
        }
        return Ok(!close_client);
    }
    let body = no_member_left(&upstream.cluster_id);
    let response = own_response(StatusCode::SERVICE_UNAVAILABLE, &body, p.close || body_left > 0);
    client.write_all(&response).await.map_err(|_| ClientGone)?;
    Ok(!p.close && body_left == 0)
}

/// Sends the request (`request`, then `body_left` more body bytes from the client) and
/// reads the response head into `member_buf`, passing interim (1xx) responses on.
async fn exchange(
    mut member: Member<'_>,
    client: &mut TcpStream,
    client_buf: &mut Vec<u8>,
    request: &[u8],
    body_left: &mut u64,
    member_buf: &mut Vec<u8>,
    head_method: bool,
) -> Result<ResponseHead, MemberError> {
    let limit = member.limit;
    let failed = |error: io::Error, member_buf: &Vec<u8>| {
        if is_response_timeout(&error) {
            MemberError::Timeout(limit.unwrap_or_default())
        } else {
            MemberError::Exchange { error, answered: !member_buf.is_empty() }
        }
    };
    member_buf.clear();
    member.write_all(request).await.map_err(|e| failed(e, member_buf))?;
    while *body_left > 0 {
        if client_buf.is_empty() {
            client_buf.reserve(READ_CHUNK);
            match client.read_buf(client_buf).await {
                Ok(n) if n > 0 => {}
                _ => return Err(MemberError::ClientGone),
            }
        }
        let take = (*body_left).min(client_buf.len() as u64) as usize;
        member.write_all(&client_buf[..take]).await.map_err(|e| failed(e, member_buf))?;
        client_buf.drain(..take);
        *body_left -= take as u64;
    }
    loop {
        member_buf.reserve(READ_CHUNK);
        match member.read_buf(member_buf).await {
            Ok(0) => {
                let error = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response");
                return Err(failed(error, member_buf));
            }
            Ok(_) => {}
            Err(e) => return Err(failed(e, member_buf)),
        }
        loop {
            match parse_response(member_buf, head_method)? {
                None if member_buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(MemberError::Invalid(format!("response head over {MAX_RESPONSE_HEAD} bytes")))
                }
                None => break,
                Some(head) if (100..200).contains(&head.status) => {
                    if head.status == 101 {
                        return Err(MemberError::Invalid(
                            "101 Switching Protocols to a request without Upgrade".into(),
                        ));
                    }
                    // Interim responses go to the client as they are.
                    client.write_all(&member_buf[..head.head_len]).await.map_err(|e| failed(e, member_buf))?;
                    member_buf.drain(..head.head_len);
                }
                Some(head) => return Ok(head),
            }
        }
    }
}

fn parse_response(buf: &[u8], head_method: bool) -> Result<Option<ResponseHead>, MemberError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(MemberError::Invalid(format!("malformed response head: {e}"))),
    };
    let status = res.code.unwrap_or(0);
    let mut keep_alive = res.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_length(h.value).ok_or_else(|| MemberError::Invalid("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(MemberError::Invalid("conflicting Content-Length headers".into()));
            }
            length = Some(parsed);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only if it is the last coding applied.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                }
            }
        }
    }
    let framing = if head_method || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if let Some(chunked) = chunked {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok(Some(ResponseHead { status, head_len, framing, keep_alive: keep_alive && framing != Framing::UntilClose }))
}

/// Writes the response head for the client (from the member's, in `scratch.member`)
/// and relays the body. Ok(true) when the member connection ended the exchange cleanly
/// and can take another request.
async fn relay(
    client: &mut TcpStream,
    mut member: Member<'_>,
    head: &ResponseHead,
    scratch: &mut Scratch,
    cookie: Option<&str>,
    close_client: bool,
) -> Result<bool, ClientGone> {
    let Scratch { member: member_buf, response: out, .. } = scratch;
    client_head(&member_buf[..head.head_len], cookie, close_client, out);
    let body = &member_buf[head.head_len..];
    match head.framing {
        Framing::Empty => {
            client.write_all(out).await.map_err(|_| ClientGone)?;
            Ok(body.is_empty())
        }
        Framing::Length(length) => {
            let here = length.min(body.len() as u64) as usize;
            out.extend_from_slice(&body[..here]);
            let clean = here == body.len();
            client.write_all(out).await.map_err(|_| ClientGone)?;
            let mut left = length - here as u64;
            while left > 0 {
                member_buf.clear();
                member_buf.reserve(READ_CHUNK);
                let n = match member.read_buf(member_buf).await {
                    Ok(n) if n > 0 => n,
                    // Cut short: the client cannot be told but by closing.
                    _ => return Err(ClientGone),
                };
                let take = left.min(n as u64) as usize;
                client.write_all(&member_buf[..take]).await.map_err(|_| ClientGone)?;
                left -= take as u64;
                if take < n {
                    return Ok(false);
                }
            }
            Ok(clean)
        }
        Framing::Chunked => {
            let mut scanner = ChunkedEnd::default();
            let mut end = scanner.scan(body).map_err(|_| ClientGone)?;
            let here = end.unwrap_or(body.len());
            out.extend_from_slice(&body[..here]);
            let mut clean = here == body.len();
            client.write_all(out).await.map_err(|_| ClientGone)?;
            while end.is_none() {
                member_buf.clear();
                member_buf.reserve(READ_CHUNK);
                let n = match member.read_buf(member_buf).await {
                    Ok(n) if n > 0 => n,
                    _ => return Err(ClientGone),
                };
                end = scanner.scan(&member_buf[..n]).map_err(|_| ClientGone)?;
                let take = end.unwrap_or(n);
                clean = take == n;
                client.write_all(&member_buf[..take]).await.map_err(|_| ClientGone)?;
            }
            Ok(clean)
        }
        Framing::UntilClose => {
            out.extend_from_slice(body);
            client.write_all(out).await.map_err(|_| ClientGone)?;
            loop {
                member_buf.clear();
                member_buf.reserve(READ_CHUNK);
                match member.read_buf(member_buf).await {
                    Ok(0) => return Ok(false),
                    Ok(n) => client.write_all(&member_buf[..n]).await.map_err(|_| ClientGone)?,
                    Err(_) => return Err(ClientGone),
                }
            }
        }
    }
}

/// The response head the client gets: the member's, without its hop-by-hop headers,
/// with the sticky cookie and `Connection: close` when the connection ends after it.
fn client_head(member_head: &[u8], cookie: Option<&str>, close: bool, out: &mut Vec<u8>) {
    out.clear();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    // Parsed before: this cannot fail.
    let _ = res.parse(member_head);
    let status = res.code.unwrap_or(502);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut named: Vec<&[u8]> = Vec::new();
    for h in res.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection")) {
        named.extend(h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii));
    }
    for h in res.headers.iter() {
        if RESPONSE_DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d))
            || named.iter().any(|n| n.eq_ignore_ascii_case(h.name.as_bytes()))
        {
            continue;
        }
        push_header(out, h.name.as_bytes(), h.value);
    }
    if let Some(cookie) = cookie {
        push_header(out, b"Set-Cookie", cookie.as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A status code's three digits.
fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        let framing = |head: &str, head_method: bool| {
            parse_response(head.as_bytes(), head_method).ok().flatten().map(|h| (h.framing, h.keep_alive))
        };
        assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false), Some((Framing::Length(5), true)));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true), Some((Framing::Empty, true)));
        assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n", false), Some((Framing::Empty, true)));
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n", false),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Some((Framing::UntilClose, false))
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n", false), Some((Framing::UntilClose, false)));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
            Some((Framing::Length(0), false))
        );
        assert_eq!(framing("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false), Some((Framing::Length(0), false)));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Len", false), None);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
    }

    #[test]
    fn client_heads_lose_hop_by_hop_headers() {
        let mut out = Vec::new();
        let member =
            b"HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
                       Transfer-Encoding: chunked\r\nX-App: kept\r\n\r\n";
        client_head(member, Some("STRATOS_STICKY=m1; Path=/; HttpOnly"), true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\nX-App: kept\r\n\
             Set-Cookie: STRATOS_STICKY=m1; Path=/; HttpOnly\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_head_is_parsed_again_only_once_it_may_have_ended() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // Fed a byte at a time: only the last byte makes the empty line.
        let looks: Vec<usize> = (1..=head.len()).filter(|&n| head_may_end(&head[..n], n - 1)).collect();
        assert_eq!(looks, [head.len()]);
        assert!(head_may_end(b"GET / HTTP/1.1\nHost: a\n\n", 20), "bare line feeds end a head too");
        assert!(!head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b"42"), Some(42));
        assert_eq!(parse_length(b" 7 "), Some(7));
        for bad in [&b""[..], b"+1", b"-1", b"1,1", b"0x10", b"99999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
