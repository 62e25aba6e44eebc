//! One account's sweep: its services in parallel, the regions of a service
//! in parallel under a cap, each (service, region) over its terms and
//! payment options one call at a time; the first refusal stops the rest.

use std::sync::Mutex;

use cudly_core::domain::{Account, AccountFailures, AccountState, Failure, Recommendation};
use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::EngineConfig;
use crate::providers::{BackendError, CloudBackend, ErrorKind, Query, RequestCount, RunScope};

/// The result of one account.
#[derive(Default)]
pub(super) struct AccountResult {
    pub(super) recommendations: Vec<Recommendation>,
    /// Units the sweep had: (service, region, term, payment) calls, or the
    /// region listing when that failed.
    pub(super) units_total: u32,
    /// Units that failed or were skipped after a refusal.
    pub(super) units_failed: u32,
    /// Every failed unit, in merge order.
    pub(super) failures: Vec<Failure>,
    /// The refusal that ended the sweep early.
    pub(super) refusal: Option<String>,
    /// Calls made to the provider's API, and how many failed.
    pub(super) requests: u64,
    pub(super) request_errors: u64,
}

impl AccountResult {
    /// `None` when every unit completed.
    pub(super) fn state(&self) -> Option<AccountState> {
        match self.units_failed {
            0 => None,
            n if n >= self.units_total => Some(AccountState::Failed),
            _ => Some(AccountState::PartiallySucceeded),
        }
    }

    /// What the run status says about this account, if anything failed.
    pub(super) fn failures_entry(&self, account: &Account) -> Option<AccountFailures> {
        let state = self.state()?;
        let first = self.failures.first().map(|f| f.error.as_str()).unwrap_or("");
        let error = match &self.refusal {
            Some(refusal) if self.units_failed as usize > self.failures.len() => {
                format!("{refusal} (the account's remaining calls were not made)")
            }
            Some(refusal) => refusal.clone(),
            None => first.to_string(),
        };
        Some(AccountFailures {
            account_id: account.external_id.clone(),
            state: Some(state),
            error,
            units_failed: self.units_failed,
            units_total: self.units_total,
            failures: self.failures.iter().take(AccountFailures::MAX_LISTED).cloned().collect(),
        })
    }
}

pub(super) async fn collect_account(
    backend: &dyn CloudBackend,
    account: &Account,
    config: &EngineConfig,
    run: &RunScope,
) -> AccountResult {
    let calls = RequestCount::default();
    let mut result = collect_account_counted(backend, account, config, &calls, run).await;
    (result.requests, result.request_errors) = calls.get();
    result
}

/// What the sweeps of one account share: the request count, the run's
/// caches, and the stop that its first refusal pulls.
struct AccountSweep<'a> {
    backend: &'a dyn CloudBackend,
    account: &'a Account,
    calls: &'a RequestCount,
    run: &'a RunScope,
    stop: CancellationToken,
    refusal: Mutex<Option<String>>,
}

