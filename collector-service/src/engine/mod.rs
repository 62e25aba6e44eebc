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

use cudly_core::domain::{Account, AccountState, Outcome, Provider, ProviderState, ProviderStatus, Recommendation};
use futures_util::future::join_all;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

mod account;

use self::account::{AccountResult, collect_account};
use crate::providers::{Backends, CloudBackend, RunScope};

/// The caps of the fan-out.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Accounts of one provider collected at once.
    pub max_account_parallelism: usize,
    /// Regions of one (account, service) collected at once.
    pub region_parallelism: usize,
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

#[cfg(test)]
mod tests;
