//! Keep-alive connections to members for the HTTP/1.1 forwarding path: plain sockets,
//! one pool per worker. A connection is in the pool only between two exchanges, so a
//! pooled connection has nothing left to read; one that has (the member closed it, or
//! sent stray bytes) is dropped when taken.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::TcpStream;

/// How long a connection may stay idle: closed after one to two of these.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct MemberPool {
    connect_timeout: Duration,
    /// Idle connections by member authority (`host:port`); the last released is reused first.
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>>>,
}

struct Idle {
    stream: TcpStream,
    /// Idle through a whole sweep already: closed at the next one.
    swept: bool,
}

/// A connection to a member, and whether it served an exchange before: a reused
/// connection may turn out closed by the member while it was idle.
pub(crate) struct MemberConn {
    pub stream: TcpStream,
    pub reused: bool,
}

impl MemberPool {
    /// A pool, and the task that closes its idle connections (to run on its worker).
    pub fn new(connect_timeout: Duration) -> (Arc<MemberPool>, impl Future<Output = ()> + Send + 'static) {
        let pool = Arc::new(MemberPool { connect_timeout, idle: Mutex::default() });
        let sweeper = sweep(Arc::downgrade(&pool));
        (pool, sweeper)
    }

    /// An idle connection to `authority`, else a new one.
    pub async fn get(&self, authority: &str) -> io::Result<MemberConn> {
        if let Some(stream) = self.take_idle(authority) {
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
        let mut idle = self.idle.lock().unwrap();
        match idle.get_mut(authority) {
            Some(list) => list.push(Idle { stream, swept: false }),
            None => {
                idle.insert(authority.clone(), vec![Idle { stream, swept: false }]);
            }
        }
    }

    fn take_idle(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(authority)?;
        while let Some(Idle { stream, .. }) = list.pop() {
            if nothing_to_read(&stream) {
                return Some(stream);
            }
        }
        None
    }
}

/// Whether an idle connection is still open with nothing pending. The read this takes
/// is not an extra one per request: it finds the socket empty, so reading the response
/// later waits for the reactor rather than trying (and failing) first.
fn nothing_to_read(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Every [`IDLE_TIMEOUT`], closes the connections idle since the previous sweep, until
/// the pool is gone.
async fn sweep(pool: Weak<MemberPool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap();
        for list in idle.values_mut() {
            list.retain_mut(|i| {
                let keep = !i.swept && nothing_to_read(&i.stream);
                i.swept = true;
                keep
            });
        }
        idle.retain(|_, list| !list.is_empty());
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
        let (pool, _sweeper) = MemberPool::new(Duration::from_secs(1));

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
        let (pool, _sweeper) = MemberPool::new(Duration::from_secs(1));
        assert!(pool.get(&closed).await.is_err());
    }
}
