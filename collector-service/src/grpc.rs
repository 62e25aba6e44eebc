//! The collector: takes delivered runs, checks they hold the lease, runs
//! them in the background, and stops them on shutdown. Plus its thin gRPC
//! adapter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cudly_core::domain::Trigger;
use cudly_core::lease::{Lease, holds_lease};
use cudly_core::quote::quoted;
use cudly_proto::collector::v1::collector_service_server::CollectorService;
use cudly_proto::collector::v1::{CollectRequest, CollectResponse};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::collection::{CollectionContext, CollectionEnd, run_collection};
use crate::error::Error;

/// Runs collections in the background, one task per delivered run.
pub struct Collector {
    ctx: Arc<CollectionContext>,
    /// Runs in flight here, by id, with their generation.
    running: Arc<Mutex<HashMap<Uuid, i64>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    ends: broadcast::Sender<(Lease, CollectionEnd)>,
}

/// How a delivery was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The run was already running here; this delivery was ignored.
    pub duplicate: bool,
}

impl Collector {
    /// A collector running with `ctx`.
    pub fn new(ctx: CollectionContext) -> Self {
        Collector {
            ctx: Arc::new(ctx),
            running: Arc::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            ends: broadcast::channel(64).0,
        }
    }

    /// Takes a delivered run: acknowledges a duplicate, refuses a run that
    /// does not hold the lease, else starts it in the background.
    pub async fn accept(&self, lease: Lease) -> Result<Accepted, Error> {
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        if self.is_running(&lease) {
            return Ok(Accepted { duplicate: true });
        }
        if !holds_lease(&self.ctx.pool, &lease).await? {
            return Err(Error::NotLeaseHolder { collection_id: lease.collection_id, generation: lease.generation });
        }
        // Checked and spawned under the lock that shutdown takes to cancel:
        // a run is either refused or tracked before shutdown waits for runs.
        let mut running = self.running.lock().unwrap();
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        if running.get(&lease.collection_id) == Some(&lease.generation) {
            return Ok(Accepted { duplicate: true });
        }
        running.insert(lease.collection_id, lease.generation);
        let (ctx, registry, ends, cancel) =
            (self.ctx.clone(), self.running.clone(), self.ends.clone(), self.shutdown.clone());
        // The run joins the trace of the delivery (and so of the refresh).
        let parent = tracing::Span::current().context();
        self.tasks.spawn(async move {
            let end = run_collection(ctx, lease, cancel, parent).await;
            registry.lock().unwrap().remove(&lease.collection_id);
            let _ = ends.send((lease, end));
        });
        Ok(Accepted { duplicate: false })
    }

    /// The database the collector writes to.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.ctx.pool
    }

    fn is_running(&self, lease: &Lease) -> bool {
        self.running.lock().unwrap().get(&lease.collection_id) == Some(&lease.generation)
    }

    /// How each run ends, as it ends (for benchmarks, tests and tooling).
    pub fn subscribe_ends(&self) -> broadcast::Receiver<(Lease, CollectionEnd)> {
        self.ends.subscribe()
    }

    /// Cancels every run (each releases its lease with "collector shutting
    /// down") and waits up to `timeout` for them to do so.
    pub async fn shutdown(&self, timeout: Duration) {
        {
            let _running = self.running.lock().unwrap();
            self.shutdown.cancel();
            self.tasks.close();
        }
        if tokio::time::timeout(timeout, self.tasks.wait()).await.is_err() {
            tracing::warn!(?timeout, "runs did not stop in time; their leases will expire");
        }
    }
}

/// `cudly.collector.v1.CollectorService` over a [`Collector`].
pub struct CollectorGrpc(pub Arc<Collector>);

#[tonic::async_trait]
impl CollectorService for CollectorGrpc {
    async fn collect(&self, request: Request<CollectRequest>) -> Result<Response<CollectResponse>, Status> {
        let span = tracing::info_span!(
            "collect",
            collection_id = %request.get_ref().collection_id,
            generation = request.get_ref().generation
        );
        // The caller's trace context becomes the parent before the span is
        // first entered (afterwards it could no longer change).
        if let Err(err) = span.set_parent(cudly_core::telemetry::extract_trace_context(request.metadata())) {
            tracing::debug!(error = %err, "trace context not applied");
        }
        async move {
            let lease = parse_collect(request.into_inner())?;
            let accepted = self.0.accept(lease).await?;
            if accepted.duplicate {
                tracing::info!("duplicate delivery acknowledged and ignored");
            } else {
                tracing::info!("run accepted");
            }
            Ok(Response::new(CollectResponse { duplicate: accepted.duplicate }))
        }
        .instrument(span)
        .await
    }
}

fn parse_collect(req: CollectRequest) -> Result<Lease, Error> {
    let collection_id = Uuid::parse_str(&req.collection_id)
        .map_err(|_| Error::InvalidArgument(format!("collection_id: {} is not a UUID", quoted(&req.collection_id))))?;
    if req.generation <= 0 {
        return Err(Error::InvalidArgument(format!("generation: must be positive, got {}", req.generation)));
    }
    let trigger = Trigger::from_proto(req.trigger).ok_or_else(|| match req.trigger {
        0 => Error::InvalidArgument("trigger: required".into()),
        other => Error::InvalidArgument(format!("trigger: unknown value {other}")),
    })?;
    Ok(Lease { collection_id, generation: req.generation, trigger })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_deliveries_name_the_bad_field() {
        let ok = CollectRequest {
            collection_id: Uuid::new_v4().to_string(),
            generation: 3,
            trigger: Trigger::Schedule.to_proto(),
        };
        assert_eq!(parse_collect(ok.clone()).unwrap().trigger, Trigger::Schedule);
        assert!(parse_collect(ok.clone()).is_ok());
        let bad_id = CollectRequest { collection_id: "x".into(), ..ok.clone() };
        assert!(parse_collect(bad_id).unwrap_err().to_string().starts_with("collection_id"));
        let bad_gen = CollectRequest { generation: 0, ..ok.clone() };
        assert!(parse_collect(bad_gen).unwrap_err().to_string().starts_with("generation"));
        let unset = CollectRequest { trigger: 0, ..ok.clone() };
        assert_eq!(parse_collect(unset).unwrap_err().to_string(), "trigger: required");
        let unknown = CollectRequest { trigger: 99, ..ok };
        assert_eq!(parse_collect(unknown).unwrap_err().to_string(), "trigger: unknown value 99");
    }
}
