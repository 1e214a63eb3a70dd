//! Keep-alive connections to members for the HTTP/1.1 forwarding path: plain sockets,
//! one pool per worker. A connection is in the pool only between two exchanges, so a
//! pooled connection has nothing left to read; one that has (the member closed it, or
//! sent stray bytes) is dropped when taken. Held by [`crate::shared::Shared`], used by
//! the forwarding path ([`crate::h1`]).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::idle::{self, IdleConnections, Reusable};

pub(crate) struct MemberPool {
    connect_timeout: Duration,
    /// How long one read or write on a member connection may take (the response timeout).
    pub io_limit: Option<Duration>,
    idle: IdleConnections<TcpStream>,
}

/// A connection to a member, and whether it served an exchange before: a reused
/// connection may turn out closed by the member while it was idle.
pub(crate) struct MemberConn {
    pub stream: TcpStream,
    pub reused: bool,
}

impl MemberPool {
    /// A pool, and the task that closes its idle connections (to run on its worker).
    pub fn new(
        connect_timeout: Duration,
        io_limit: Option<Duration>,
    ) -> (Arc<MemberPool>, impl Future<Output = ()> + Send + 'static) {
        let pool = Arc::new(MemberPool { connect_timeout, io_limit, idle: IdleConnections::default() });
        let sweeper = idle::sweep(Arc::downgrade(&pool), |pool: &MemberPool| &pool.idle);
        (pool, sweeper)
    }

    /// An idle connection to `authority`, else a new one.
    pub async fn get(&self, authority: &str) -> io::Result<MemberConn> {
        if let Some(stream) = self.idle.take(authority) {
            return Ok(MemberConn { stream, reused: true });
        }
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        };
        let _ = stream.set_nodelay(true);
        Ok(MemberConn { stream, reused: false })
    }

    /// Puts a connection that finished an exchange cleanly back.
    pub fn put(&self, authority: &Arc<str>, stream: TcpStream) {
        self.idle.put(authority, stream);
    }
}

/// An idle connection is usable while open with nothing pending. The read this takes
/// is not an extra one per request: it finds the socket empty, so reading the response
/// later waits for the reactor rather than trying (and failing) first.
impl Reusable for TcpStream {
    fn usable(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn idle_connections_are_reused_unless_the_member_closed_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Arc<str> = listener.local_addr().unwrap().to_string().into();
        let (pool, _sweeper) = MemberPool::new(Duration::from_secs(1), None);

        let first = pool.get(&authority).await.unwrap();
        assert!(!first.reused);
        let (accepted, _) = listener.accept().await.unwrap();
        pool.put(&authority, first.stream);
        let again = pool.get(&authority).await.unwrap();
        assert!(again.reused, "an idle open connection is taken again");

        // The member closes it while it is idle: the next request gets a new one.
        pool.put(&authority, again.stream);
        drop(accepted);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fresh = pool.get(&authority).await.unwrap();
        assert!(!fresh.reused, "a connection the member closed was reused");
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let (pool, _sweeper) = MemberPool::new(Duration::from_secs(1), None);
        assert!(pool.get(&closed).await.is_err());
    }
}
