//! One collection from start to end: heartbeat the lease, collect, publish
//! progress, and finish (or release the lease when cancelled, or write
//! nothing when the lease was lost).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use cudly_core::domain::{Outcome, ProviderStatus};
use cudly_core::lease::{self, Ending, Lease};

use crate::accounts::enabled_accounts;
use crate::engine::{self, EngineConfig};
use crate::metrics::CollectorMetrics;
use crate::notices::NoticeRules;
use crate::persist::{self, FinishError};
use crate::providers::Backends;

/// What every run of a collector shares.
pub struct CollectionContext {
    /// The database.
    pub pool: PgPool,
    /// The clouds, in provider order.
    pub backends: Backends,
    /// Fan-out caps.
    pub engine: EngineConfig,
    /// Lease time-to-live; the lease is renewed every third of it.
    pub lease_ttl: Duration,
    /// Minimum time between two progress writes.
    pub progress_interval: Duration,
    /// Run and provider-call counters.
    pub metrics: CollectorMetrics,
    /// What a run announces.
    pub notices: NoticeRules,
}

/// How a run ended, as seen by its collector.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectionEnd {
    /// Results written, lease cleared.
    Finished(persist::Finished),
    /// Cancelled (shutdown): lease released with the error recorded.
    Released,
    /// The lease was lost: nothing written.
    LeaseLost,
    /// The database failed: the failure was recorded and the lease
    /// released where the database allowed, else the lease expires.
    Failed(String),
}

impl CollectionEnd {
    /// The `outcome` label of the run metrics.
    pub fn outcome_label(&self) -> &'static str {
        match self {
            CollectionEnd::Finished(f) => f.outcome.as_str(),
            CollectionEnd::Released => "cancelled",
            CollectionEnd::LeaseLost => "lease_lost",
            CollectionEnd::Failed(_) => "failed",
        }
    }
}

/// The error recorded when a collector stops its runs to shut down.
pub const SHUTTING_DOWN: &str = "collector shutting down";

/// Runs one collection until it finishes, loses its lease or `cancel` fires.
/// Its span is a root of its own in the log but, in traces, a child of
/// `parent` (the delivery that started it), so a trace shows the refresh,
/// the delivery and the whole run with its providers, accounts and services.
pub async fn run_collection(
    ctx: Arc<CollectionContext>,
    lease: Lease,
    cancel: CancellationToken,
    parent: opentelemetry::Context,
) -> CollectionEnd {
    let span = tracing::info_span!(parent: None, "collection", collection_id = %lease.collection_id, generation = lease.generation, trigger = %lease.trigger);
    // Without a tracing-opentelemetry layer (no OTLP endpoint) this does
    // nothing, which is right: there is no trace to join.
    if let Err(err) = span.set_parent(parent) {
        tracing::debug!(error = %err, "trace context not applied");
    }
    async move {
        let started = Instant::now();
        let end = run(&ctx, lease, &cancel).await;
        ctx.metrics.collection_ended(lease.trigger.as_str(), end.outcome_label(), started.elapsed());
        match &end {
            CollectionEnd::Finished(f) => tracing::info!(outcome = %f.outcome, written = f.written, evicted = f.evicted, notice_id = ?f.notice.as_ref().map(|n| n.notice_id), announced = f.notice.as_ref().map_or(0, |n| n.item_count), elapsed_ms = started.elapsed().as_millis() as u64, "run finished"),
            CollectionEnd::Released => tracing::info!("run cancelled, lease released"),
            CollectionEnd::LeaseLost => tracing::warn!("lease lost, run stopped without writing"),
            CollectionEnd::Failed(e) => tracing::error!(error = %e, "run failed"),
        }
        end
    }
    .instrument(span)
    .await
}

