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
//!
//! One concern per file: [`request`] (a head parsed, routed and rewritten),
//! [`exchange`] (a member chosen, the request sent, failures and retries),
//! [`response`] (a response head parsed and relayed with its framing), [`client`] and
//! [`members`] (the two connections' I/O; member connections are pooled by
//! [`crate::member_pool`]). The policy they apply is the crate's, shared
//! with hyper's path: [`crate::identity`], [`crate::choice`], [`crate::headers`],
//! [`crate::outcome`], [`crate::answers`].

mod chunked;
mod client;
mod exchange;
mod members;
mod request;
mod response;
mod rewind;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::answers::Answer;
use crate::downstream::Downstream;
use client::{linger_close, ClientGone, Scratch, READ_CHUNK};
use exchange::forward;
use request::{head_len_of, head_may_end, read_request, Step};

pub(crate) use rewind::Rewind;

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
                        shared.registry.unrouted();
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
                let _ = client.write_all(&Answer::head_too_large(max_head).to_bytes(true)).await;
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
                        let _ = client.write_all(&Answer::head_timeout().to_bytes(true)).await;
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
