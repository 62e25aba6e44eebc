//! collector-service's own metrics: runs that ended here, the calls made
//! to the clouds' cost APIs, and notice deliveries (the scrape endpoint and
//! RPC latency are `cudly_core::metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectionLabels {
    /// user, schedule, cold_start, stale.
    pub trigger: String,
    /// succeeded, partially_succeeded, failed, cancelled, lease_lost.
    pub outcome: String,
}

/// Labels of provider API calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// aws, azure, gcp.
    pub provider: String,
}

/// Labels of a notice delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// webhook, slack, email.
    pub channel_kind: String,
    /// delivered, retry, failed.
    pub outcome: String,
}

/// Labels of a channel kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelKindLabels {
    /// webhook, slack, email.
    pub channel_kind: String,
}

/// collector-service's own metrics.
#[derive(Clone, Debug)]
pub struct CollectorMetrics {
    runs: Family<CollectionLabels, Counter>,
    run_duration: Family<CollectionLabels, Histogram>,
    provider_requests: Family<ProviderLabels, Counter>,
    provider_errors: Family<ProviderLabels, Counter>,
    notice_deliveries: Family<DeliveryLabels, Counter>,
    notice_attempts: Family<ChannelKindLabels, Counter>,
    oldest_undelivered: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl CollectorMetrics {
    /// Registers the collector's metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = CollectorMetrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.25, 2.0, 16))),
            provider_requests: Family::default(),
            provider_errors: Family::default(),
            notice_deliveries: Family::default(),
            notice_attempts: Family::default(),
            oldest_undelivered: Gauge::default(),
        };
        registry.register("collector_runs", "Runs that ended here, by trigger and outcome", metrics.runs.clone());
        registry.register(
            "collector_run_duration_seconds",
            "Wall time of runs that ended here, by trigger and outcome",
            metrics.run_duration.clone(),
        );
        registry.register(
            "collector_provider_requests",
            "Calls made to the clouds' cost APIs, by provider",
            metrics.provider_requests.clone(),
        );
        registry.register(
            "collector_provider_request_errors",
            "Calls to the clouds' cost APIs that failed, by provider",
            metrics.provider_errors.clone(),
        );
        registry.register(
            "collector_notice_deliveries",
            "Notice delivery attempts by channel kind and outcome (delivered, retry, failed)",
            metrics.notice_deliveries.clone(),
        );
        registry.register(
            "collector_notice_delivery_attempts",
            "Notice delivery attempts made by this replica, by channel kind",
            metrics.notice_attempts.clone(),
        );
        registry.register(
            "collector_notice_oldest_undelivered_seconds",
            "Age of the oldest pending notice delivery (0 when none), as of this replica's last poll",
            metrics.oldest_undelivered.clone(),
        );
        metrics
    }

    /// Counts a run that ended.
    pub fn collection_ended(&self, trigger: &str, outcome: &str, elapsed: std::time::Duration) {
        let labels = CollectionLabels { trigger: trigger.to_string(), outcome: outcome.to_string() };
        self.runs.get_or_create(&labels).inc();
        self.run_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Counts a run's calls to each provider.
    pub fn provider_calls(&self, providers: &[cudly_core::domain::ProviderStatus]) {
        for p in providers {
            let labels = ProviderLabels { provider: p.provider.as_str().to_string() };
            self.provider_requests.get_or_create(&labels).inc_by(p.requests);
            self.provider_errors.get_or_create(&labels).inc_by(p.request_errors);
        }
    }

    /// Counts an attempt to deliver a notice to a channel of `channel_kind`.
    pub fn notice_attempted(&self, channel_kind: &str) {
        self.notice_attempts.get_or_create(&ChannelKindLabels { channel_kind: channel_kind.to_string() }).inc();
    }

    /// Counts how an attempt ended: `delivered`, `retry` or `failed`.
    pub fn notice_attempt_ended(&self, channel_kind: &str, outcome: &str) {
        let labels = DeliveryLabels { channel_kind: channel_kind.to_string(), outcome: outcome.to_string() };
        self.notice_deliveries.get_or_create(&labels).inc();
    }

    /// Sets the age of the oldest pending delivery.
    pub fn oldest_undelivered(&self, age: std::time::Duration) {
        self.oldest_undelivered.set(age.as_secs_f64());
    }
}
