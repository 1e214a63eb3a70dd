//! The TCP proxy: each connection to a TCP proxy port is spliced to one member.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tracing::debug;

use crate::choice::pick;
use crate::shared::Shared;

/// Serves one client connection on the TCP proxy port `port`.
pub(crate) async fn serve(shared: Arc<Shared>, port: u16, mut client: TcpStream, peer: SocketAddr) {
    let table = shared.table();
    let Some(upstream) = table.ports.get(&port).and_then(|r| r.tcp_upstream()).cloned() else {
        return;
    };
    drop(table);
    let mut exclude = None;
    for _attempt in 0..2 {
        let Some(i) = pick(&shared, &upstream, None, exclude) else {
            break;
        };
        let member = &upstream.members[i];
        let in_flight = member.stats.start();
        let connected =
            tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(member.authority())).await;
        match connected {
            Ok(Ok(mut server)) => {
                member.stats.record_success_at(Instant::now);
                let _ = server.set_nodelay(true);
                let copied = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                debug!(%peer, port, member_id = %member.member_id, ?copied, "TCP connection closed");
                drop(in_flight);
                return;
            }
            Ok(Err(e)) => {
                debug!(member_id = %member.member_id, error = %e, "cannot connect");
                shared.eject(&member.stats, "cannot connect");
            }
            Err(_) => shared.eject(&member.stats, "connect timed out"),
        }
        exclude = Some(i);
    }
    debug!(%peer, port, cluster_id = %upstream.cluster_id, "no member to take the TCP connection; closing it");
}
