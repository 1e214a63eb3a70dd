//! The Stratos event bus: every component talks through typed events on MQTT
//! topics. `EmbeddedBroker` is the default broker; any MQTT 3.1.1 broker works.

mod broker;
mod client;
pub mod events;

pub use broker::{BrokerError, EmbeddedBroker};
pub use client::{parse_broker_url, topic_matches, Bus, BusError, Subscription, MAX_PACKET_SIZE};
pub use events::{now_millis, AnyEvent, Event, MemberRef};
