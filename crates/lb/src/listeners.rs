//! One listener per proxy port of the routing table, bound as ports appear and closed
//! as they go (connections already accepted carry on).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::routing::PortKind;
use crate::shared::Shared;
use crate::workers::workers;
use crate::{http, tcp};

#[derive(Default)]
pub(crate) struct Listeners {
    active: HashMap<u16, JoinHandle<()>>,
    /// Ports that could not be bound (reported once; retried on every reconcile).
    failed: HashSet<u16>,
}

impl Listeners {
    /// Binds the table's new proxy ports and closes those it no longer has.
    pub async fn reconcile(&mut self, shared: &Arc<Shared>) {
        let table = shared.table();
        let gone: Vec<u16> = self.active.keys().copied().filter(|p| !table.ports.contains_key(p)).collect();
        for port in gone {
            if let Some(task) = self.active.remove(&port) {
                task.abort();
            }
            let addr = shared.bound.write().unwrap().remove(&port);
            info!(proxy_port = port, ?addr, "stopped listening: no cluster uses the port any more");
        }
        self.failed.retain(|p| table.ports.contains_key(p));
        for (&port, routes) in &table.ports {
            if self.active.contains_key(&port) {
                continue;
            }
            let bind_port = if shared.config.ephemeral_ports { 0 } else { port };
            let addr = SocketAddr::new(shared.config.listen_address, bind_port);
            match TcpListener::bind(addr).await.and_then(|l| Ok((l.local_addr()?, l))) {
                Ok((local, listener)) => {
                    self.failed.remove(&port);
                    shared.bound.write().unwrap().insert(port, local);
                    info!(proxy_port = port, addr = %local, kind = %routes.kind, "listening");
                    self.active.insert(port, tokio::spawn(accept(shared.clone(), port, listener)));
                }
                Err(e) => {
                    if self.failed.insert(port) {
                        error!(proxy_port = port, %addr, error = %e, "cannot listen on the proxy port; will retry");
                    }
                }
            }
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.active.values() {
            task.abort();
        }
    }
}

async fn accept(shared: Arc<Shared>, port: u16, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Served on a worker thread: the socket moves to that worker's reactor.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(e) => {
                        warn!(proxy_port = port, %peer, error = %e, "cannot hand the connection to a worker");
                        continue;
                    }
                };
                let shared = shared.clone();
                workers().serve(move |worker| async move {
                    match TcpStream::from_std(stream) {
                        Ok(stream) => connection(shared, worker, port, stream, peer).await,
                        Err(e) => warn!(proxy_port = port, %peer, error = %e, "cannot serve the connection"),
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                warn!(proxy_port = port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves a client connection on worker `worker`.
async fn connection(shared: Arc<Shared>, worker: usize, port: u16, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let kind = shared.table().ports.get(&port).map(|r| r.kind);
    match kind {
        Some(PortKind::Http) => http::serve(shared, worker, port, stream, peer).await,
        Some(PortKind::Tcp) => tcp::serve(shared, port, stream, peer).await,
        None => debug!(proxy_port = port, %peer, "port no longer routed; closing the connection"),
    }
}
