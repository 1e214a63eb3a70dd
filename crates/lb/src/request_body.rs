//! The client's request body on hyper's path, which can go to another member if the
//! first cannot be reached.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

/// The client's request body, handed to the member's request only when first polled:
/// if connecting fails, the body is still in the slot and can go to another member.
pub(crate) enum ReclaimableBody {
    /// A body at its end from the start (hyper does not poll those).
    Empty(SizeHint),
    Slot {
        slot: Arc<Mutex<Option<Incoming>>>,
        taken: Option<Incoming>,
        size_hint: SizeHint,
        /// When the body had gone out whole: the member's time to answer starts then.
        sent: Arc<OnceLock<Instant>>,
    },
}

impl Body for ReclaimableBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let ReclaimableBody::Slot { slot, taken, sent, .. } = self.get_mut() else {
            return Poll::Ready(None);
        };
        if taken.is_none() {
            match slot.lock().unwrap().take() {
                Some(body) => *taken = Some(body),
                None => return Poll::Ready(None),
            }
        }
        let body = taken.as_mut().expect("taken above");
        let polled = Pin::new(&mut *body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || body.is_end_stream() {
            let _ = sent.set(Instant::now());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReclaimableBody::Empty(_) => true,
            ReclaimableBody::Slot { taken, .. } => taken.as_ref().is_some_and(Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReclaimableBody::Empty(size_hint) => *size_hint,
            ReclaimableBody::Slot { taken, size_hint, .. } => taken.as_ref().map_or(*size_hint, Body::size_hint),
        }
    }
}
