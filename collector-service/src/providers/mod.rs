//! Cloud backends: what the engine asks of a cloud, and the implementations.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::domain::{Account, PaymentOption, Provider, Recommendation};

pub mod aws;
pub mod azure;
pub mod calls;
pub mod gcp;
pub mod http;
pub mod live;
pub mod simulated;

pub use calls::RequestCount;

/// One term × payment combination a service is swept with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// 12 or 36 months.
    pub term_months: i32,
    /// How the commitment is paid.
    pub payment: PaymentOption,
}

/// One call's worth of work: an account, a service, a region (for clouds
/// whose recommendations are per region) and a sweep.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The account collected.
    pub account: &'a Account,
    /// The service, one of [`CloudBackend::services`].
    pub service: &'static str,
    /// The region, for backends that list regions.
    pub region: Option<&'a str>,
    /// Term and payment option.
    pub sweep: Sweep,
    /// Counts the requests this query makes (pages and retries included).
    pub calls: &'a RequestCount,
}

/// Why a call failed. The text is shown to operators in the run status.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A cloud's recommendation API, as the engine sees it.
pub trait CloudBackend: Send + Sync + 'static {
    /// The cloud.
    fn provider(&self) -> Provider;

    /// Services in canonical order (the merge order of results).
    fn services(&self) -> &'static [&'static str];

    /// The term × payment combinations a service is swept with.
    fn sweeps(&self, service: &'static str) -> Vec<Sweep>;

    /// The regions to sweep for an account, or `None` when the cloud answers
    /// for all regions of an account in one call. Requests made are counted
    /// in `calls`.
    fn regions<'a>(
        &'a self,
        account: &'a Account,
        calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>>;

    /// Whether `service` is swept region by region (when [`Self::regions`]
    /// lists any); a service answered for all regions at once is not.
    fn is_regional(&self, _service: &'static str) -> bool {
        true
    }

    /// Fetches the recommendations for one query.
    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>>;
}

/// The backends of one collector, in the configured provider order.
pub type Backends = Vec<Arc<dyn CloudBackend>>;
