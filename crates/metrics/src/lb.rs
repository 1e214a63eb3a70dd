//! The load balancer's series, per cluster: requests by status class, the proxy's own
//! failures, latency, requests in flight.
//!
//! The request path never looks a series up by its labels: [`LbMetrics::cluster`] hands
//! out a cluster's handles once (the load balancer keeps them in its cluster state), and
//! a request costs two atomic additions and a histogram's two.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::histogram::AtomicHistogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub cluster: String,
    /// `1xx` .. `5xx`: the status the client got.
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Seconds;

impl MetricConstructor<AtomicHistogram> for Seconds {
    fn new_metric(&self) -> AtomicHistogram {
        AtomicHistogram::seconds()
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug)]
pub struct LbMetrics {
    requests: Family<RequestLabels, Counter>,
    errors: Family<ClusterLabels, Counter>,
    latency: Family<ClusterLabels, AtomicHistogram, Seconds>,
    in_flight: Family<ClusterLabels, Gauge>,
    unrouted: Counter,
}

/// One cluster's handles, made once per cluster.
#[derive(Clone, Debug)]
pub struct LbClusterMetrics {
    classes: [Counter; 5],
    errors: Counter,
    latency: AtomicHistogram,
    in_flight: Gauge,
}

impl LbClusterMetrics {
    /// A request (or upgrade, or TCP connection: `status` 0 counts none) answered with
    /// `status` after `seconds`.
    pub fn answered(&self, status: u16, seconds: f64) {
        if let Some(class) = (status / 100).checked_sub(1).and_then(|i| self.classes.get(usize::from(i))) {
            class.inc();
        }
        self.latency.observe(seconds);
    }

    /// A request the proxy answered itself for its cluster (a member failed, did not
    /// answer in time, or none was left), after `seconds`.
    pub fn failed(&self, status: u16, seconds: f64) {
        self.errors.inc();
        self.answered(status, seconds);
    }

    /// The requests in flight to the cluster's members.
    pub fn set_in_flight(&self, n: i64) {
        self.in_flight.set(n);
    }
}

impl LbMetrics {
    pub(crate) fn register(registry: &mut Registry) -> LbMetrics {
        let metrics = LbMetrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(Seconds),
            in_flight: Family::default(),
            unrouted: Counter::default(),
        };
        registry.register(
            "lb_requests",
            "Requests the load balancer answered per cluster, by the status class the client got",
            metrics.requests.clone(),
        );
        registry.register(
            "lb_errors",
            "Requests the load balancer answered itself per cluster: a member failed or was too slow, or none was left",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "lb_request_duration",
            "From a request's head to its response's end (or the proxy's answer), per cluster",
            Unit::Seconds,
            metrics.latency.clone(),
        );
        registry.register(
            "lb_requests_in_flight",
            "Requests (and TCP connections, upgrades) in flight per cluster, updated every second",
            metrics.in_flight.clone(),
        );
        registry.register(
            "lb_unrouted_requests",
            "Requests no cluster serves (the proxy's 404), and malformed ones (400)",
            metrics.unrouted.clone(),
        );
        metrics
    }

    /// The handles of `cluster`'s series (made on the first call).
    pub fn cluster(&self, cluster: &str) -> LbClusterMetrics {
        let labels = ClusterLabels { cluster: cluster.into() };
        let class = |code| self.requests.get_or_create_owned(&RequestLabels { cluster: cluster.into(), code });
        LbClusterMetrics {
            classes: CLASSES.map(class),
            errors: self.errors.get_or_create_owned(&labels),
            latency: self.latency.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
        }
    }

    /// A cluster the load balancer no longer routes: its series go.
    pub fn forget(&self, cluster: &str) {
        let labels = ClusterLabels { cluster: cluster.into() };
        for code in CLASSES {
            self.requests.remove(&RequestLabels { cluster: cluster.into(), code });
        }
        self.errors.remove(&labels);
        self.latency.remove(&labels);
        self.in_flight.remove(&labels);
    }

    /// A request no cluster serves.
    pub fn unrouted(&self) {
        self.unrouted.inc();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_clusters_handles_count_into_its_series_until_it_is_forgotten() {
        let mut b = crate::Builder::default();
        let lb = b.lb();
        let scrape = b.finish();
        let c = lb.cluster("c1");
        c.answered(200, 0.003);
        c.answered(204, 0.003);
        c.failed(502, 0.5);
        c.answered(0, 1.0); // a TCP connection: latency only
        let text = scrape.render();
        assert!(text.contains(r#"stratos_lb_requests_total{cluster="c1",code="2xx"} 2"#), "{text}");
        assert!(text.contains(r#"stratos_lb_requests_total{cluster="c1",code="5xx"} 1"#), "{text}");
        assert!(text.contains(r#"stratos_lb_errors_total{cluster="c1"} 1"#), "{text}");
        assert!(text.contains(r#"stratos_lb_request_duration_seconds_count{cluster="c1"} 4"#), "{text}");
        // Handles made again (a rebuilt table) share the counts.
        lb.cluster("c1").answered(200, 0.001);
        assert!(scrape.render().contains(r#"stratos_lb_requests_total{cluster="c1",code="2xx"} 3"#));
        lb.forget("c1");
        assert!(!scrape.render().contains("c1"));
    }
}
