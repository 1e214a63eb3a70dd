//! Which headers cross the proxy, and what it adds: hop-by-hop headers (RFC 9110 §7.6.1,
//! and those `Connection` names) never go on; a member gets `Host` and
//! `X-Forwarded-Host` as the client asked, `X-Forwarded-For` with the client's address
//! appended, and `X-Forwarded-Proto`. The rules are here once, in the two forms the
//! paths need: over raw header bytes for the HTTP/1.1 forwarding path (which writes a
//! head into one buffer without a header map) and over hyper's [`HeaderMap`] for
//! hyper's path and upgrades.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers meaningful for one connection only, never forwarded either way.
/// `Transfer-Encoding` is one of them, but the HTTP/1.1 forwarding path relays a
/// response's chunks as they are, so it keeps that header true (see [`response_drops`]).
const HOP_BY_HOP_NAMES: [&str; 9] = [
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

/// The headers the proxy sets itself on a request: the client's are replaced.
const PROXY_SET_NAMES: [&str; 4] = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// [`HOP_BY_HOP_NAMES`] as names: removing by a string would parse it on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static(HOP_BY_HOP_NAMES[0]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[1]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[2]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[3]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[4]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[5]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[6]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[7]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[8]),
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static(PROXY_SET_NAMES[1]);
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(PROXY_SET_NAMES[2]);
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static(PROXY_SET_NAMES[3]);

/// The scheme members are told the client used (the proxy terminates no TLS).
const PROTO: &str = "http";

fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP_NAMES.iter().any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
}

/// The header names a `Connection` value lists, besides `close` and `keep-alive`: they
/// are hop-by-hop too. Also reports whether the client asked to close.
pub(crate) fn connection_tokens<'a>(value: &'a [u8], named: &mut Vec<&'a [u8]>) -> bool {
    let mut close = false;
    for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if token.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
            named.push(token);
        }
    }
    close
}

/// Whether a request header stays out of the head the member gets: hop-by-hop, named by
/// `Connection` (`named`), or one the proxy sets itself.
pub(crate) fn request_drops(name: &[u8], named: &[&[u8]]) -> bool {
    is_hop_by_hop(name)
        || PROXY_SET_NAMES.iter().any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
        || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether a response header stays out of the head the client gets. `Transfer-Encoding`
/// stays: the body is relayed with the member's framing.
pub(crate) fn response_drops(name: &[u8], named: &[&[u8]]) -> bool {
    (is_hop_by_hop(name) && !name.eq_ignore_ascii_case(b"transfer-encoding"))
        || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// One `name: value` line.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the headers the proxy sets to a request head in `out`: `Host` and
/// `X-Forwarded-Host` (`host`, as the client sent it), `X-Forwarded-For` (the values
/// the client sent, then `client`) and `X-Forwarded-Proto`.
pub(crate) fn push_forwarded(out: &mut Vec<u8>, host: &[u8], previous_for: &[&[u8]], client: Option<&HeaderValue>) {
    push_header(out, b"Host", host);
    if let Some(client) = client {
        out.extend_from_slice(b"X-Forwarded-For: ");
        for previous in previous_for {
            out.extend_from_slice(previous);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    push_header(out, b"X-Forwarded-Proto", PROTO.as_bytes());
    push_header(out, b"X-Forwarded-Host", host);
}

/// The addresses an `X-Forwarded-For` value lists.
pub(crate) fn forwarded_for_values(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|v| !v.is_empty())
}

/// Whether a request header is `X-Forwarded-For`.
pub(crate) fn is_forwarded_for(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(PROXY_SET_NAMES[1].as_bytes())
}

/// Drops hop-by-hop headers, and those `Connection` names, from a header map.
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
pub(crate) fn prepare_request(headers: &mut HeaderMap, forwarded_for: Option<&HeaderValue>, host: &HeaderValue) {
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
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(PROTO));
    headers.insert(X_FORWARDED_HOST, host.clone());
    // HTTP/2 clients name the host in :authority; members get HTTP/1.1 with Host.
    headers.insert(header::HOST, host.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_in_a_map() {
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
        prepare_request(&mut h, Some(&client), &HeaderValue::from_static("Web.Example.com:8280"));
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
    fn forwarded_headers_as_bytes() {
        let mut named = Vec::new();
        assert!(!connection_tokens(b"keep-alive, X-Secret", &mut named));
        assert!(connection_tokens(b"Close", &mut Vec::new()));
        for gone in ["Connection", "x-secret", "Keep-Alive", "Upgrade", "TE", "Host", "X-Forwarded-Proto"] {
            assert!(request_drops(gone.as_bytes(), &named), "{gone} forwarded");
        }
        assert!(!request_drops(b"X-App", &named));
        let mut out = Vec::new();
        let previous: Vec<&[u8]> = forwarded_for_values(b"1.1.1.1, ,2.2.2.2").collect();
        push_forwarded(&mut out, b"Web.Example.com:8280", &previous, Some(&HeaderValue::from_static("10.1.2.3")));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Host: Web.Example.com:8280\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: Web.Example.com:8280\r\n"
        );
    }

    #[test]
    fn responses_keep_their_framing() {
        assert!(!response_drops(b"Transfer-Encoding", &[]));
        assert!(response_drops(b"Keep-Alive", &[]));
        assert!(response_drops(b"X-Secret", &[b"x-secret"]));
        assert!(!response_drops(b"Content-Length", &[]));
    }
}
