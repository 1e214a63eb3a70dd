//! HTTP/1.1 upgrades (WebSocket, and any other protocol a member agrees to): the
//! request goes to a member on a connection of its own, `Connection` and `Upgrade`
//! kept; when the member answers 101 the client gets the 101, and from then on the
//! two connections are joined into a tunnel that carries bytes both ways until either
//! side closes.
//!
//! hyper serves such a request on the client side ([`crate::http`] hands it here). The
//! member's upgraded connection waits in the [`Downstream`]'s slot until hyper has
//! written the 101 and given the client's connection back; [`crate::tunnel`] joins them.

use std::sync::Arc;

use hyper::body::{Body, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Version};
use tracing::debug;

use crate::answers::{error_chain, Answer};
use crate::bodies::{ProxyBody, TrackedBody};
use crate::choice::pick;
use crate::downstream::Downstream;
use crate::headers::{prepare_request, strip_hop_by_hop};
use crate::member_request::{bad_target, member_request};
use crate::outcome::{self, Failure};
use crate::pool;
use crate::request_body::ReclaimableBody;
use crate::routing::Upstream;
use crate::tunnel::Tunnel;

/// The protocol an HTTP/1.1 request asks to switch to, if it asks (`Connection:
/// upgrade` and `Upgrade`) and has no body to send first.
pub(crate) fn requested(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 || !req.body().is_end_stream() {
        return None;
    }
    let connection_says_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_says_upgrade.then(|| req.headers().get(header::UPGRADE).cloned()).flatten()
}

/// Sends the upgrade request to a member of `upstream` and answers with the member's
/// response; on a 101 the member's connection is left in `downstream`'s slot.
pub(crate) async fn proxy(
    downstream: &Downstream,
    mut parts: Parts,
    upstream: &Arc<Upstream>,
    sticky: Option<&str>,
    protocol: HeaderValue,
    host: &HeaderValue,
) -> Response<ProxyBody> {
    let shared = &*downstream.shared;
    prepare_request(&mut parts.headers, downstream.forwarded_for.as_ref(), host);
    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(header::UPGRADE, protocol);

    let Some(i) = pick(shared, upstream, sticky, None) else {
        return Answer::no_member_left(&upstream.cluster_id).into_response();
    };
    let member = &upstream.members[i];
    let in_flight = member.stats.start();
    let request = match member_request(&parts, member.authority_key(), ReclaimableBody::Empty(SizeHint::with_exact(0)))
    {
        Ok(request) => request,
        Err(answer) => return answer.into_response(),
    };
    let pool = &shared.pools[downstream.worker];
    let exchange = async {
        let mut sender = pool.connect(member.authority_key()).await?;
        sender.send_request(request).await.map_err(pool::Error::Request)
    };
    let answer = match shared.config.response_limit() {
        None => exchange.await,
        Some(limit) => match tokio::time::timeout(limit, exchange).await {
            Ok(answer) => answer,
            Err(_) => return Answer::did_not_answer(&member.member_id, &upstream.cluster_id, limit).into_response(),
        },
    };
    let mut response = match answer {
        Ok(response) => response,
        Err(pool::Error::BadAuthority) => return bad_target(&parts).into_response(),
        Err(e) => {
            let failure = if e.is_connect() { Failure::Connect } else { Failure::Exchange };
            debug!(member_id = %member.member_id, error = %e, reason = failure.reason(), "member failed");
            outcome::failed(shared, &member.stats, failure);
            let detail = error_chain(&e);
            return Answer::member_failed(&member.member_id, &upstream.cluster_id, failure.reason(), &detail)
                .into_response();
        }
    };
    outcome::answered(shared, &member.stats, response.status().as_u16());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The member declined: its answer goes to the client like any other.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, ProxyBody::Member(TrackedBody::unpooled(body, in_flight)));
    }
    let member_io = match hyper::upgrade::on(&mut response).await {
        Ok(io) => io,
        Err(e) => {
            let detail = e.to_string();
            return Answer::member_failed(&member.member_id, &upstream.cluster_id, "upgrade failed", &detail)
                .into_response();
        }
    };
    let switched_to = response.headers().get(header::UPGRADE).cloned();
    *downstream.tunnel.lock().unwrap() = Some(Tunnel {
        member: member_io,
        member_id: member.member_id.clone(),
        cluster_id: upstream.cluster_id.clone(),
        in_flight,
    });
    let (mut parts, _) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = switched_to {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    Response::from_parts(parts, ProxyBody::Own(Default::default()))
}
