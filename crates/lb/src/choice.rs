//! Member choice for one request or connection, on every path (HTTP/1.1 forwarding,
//! hyper, upgrades, TCP): the sticky member if it is there and healthy, else the
//! configured algorithm over a snapshot of the members' counters; and whether the
//! response sets the sticky cookie. The algorithms themselves are pure, in
//! [`crate::balance`].

use std::cell::OnceCell;
use std::time::Instant;

use crate::balance::{choose, sticky_choice, sticky_set_cookie, Candidate};
use crate::routing::Upstream;
use crate::shared::Shared;

/// Picks a member of `upstream`: the sticky one if it is still there and healthy, else
/// by the configured algorithm, never `exclude`.
pub(crate) fn pick(
    shared: &Shared,
    upstream: &Upstream,
    sticky: Option<&str>,
    exclude: Option<usize>,
) -> Option<usize> {
    // The clock is read only if a member has been ejected: most requests need not.
    let clock = OnceCell::new();
    let now = || *clock.get_or_init(Instant::now);
    let members = &upstream.members;
    if sticky.is_some() {
        let pinned = sticky_choice(members.iter().map(|m| (m.member_id.as_str(), !m.stats.is_ejected_at(now))), sticky);
        if let Some(i) = pinned.filter(|&i| Some(i) != exclude) {
            return Some(i);
        }
    }
    // Candidate k is member k, or k + 1 from the excluded one on.
    let member_of = |k: usize| match exclude {
        Some(x) if k >= x => k + 1,
        _ => k,
    };
    let count = members.len() - usize::from(exclude.is_some_and(|x| x < members.len()));
    let candidate = |k: usize| {
        let stats = &members[member_of(k)].stats;
        Candidate { in_flight: stats.in_flight(), healthy: !stats.is_ejected_at(now) }
    };
    // A snapshot (counts change under our feet), on the stack for clusters of usual size:
    // this runs for every request.
    const ON_STACK: usize = 16;
    let turn = upstream.stats.next_turn();
    let chosen = if count <= ON_STACK {
        let mut candidates = [Candidate { in_flight: 0, healthy: false }; ON_STACK];
        for (k, c) in candidates[..count].iter_mut().enumerate() {
            *c = candidate(k);
        }
        choose(shared.config.algorithm, &candidates[..count], turn)
    } else {
        let candidates: Vec<Candidate> = (0..count).map(candidate).collect();
        choose(shared.config.algorithm, &candidates, turn)
    };
    chosen.map(member_of)
}

/// The `Set-Cookie` value pinning the client to `member_id`, when stickiness is on and
/// the client is not pinned to it already.
pub(crate) fn sticky_cookie(shared: &Shared, pinned: Option<&str>, member_id: &str) -> Option<String> {
    (shared.config.sticky && pinned != Some(member_id)).then(|| sticky_set_cookie(member_id))
}
