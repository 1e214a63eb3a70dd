//! The manager's series: REST requests by route template and status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::registry::{Registry, Unit};

use crate::histogram::AtomicHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route's template (`/api/applications/{id}`), or `unmatched`: never a path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Seconds;

impl MetricConstructor<AtomicHistogram> for Seconds {
    fn new_metric(&self) -> AtomicHistogram {
        AtomicHistogram::seconds()
    }
}

#[derive(Clone, Debug)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, AtomicHistogram, Seconds>,
}

/// The methods counted by name; any other is `other` (the label stays bounded).
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl ApiMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ApiMetrics {
        let metrics = ApiMetrics { requests: Family::default(), duration: Family::new_with_constructor(Seconds) };
        registry.register(
            "api_requests",
            "REST API requests by method, route template and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "api_request_duration",
            "How long REST API requests took, by route template",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        metrics
    }

    /// One request answered. `route` is the matched template, `None` when no route matched.
    pub fn request(&self, method: &str, route: Option<&str>, status: u16, seconds: f64) {
        let method = METHODS.iter().find(|m| **m == method).copied().unwrap_or("other");
        let route = route.unwrap_or("unmatched").to_string();
        let labels = RequestLabels { method: method.into(), route: route.clone(), status };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&RouteLabels { route }).observe(seconds);
    }
}
