//! The harness tests and benches across the workspace share, written once: free ports and
//! waiting for a listener ([`net`]), condition waits ([`wait`]), small HTTP clients and a
//! response reader ([`http`]), a keep-alive load generator ([`load`]), child processes
//! killed on drop ([`process`]), figures from /proc ([`proc`]), a real Mosquitto with
//! its dynamic-security plugin ([`mosquitto`]), a test CA with a certificate it signed
//! ([`certs`]), the real Docker Engine with images built here from `FROM scratch`
//! ([`docker`]), and a second engine standing for a second host ([`engine`]).
//!
//! A dev-dependency only (`publish = false`). Everything waits on a condition with a
//! deadline, never for a fixed time; the deadlines are generous, since tests run beside
//! other work on a loaded machine.

pub mod certs;
pub mod docker;
pub mod engine;
pub mod http;
pub mod load;
pub mod mosquitto;
pub mod net;
pub mod proc;
pub mod process;
pub mod wait;

pub use net::{free_port, wait_listening};
pub use wait::{eventually, eventually_async};
