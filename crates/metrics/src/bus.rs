//! The event bus's series, per component and event type (a fixed set: never a member
//! or cluster id, which only the topic's scope carries): publishes, receipts, and how
//! old an event was when it arrived, for the events that carry their time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::registry::{Registry, Unit};

use crate::histogram::AtomicHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The connection's owner: `cloud`, `health`, `autoscaler`, `lb`, `manager`, ...
    pub component: String,
    /// The event type (`MemberActivatedEvent`), the topic's last level.
    pub event: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LagHistogram;

impl MetricConstructor<AtomicHistogram> for LagHistogram {
    fn new_metric(&self) -> AtomicHistogram {
        AtomicHistogram::lag_seconds()
    }
}

/// The bus's families; [`BusMetrics::for_component`] names the connection that counts.
#[derive(Clone, Debug)]
pub struct BusMetrics {
    component: String,
    published: Family<EventLabels, Counter>,
    received: Family<EventLabels, Counter>,
    lag: Family<EventLabels, AtomicHistogram, LagHistogram>,
}

impl BusMetrics {
    pub(crate) fn register(registry: &mut Registry) -> BusMetrics {
        let metrics = BusMetrics {
            component: String::new(),
            published: Family::default(),
            received: Family::default(),
            lag: Family::new_with_constructor(LagHistogram),
        };
        registry.register(
            "bus_published_events",
            "Events published, by component and event type",
            metrics.published.clone(),
        );
        registry.register(
            "bus_received_events",
            "Events received, by component and event type",
            metrics.received.clone(),
        );
        registry.register_with_unit(
            "bus_receive_lag",
            "How old an event was when it was received (from the time it carries), by component and event type",
            Unit::Seconds,
            metrics.lag.clone(),
        );
        metrics
    }

    /// The same families, counted under `component`.
    pub fn for_component(&self, component: &str) -> BusMetrics {
        BusMetrics { component: component.into(), ..self.clone() }
    }

    fn labels(&self, event: &str) -> EventLabels {
        EventLabels { component: self.component.clone(), event: event.into() }
    }

    pub fn published(&self, event: &str) {
        self.published.get_or_create(&self.labels(event)).inc();
    }

    /// An event received; `age_seconds` when it carries the time it was sent.
    pub fn received(&self, event: &str, age_seconds: Option<f64>) {
        let labels = self.labels(event);
        self.received.get_or_create(&labels).inc();
        if let Some(age) = age_seconds {
            self.lag.get_or_create(&labels).observe(age);
        }
    }
}
