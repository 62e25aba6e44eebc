//! The fan-out against simulated and fixed clouds: merge order, isolation
//! of failures, refusals, sources and outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cudly_core::domain::{
    Account, AccountFailures, AccountState, Outcome, PaymentOption, Provider, ProviderState, ProviderStatus,
    Recommendation,
};
use tokio::sync::watch;

use clap::Parser as _;

use super::{Collected, EngineConfig, collect, run_outcome};
use crate::app::Settings;
use crate::config::Config;
use crate::providers::simulated::{SimulatedBackend, SimulatedConfig};
use crate::providers::{BackendError, Backends, CloudBackend, Query, RequestCount, RunScope, Sweep};

/// Simulated clouds that answer at once, without failures.
fn quick() -> SimulatedConfig {
    SimulatedConfig { seed: 42, latency: Duration::ZERO, jitter: Duration::ZERO, failure_rate: 0.0 }
}

/// The caps these tests run with: the service's defaults, from its flags.
fn caps() -> EngineConfig {
    let config = Config::try_parse_from(["collector-service", "--insecure-no-auth"]).unwrap();
    Settings::from_config(&config).unwrap().engine
}

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
            ..quick()
        });
        let all = all.clone();
        let tx = tx.clone();
        async move { collect(&backends, &all, &caps(), &tx).await }
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
    let (backends, sims) = fleet(quick());
    sims[1].set_failure_rate(1.0);
    let (tx, rx) = watch::channel(Vec::new());
    let collected = collect(&backends, &all, &caps(), &tx).await;
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
            match self.fail.iter().find(|(a, r, _)| *a == query.account.external_id && (r.is_empty() || *r == region)) {
                Some((_, _, err)) => Err(err.clone()),
                None => Ok(self.recs.clone()),
            }
        })
    }
}

/// What the simulated GCP returns for one compute sweep of `account`.
async fn simulated_compute(account: &Account) -> Vec<Recommendation> {
    let sim = SimulatedBackend::new(Provider::Gcp, quick());
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
    collect(&backends, accounts, &caps(), &tx).await
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
    let places: Vec<(&str, &str)> = partial.failures.iter().map(|f| (f.service.as_str(), f.region.as_str())).collect();
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
    let config = EngineConfig { region_parallelism: 1, ..caps() };
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
        collect(&backends, &accounts(Provider::Gcp, 1), &caps(), &tx).await;
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
