//! Starting collections: every trigger (user, schedule, cold start, stale
//! data) takes the same lease, then hands the run to the collector.

use std::sync::Arc;
use std::time::Duration;

use cudly_core::domain::Trigger;
use cudly_core::lease::{Acquired, Collection, acquire_lease, release_undispatched};
use cudly_core::telemetry::status_line;
use sqlx::PgPool;
use tracing::Instrument as _;

use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::metrics::ApiMetrics;

/// Starts runs or joins the one in flight.
#[derive(Clone, Debug)]
pub struct Refresher {
    pool: PgPool,
    dispatcher: Dispatcher,
    lease_ttl: Duration,
    metrics: ApiMetrics,
}

impl Refresher {
    /// A refresher over `pool` delivering to `dispatcher`.
    pub fn new(pool: PgPool, dispatcher: Dispatcher, lease_ttl: Duration, metrics: ApiMetrics) -> Self {
        Refresher { pool, dispatcher, lease_ttl, metrics }
    }

    /// Starts a run (or joins the one in flight) and waits only for the
    /// collector's acknowledgement. A run the collector could not take has
    /// its lease released and is reported as `CollectorUnavailable`.
    pub async fn refresh(&self, trigger: Trigger) -> Result<Acquired, Error> {
        let acquired = self.acquire(trigger).await?;
        if let Acquired::Started(run) = &acquired {
            self.dispatch_or_release(run).await?;
        }
        Ok(acquired)
    }

    /// Takes the lease now and dispatches in the background, for triggers
    /// that come from reads: the read answers at once with the run in flight.
    pub async fn refresh_in_background(self: &Arc<Self>, trigger: Trigger) -> Result<Acquired, Error> {
        let acquired = self.acquire(trigger).await?;
        if let Acquired::Started(run) = &acquired {
            let (this, run) = (self.clone(), run.clone());
            tokio::spawn(
                async move {
                    if let Err(err) = this.dispatch_or_release(&run).await {
                        tracing::warn!(collection_id = %run.collection_id, trigger = %run.trigger, error = %err, "background refresh not started");
                    }
                }
                .in_current_span(),
            );
        }
        Ok(acquired)
    }

    async fn acquire(&self, trigger: Trigger) -> Result<Acquired, Error> {
        // Started runs are counted once dispatched (or not).
        let acquired = acquire_lease(&self.pool, trigger, self.lease_ttl).await.map_err(Error::from);
        match &acquired {
            Ok(Acquired::Started(run)) if run.took_over => {
                tracing::warn!(collection_id = %run.collection_id, "took over the expired lease of a run whose collector stopped heartbeating");
                self.metrics.lease_takeover();
            }
            Ok(Acquired::Started(_)) => {}
            Ok(Acquired::Joined(_)) => self.metrics.refresh(trigger.as_str(), "joined"),
            Err(_) => self.metrics.refresh(trigger.as_str(), "failed"),
        }
        acquired
    }

    async fn dispatch_or_release(&self, run: &Collection) -> Result<(), Error> {
        let Err(status) = self.dispatcher.dispatch(run).await else {
            tracing::info!(collection_id = %run.collection_id, generation = run.generation, trigger = %run.trigger, "collection started");
            self.metrics.refresh(run.trigger.as_str(), "started");
            return Ok(());
        };
        // The message alone can be as vague as "tcp connect error"; its
        // causes say why (each once).
        let cause = status_line(&status);
        tracing::warn!(collection_id = %run.collection_id, code = ?status.code(), error = %cause, "dispatch failed; releasing the lease");
        let why = format!("dispatch to the collector failed: {cause}");
        if let Err(err) = release_undispatched(&self.pool, run, &why).await {
            // The lease then expires after its TTL; nothing stays stuck.
            tracing::error!(collection_id = %run.collection_id, error = %err, "releasing the lease failed");
        }
        self.metrics.refresh(run.trigger.as_str(), "dispatch_failed");
        Err(Error::CollectorUnavailable(why))
    }
}
