//! api-service's own metrics (the RPC latency layer and the scrape endpoint
//! are shared with the collector: `cudly_core::metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a refresh.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// user, schedule, cold_start, stale.
    pub trigger: String,
    /// started (dispatched), joined (a run was in flight), dispatch_failed
    /// (lease released again) or failed (database).
    pub result: String,
}

/// Labels of a key fetch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyFetchLabels {
    /// The configured issuer.
    pub issuer: String,
    /// ok or error.
    pub result: String,
}

/// Labels naming an issuer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    /// The configured issuer.
    pub issuer: String,
}

/// Fetches of signing keys from identity providers.
#[derive(Clone, Debug, Default)]
pub struct KeyMetrics {
    fetches: Family<KeyFetchLabels, Counter>,
    stale: Family<IssuerLabels, Gauge>,
}

impl KeyMetrics {
    /// Counts a fetch; a failed one marks the issuer's keys stale until a
    /// fetch succeeds.
    pub fn fetched(&self, issuer: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.fetches.get_or_create(&KeyFetchLabels { issuer: issuer.to_string(), result: result.to_string() }).inc();
        self.stale.get_or_create(&IssuerLabels { issuer: issuer.to_string() }).set(i64::from(!ok));
    }
}

/// Refreshes, lease takeovers and watchers.
#[derive(Clone, Debug, Default)]
pub struct ApiMetrics {
    refreshes: Family<RefreshLabels, Counter>,
    lease_takeovers: Counter,
    /// WatchFreshness streams open on this replica.
    pub watchers: Gauge,
    /// Signing keys fetched from identity providers.
    pub keys: KeyMetrics,
}

impl ApiMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ApiMetrics::default();
        registry.register(
            "api_refreshes",
            "Refresh attempts by trigger and result: started, joined, dispatch_failed, failed",
            metrics.refreshes.clone(),
        );
        registry.register(
            "api_lease_takeovers",
            "Runs started by taking over the expired lease of a collector that stopped heartbeating",
            metrics.lease_takeovers.clone(),
        );
        registry.register("api_watchers", "WatchFreshness streams open on this replica", metrics.watchers.clone());
        registry.register(
            "api_jwt_key_fetches",
            "Fetches of an issuer's signing keys (JWKS) by result: ok, error",
            metrics.keys.fetches.clone(),
        );
        registry.register(
            "api_jwt_keys_stale",
            "1 while the last fetch of an issuer's signing keys failed: tokens are verified with the last good keys",
            metrics.keys.stale.clone(),
        );
        metrics
    }

    /// Counts one refresh attempt.
    pub fn refresh(&self, trigger: &str, result: &str) {
        self.refreshes.get_or_create(&RefreshLabels { trigger: trigger.to_string(), result: result.to_string() }).inc();
    }

    /// Counts a takeover of an expired lease.
    pub fn lease_takeover(&self) {
        self.lease_takeovers.inc();
    }
}
