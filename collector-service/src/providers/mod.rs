//! Cloud backends: what the engine asks of a cloud, and the implementations.
//!
//! Each live backend ([`aws`], [`azure`], [`gcp`]) is a directory of the
//! same chapters: `mod.rs` (its config and [`CloudBackend`] impl),
//! `client` (the calls and paging), `errors` (failures sorted into
//! [`calls::CallError`] kinds), `mapping` (the cloud's fields to our
//! [`Recommendation`], with the references they come from) and `regions`
//! (what is swept where). What they share is built once in `kit` (URLs,
//! error answers, the pager, the token cache, failure memory) and
//! [`calls`] (rate limits, retries, request counts).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use cudly_core::domain::{Account, PaymentOption, Provider, Recommendation};

pub mod aws;
pub mod azure;
pub mod calls;
pub mod gcp;
pub(crate) mod kit;
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
    /// What the run's calls share (caches that end with the run).
    pub run: &'a RunScope,
}

/// What the calls of one run may share: caches that live exactly as long as
/// the run, so that a run only ever reports what it fetched itself (a list
/// fetched for one term's sweep serves the other term's, never the next
/// run). One value per type, created on first use.
#[derive(Default)]
pub struct RunScope {
    slots: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl RunScope {
    /// The run's value of type `T`, created empty on first use.
    pub fn get<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let slot = self
            .slots
            .lock()
            .unwrap()
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        slot.downcast::<T>().expect("each slot holds the type it is keyed by")
    }
}

impl std::fmt::Debug for RunScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunScope").field("slots", &self.slots.lock().unwrap().len()).finish()
    }
}

/// What kind of failure a call met: the engine stops an account's sweep at
/// its first refusal instead of spending (billed) calls on the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The cloud refused the account's credentials or permissions (denied
    /// role, 401/403, a disabled API, credentials that cannot be read):
    /// every other call of the account would be refused too.
    Refused,
    /// Anything else: this unit failed, the others may still succeed.
    Failed,
}

/// Why a call failed. The message is shown to operators in the run status.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// Whether the account's other calls are worth making.
    pub kind: ErrorKind,
    /// What happened and, where it helps, what to do about it.
    pub message: String,
}

impl BackendError {
    /// A failure of this unit only.
    pub fn failed(message: impl Into<String>) -> Self {
        BackendError { kind: ErrorKind::Failed, message: message.into() }
    }

    /// A refusal of the account's credentials or permissions.
    pub fn refused(message: impl Into<String>) -> Self {
        BackendError { kind: ErrorKind::Refused, message: message.into() }
    }

    /// The same kind of error with `prefix: ` before its message.
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        BackendError { kind: self.kind, message: format!("{prefix}: {}", self.message) }
    }
}

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

    /// The locations `service` is swept in, given the regions
    /// [`Self::regions`] listed for the account; `None` for a service
    /// answered for all regions in one call. By default every listed region.
    fn service_regions(&self, _service: &'static str, listed: &[String]) -> Option<Vec<String>> {
        Some(listed.to_vec())
    }

    /// Fetches the recommendations for one query.
    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>>;
}

/// The backends of one collector, in the configured provider order.
pub type Backends = Vec<Arc<dyn CloudBackend>>;