async fn collect_account_counted(
    backend: &dyn CloudBackend,
    account: &Account,
    config: &EngineConfig,
    calls: &RequestCount,
    run: &RunScope,
) -> AccountResult {
    let listed = match backend.regions(account, calls).await {
        // No region at all is no sweep: treated as a failure, so that the
        // account's rows are kept rather than evicted.
        Ok(Some(regions)) if regions.is_empty() => Err(BackendError::failed("the region list was empty")),
        other => other,
    };
    let regions = match listed {
        Ok(Some(mut regions)) => {
            regions.sort();
            regions.dedup();
            Some(regions)
        }
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(provider = %backend.provider(), account = %account.external_id, error = %err, "listing regions failed");
            let error = format!("listing regions: {err}");
            return AccountResult {
                units_total: 1,
                units_failed: 1,
                refusal: (err.kind == ErrorKind::Refused).then(|| error.clone()),
                failures: vec![Failure {
                    account_id: account.external_id.clone(),
                    service: String::new(),
                    region: String::new(),
                    error,
                }],
                ..Default::default()
            };
        }
    };
    let plan: Vec<(&'static str, Option<Vec<String>>)> = backend
        .services()
        .iter()
        .map(|&service| (service, regions.as_deref().and_then(|listed| backend.service_regions(service, listed))))
        .collect();
    let units_total = plan
        .iter()
        .map(|(service, regions)| {
            let locations = regions.as_ref().map_or(1, Vec::len);
            locations * backend.sweeps(service).len()
        })
        .sum::<usize>();
    let shared =
        AccountSweep { backend, account, calls, run, stop: CancellationToken::new(), refusal: Mutex::new(None) };
    let per_service = join_all(plan.iter().map(|(service, regions)| {
        let shared = &shared;
        async move {
            match regions {
                None => vec![sweep(shared, service, None).await],
                Some(regions) => {
                    let permits = Semaphore::new(config.region_parallelism.max(1));
                    join_all(regions.iter().map(|region| async {
                        let _permit = permits.acquire().await.expect("the semaphore is never closed");
                        sweep(shared, service, Some(region)).await
                    }))
                    .await
                }
            }
        }
        .instrument(tracing::info_span!("service", service))
    }))
    .await;
    let mut result = AccountResult {
        units_total: u32::try_from(units_total).unwrap_or(u32::MAX),
        refusal: shared.refusal.into_inner().unwrap(),
        ..Default::default()
    };
    for part in per_service.into_iter().flatten() {
        result.recommendations.extend(part.recommendations);
        result.units_failed += part.units_failed;
        result.failures.extend(part.failures);
    }
    if result.refusal.is_some() {
        // The cloud refused the account: it failed as a whole, and keeps the
        // rows it had rather than a few written before the refusal came.
        result.recommendations.clear();
        result.units_failed = result.units_total;
    }
    result
}

/// What one (service, region) sweep returned.
#[derive(Default)]
struct SweepResult {
    recommendations: Vec<Recommendation>,
    units_failed: u32,
    failures: Vec<Failure>,
}

/// Sweeps one (service, region) over its terms and payment options, one call
/// at a time; a failed call is recorded and the sweep goes on, unless the
/// account's sweep was stopped by a refusal.
async fn sweep(shared: &AccountSweep<'_>, service: &'static str, region: Option<&str>) -> SweepResult {
    let (backend, account) = (shared.backend, shared.account);
    let mut result = SweepResult::default();
    for sweep in backend.sweeps(service) {
        let query = Query { account, service, region, sweep, calls: shared.calls, run: shared.run };
        let Some(fetched) = shared.stop.run_until_cancelled(backend.fetch(query)).await else {
            // Skipped: the account's credentials were refused meanwhile.
            result.units_failed += 1;
            continue;
        };
        // A payload with a non-finite figure is malformed: the sweep of that
        // service fails (and its account keeps its rows), like any error.
        let fetched = fetched.and_then(|recs| {
            if recs.iter().all(Recommendation::has_finite_figures) {
                Ok(recs)
            } else {
                Err(BackendError::failed("the provider returned a non-finite figure"))
            }
        });
        match fetched {
            Ok(mut recs) => {
                recs.sort_by(|a, b| {
                    (&a.region, &a.resource_type, &a.platform).cmp(&(&b.region, &b.resource_type, &b.platform))
                });
                result.recommendations.extend(recs);
            }
            Err(err) => {
                tracing::warn!(
                    provider = %backend.provider(),
                    account = %account.external_id,
                    service,
                    region = region.unwrap_or(""),
                    term_months = sweep.term_months,
                    payment = %sweep.payment,
                    refused = err.kind == ErrorKind::Refused,
                    error = %err,
                    "collecting recommendations failed"
                );
                let error = format!("{}-month {}: {err}", sweep.term_months, sweep.payment);
                if err.kind == ErrorKind::Refused {
                    shared.refusal.lock().unwrap().get_or_insert_with(|| error.clone());
                    shared.stop.cancel();
                }
                result.units_failed += 1;
                result.failures.push(Failure {
                    account_id: account.external_id.clone(),
                    service: service.to_string(),
                    region: region.unwrap_or("").to_string(),
                    error,
                });
            }
        }
    }
    result
}
