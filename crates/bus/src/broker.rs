//! The embedded MQTT broker (rumqttd) that `stratos up` starts by default.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::info;

use crate::client::MAX_PACKET_SIZE;

/// A broker running on its own threads for the life of the process.
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

impl EmbeddedBroker {
    /// Starts a broker on `addr` (port 0 picks a free port) and waits until it accepts connections.
    pub fn start(addr: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        let addr = if addr.port() == 0 {
            // rumqttd cannot report the port it bound, so pick a free one first.
            let probe = TcpListener::bind(addr).map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })?;
            probe.local_addr().map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })?
        } else {
            // Fail clearly when the port is taken, instead of in a broker thread.
            drop(TcpListener::bind(addr).map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })?);
            addr
        };
        let mut broker = Broker::new(config(addr));
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(BrokerError::Listen { addr, reason: "broker did not start within 10 s".into() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        info!(%addr, "embedded MQTT broker listening");
        Ok(EmbeddedBroker { addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address clients connect to: `mqtt://host:port`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "stratos".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: MAX_PACKET_SIZE,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            // Each topic's log is kept in memory up to segments x size: 10 x 100 MiB
            // let a 100k-member platform (statistics, member events, topology
            // snapshots of tens of MB each) grow the broker by gigabytes. A subscriber
            // that falls further behind than this skips ahead; subscribers here keep up
            // within an interval. A larger message takes a segment of its own.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        v4: Some(HashMap::from([("stratos".to_string(), server)])),
        ..Default::default()
    }
}
