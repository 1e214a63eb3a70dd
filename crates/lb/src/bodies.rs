//! The response bodies on hyper's path: the proxy's answer, a member's response body
//! (counted in flight until streamed, its connection pooled again at its end, cut off
//! if the member pauses longer than the response timeout) or the proxy's own. The
//! request body is [`crate::request_body`]'s.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use crate::pool::Conn;
use crate::stats::InFlight;

/// What a response body can fail with: the member's connection, or its silence.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy answers with. An enum rather than a boxed body: no allocation per
/// response.
pub(crate) enum ProxyBody {
    /// A member's response.
    Member(TrackedBody),
    /// The proxy's own answer (an error).
    Own(Full<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Member(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Own(body) => {
                Pin::new(body).poll_frame(cx).map(|frame| frame.map(|frame| frame.map_err(|never| match never {})))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Member(body) => body.is_end_stream(),
            ProxyBody::Own(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Member(body) => body.size_hint(),
            ProxyBody::Own(body) => body.size_hint(),
        }
    }
}

/// A member's response body; the request stays in flight until it is streamed (or
/// dropped), and the connection goes back to the pool once it is read to the end.
/// A member that pauses longer than `idle_limit` inside it fails the body, which
/// makes hyper cut the client's response short (the client can tell).
pub(crate) struct TrackedBody {
    inner: Incoming,
    _in_flight: InFlight,
    conn: Option<Conn>,
    idle_limit: Option<Duration>,
    /// Armed the first time the member makes the body wait: most bodies never do.
    idle_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TrackedBody {
    /// A body on a pooled connection, which goes back to the pool at the body's end.
    pub(crate) fn pooled(inner: Incoming, in_flight: InFlight, conn: Conn, idle_limit: Option<Duration>) -> Self {
        let mut body = TrackedBody { inner, _in_flight: in_flight, conn: Some(conn), idle_limit, idle_timer: None };
        if body.inner.is_end_stream() {
            // HEAD, 204, 304, or an empty body: the connection is free already.
            body.release();
        }
        body
    }

    /// A body from a connection that is not pooled (it closes after this response).
    pub(crate) fn unpooled(inner: Incoming, in_flight: InFlight) -> TrackedBody {
        TrackedBody { inner, _in_flight: in_flight, conn: None, idle_limit: None, idle_timer: None }
    }

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.release();
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            // hyper stops polling once is_end_stream says so, so check after each frame too.
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A broken connection is not reused (dropping it closes it).
            Poll::Ready(Some(Err(_))) => this.conn = None,
            Poll::Ready(Some(Ok(_))) => {
                if let (Some(timer), Some(limit)) = (this.idle_timer.as_mut(), this.idle_limit) {
                    timer.as_mut().reset(tokio::time::Instant::now() + limit);
                }
            }
            Poll::Pending => {
                if let Some(limit) = this.idle_limit {
                    let timer = this.idle_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if timer.as_mut().poll(cx).is_ready() {
                        this.conn = None;
                        let error = format!("the member sent nothing for {limit:?} in the middle of a response");
                        return Poll::Ready(Some(Err(error.into())));
                    }
                }
            }
        }
        polled.map(|frame| frame.map(|frame| frame.map_err(BodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
