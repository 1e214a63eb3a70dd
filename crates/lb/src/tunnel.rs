//! An upgraded connection: once a member has switched protocols ([`crate::upgrade`])
//! and the client has its 101, the two connections are joined byte for byte until
//! either closes. No timeout: a quiet WebSocket is not a slow member.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::stats::InFlight;

/// A member connection switched to another protocol, waiting for the client's.
pub(crate) struct Tunnel {
    pub member: Upgraded,
    pub member_id: String,
    pub cluster_id: String,
    /// The tunnel counts as a request in flight while it is open.
    pub in_flight: InFlight,
}

/// Joins the client's connection (`client`, with `early` bytes it sent after the
/// request head) to the member's in `tunnel`, until either closes.
pub(crate) async fn join<C>(tunnel: Tunnel, mut client: C, early: &[u8])
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Tunnel { member, member_id, cluster_id, in_flight } = tunnel;
    let mut member = TokioIo::new(member);
    debug!(%member_id, %cluster_id, "connection upgraded: relaying both ways");
    if !early.is_empty() && member.write_all(early).await.is_err() {
        return;
    }
    match tokio::io::copy_bidirectional(&mut client, &mut member).await {
        Ok((up, down)) => debug!(%member_id, up, down, "upgraded connection closed"),
        Err(e) => debug!(%member_id, error = %e, "upgraded connection ended with an error"),
    }
    drop(in_flight);
}
