//! The request a member gets on hyper's path (and for upgrades): the client's method,
//! origin-form target and prepared headers, as HTTP/1.1.

use hyper::http::request::Parts;
use hyper::{Method, Request, Uri, Version};

use crate::answers::Answer;
use crate::request_body::ReclaimableBody;

/// The request target the member gets: the client's, in origin form.
fn target(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |p| p.as_str())
}

/// 400 for a target that cannot go to a member.
pub(crate) fn bad_target(parts: &Parts) -> Answer {
    Answer::bad_target(target(parts))
}

/// The request for the member at `authority`.
pub(crate) fn member_request(
    parts: &Parts,
    authority: &str,
    body: ReclaimableBody,
) -> Result<Request<ReclaimableBody>, Answer> {
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
