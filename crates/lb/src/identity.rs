//! Which cluster a request is for, and which member its client is pinned to: the `Host`
//! (or HTTP/2 `:authority`) normalised and routed with the path on the proxy port, and
//! the sticky cookie. Both HTTP paths (and upgrades, which hyper's path hands on) ask
//! here, so a request gets the same 400, 404 or 503 whichever path serves it.

use std::sync::Arc;

use crate::answers::Answer;
use crate::balance::sticky_member;
use crate::routing::{normalized_host, Upstream};
use crate::shared::Shared;

/// A request's destination.
pub(crate) struct Identity {
    pub upstream: Arc<Upstream>,
    /// The member the client's sticky cookie names, when stickiness is on.
    pub sticky: Option<String>,
}

/// Routes a request for `host` (the raw header value, None when absent) and `path` on
/// proxy port `port`; `cookies` (the `Cookie` header values) are read only with
/// stickiness on.
pub(crate) fn identify<'a>(
    shared: &Shared,
    port: u16,
    host: Option<&[u8]>,
    path: &str,
    cookies: impl Iterator<Item = &'a str>,
) -> Result<Identity, Answer> {
    let raw = host.ok_or_else(Answer::no_host)?;
    let raw = std::str::from_utf8(raw).map_err(|_| Answer::bad_host(&String::from_utf8_lossy(raw)))?;
    let host = normalized_host(raw).ok_or_else(|| Answer::bad_host(raw))?;
    let upstream =
        shared.table().route_http(port, &host, path).cloned().ok_or_else(|| Answer::no_cluster(&host, port))?;
    if upstream.members.is_empty() {
        return Err(Answer::no_active_member(&upstream.cluster_id));
    }
    let sticky = if shared.config.sticky { sticky_member(cookies) } else { None };
    Ok(Identity { upstream, sticky })
}
