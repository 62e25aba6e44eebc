//! The fan-out: providers in parallel, accounts of a provider in parallel
//! under a cap, services of an account in parallel, regions of a service in
//! parallel under a cap, and each (service, region) swept over its terms and
//! payment options one call at a time.
//!
//! Everything runs as futures of one task: dropping the future (a cancelled
//! run) stops every call at once. Failures are recorded per unit (one call's
//! worth of work), never propagated to siblings, and results are merged in a
//! fixed order whatever order the calls finish in. The first refusal of an
//! account's credentials or permissions ends that account's sweep: its other
//! calls would be refused too, and many clouds bill every call.

use std::sync::Mutex;

use cudly_core::domain::{
    Account, AccountFailures, AccountState, Failure, Outcome, Provider, ProviderState, ProviderStatus, Recommendation,
};
use futures_util::future::join_all;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::providers::{BackendError, Backends, CloudBackend, ErrorKind, Query, RequestCount, RunScope};

/// The caps of the fan-out.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Accounts of one provider collected at once.
    pub max_account_parallelism: usize,
    /// Regions of one (account, service) collected at once.
    pub region_parallelism: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_account_parallelism: 20, region_parallelism: 10 }
    }
}

/// What a run collected.
#[derive(Debug)]
pub struct Collected {
    /// Every recommendation, in provider, account, service, region, sweep order.
    pub recommendations: Vec<Recommendation>,
    /// For each recommendation (same order), the registered account whose
    /// sweep returned it: its own account, or the organization's management
    /// account (or the GCP project) it was collected through.
    pub sources: Vec<String>,
    /// Final per-provider status.
    pub providers: Vec<ProviderStatus>,
    /// The registered (provider, account) pairs whose sweep completed: only
    /// rows collected through them that this run did not return may be
    /// evicted.
    pub complete_accounts: Vec<(Provider, String)>,
}

impl Collected {
    /// The run's outcome and, unless it fully succeeded, why.
    pub fn outcome(&self) -> (Outcome, Option<String>) {
        run_outcome(&self.providers)
    }
}

/// The outcome of a run with these provider results: FAILED only when no
/// account of any provider collected anything.
pub fn run_outcome(providers: &[ProviderStatus]) -> (Outcome, Option<String>) {
    let total: u32 = providers.iter().map(|p| p.accounts_total).sum();
    if total == 0 {
        return (
            Outcome::Failed,
            Some("no enabled accounts to collect: register accounts or seed them with --seed-accounts".into()),
        );
    }
    let errors: Vec<String> =
        providers.iter().filter(|p| !p.error.is_empty()).map(|p| format!("{}: {}", p.provider, p.error)).collect();
    let collected: u32 = providers.iter().map(ProviderStatus::accounts_collected).sum();
    let outcome = if errors.is_empty() {
        Outcome::Succeeded
    } else if collected == 0 {
        Outcome::Failed
    } else {
        Outcome::PartiallySucceeded
    };
    (outcome, (!errors.is_empty()).then(|| errors.join("; ")))
}

/// The result of one account.
#[derive(Default)]
struct AccountResult {
    recommendations: Vec<Recommendation>,
    /// Units the sweep had: (service, region, term, payment) calls, or the
    /// region listing when that failed.
    units_total: u32,
    /// Units that failed or were skipped after a refusal.
    units_failed: u32,
    /// Every failed unit, in merge order.
    failures: Vec<Failure>,
    /// The refusal that ended the sweep early.
    refusal: Option<String>,
    /// Calls made to the provider's API, and how many failed.
    requests: u64,
    request_errors: u64,
}

impl AccountResult {
    /// `None` when every unit completed.
    fn state(&self) -> Option<AccountState> {
        match self.units_failed {
            0 => None,
            n if n >= self.units_total => Some(AccountState::Failed),
            _ => Some(AccountState::PartiallySucceeded),
        }
    }

