//! collector-service's own metrics: runs that ended here and the calls made
//! to the clouds' cost APIs (the scrape endpoint and RPC latency are
//! `cudly_core::metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// collector-service's own metrics.
#[derive(Clone, Debug)]
pub struct CollectorMetrics {
    runs: Family<CollectionLabels, Counter>,
    run_duration: Family<CollectionLabels, Histogram>,
    provider_requests: Family<ProviderLabels, Counter>,
    provider_errors: Family<ProviderLabels, Counter>,
}

impl CollectorMetrics {
    /// Registers the collector's metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = CollectorMetrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.25, 2.0, 16))),
            provider_requests: Family::default(),
            provider_errors: Family::default(),
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
}
