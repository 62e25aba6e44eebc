//! The fan-out: providers in parallel, accounts of a provider in parallel
//! under a cap, services of an account in parallel, regions of a service in
//! parallel under a cap, and each (service, region) swept over its terms and
//! payment options one call at a time.
//!
//! Everything runs as futures of one task: dropping the future (a cancelled
//! run) stops every call at once. Failures are recorded, never propagated to
//! siblings, and results are merged in a fixed order whatever order the calls
//! finish in.

use std::sync::Mutex;

use futures_util::future::join_all;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::domain::{Account, Failure, Outcome, Provider, ProviderState, ProviderStatus, Recommendation};
use crate::providers::{Backends, CloudBackend, Query, RequestCount};

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

/// The outcome of a run with these provider results.
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
    let succeeded: u32 = providers.iter().map(|p| p.accounts_succeeded).sum();
    let outcome = if errors.is_empty() {
        Outcome::Succeeded
    } else if succeeded == 0 {
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
    failures: Vec<Failure>,
    /// Calls made to the provider's API, and how many failed.
    requests: u64,
    request_errors: u64,
}

/// Collects every account of every backend. Progress (per-provider status)
/// is published on `progress` as accounts finish.
pub async fn collect(
    backends: &Backends,
    accounts: &[Account],
    config: &EngineConfig,
    progress: &watch::Sender<Vec<ProviderStatus>>,
) -> Collected {
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
        collect_provider(i, backend.as_ref(), accts, config, &tracker).instrument(span)
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
            if result.failures.is_empty() {
                collected.complete_accounts.push((backend.provider(), account.external_id.clone()));
            }
            collected.sources.extend(std::iter::repeat_n(account.external_id.clone(), result.recommendations.len()));
            collected.recommendations.extend(result.recommendations);
        }
    }
    let mut providers = status.into_inner().unwrap();
    for p in &mut providers {
        p.state = match (p.accounts_succeeded, p.accounts_failed) {
            (_, 0) => ProviderState::Succeeded,
            (0, _) => ProviderState::Failed,
            _ => ProviderState::PartiallySucceeded,
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
            if result.failures.is_empty() {
                p.accounts_succeeded += 1;
            } else {
                p.accounts_failed += 1;
                let room = ProviderStatus::MAX_FAILURES.saturating_sub(p.failures.len());
                p.failures.extend(result.failures.iter().take(room).cloned());
                let first = &p.failures[0];
                p.error = format!(
                    "{} of {} accounts failed (first: account {}: {})",
                    p.accounts_failed, p.accounts_total, first.account_id, first.error
                );
            }
            all.clone()
        };
        tracing::debug!(account = %account.external_id, failures = result.failures.len(), "account done");
        self.progress.send_replace(snapshot);
    }
}

async fn collect_provider(
    index: usize,
    backend: &dyn CloudBackend,
    accounts: &[&Account],
    config: &EngineConfig,
    tracker: &Tracker<'_>,
) -> Vec<AccountResult> {
    let permits = Semaphore::new(config.max_account_parallelism.max(1));
    join_all(accounts.iter().map(|account| {
        let span = tracing::info_span!("account", account = %account.external_id);
        async {
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            let result = collect_account(backend, account, config).await;
            tracker.account_done(index, account, &result);
            result
        }
        .instrument(span)
    }))
    .await
}

async fn collect_account(backend: &dyn CloudBackend, account: &Account, config: &EngineConfig) -> AccountResult {
    let calls = RequestCount::default();
    let mut result = collect_account_counted(backend, account, config, &calls).await;
    (result.requests, result.request_errors) = calls.get();
    result
}

async fn collect_account_counted(
    backend: &dyn CloudBackend,
    account: &Account,
    config: &EngineConfig,
    calls: &RequestCount,
) -> AccountResult {
    let listed = match backend.regions(account, calls).await {
        // No region at all is no sweep: treated as a failure, so that the
        // account's rows are kept rather than evicted.
        Ok(Some(regions)) if regions.is_empty() => {
            Err(crate::providers::BackendError("the region list was empty".into()))
        }
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
            let failure = Failure {
                account_id: account.external_id.clone(),
                service: String::new(),
                region: String::new(),
                error: format!("listing regions: {err}"),
            };
            return AccountResult { failures: vec![failure], ..Default::default() };
        }
    };
    let per_service = join_all(backend.services().iter().map(|&service| {
        let regions = regions.as_deref().filter(|_| backend.is_regional(service));
        async move {
            match regions {
                None => vec![sweep(backend, account, service, None, calls).await],
                Some(regions) => {
                    let permits = Semaphore::new(config.region_parallelism.max(1));
                    join_all(regions.iter().map(|region| async {
                        let _permit = permits.acquire().await.expect("the semaphore is never closed");
                        sweep(backend, account, service, Some(region), calls).await
                    }))
                    .await
                }
            }
        }
        .instrument(tracing::info_span!("service", service))
    }))
    .await;
    let mut result = AccountResult::default();
    for part in per_service.into_iter().flatten() {
        result.recommendations.extend(part.recommendations);
        result.failures.extend(part.failures);
    }
    result
}