    /// What the run status says about this account, if anything failed.
    fn failures_entry(&self, account: &Account) -> Option<AccountFailures> {
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

/// Collects every account of every backend. Progress (per-provider status)
/// is published on `progress` as accounts finish.
pub async fn collect(
    backends: &Backends,
    accounts: &[Account],
    config: &EngineConfig,
    progress: &watch::Sender<Vec<ProviderStatus>>,
) -> Collected {
    // Caches of this run only: the next run fetches afresh.
    let run = RunScope::default();
    let per_provider: Vec<Vec<&Account>> = backends
        .iter()
        .map(|b| {
            let mut mine: Vec<&Account> = accounts.iter().filter(|a| a.provider == b.provider()).collect();
            mine.sort_by(|a, b| a.external_id.cmp(&b.external_id));
            mine
        })
        .collect();
    let status = Mutex::new(
        backends
            .iter()
            .zip(&per_provider)
            .map(|(b, accts)| {
                let mut s = ProviderStatus::pending(b.provider(), accts.len() as u32);
                s.state = ProviderState::Running;
                s
            })
            .collect::<Vec<_>>(),
    );
    progress.send_replace(status.lock().unwrap().clone());

    let tracker = Tracker { status: &status, progress };
    let results = join_all(backends.iter().zip(&per_provider).enumerate().map(|(i, (backend, accts))| {
        let span = tracing::info_span!("provider", provider = %backend.provider(), accounts = accts.len());
        collect_provider(i, backend.as_ref(), accts, config, &tracker, &run).instrument(span)
    }))
    .await;

    let mut collected = Collected {
        recommendations: Vec::new(),
        sources: Vec::new(),
        providers: Vec::new(),
        complete_accounts: Vec::new(),
    };
    for ((backend, accts), results) in backends.iter().zip(&per_provider).zip(results) {
        for (account, result) in accts.iter().zip(results) {
            if result.units_failed == 0 {
                collected.complete_accounts.push((backend.provider(), account.external_id.clone()));
            }
            collected.sources.extend(std::iter::repeat_n(account.external_id.clone(), result.recommendations.len()));
            collected.recommendations.extend(result.recommendations);
        }
    }
    let mut providers = status.into_inner().unwrap();
    for p in &mut providers {
        p.state = if p.accounts_failed + p.accounts_partial == 0 {
            ProviderState::Succeeded
        } else if p.accounts_collected() == 0 {
            ProviderState::Failed
        } else {
            ProviderState::PartiallySucceeded
        };
    }
    progress.send_replace(providers.clone());
    collected.providers = providers;
    collected
}

/// Updates the shared per-provider status as accounts finish.
struct Tracker<'a> {
    status: &'a Mutex<Vec<ProviderStatus>>,
    progress: &'a watch::Sender<Vec<ProviderStatus>>,
}

impl Tracker<'_> {
    fn account_done(&self, provider_index: usize, account: &Account, result: &AccountResult) {
        let snapshot = {
            let mut all = self.status.lock().unwrap();
            let p = &mut all[provider_index];
            p.recommendation_count += result.recommendations.len() as u64;
            p.requests += result.requests;
            p.request_errors += result.request_errors;
            match result.state() {
                None => p.accounts_succeeded += 1,
                Some(AccountState::PartiallySucceeded) => p.accounts_partial += 1,
                Some(AccountState::Failed) => p.accounts_failed += 1,
            }
            if let Some(entry) = result.failures_entry(account) {
                let at = p.failed_accounts.partition_point(|f| f.account_id < entry.account_id);
                p.failed_accounts.insert(at, entry);
                p.error = provider_error(p);
            }
            all.clone()
        };
        tracing::debug!(account = %account.external_id, units_failed = result.units_failed, "account done");
        self.progress.send_replace(snapshot);
    }
}

