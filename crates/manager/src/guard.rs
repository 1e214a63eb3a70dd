//! What keeps a browser from being turned against the API: requests from a web page
//! carry an `Origin` (refused unless allowed), a rebound DNS name shows in `Host`
//! (refused unless it is an address, `localhost` or a configured name), and a form or
//! `fetch` without a preflight can only send `text/plain`, form or multipart bodies
//! (refused: bodies are JSON or YAML).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The media types request bodies may have.
pub const BODY_TYPES: &[&str] =
    &["application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"];

pub async fn browser_guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Err(e) = check(&state.config.allowed_origins, &state.config.names, request.headers()) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), status = e.status.as_u16(), error = %e.error, "request refused");
        return e.into_response();
    }
    next.run(request).await
}

/// The checks, pure: Host, then Origin, then the body's media type.
pub fn check(allowed_origins: &[String], names: &[String], headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !host_allowed(host, names) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!("Host {host:?} is not a name of this API; add it with --api-name"),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !allowed_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("requests from web pages of origin {origin:?} are refused; allow it with --api-allow-origin"),
            ));
        }
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if has_body && !headers.contains_key(header::CONTENT_TYPE) {
        // `fetch` sends a Blob body without a type and without asking first.
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body needs a Content-Type: application/json or application/yaml",
        ));
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let json_suffix = essence.starts_with("application/") && essence.ends_with("+json");
        if !(BODY_TYPES.contains(&essence.as_str()) || json_suffix) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type {content_type:?} is not supported; use application/json or application/yaml"),
            ));
        }
    }
    Ok(())
}

/// An IP address (no DNS name to rebind), `localhost`, or a configured name; any port.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        },
        None => host.rsplit_once(':').map_or(
            host,
            |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    host
                }
            },
        ),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || names.iter().any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hosts_are_addresses_localhost_or_configured_names() {
        let names = vec!["stratos.example.com".to_string()];
        for ok in [
            "127.0.0.1:9443",
            "127.0.0.1",
            "[::1]:9443",
            "localhost:9443",
            "LOCALHOST",
            "stratos.example.com:443",
            "10.1.2.3",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in ["evil.example:9443", "attacker.localhost", "stratos.example.com.evil", "[::1", "127.0.0.1.nip.io"] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn foreign_origins_and_plain_text_bodies_are_refused() {
        let none: Vec<String> = vec![];
        let e = check(&none, &none, &headers(&[(header::ORIGIN, "http://evil.example")])).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let allowed = vec!["https://console.example".to_string()];
        assert!(check(&allowed, &none, &headers(&[(header::ORIGIN, "https://console.example")])).is_ok());
        let e = check(&none, &none, &headers(&[(header::CONTENT_TYPE, "text/plain")])).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        for t in ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert!(check(&none, &none, &headers(&[(header::CONTENT_TYPE, t)])).is_err(), "{t}");
        }
        for t in
            ["application/json", "application/json; charset=utf-8", "application/yaml", "application/merge-patch+json"]
        {
            assert!(check(&none, &none, &headers(&[(header::CONTENT_TYPE, t)])).is_ok(), "{t}");
        }
        let e = check(&none, &none, &headers(&[(header::CONTENT_LENGTH, "12")])).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "a body without a type");
        assert!(check(&none, &none, &headers(&[(header::CONTENT_LENGTH, "0")])).is_ok(), "no body, no type needed");
        let e = check(&none, &none, &headers(&[(header::HOST, "rebound.example:9443")])).unwrap_err();
        assert_eq!(e.status, StatusCode::MISDIRECTED_REQUEST);
    }
}
