//! The client side of the forwarding path: the buffers a connection reuses, how a
//! failed client connection is told apart, and how the proxy closes one it is done with.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes one read asks for.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// Buffers a connection reuses from one request to the next.
#[derive(Default)]
pub(super) struct Scratch {
    /// The request head (and the body bytes read with it) as the member gets it.
    pub request: Vec<u8>,
    /// What the member sends.
    pub member: Vec<u8>,
    /// The response head (and first body bytes) as the client gets it.
    pub response: Vec<u8>,
}

impl Scratch {
    /// Lets go of buffers grown past what a usual exchange needs.
    pub fn shrink(&mut self) {
        for buffer in [&mut self.request, &mut self.member, &mut self.response] {
            if buffer.capacity() > 2 * READ_CHUNK {
                *buffer = Vec::new();
            }
        }
    }
}

/// The client connection failed: it is closed without a word.
pub(super) struct ClientGone;

/// Closes a connection the proxy is done with although the client may still be
/// sending (a head too large, a body not read): its answer would be lost to the reset
/// that closing a socket with unread bytes sends. So it stops writing, then reads and
/// drops what comes for a moment, as nginx's `lingering_close` does.
pub(super) async fn linger_close(client: &mut TcpStream) {
    let _ = client.shutdown().await;
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut total = 0usize;
        while let Ok(n) = client.read(&mut sink).await {
            total += n;
            if n == 0 || total > 1 << 20 {
                break;
            }
        }
    })
    .await;
}
