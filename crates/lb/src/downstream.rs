//! A client connection, as the requests on it share it.

use std::sync::{Arc, Mutex};

use hyper::header::HeaderValue;

use crate::shared::Shared;
use crate::tunnel::Tunnel;

/// What the requests of one client connection share.
pub(crate) struct Downstream {
    pub shared: Arc<Shared>,
    /// The worker serving the connection: its requests use that worker's pools.
    pub worker: usize,
    pub port: u16,
    /// The client's address as `X-Forwarded-For` names it, made once per connection.
    pub forwarded_for: Option<HeaderValue>,
    /// A member connection that switched protocols, for the client's once hyper has
    /// sent the 101 and let go of it.
    pub tunnel: Mutex<Option<Tunnel>>,
}
