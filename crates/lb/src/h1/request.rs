//! A request head on the forwarding path: parsed where it lies in the client's buffer,
//! routed ([`crate::identity`]), and rewritten for the member into one buffer
//! ([`crate::headers`]); or answered by the proxy ([`crate::answers`]), or handed to
//! hyper's path when it is not plain to forward.

use std::sync::Arc;

use crate::answers::Answer;
use crate::downstream::Downstream;
use crate::headers::{
    connection_tokens, forwarded_for_values, is_forwarded_for, push_forwarded, push_header, request_drops,
};
use crate::identity::{identify, Identity};
use crate::outcome::is_idempotent;
use crate::routing::Upstream;

/// The most header fields a request or response may have (hyper's limit too).
pub(super) const MAX_HEADERS: usize = 100;

/// What to do with the bytes read from the client so far.
pub(super) enum Step {
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
pub(super) struct Prepared {
    pub upstream: Arc<Upstream>,
    /// Length of the head in the client's buffer.
    pub head_len: usize,
    pub content_length: u64,
    /// The client asked for the connection to close after this exchange.
    pub close: bool,
    /// A `HEAD` request: the response has no body, whatever its headers say.
    pub head_method: bool,
    pub idempotent: bool,
    pub sticky: Option<String>,
}

/// Whether the bytes from `scanned` on (with the three before, where an end may
/// straddle two reads) hold an empty line, without which no head is complete: a head
/// arriving a few bytes at a time is not parsed again from its start after every read,
/// which would cost time in the square of its length.
pub(super) fn head_may_end(buf: &[u8], scanned: usize) -> bool {
    let tail = &buf[scanned.saturating_sub(3).min(buf.len())..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Length of the (complete) request head at the start of `buf`.
pub(super) fn head_len_of(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => buf.len(),
    }
}

pub(super) fn read_request(down: &Downstream, buf: &[u8], max_head: usize, out: &mut Vec<u8>) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head => answer(Answer::head_too_large(max_head), true, 0),
        Ok(httparse::Status::Complete(n)) => prepare(down, &req, n, out),
        Ok(httparse::Status::Partial) => Step::NeedMore,
        Err(httparse::Error::TooManyHeaders) => answer(Answer::too_many_headers(MAX_HEADERS), true, 0),
        Err(e) => answer(Answer::malformed_head(e), true, 0),
    }
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
                return answer(Answer::two_hosts(), true, 0);
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
            close |= connection_tokens(h.value, &mut named);
        }
    }
    let body = content_length.unwrap_or(0);
    let cookies = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok());
    let Identity { upstream, sticky } = match identify(&down.shared, down.port, host, path, cookies) {
        Ok(identity) => identity,
        Err(refused) => return answer(refused, close, body),
    };
    // Routed, so there is one.
    let raw_host = host.unwrap_or_default();

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if is_forwarded_for(name) {
            forwarded_for.extend(forwarded_for_values(h.value));
        }
        if !request_drops(name, &named) {
            push_header(out, name, h.value);
        }
    }
    push_forwarded(out, raw_host, &forwarded_for, down.forwarded_for.as_ref());
    out.extend_from_slice(b"\r\n");

    Step::Forward(Prepared {
        upstream,
        head_len,
        content_length: body,
        close,
        head_method: method == "HEAD",
        idempotent: is_idempotent(method.as_bytes()),
        sticky,
    })
}

/// A `Content-Length` value: digits only (no sign, no list), as RFC 9110 §8.6 has it.
pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The proxy answers itself; the connection closes after it if the client asked, or
/// if a request body is left unread.
fn answer(answer: Answer, close: bool, request_body: u64) -> Step {
    let close = close || request_body > 0;
    Step::Answer { response: answer.to_bytes(close), close, body: request_body }
}

#[cfg(test)]
mod tests {
    use super::*;

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
