//! Keep-alive HTTP/1.1 connections to members: one pool per worker, whose connections
//! are driven by tasks on that worker.
//!
//! It takes the place of hyper-util's pooled client, which for every request raced a
//! pool checkout against a lazy connect, rebuilt the request's absolute URI, and spawned
//! a task to put the connection back once the response had been read. Here a request
//! takes an idle connection (or makes one) and the response body puts it back when it
//! ends ([`Conn::release`]). Like that client, a request is sent again on another
//! connection when an idle one turns out closed before taking it; idle connections are
//! closed after 30 to 60 s.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::idle::{self, IdleConnections, Reusable};
use crate::request_body::ReclaimableBody;

type Sender = SendRequest<ReclaimableBody>;

pub(crate) struct Pool {
    connect_timeout: Duration,
    idle: IdleConnections<Sender>,
}

impl Reusable for Sender {
    fn usable(&self) -> bool {
        self.is_ready()
    }
}

/// A connection in use; the response body releases it for the next request once read.
pub(crate) struct Conn {
    pool: Arc<Pool>,
    authority: Arc<str>,
    sender: Sender,
}

impl Conn {
    /// Puts the connection back in its pool once it can take another request: at once
    /// as a rule (when a response has been read, so has the exchange), else (say a
    /// request body still going out) when it is, from a task.
    pub fn release(self) {
        let Conn { pool, authority, mut sender } = self;
        if sender.is_ready() {
            pool.idle.put(&authority, sender);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.idle.put(&authority, sender);
                }
            });
        }
    }
}

impl Pool {
    /// A pool, and the task that closes its idle connections (to run on its worker).
    pub fn new(connect_timeout: Duration) -> (Arc<Pool>, impl Future<Output = ()> + Send + 'static) {
        let pool = Arc::new(Pool { connect_timeout, idle: IdleConnections::default() });
        let sweeper = idle::sweep(Arc::downgrade(&pool), |pool: &Pool| &pool.idle);
        (pool, sweeper)
    }

    /// Sends `request` to the member at `authority` (`host:port`, see
    /// [`Endpoint`](crate::routing::Endpoint)), on an idle connection or a new one.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Arc<str>,
        mut request: Request<ReclaimableBody>,
    ) -> Result<(Response<Incoming>, Conn), Error> {
        while let Some(mut sender) = self.idle.take(authority) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.conn(authority, sender))),
                Err(mut e) => match e.take_message() {
                    // Closed before the request went out: it can go on another connection.
                    Some(unsent) => request = unsent,
                    None => return Err(Error::Request(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        // A new connection takes its first request without waiting to be ready.
        let response = sender.send_request(request).await.map_err(Error::Request)?;
        Ok((response, self.conn(authority, sender)))
    }

    fn conn(self: &Arc<Self>, authority: &Arc<str>, sender: Sender) -> Conn {
        Conn { pool: self.clone(), authority: authority.clone(), sender }
    }

    /// A new connection to the member at `authority`, outside the pool: [`Pool::send`]
    /// uses it when no idle one is left, and an upgrade keeps it for its tunnel.
    pub(crate) async fn connect(&self, authority: &str) -> Result<Sender, Error> {
        if authority.parse::<hyper::http::uri::Authority>().is_err() {
            return Err(Error::BadAuthority);
        }
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::Connect(ConnectError(e))),
            Err(elapsed) => return Err(Error::Connect(ConnectError(io::Error::new(io::ErrorKind::TimedOut, elapsed)))),
        };
        let _ = stream.set_nodelay(true);
        // One buffer per write, as on the client side (see `http::serve`): cheaper than
        // handing the kernel a head and a body apart.
        let (sender, connection) =
            http1::Builder::new().writev(false).handshake(TokioIo::new(stream)).await.map_err(Error::Request)?;
        // On this worker, like the requests that will use it. With upgrades: a connection
        // that never switches protocols runs just the same.
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                debug!(error = %e, "member connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Why a request got no response from a member.
#[derive(Debug)]
pub(crate) enum Error {
    /// No connection to the member.
    Connect(ConnectError),
    /// The member's address is no valid URI authority.
    BadAuthority,
    /// The connection failed while sending the request or reading the response head.
    Request(hyper::Error),
}

impl Error {
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }
}

// Worded as hyper-util's client errors were: 502 answers quote them.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Connect(_) => "client error (Connect)",
            Error::BadAuthority => "bad member address",
            Error::Request(_) => "client error (SendRequest)",
        })
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Connect(e) => Some(e),
            Error::BadAuthority => None,
            Error::Request(e) => Some(e),
        }
    }
}

/// "tcp connect error", caused by the I/O error.
#[derive(Debug)]
pub(crate) struct ConnectError(io::Error);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tcp connect error")
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::header;
    use tokio::net::TcpListener;

    use super::*;

    /// A member that counts its connections and answers `n` (its request count); after
    /// `close_after` requests on a connection it asks for that connection to be closed.
    async fn member(close_after: usize) -> (Arc<str>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Arc<str> = listener.local_addr().unwrap().to_string().into();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let served = Arc::new(AtomicUsize::new(0));
                let service = hyper::service::service_fn(move |_req| {
                    let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from(n.to_string())));
                        if n >= close_after {
                            response.headers_mut().insert(header::CONNECTION, "close".parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (authority, connections)
    }

    fn get(authority: &str) -> Request<ReclaimableBody> {
        let mut request = Request::new(ReclaimableBody::Empty(Default::default()));
        request.headers_mut().insert(header::HOST, authority.parse().unwrap());
        request
    }

    /// Sends a GET through `pool`, reads the answer to the end (releasing the connection).
    async fn fetch(pool: &Arc<Pool>, authority: &Arc<str>) -> String {
        let (response, conn) = pool.send(authority, get(authority)).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        conn.release();
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn connections_are_reused_and_replaced_when_closed() {
        let (pool, _sweeper) = Pool::new(Duration::from_secs(1));
        let (authority, connections) = member(3).await;
        let answers = [fetch(&pool, &authority).await, fetch(&pool, &authority).await, fetch(&pool, &authority).await];
        assert_eq!(answers, ["1", "2", "3"], "one connection, kept alive");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        // The member closed it after the third answer: the next request gets a new one.
        assert_eq!(fetch(&pool, &authority).await, "1");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_say_what_failed() {
        let (pool, _sweeper) = Pool::new(Duration::from_secs(1));
        let refused: Arc<str> = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().to_string().into()
        };
        let Err(e) = pool.send(&refused, get(&refused)).await else { panic!("connected to a closed port") };
        assert!(e.is_connect());
        assert!(e.to_string().starts_with("client error (Connect)"), "{e}");
        assert_eq!(e.source().unwrap().to_string(), "tcp connect error");
        let bad: Arc<str> = "no such host!:80".into();
        assert!(matches!(pool.send(&bad, get(&bad)).await, Err(Error::BadAuthority)));
    }
}
