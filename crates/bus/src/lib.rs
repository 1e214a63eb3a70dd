//! The Stratos event bus: every component talks through typed events on MQTT
//! topics. `EmbeddedBroker` is the default broker (authenticated, with per-topic
//! ACLs enforced by its gate); any MQTT 3.1.1 broker works, Mosquitto with the
//! ACLs `mosquitto.rs` generates.

pub mod acl;
mod age;
pub mod body;
mod broker;
mod client;
mod credentials;
pub mod events;
mod gate;
pub mod mosquitto;
pub mod tls;

pub use broker::{BrokerError, EmbeddedBroker};
pub use client::{
    is_tls_url, parse_broker_url, redact, split_credentials, topic_matches, with_credentials, Bus, BusError,
    Subscription, MAX_PACKET_SIZE,
};
pub use credentials::{Credentials, Identity, PlatformSecret, SecretError, PLATFORM_USERNAME};
pub use events::{now_millis, AnyEvent, DecodeError, Event, MemberRef};