async fn run(ctx: &CollectionContext, lease: Lease, cancel: &CancellationToken) -> CollectionEnd {
    // The run's own token: cancelled by the caller (shutdown) or by losing
    // the lease. `lost` is cancelled only by the latter: it also abandons a
    // write in progress, and tells the two apart.
    let run_cancel = cancel.child_token();
    let lost = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(ctx.pool.clone(), lease, ctx.lease_ttl, run_cancel.clone(), lost.clone()));
    let _stop_heartbeat = AbortOnDrop(heartbeat);

    // Every step waits on the database or the clouds; each one ends at once
    // when the lease is lost, even on a database that no longer answers.
    let accounts = match run_cancel.run_until_cancelled(enabled_accounts(&ctx.pool)).await {
        Some(Ok(accounts)) => accounts,
        Some(Err(err)) => return fail(ctx, &lease, format!("loading accounts failed: {err}"), &[]).await,
        None => return cancelled(ctx, &lease, &lost, &[]).await,
    };
    let (progress_tx, progress_rx) = watch::channel(Vec::new());
    let progress = tokio::spawn(publish_progress(ctx.pool.clone(), lease, progress_rx, ctx.progress_interval));
    let _stop_progress = AbortOnDrop(progress);

    let collected =
        run_cancel.run_until_cancelled(engine::collect(&ctx.backends, &accounts, &ctx.engine, &progress_tx)).await;
    let Some(collected) = collected.filter(|_| !lost.is_cancelled()) else {
        let providers = progress_tx.borrow().clone();
        return cancelled(ctx, &lease, &lost, &providers).await;
    };
    let providers = collected.providers.clone();
    ctx.metrics.provider_calls(&providers);
    // A shutdown lets the write finish; a lost lease abandons it (its fence
    // would refuse the commit anyway).
    match lost.run_until_cancelled(persist::finish_run(&ctx.pool, &lease, collected, &ctx.notices)).await {
        None | Some(Err(FinishError::LeaseLost)) => CollectionEnd::LeaseLost,
        Some(Ok(finished)) => CollectionEnd::Finished(finished),
        Some(Err(FinishError::Database(err))) => {
            fail(ctx, &lease, format!("writing results failed: {err}"), &providers).await
        }
    }
}

/// Ends a run stopped before its results: nothing to write when its lease
/// is lost; otherwise (shutdown) its lease is released with the reason.
async fn cancelled(
    ctx: &CollectionContext,
    lease: &Lease,
    lost: &CancellationToken,
    providers: &[ProviderStatus],
) -> CollectionEnd {
    ctx.metrics.provider_calls(providers);
    if lost.is_cancelled() {
        return CollectionEnd::LeaseLost;
    }
    let ending =
        Ending { outcome: Outcome::Cancelled, error: Some(SHUTTING_DOWN), providers: Some(providers), written: None };
    match lease::end_run(&ctx.pool, lease, &ending).await {
        Ok(true) => CollectionEnd::Released,
        Ok(false) => CollectionEnd::LeaseLost,
        Err(err) => CollectionEnd::Failed(format!("releasing the lease: {err}")),
    }
}

/// Records a failed run and frees its lease now if the database lets us;
/// otherwise the lease expires after its TTL and the run is taken over.
async fn fail(ctx: &CollectionContext, lease: &Lease, why: String, providers: &[ProviderStatus]) -> CollectionEnd {
    let ending = Ending { outcome: Outcome::Failed, error: Some(&why), providers: Some(providers), written: None };
    if let Err(err) = lease::end_run(&ctx.pool, lease, &ending).await {
        tracing::warn!(error = %err, "could not record the failure; the lease will expire");
    }
    CollectionEnd::Failed(why)
}

/// Renews the lease every TTL/3 until the run ends (it is aborted then),
/// also while a cancelled run writes its last state. Cancels the run when
/// the lease is gone, or when no renewal succeeded before the lease would
/// have expired (e.g. the database is unreachable): by then another
/// collector may own it.
async fn heartbeat(pool: PgPool, lease: Lease, ttl: Duration, run: CancellationToken, lost: CancellationToken) {
    let mut valid_until = Instant::now() + ttl;
    let mut tick = tokio::time::interval_at(Instant::now() + ttl / 3, ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let attempt = Instant::now();
        let renewed = tokio::time::timeout(ttl / 3, lease::renew_lease(&pool, &lease, ttl)).await;
        match renewed {
            Ok(Ok(true)) => valid_until = attempt + ttl,
            Ok(Ok(false)) => {
                tracing::warn!("lease no longer held; cancelling the run");
                break;
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "lease renewal failed; retrying"),
            Err(_) => tracing::warn!("lease renewal timed out; retrying"),
        }
        if Instant::now() >= valid_until {
            tracing::warn!("lease not renewed before it expired; cancelling the run");
            break;
        }
    }
    lost.cancel();
    run.cancel();
}

/// Writes progress at most once per `interval`, always including the latest.
async fn publish_progress(
    pool: PgPool,
    lease: Lease,
    mut rx: watch::Receiver<Vec<ProviderStatus>>,
    interval: Duration,
) {
    while rx.changed().await.is_ok() {
        let snapshot = rx.borrow_and_update().clone();
        match lease::write_progress(&pool, &lease, &snapshot).await {
            Ok(true) => {}
            // The heartbeat notices too and cancels the run.
            Ok(false) => return,
            Err(err) => tracing::warn!(error = %err, "writing progress failed"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Aborts a helper task when the run ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