/// Sweeps one (service, region) over its terms and payment options, one call
/// at a time; a failed call is recorded and the sweep goes on.
async fn sweep(
    backend: &dyn CloudBackend,
    account: &Account,
    service: &'static str,
    region: Option<&str>,
    calls: &RequestCount,
) -> AccountResult {
    let mut result = AccountResult::default();
    for sweep in backend.sweeps(service) {
        let query = Query { account, service, region, sweep, calls };
        // A payload with a non-finite amount is malformed: the sweep of that
        // service fails (and its account keeps its rows), like any error.
        let fetched = backend.fetch(query).await.and_then(|recs| {
            if recs.iter().all(Recommendation::has_finite_amounts) {
                Ok(recs)
            } else {
                Err(crate::providers::BackendError("the provider returned a non-finite amount".into()))
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
                    error = %err,
                    "collecting recommendations failed"
                );
                result.failures.push(Failure {
                    account_id: account.external_id.clone(),
                    service: service.to_string(),
                    region: region.unwrap_or("").to_string(),
                    error: format!("{}-month {}: {err}", sweep.term_months, sweep.payment),
                });
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::providers::simulated::{SimulatedBackend, SimulatedConfig};

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
        assert!(collected.complete_accounts.iter().all(|(p, _)| *p == Provider::Aws));
        assert_eq!(collected.outcome().0, Outcome::PartiallySucceeded);
        assert_eq!(*rx.borrow(), collected.providers, "the last progress is the final status");
    }

    /// A cloud that lists `regions` and answers every call with `recs`.
    struct Fixed {
        regions: Option<Vec<String>>,
        recs: Vec<Recommendation>,
    }

    impl CloudBackend for Fixed {
        fn provider(&self) -> Provider {
            Provider::Gcp
        }
        fn services(&self) -> &'static [&'static str] {
            &["compute"]
        }
        fn sweeps(&self, _: &'static str) -> Vec<crate::providers::Sweep> {
            vec![crate::providers::Sweep { term_months: 12, payment: crate::domain::PaymentOption::Monthly }]
        }
        fn regions<'a>(
            &'a self,
            _: &'a Account,
            _: &'a RequestCount,
        ) -> futures_util::future::BoxFuture<'a, Result<Option<Vec<String>>, crate::providers::BackendError>> {
            Box::pin(async { Ok(self.regions.clone()) })
        }
        fn fetch<'a>(
            &'a self,
            _: Query<'a>,
        ) -> futures_util::future::BoxFuture<'a, Result<Vec<Recommendation>, crate::providers::BackendError>> {
            Box::pin(async { Ok(self.recs.clone()) })
        }
    }

    /// What the simulated GCP returns for one compute sweep of `account`.
    async fn simulated_compute(account: &Account) -> Vec<Recommendation> {
        let sim =
            SimulatedBackend::new(Provider::Gcp, SimulatedConfig { latency: Duration::ZERO, ..Default::default() });
        let sweep = crate::providers::Sweep { term_months: 12, payment: crate::domain::PaymentOption::Monthly };
        let calls = RequestCount::default();
        sim.fetch(Query { account, service: "compute", region: Some("us-east1"), sweep, calls: &calls }).await.unwrap()
    }

    async fn collect_one(backend: Fixed) -> Collected {
        let backends: Backends = vec![Arc::new(backend)];
        let (tx, _rx) = watch::channel(Vec::new());
        collect(&backends, &accounts(Provider::Gcp, 1), &EngineConfig::default(), &tx).await
    }

    #[tokio::test]
    async fn an_empty_region_list_is_a_failed_sweep_not_a_complete_one() {
        let collected = collect_one(Fixed { regions: Some(Vec::new()), recs: Vec::new() }).await;
        assert!(collected.complete_accounts.is_empty(), "its rows must not be evicted");
        assert_eq!(collected.providers[0].accounts_failed, 1);
        assert!(collected.providers[0].failures[0].error.contains("region list was empty"));
    }

    #[tokio::test]
    async fn a_payload_with_a_non_finite_amount_fails_its_sweep() {
        let account = &accounts(Provider::Gcp, 1)[0];
        let mut recs = simulated_compute(account).await;
        recs[0].estimated_monthly_savings = f64::NAN;
        let collected = collect_one(Fixed { regions: None, recs }).await;
        assert!(collected.recommendations.is_empty(), "nothing of a malformed payload is kept");
        assert!(collected.complete_accounts.is_empty());
        assert!(collected.providers[0].failures[0].error.contains("non-finite"));
    }

    #[tokio::test]
    async fn rows_of_linked_accounts_are_sourced_to_the_account_that_collected_them() {
        let account = &accounts(Provider::Gcp, 1)[0];
        let mut recs = simulated_compute(account).await;
        recs[0].account_id = "linked-002".into();
        let collected = collect_one(Fixed { regions: None, recs }).await;
        let complete: Vec<&str> = collected.complete_accounts.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(complete, [account.external_id.as_str()], "only registered accounts complete");
        assert_eq!(collected.sources.len(), collected.recommendations.len());
        assert_eq!(collected.recommendations[0].account_id, "linked-002");
        assert!(collected.sources.iter().all(|s| *s == account.external_id), "every row came through the account");
    }

    #[test]
    fn a_run_without_accounts_fails_with_a_hint() {
        let (outcome, error) = run_outcome(&[ProviderStatus::pending(Provider::Aws, 0)]);
        assert_eq!(outcome, Outcome::Failed);
        assert!(error.unwrap().contains("--seed-accounts"));
    }
}
