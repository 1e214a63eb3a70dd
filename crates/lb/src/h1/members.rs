//! I/O on a member connection of the forwarding path, under the response timeout: a
//! member that takes longer for one read or write is slow, told apart from one that
//! failed.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A member connection whose reads and writes each fail with [`ResponseTimedOut`]
/// after `limit`.
pub(super) struct Member<'a> {
    pub stream: &'a mut TcpStream,
    pub limit: Option<Duration>,
}

impl Member<'_> {
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        within(self.limit, self.stream.read_buf(buf)).await
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        within(self.limit, self.stream.write_all(bytes)).await
    }
}

async fn within<T>(limit: Option<Duration>, io: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    match limit {
        None => io.await,
        Some(limit) => tokio::time::timeout(limit, io)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, ResponseTimedOut))),
    }
}

/// The response timeout ran out: told apart from the kernel's own `ETIMEDOUT` (a
/// member gone unreachable, which is a failure to eject for, not slowness).
#[derive(Debug)]
struct ResponseTimedOut;

impl std::fmt::Display for ResponseTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the member took too long")
    }
}

impl std::error::Error for ResponseTimedOut {}

pub(super) fn is_response_timeout(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<ResponseTimedOut>())
}
