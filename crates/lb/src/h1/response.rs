//! A member's response on the forwarding path: its head parsed for its framing, then
//! written for the client without hop-by-hop headers ([`crate::headers`]) and the body
//! relayed as it is (a length, chunks, or until the member closes).

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::chunked::ChunkedEnd;
use super::client::{ClientGone, READ_CHUNK};
use super::members::Member;
use super::request::{parse_length, MAX_HEADERS};
use crate::headers::{connection_tokens, push_header, response_drops};

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// When the member closes the connection.
    UntilClose,
}

/// A member's response head, parsed.
pub(super) struct ResponseHead {
    pub status: u16,
    pub head_len: usize,
    pub framing: Framing,
    /// The member keeps the connection open after this response.
    pub keep_alive: bool,
}

/// The member's response head at the start of `buf`: None while incomplete, Err with
/// what is wrong with it.
pub(super) fn parse_response(buf: &[u8], head_method: bool) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let status = res.code.unwrap_or(0);
    let mut keep_alive = res.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_length(h.value).ok_or_else(|| "bad Content-Length".to_string())?;
            if length.is_some_and(|l| l != parsed) {
                return Err("conflicting Content-Length headers".into());
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

/// Writes the response head for the client (from the member's, at the start of
/// `member_buf`, into `out`) and relays the body. Ok(true) when the member connection
/// ended the exchange cleanly and can take another request.
pub(super) async fn relay(
    client: &mut TcpStream,
    mut member: Member<'_>,
    head: &ResponseHead,
    member_buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    cookie: Option<&str>,
    close_client: bool,
) -> Result<bool, ClientGone> {
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
        connection_tokens(h.value, &mut named);
    }
    for h in res.headers.iter() {
        if !response_drops(h.name.as_bytes(), &named) {
            push_header(out, h.name.as_bytes(), h.value);
        }
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
}
