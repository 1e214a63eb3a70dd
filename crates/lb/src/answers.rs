//! The proxy's own answers: every response the load balancer makes up itself rather than
//! relays (400, 404, 408, 431, 502, 503, 504), each a JSON body saying what went wrong
//! and naming the host, cluster or member it concerns. One [`Answer`] per case, written
//! as bytes by the HTTP/1.1 forwarding path ([`Answer::to_bytes`]) and as a hyper
//! response by hyper's path and upgrades ([`Answer::into_response`]), so both say the
//! same thing.

use std::error::Error as StdError;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::bodies::ProxyBody;

/// A response of the proxy's own.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Answer {
    fn new(status: StatusCode, body: serde_json::Value) -> Answer {
        Answer { status, body }
    }

    /// 400: the request names no host.
    pub fn no_host() -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, serde_json::json!({"error": "the request has no Host header"}))
    }

    /// 400: the request names two (a request smuggling tell).
    pub fn two_hosts() -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, serde_json::json!({"error": "more than one Host header"}))
    }

    /// 400: a `Host` that is no host name (or address) with an optional port.
    pub fn bad_host(raw: &str) -> Answer {
        Answer::new(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("bad Host header {raw:?}"), "host": raw}),
        )
    }

    /// 400: a request target the member could not be sent (not origin form).
    pub fn bad_target(target: &str) -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("bad request target {target:?}")}))
    }

    /// 400: what the client sent is no HTTP request head.
    pub fn malformed_head(error: impl std::fmt::Display) -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("malformed request head: {error}")}))
    }

    /// 404: no cluster serves the host (or tenant path) on this port.
    pub fn no_cluster(host: &str, port: u16) -> Answer {
        Answer::new(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no cluster serves host {host:?} on port {port}"), "host": host}),
        )
    }

    /// 408, as HAProxy sends it: the request head did not arrive within the header timeout.
    pub fn head_timeout() -> Answer {
        Answer::new(
            StatusCode::REQUEST_TIMEOUT,
            serde_json::json!({"error": "the request head did not arrive in time"}),
        )
    }

    /// 431: a request head over `--lb-max-header-bytes`.
    pub fn head_too_large(max_head: usize) -> Answer {
        Answer::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            serde_json::json!({"error": format!("the request head is over {max_head} bytes")}),
        )
    }

    /// 431: more header fields than the parser takes.
    pub fn too_many_headers(max: usize) -> Answer {
        Answer::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            serde_json::json!({"error": format!("more than {max} header fields")}),
        )
    }

    /// 502: which member of which cluster failed, how, and the detail.
    pub fn member_failed(member_id: &str, cluster_id: &str, reason: &str, detail: &str) -> Answer {
        Answer::new(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({
                "error": format!("member {member_id} of cluster {cluster_id}: {reason}: {detail}"),
                "clusterId": cluster_id,
                "memberId": member_id,
            }),
        )
    }

    /// 503: the cluster has no active member at all.
    pub fn no_active_member(cluster_id: &str) -> Answer {
        Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "error": format!("cluster {cluster_id} has no active member"),
                "clusterId": cluster_id,
            }),
        )
    }

    /// 503: every member of the cluster failed or is ejected.
    pub fn no_member_left(cluster_id: &str) -> Answer {
        Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "error": format!("cluster {cluster_id} has no member left to try"),
                "clusterId": cluster_id,
            }),
        )
    }

    /// 504: which member of which cluster, and the response timeout it overran.
    pub fn did_not_answer(member_id: &str, cluster_id: &str, limit: Duration) -> Answer {
        Answer::new(
            StatusCode::GATEWAY_TIMEOUT,
            serde_json::json!({
                "error": format!("member {member_id} of cluster {cluster_id} did not answer within {limit:?}"),
                "clusterId": cluster_id,
                "memberId": member_id,
            }),
        )
    }

    /// The whole response as HTTP/1.1 bytes, with `connection: close` when the client
    /// connection ends after it.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let body = self.body.to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
            self.status.as_str(),
            self.status.canonical_reason().unwrap_or(""),
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .into_bytes()
    }

    /// The response for hyper to send.
    pub fn into_response(self) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::Own(Full::new(Bytes::from(self.body.to_string()))));
        *response.status_mut() = self.status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// An error with its sources, `a: b: c`, for a 502's detail.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_response_say_the_same() {
        let answer = Answer::no_member_left("web.1");
        let bytes = String::from_utf8(answer.to_bytes(true)).unwrap();
        assert_eq!(
            bytes,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 71\r\n\
             connection: close\r\n\r\n{\"clusterId\":\"web.1\",\"error\":\"cluster web.1 has no member left to try\"}"
        );
        let response = Answer::no_member_left("web.1").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let keep = String::from_utf8(Answer::head_timeout().to_bytes(false)).unwrap();
        assert!(keep.starts_with("HTTP/1.1 408 Request Timeout\r\n") && !keep.contains("connection"), "{keep}");
    }

    #[test]
    fn answers_name_what_they_concern() {
        let failed = Answer::member_failed("m1", "web.1", "cannot connect", "refused");
        assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
        assert_eq!(failed.body["memberId"], "m1");
        assert_eq!(failed.body["error"], "member m1 of cluster web.1: cannot connect: refused");
        let slow = Answer::did_not_answer("m1", "web.1", Duration::from_secs(2));
        assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(slow.body["error"], "member m1 of cluster web.1 did not answer within 2s");
        assert_eq!(Answer::no_cluster("a.test", 8280).body["host"], "a.test");
        assert_eq!(Answer::bad_host("a b").status, StatusCode::BAD_REQUEST);
    }
}
