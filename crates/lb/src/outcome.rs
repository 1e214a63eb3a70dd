//! What an exchange with a member means, on every path: a 5xx answer or a failure to
//! connect or exchange ejects the member for a while; any other answer counts as a
//! success (which ends its ejection strikes). A slow member is not ejected (see
//! ARCHITECTURE.md). And which failed requests may go to another member: a connect
//! error always (nothing reached the member), any failure of an idempotent request
//! whose body is whole in hand and of which no response byte came back.

use std::time::Instant;

use crate::shared::Shared;
use crate::stats::MemberStats;

/// Ejects `member` for a 5xx `status`, else records its success.
pub(crate) fn answered(shared: &Shared, member: &MemberStats, status: u16) {
    if (500..600).contains(&status) {
        shared.eject(member, &format!("answered {status}"));
    } else {
        member.record_success_at(Instant::now);
    }
}

/// Why a member got no request through, as the 502 and the ejection log say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Connect,
    Exchange,
    /// An answer that is no HTTP/1.1 response the proxy can relay.
    Invalid,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Connect => "cannot connect",
            Failure::Exchange => "request failed",
            Failure::Invalid => "invalid response",
        }
    }
}

/// Ejects `member` for `failure`.
pub(crate) fn failed(shared: &Shared, member: &MemberStats, failure: Failure) {
    shared.eject(member, failure.reason());
}

/// Whether a request whose attempt failed with `failure` may be sent to another member:
/// `replayable` when its body is whole in hand (or already back in its slot), `answered`
/// when a response byte had come.
pub(crate) fn may_try_another(failure: Failure, idempotent: bool, replayable: bool, answered: bool) -> bool {
    replayable
        && match failure {
            Failure::Connect => true,
            Failure::Exchange => idempotent && !answered,
            Failure::Invalid => false,
        }
}

/// RFC 9110 §9.2.2: methods whose request can be sent twice with the effect of once.
pub(crate) fn is_idempotent(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(m.as_bytes()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "get"] {
            assert!(!is_idempotent(m.as_bytes()), "{m}");
        }
    }

    #[test]
    fn which_failures_go_to_another_member() {
        assert!(may_try_another(Failure::Connect, false, true, false));
        assert!(!may_try_another(Failure::Connect, true, false, false), "the body is half sent");
        assert!(may_try_another(Failure::Exchange, true, true, false));
        assert!(!may_try_another(Failure::Exchange, false, true, false), "a POST may have acted");
        assert!(!may_try_another(Failure::Exchange, true, true, true), "a response had begun");
        assert!(!may_try_another(Failure::Invalid, true, true, false));
    }
}
