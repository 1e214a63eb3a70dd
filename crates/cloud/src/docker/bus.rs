//! Where a member in a container reaches the event bus. The embedded broker listens
//! on the host's loopback, which a container cannot reach; the driver asks it to serve
//! its gate on the gateway address of each tenant network too (an address of this
//! host that only containers on that network, and the host, route to), so the bus is
//! not opened to the world. Every connection there still authenticates with the
//! member's own credentials and is held to its ACLs.

use std::net::IpAddr;

use stratos_bus::EmbeddedBroker;

/// Gives the URL a member on a Docker network with `gateway` reaches the bus at.
pub trait MemberBus: Send + Sync {
    fn url_on(&self, gateway: IpAddr) -> Result<String, String>;

    /// What the broker's certificate names, for a member that reaches it over TLS at an
    /// address the certificate does not (`STRATOS_BUS_TLS_NAME`); `None`: the URL's host.
    fn tls_name(&self) -> Option<String> {
        None
    }
}

impl MemberBus for EmbeddedBroker {
    fn url_on(&self, gateway: IpAddr) -> Result<String, String> {
        self.listen_also(gateway).map(|addr| self.url_of(addr)).map_err(|e| e.to_string())
    }

    /// The host of the broker's own URL (loopback, or the address it was given): the
    /// certificate must name it for the platform's own clients already.
    fn tls_name(&self) -> Option<String> {
        let url = self.url();
        let host = stratos_bus::parse_broker_url(&url).ok()?.0;
        stratos_bus::is_tls_url(&url).then_some(host)
    }
}

/// An external broker: members get this URL, which must be reachable from containers
/// (not a loopback one).
pub struct GivenBus(pub String);

impl MemberBus for GivenBus {
    fn url_on(&self, _gateway: IpAddr) -> Result<String, String> {
        Ok(self.0.clone())
    }
}
