//! One request's exchange on the forwarding path: a member chosen ([`crate::choice`]),
//! the request written to a pooled or new connection and the response head read, then
//! relayed ([`super::response`]). A failure ejects the member and may go to another
//! ([`crate::outcome`]); a keep-alive connection the member closed as the request went
//! out is retried once on a fresh one; a member too slow gets a 504 and no other member.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::client::{ClientGone, Scratch, READ_CHUNK};
use super::members::{is_response_timeout, Member};
use super::request::Prepared;
use super::response::{parse_response, relay, Framing, ResponseHead};
use crate::answers::Answer;
use crate::choice::{pick, sticky_cookie};
use crate::downstream::Downstream;
use crate::member_pool::MemberPool;
use crate::outcome::{self, may_try_another, Failure};

/// The largest response head a member may send.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

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
pub(super) async fn forward(
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

    let started = upstream.stats.clock();
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
                let answer = Answer::did_not_answer(&member.member_id, &upstream.cluster_id, limit);
                upstream.stats.failed(answer.status.as_u16(), started);
                return own_answer(client, answer, p.close, body_left).await;
            }
            Err(Attempt { error, .. }) => {
                drop(in_flight);
                let (failure, detail, answered) = match &error {
                    MemberError::Connect(e) => {
                        (Failure::Connect, format!("client error (Connect): tcp connect error: {e}"), false)
                    }
                    MemberError::Exchange { error, answered } => {
                        (Failure::Exchange, format!("client error (SendRequest): {error}"), *answered)
                    }
                    MemberError::Invalid(what) => (Failure::Invalid, what.clone(), true),
                    MemberError::ClientGone | MemberError::Timeout(_) => unreachable!("matched above"),
                };
                let reason = failure.reason();
                debug!(member_id = %member.member_id, reason, detail, "member failed");
                outcome::failed(shared, &member.stats, failure);
                if !tried_another && may_try_another(failure, p.idempotent, replayable, answered) {
                    tried_another = true;
                    index = pick(shared, upstream, None, Some(i));
                    if index.is_some() {
                        continue;
                    }
                }
                let answer = Answer::member_failed(&member.member_id, &upstream.cluster_id, reason, &detail);
                upstream.stats.failed(answer.status.as_u16(), started);
                return own_answer(client, answer, p.close, body_left).await;
            }
        };
        outcome::answered(shared, &member.stats, head.status);
        let cookie = sticky_cookie(shared, p.sticky.as_deref(), &member.member_id);
        let close_client = p.close || head.framing == Framing::UntilClose;
        let member_io = Member { stream: &mut stream, limit: pool.io_limit };
        let Scratch { member: member_buf, response: out, .. } = scratch;
        let relayed = relay(client, member_io, &head, member_buf, out, cookie.as_deref(), close_client).await;
        upstream.stats.answered(head.status, started);
        let member_clean = relayed?;
        drop(in_flight);
        if member_clean && head.keep_alive {
            pool.put(member.authority_key(), stream);
        }
        return Ok(!close_client);
    }
    let answer = Answer::no_member_left(&upstream.cluster_id);
    upstream.stats.failed(answer.status.as_u16(), started);
    own_answer(client, answer, p.close, body_left).await
}

/// Writes an answer of the proxy's own; Ok(true) when the client connection can take
/// another request (it asked to keep it, and no body of its request is left unread).
async fn own_answer(client: &mut TcpStream, answer: Answer, close: bool, body_left: u64) -> Result<bool, ClientGone> {
    let close = close || body_left > 0;
    client.write_all(&answer.to_bytes(close)).await.map_err(|_| ClientGone)?;
    Ok(!close)
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
            match parse_response(member_buf, head_method).map_err(MemberError::Invalid)? {
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
