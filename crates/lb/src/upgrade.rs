//! HTTP/1.1 upgrades (WebSocket, and any other protocol a member agrees to): the
//! request goes to a member on a connection of its own, `Connection` and `Upgrade`
//! kept; when the member answers 101 the client gets the 101, and from then on the
//! two connections are joined into a tunnel that carries bytes both ways until either
//! side closes.
//!
//! hyper serves such a request on the client side ([`crate::http`] hands it here). The
//! member's upgraded connection waits in the [`Downstream`]'s slot until hyper has
//! written the 101 and given the client's connection back.

use std::sync::Arc;

use hyper::body::{Body, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::bodies::{ProxyBody, ReclaimableBody, TrackedBody};
use crate::http::{
    bad_target, did_not_answer, error_chain, error_response, member_failed, no_member_left, pick, prepare_headers,
    strip_hop_by_hop, upstream_request, Downstream,
};
use crate::pool;
use crate::routing::Upstream;
use crate::stats::InFlight;

/// A member connection switched to another protocol, waiting for the client's.
pub(crate) struct Tunnel {
    member: Upgraded,
    member_id: String,
    cluster_id: String,
    /// The tunnel counts as a request in flight while it is open.
    _in_flight: InFlight,
}

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
    prepare_headers(&mut parts.headers, downstream.forwarded_for.as_ref(), host);
    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    parts.headers.insert(header::UPGRADE, protocol);

    let Some(i) = pick(shared, upstream, sticky, None) else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, no_member_left(&upstream.cluster_id));
    };
    let member = &upstream.members[i];
    let in_flight = member.stats.start();
    let request =
        match upstream_request(&parts, member.authority_key(), ReclaimableBody::Empty(SizeHint::with_exact(0))) {
            Ok(request) => request,
            Err(response) => return response,
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
            Err(_) => {
                return error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    did_not_answer(&member.member_id, &upstream.cluster_id, limit),
                )
            }
        },
    };
    let mut response = match answer {
        Ok(response) => response,
        Err(pool::Error::BadAuthority) => return bad_target(&parts),
        Err(e) => {
            let reason = if e.is_connect() { "cannot connect" } else { "request failed" };
            debug!(member_id = %member.member_id, error = %e, reason, "member failed");
            shared.eject(&member.stats, reason);
            let body = member_failed(&member.member_id, &upstream.cluster_id, reason, &error_chain(&e));
            return error_response(StatusCode::BAD_GATEWAY, body);
        }
    };
    member.stats.record_success_at(std::time::Instant::now);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The member declined: its answer goes to the client like any other.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, ProxyBody::Member(TrackedBody::unpooled(body, in_flight)));
    }
    let member_io = match hyper::upgrade::on(&mut response).await {
        Ok(io) => io,
        Err(e) => {
            let body = member_failed(&member.member_id, &upstream.cluster_id, "upgrade failed", &e.to_string());
            return error_response(StatusCode::BAD_GATEWAY, body);
        }
    };
    let switched_to = response.headers().get(header::UPGRADE).cloned();
    *downstream.tunnel.lock().unwrap() = Some(Tunnel {
        member: member_io,
        member_id: member.member_id.clone(),
        cluster_id: upstream.cluster_id.clone(),
        _in_flight: in_flight,
    });
    let (mut parts, _) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = switched_to {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    Response::from_parts(parts, ProxyBody::Own(Default::default()))
}

/// Joins the client's connection (`client`, with `early` bytes it sent after the
/// request head) to the member's in `tunnel`, until either closes.
pub(crate) async fn join<C>(tunnel: Tunnel, mut client: C, early: &[u8])
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Tunnel { member, member_id, cluster_id, _in_flight } = tunnel;
    let mut member = TokioIo::new(member);
    debug!(%member_id, %cluster_id, "connection upgraded: relaying both ways");
    if !early.is_empty() && member.write_all(early).await.is_err() {
        return;
    }
    match tokio::io::copy_bidirectional(&mut client, &mut member).await {
        Ok((up, down)) => debug!(%member_id, up, down, "upgraded connection closed"),
        Err(e) => debug!(%member_id, error = %e, "upgraded connection ended with an error"),
    }
}
