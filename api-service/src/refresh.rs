//! Starting collections: every trigger (user, schedule, cold start, stale
//! data) takes the same lease, then hands the run to the collector.

use std::sync::Arc;
use std::time::Duration;

use cudly_collector::domain::Trigger;
use sqlx::PgPool;

use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::lease::{Acquired, RunInfo, acquire_lease, release_undispatched};

/// Starts runs or joins the one in flight.
#[derive(Clone, Debug)]
pub struct Refresher {
    pool: PgPool,
    dispatcher: Dispatcher,
    lease_ttl: Duration,
}

impl Refresher {
    /// A refresher over `pool` delivering to `dispatcher`.
    pub fn new(pool: PgPool, dispatcher: Dispatcher, lease_ttl: Duration) -> Self {
        Refresher { pool, dispatcher, lease_ttl }
    }

    /// Starts a run (or joins the one in flight) and waits only for the
    /// collector's acknowledgement. A run the collector could not take has
    /// its lease released and is reported as `CollectorUnavailable`.
    pub async fn refresh(&self, trigger: Trigger) -> Result<Acquired, Error> {
        let acquired = acquire_lease(&self.pool, trigger, self.lease_ttl).await?;
        if let Acquired::Started(run) = &acquired {
            self.dispatch_or_release(run).await?;
        }
        Ok(acquired)
    }

    /// Takes the lease now and dispatches in the background, for triggers
    /// that come from reads: the read answers at once with the run in flight.
    pub async fn refresh_in_background(self: &Arc<Self>, trigger: Trigger) -> Result<Acquired, Error> {
        let acquired = acquire_lease(&self.pool, trigger, self.lease_ttl).await?;
        if let Acquired::Started(run) = &acquired {
            let (this, run) = (self.clone(), run.clone());
            tokio::spawn(async move {
                if let Err(err) = this.dispatch_or_release(&run).await {
                    tracing::warn!(run_id = %run.collection_id, trigger = %run.trigger, error = %err, "background refresh not started");
                }
            });
        }
        Ok(acquired)
    }

    async fn dispatch_or_release(&self, run: &RunInfo) -> Result<(), Error> {
        let Err(status) = self.dispatcher.dispatch(run).await else {
            tracing::info!(run_id = %run.collection_id, generation = run.generation, trigger = %run.trigger, "collection started");
            return Ok(());
        };
        tracing::warn!(run_id = %run.collection_id, code = ?status.code(), message = status.message(), "dispatch failed; releasing the lease");
        let why = format!("dispatch to the collector failed: {}", status.message());
        if let Err(err) = release_undispatched(&self.pool, run, &why).await {
            // The lease then expires after its TTL; nothing stays stuck.
            tracing::error!(run_id = %run.collection_id, error = %err, "releasing the lease failed");
        }
        Err(Error::CollectorUnavailable(why))
    }
}

/// When reads start a collection by themselves.
#[derive(Clone, Copy, Debug)]
pub struct AutoRefresh {
    /// Data older than this is stale.
    pub stale_after: Duration,
    /// No automatic run within this long after the last run ended.
    pub backoff: Duration,
}

impl AutoRefresh {
    /// Starts a COLD_START run when nothing was ever collected, or a STALE
    /// run when the data is older than `stale_after`, unless a run is in
    /// flight or one ended within `backoff`. Judged by the database clock;
    /// the run takes the same lease as any other and is dispatched in the
    /// background. Returns the trigger it started a run with.
    pub async fn refresh_if_due(&self, refresher: &Arc<Refresher>) -> Result<Option<Trigger>, Error> {
        let due: Option<String> = sqlx::query_scalar(
            "SELECT CASE
                 WHEN lease_expires_at > now() THEN NULL
                 WHEN finished_at > now() - make_interval(secs => $2) THEN NULL
                 WHEN last_collected_at IS NULL THEN 'cold_start'
                 WHEN last_collected_at < now() - make_interval(secs => $1) THEN 'stale'
             END
             FROM collection_state WHERE id = 1",
        )
        .bind(self.stale_after.as_secs_f64())
        .bind(self.backoff.as_secs_f64())
        .fetch_one(&refresher.pool)
        .await?;
        let Some(trigger) = due.as_deref().and_then(Trigger::parse) else {
            return Ok(None);
        };
        match refresher.refresh_in_background(trigger).await? {
            Acquired::Started(_) => Ok(Some(trigger)),
            Acquired::Joined(_) => Ok(None),
        }
    }
}
