//! The built-in load balancer: a reverse proxy driven by the topology on the event bus.
//!
//! Layers, outermost first:
//! - [`server`]: [`start`] subscribes the topology and starts what follows; [`Lb`] is the
//!   handle. [`shared`] is what every part of the running load balancer shares,
//!   [`config`] its settings.
//! - [`watch`]: subscribes `topology/#` (and `tenant/#` for tenant domains), patches its
//!   view of the topology on every event and swaps in a new [`routing::RoutingTable`]
//!   atomically; listeners follow the table's proxy ports. Requests already routed keep
//!   the table (and member) they started with, so a member leaving drains.
//! - [`listeners`]: one accept loop per proxy port; each connection is served on one of
//!   the [`workers`] (a thread per CPU) as HTTP or TCP ([`tcp`]: `copy_bidirectional`).
//!   HTTP/1.1 takes the forwarding path of [`h1`] (requests parsed in place and relayed
//!   over plain keep-alive sockets to members); h2c, and HTTP/1 requests that path does
//!   not take, go to hyper ([`http`], over the worker's [`pool`]), upgrades to
//!   [`upgrade`] and then a [`tunnel`].
//! - The proxy's policy, one module per rule, used by every path: [`identity`] (host →
//!   cluster, sticky member), [`choice`] (which member), [`headers`] (hop-by-hop,
//!   `Host` and `X-Forwarded-*`), [`outcome`] (eject on 5xx and failures, which
//!   requests go to another member, idempotent methods), [`answers`] (the proxy's own
//!   400/404/408/431/502/503/504).
//! - [`checks`]: active TCP checks that eject members, and the in-flight counts
//!   published as `health/InFlightRequestsEvent`.
//! - Pure logic, unit-tested: [`routing`] (topology → table), [`balance`] (algorithms,
//!   sticky sessions, back-off) and [`stats`] (counters kept by member id).
//!
//! [`routing`] and [`stats`] are also the routing plan the HAProxy/nginx extension
//! (`stratos-lb-extension`) renders, so that it routes as this proxy does.

mod answers;
pub mod balance;
mod bodies;
mod bus_auth;
mod checks;
mod choice;
mod config;
mod downstream;
mod error;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
mod h1;
mod headers;
mod http;
mod identity;
mod idle;
mod listeners;
mod member_pool;
mod member_request;
mod outcome;
mod pool;
mod request_body;
pub mod routing;
mod server;
mod shared;
pub mod stats;
mod tcp;
mod tunnel;
mod upgrade;
mod watch;
mod workers;

pub use balance::Algorithm;
pub use bus_auth::{check_broker_url, BusAuth, PASSWORD_ENV};
pub use config::LbConfig;
pub use error::{Error, Result};
pub use routing::RoutingTable;
pub use server::{run, run_with_metrics, start, start_with_metrics, Lb};
pub use stats::MemberSnapshot;