/// "2 of 20 accounts failed, 3 partly collected (first: account …: …)".
fn provider_error(p: &ProviderStatus) -> String {
    let mut parts = Vec::new();
    if p.accounts_failed > 0 {
        parts.push(format!("{} of {} accounts failed", p.accounts_failed, p.accounts_total));
    }
    if p.accounts_partial > 0 {
        parts.push(format!("{} of {} accounts partly collected", p.accounts_partial, p.accounts_total));
    }
    match p.failed_accounts.first() {
        Some(first) => format!("{} (first: account {}: {})", parts.join(", "), first.account_id, first.error),
        None => parts.join(", "),
    }
}

async fn collect_provider(
    index: usize,
    backend: &dyn CloudBackend,
    accounts: &[&Account],
    config: &EngineConfig,
    tracker: &Tracker<'_>,
    run: &RunScope,
) -> Vec<AccountResult> {
    let permits = Semaphore::new(config.max_account_parallelism.max(1));
    join_all(accounts.iter().map(|account| {
        let span = tracing::info_span!("account", account = %account.external_id);
        async {
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            let result = collect_account(backend, account, config, run).await;
            tracker.account_done(index, account, &result);
            result
        }
        .instrument(span)
    }))
    .await
}

async fn collect_account(
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::providers::Sweep;
    use crate::providers::simulated::{SimulatedBackend, SimulatedConfig};
    use cudly_core::domain::PaymentOption;

    fn accounts(provider: Provider, n: usize) -> Vec<Account> {
        (0..n)
            .map(|i| Account {
                provider,
                external_id: format!("{provider}-{i:03}"),
                display_name: format!("Simulated {provider} account {i:03}"),
                credentials: None,
            })
            .collect()
    }

    fn fleet(config: SimulatedConfig) -> (Backends, Vec<Arc<SimulatedBackend>>) {
        let sims: Vec<Arc<SimulatedBackend>> =
            Provider::ALL.iter().map(|&p| Arc::new(SimulatedBackend::new(p, config.clone()))).collect();
        (sims.iter().map(|s| s.clone() as Arc<dyn CloudBackend>).collect(), sims)
    }

    #[tokio::test(start_paused = true)]
    async fn results_merge_in_the_same_order_whatever_order_calls_finish_in() {
        let mut all = accounts(Provider::Aws, 4);
        all.extend(accounts(Provider::Gcp, 3));
        all.extend(accounts(Provider::Azure, 2));
        let (tx, _rx) = watch::channel(Vec::new());
        let run = |jitter_ms| {
            let (backends, _) = fleet(SimulatedConfig {
                jitter: Duration::from_millis(jitter_ms),
                latency: Duration::from_millis(60),
                ..Default::default()
            });
            let all = all.clone();
            let tx = tx.clone();
            async move { collect(&backends, &all, &EngineConfig::default(), &tx).await }
        };
        let a = run(0).await;
        let b = run(50).await;
        assert!(!a.recommendations.is_empty());
        assert_eq!(a.recommendations, b.recommendations);
        let order: Vec<Provider> = a.providers.iter().map(|p| p.provider).collect();
        assert_eq!(order, Provider::ALL);
        assert_eq!(a.complete_accounts.len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_does_not_cancel_its_siblings() {
        let mut all = accounts(Provider::Aws, 3);
        all.extend(accounts(Provider::Azure, 3));
        let (backends, sims) = fleet(SimulatedConfig::default());
        sims[1].set_failure_rate(1.0);
        let (tx, rx) = watch::channel(Vec::new());
        let collected = collect(&backends, &all, &EngineConfig::default(), &tx).await;
        let aws = &collected.providers[0];
        let azure = &collected.providers[1];
        assert_eq!((aws.state, aws.accounts_succeeded), (ProviderState::Succeeded, 3));
        assert_eq!((azure.state, azure.accounts_failed), (ProviderState::Failed, 3));
        assert!(azure.error.contains("3 of 3 accounts failed"), "{}", azure.error);
        assert_eq!(azure.failed_accounts.len(), 3);
        assert!(collected.complete_accounts.iter().all(|(p, _)| *p == Provider::Aws));
        assert_eq!(collected.outcome().0, Outcome::PartiallySucceeded);
        assert_eq!(*rx.borrow(), collected.providers, "the last progress is the final status");
    }

    /// A cloud that lists `regions`, answers each (service, region, term)
    /// with `recs` unless `fail` says otherwise, and counts its calls.
    struct Fixed {
        regions: Option<Vec<String>>,
        recs: Vec<Recommendation>,
        /// (account, region) → the error its calls get.
        fail: Vec<(&'static str, &'static str, BackendError)>,
        calls: AtomicU32,
        /// Answer from the run's scope after the first call of a run.
        per_run: bool,
    }

    impl Fixed {
        fn new(regions: Option<Vec<String>>, recs: Vec<Recommendation>) -> Self {
            Fixed { regions, recs, fail: Vec::new(), calls: AtomicU32::new(0), per_run: false }
        }
    }

    /// A run's memory of having been answered.
    #[derive(Default)]
    struct Answered(std::sync::atomic::AtomicBool);

    impl CloudBackend for Fixed {
        fn provider(&self) -> Provider {
            Provider::Gcp
        }
        fn services(&self) -> &'static [&'static str] {
            &["compute", "cloud_sql"]
        }
        fn sweeps(&self, _: &'static str) -> Vec<Sweep> {
            [12, 36].into_iter().map(|term_months| Sweep { term_months, payment: PaymentOption::Monthly }).collect()
        }
        fn regions<'a>(
            &'a self,
            _: &'a Account,
            _: &'a RequestCount,
        ) -> futures_util::future::BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
            Box::pin(async { Ok(self.regions.clone()) })
        }
        fn fetch<'a>(
            &'a self,
            query: Query<'a>,
        ) -> futures_util::future::BoxFuture<'a, Result<Vec<Recommendation>, BackendError>> {
            Box::pin(async move {
                if self.per_run && query.run.get::<Answered>().0.swap(true, Ordering::SeqCst) {
                    return Ok(self.recs.clone());
                }
                self.calls.fetch_add(1, Ordering::SeqCst);
                query.calls.request();
                // Another call of the account may be refused meanwhile.
                tokio::task::yield_now().await;
                let region = query.region.unwrap_or("");
                match self
                    .fail
                    .iter()
                    .find(|(a, r, _)| *a == query.account.external_id && (r.is_empty() || *r == region))
                {
                    Some((_, _, err)) => Err(err.clone()),
                    None => Ok(self.recs.clone()),
                }
            })
        }
    }

    /// What the simulated GCP returns for one compute sweep of `account`.
    async fn simulated_compute(account: &Account) -> Vec<Recommendation> {
        let sim =
            SimulatedBackend::new(Provider::Gcp, SimulatedConfig { latency: Duration::ZERO, ..Default::default() });
        let sweep = Sweep { term_months: 12, payment: PaymentOption::Monthly };
        let calls = RequestCount::default();
        let run = RunScope::default();
        sim.fetch(Query { account, service: "compute", region: Some("us-east1"), sweep, calls: &calls, run: &run })
            .await
            .unwrap()
    }

    async fn collect_with(backend: Fixed, accounts: &[Account]) -> Collected {
        let backends: Backends = vec![Arc::new(backend)];
        let (tx, _rx) = watch::channel(Vec::new());
        collect(&backends, accounts, &EngineConfig::default(), &tx).await
    }

    async fn collect_one(backend: Fixed) -> Collected {
        collect_with(backend, &accounts(Provider::Gcp, 1)).await
    }

    #[tokio::test]
    async fn an_empty_region_list_is_a_failed_sweep_not_a_complete_one() {
        let collected = collect_one(Fixed::new(Some(Vec::new()), Vec::new())).await;
        assert!(collected.complete_accounts.is_empty(), "its rows must not be evicted");
        let p = &collected.providers[0];
        assert_eq!((p.accounts_failed, p.state), (1, ProviderState::Failed));
        assert!(p.failed_accounts[0].error.contains("region list was empty"));
        assert_eq!((p.failed_accounts[0].units_failed, p.failed_accounts[0].units_total), (1, 1));
    }

    #[tokio::test]
    async fn a_payload_with_a_non_finite_figure_fails_its_sweep() {
        let account = &accounts(Provider::Gcp, 1)[0];
        let mut recs = simulated_compute(account).await;
        recs[0].savings_percentage = f64::NAN;
        let collected = collect_one(Fixed::new(None, recs)).await;
        assert!(collected.recommendations.is_empty(), "nothing of a malformed payload is kept");
        assert!(collected.complete_accounts.is_empty());
        assert!(collected.providers[0].failed_accounts[0].error.contains("non-finite"));
    }

    #[tokio::test]
    async fn rows_of_linked_accounts_are_sourced_to_the_account_that_collected_them() {
        let account = &accounts(Provider::Gcp, 1)[0];
        let mut recs = simulated_compute(account).await;
        recs[0].account_id = "linked-002".into();
        let collected = collect_one(Fixed::new(None, recs)).await;
        let complete: Vec<&str> = collected.complete_accounts.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(complete, [account.external_id.as_str()], "only registered accounts complete");
        assert_eq!(collected.sources.len(), collected.recommendations.len());
        assert_eq!(collected.recommendations[0].account_id, "linked-002");
        assert!(collected.sources.iter().all(|s| *s == account.external_id), "every row came through the account");
    }

    #[tokio::test]
    async fn a_partly_failed_account_is_partial_with_its_units_and_their_place() {
        let all = accounts(Provider::Gcp, 3);
        let recs = simulated_compute(&all[0]).await;
        let regions = Some(vec!["europe-west1".to_string(), "us-east1".to_string()]);
        let mut backend = Fixed::new(regions, recs);
        // gcp-001 fails in one region; gcp-002 everywhere.
        backend.fail.push(("gcp-001", "us-east1", BackendError::failed("HTTP 500: backend error")));
        backend.fail.push(("gcp-002", "", BackendError::failed("HTTP 400: bad request")));
        let collected = collect_with(backend, &all).await;
        let p = &collected.providers[0];
        assert_eq!((p.accounts_succeeded, p.accounts_partial, p.accounts_failed), (1, 1, 1));
        assert_eq!(p.state, ProviderState::PartiallySucceeded, "a provider that collected something did not fail");
        assert_eq!(collected.outcome().0, Outcome::PartiallySucceeded);
        let partial = &p.failed_accounts[0];
        // 2 services × 2 regions × 2 terms = 8 units; us-east1 is half.
        assert_eq!(
            (partial.account_id.as_str(), partial.state, partial.units_failed, partial.units_total),
            ("gcp-001", Some(AccountState::PartiallySucceeded), 4, 8)
        );
        let places: Vec<(&str, &str)> =
            partial.failures.iter().map(|f| (f.service.as_str(), f.region.as_str())).collect();
        assert_eq!(
            places,
            [("compute", "us-east1"), ("compute", "us-east1"), ("cloud_sql", "us-east1"), ("cloud_sql", "us-east1")]
        );
        assert!(partial.failures.iter().all(|f| f.account_id == "gcp-001" && f.error.contains("HTTP 500")));
        assert!(partial.failures[0].error.starts_with("12-month monthly: "), "{}", partial.failures[0].error);
        let failed = &p.failed_accounts[1];
        assert_eq!((failed.state, failed.units_failed, failed.units_total), (Some(AccountState::Failed), 8, 8));
        assert_eq!(failed.failures.len(), AccountFailures::MAX_LISTED, "the units listed are capped per account");
        assert!(collected.recommendations.iter().any(|_| true), "the partial account's rows are written");
        let complete: Vec<&str> = collected.complete_accounts.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(complete, ["gcp-000"], "only a complete sweep may evict");
    }

    #[tokio::test]
    async fn every_failed_account_appears_however_many_fail() {
        let all = accounts(Provider::Gcp, 30);
        let mut backend = Fixed::new(None, Vec::new());
        for account in all.iter().filter(|a| a.external_id.as_str() != "gcp-007") {
            let id: &'static str = Box::leak(account.external_id.clone().into_boxed_str());
            backend.fail.push((id, "", BackendError::failed("HTTP 503: unavailable")));
        }
        let collected = collect_with(backend, &all).await;
        let p = &collected.providers[0];
        assert_eq!((p.accounts_failed, p.accounts_succeeded), (29, 1));
        assert_eq!(p.failed_accounts.len(), 29, "not one account is left out of the status");
        let ids: Vec<&str> = p.failed_accounts.iter().map(|a| a.account_id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "in account order");
        assert!(p.failed_accounts.iter().all(|a| a.failures.len() <= AccountFailures::MAX_LISTED));
        assert_eq!(p.state, ProviderState::PartiallySucceeded, "one account completed");
    }

    #[tokio::test]
    async fn the_first_refusal_ends_the_account_sweep_and_only_that_one() {
        let all = accounts(Provider::Gcp, 2);
        let regions = Some((0..10).map(|i| format!("region-{i:02}")).collect());
        let mut backend = Fixed::new(regions, Vec::new());
        backend.fail.push(("gcp-000", "", BackendError::refused("HTTP 403: SERVICE_DISABLED")));
        let backends: Backends = vec![Arc::new(backend)];
        let (tx, _rx) = watch::channel(Vec::new());
        // One region at a time: the refusal comes before the other calls.
        let config = EngineConfig { region_parallelism: 1, ..EngineConfig::default() };
        let collected = collect(&backends, &all, &config, &tx).await;
        let p = &collected.providers[0];
        let refused = &p.failed_accounts[0];
        assert_eq!(refused.account_id, "gcp-000");
        assert_eq!((refused.state, refused.units_failed, refused.units_total), (Some(AccountState::Failed), 40, 40));
        assert!(refused.error.contains("SERVICE_DISABLED") && refused.error.contains("not made"), "{}", refused.error);
        // Each of the 2 services made at most its first call.
        let other = 40; // gcp-001: 2 services × 10 regions × 2 terms
        assert!(p.requests <= other + 2, "{} requests: the refused account stopped at once", p.requests);
        assert_eq!(p.accounts_succeeded, 1, "the other account is swept in full");
        assert!(p.failed_accounts.len() == 1);
    }

    #[tokio::test]
    async fn every_run_fetches_for_itself() {
        // A backend that keeps its answers in the run's scope, as the live
        // ones keep their lists: the second run must ask again.
        let backend = Arc::new(Fixed { per_run: true, ..Fixed::new(None, Vec::new()) });
        let backends: Backends = vec![backend.clone()];
        let (tx, _rx) = watch::channel(Vec::new());
        for run in 1..=2 {
            collect(&backends, &accounts(Provider::Gcp, 1), &EngineConfig::default(), &tx).await;
            assert_eq!(backend.calls.load(Ordering::SeqCst), run, "one fetch per run, shared by all its sweeps");
        }
    }

    #[test]
    fn a_run_without_accounts_fails_with_a_hint() {
        let (outcome, error) = run_outcome(&[ProviderStatus::pending(Provider::Aws, 0)]);
        assert_eq!(outcome, Outcome::Failed);
        assert!(error.unwrap().contains("--seed-accounts"));
    }

    #[test]
    fn a_run_fails_only_when_no_account_collected_anything() {
        let mut partly = ProviderStatus::pending(Provider::Gcp, 10);
        partly.accounts_partial = 10;
        partly.error = "10 of 10 accounts partly collected".into();
        assert_eq!(run_outcome(&[partly]).0, Outcome::PartiallySucceeded);
        let mut nothing = ProviderStatus::pending(Provider::Gcp, 10);
        nothing.accounts_failed = 10;
        nothing.error = "10 of 10 accounts failed".into();
        assert_eq!(run_outcome(&[nothing]).0, Outcome::Failed);
    }
}
