//! Prometheus metrics, served as text on `GET /metrics`.
//! Labels are bounded: routes are the matched route patterns, never raw paths.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// One of [`method_label`]'s fixed set.
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

/// A request method as a metric label: the standard methods by name, anything else `other` —
/// a client inventing methods must not add label sets (and memory) without end.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: &[(Method, &str)] = &[
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
    ];
    KNOWN.iter().find(|(m, _)| m == method).map_or("other", |(_, label)| label)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub target: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConversionLabels {
    /// `patient` or `encounter` (inbound), `follow_up`, `patient_contact`, `encounter_record` (outbound).
    pub kind: &'static str,
    /// `written`, `dead_lettered`, `transient_failure`, `refused`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_duration: HistogramFamily<TargetLabels>,
    openhim_registered: Gauge<i64, AtomicI64>,
    openhim_heartbeats: Family<OutcomeLabels, Counter>,
    console_config_updates: Family<OutcomeLabels, Counter>,
    conversions: Family<ConversionLabels, Counter>,
    dead_letters_pending: Gauge<i64, AtomicI64>,
    dead_letters_refused: Counter,
    connections_refused: Counter,
    backfill_checkpoint: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cht_fhir_mediator");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        let upstream_duration: HistogramFamily<TargetLabels> = Family::new_with_constructor(latency_histogram);
        let openhim_registered = Gauge::<i64, AtomicI64>::default();
        let openhim_heartbeats = Family::<OutcomeLabels, Counter>::default();
        let console_config_updates = Family::<OutcomeLabels, Counter>::default();
        let conversions = Family::<ConversionLabels, Counter>::default();
        let dead_letters_pending = Gauge::<i64, AtomicI64>::default();
        let dead_letters_refused = Counter::default();
        let connections_refused = Counter::default();
        let backfill_checkpoint = Gauge::<i64, AtomicI64>::default();
        registry.register("http_requests", "HTTP requests served, by route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", http_duration.clone());
        registry.register(
            "upstream_requests",
            "Calls to upstream services by target and outcome",
            upstream_requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Upstream call latency by target",
            upstream_duration.clone(),
        );
        registry.register("openhim_registered", "1 once registered with OpenHIM, else 0", openhim_registered.clone());
        registry.register("openhim_heartbeats", "Heartbeats sent to OpenHIM by outcome", openhim_heartbeats.clone());
        registry.register(
            "console_config_updates",
            "Config objects received from the OpenHIM console, by outcome",
            console_config_updates.clone(),
        );
        registry.register("conversions", "Documents and requests handled, by kind and outcome", conversions.clone());
        registry.register("dead_letters_pending", "Dead letters waiting for a replay", dead_letters_pending.clone());
        registry.register(
            "dead_letters_refused",
            "Unconvertible documents refused (507) because the dead-letter store was at its cap",
            dead_letters_refused.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed when accepted because MAX_CONNECTIONS were open",
            connections_refused.clone(),
        );
        registry.register(
            "backfill_checkpoint_seq",
            "CHT changes seq (its number) the last backfill run completed; -1 before any",
            backfill_checkpoint.clone(),
        );
        Self {
            registry,
            conversions,
            dead_letters_pending,
            dead_letters_refused,
            connections_refused,
            backfill_checkpoint,
            http_requests,
            http_duration,
            upstream_requests,
            upstream_duration,
            openhim_registered,
            openhim_heartbeats,
            console_config_updates,
        }
    }

    pub fn observe_http(&self, labels: HttpLabels, elapsed: Duration) {
        self.http_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.http_requests.get_or_create(&labels).inc();
    }

    pub fn observe_upstream(&self, target: &'static str, outcome: &'static str, elapsed: Duration) {
        self.upstream_requests.get_or_create(&UpstreamLabels { target, outcome }).inc();
        self.upstream_duration.get_or_create(&TargetLabels { target }).observe(elapsed.as_secs_f64());
    }

    pub fn set_registered(&self, registered: bool) {
        self.openhim_registered.set(i64::from(registered));
    }

    pub fn heartbeat(&self, outcome: &'static str) {
        self.openhim_heartbeats.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn console_config(&self, outcome: &'static str) {
        self.console_config_updates.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn conversion(&self, kind: &'static str, outcome: &'static str) {
        self.conversions.get_or_create(&ConversionLabels { kind, outcome }).inc();
    }

    pub fn set_dead_letters_pending(&self, pending: i64) {
        self.dead_letters_pending.set(pending);
    }

    pub fn dead_letter_refused(&self) {
        self.dead_letters_refused.inc();
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn set_backfill_checkpoint(&self, seq: i64) {
        self.backfill_checkpoint.set(seq);
    }

    /// OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_route_status_and_upstream_outcome() {
        let m = Metrics::new();
        let labels = HttpLabels { method: "GET", route: "/health/live".into(), status: 200 };
        m.observe_http(labels.clone(), Duration::from_millis(2));
        m.observe_http(labels, Duration::from_millis(3));
        m.observe_upstream("fhir", "5xx", Duration::from_millis(40));
        let text = m.render();
        assert!(
            text.contains(r#"cht_fhir_mediator_http_requests_total{method="GET",route="/health/live",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"cht_fhir_mediator_upstream_requests_total{target="fhir",outcome="5xx"} 1"#), "{text}");
        assert!(text.contains("cht_fhir_mediator_upstream_request_duration_seconds_bucket"), "{text}");
    }

    #[test]
    fn invented_methods_share_one_label() {
        let invented = axum::http::Method::from_bytes(b"XYZZY").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&axum::http::Method::POST), "POST");
    }
}
