//! Building and running collector-service: the same `build()`/`run()` serve
//! production and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cudly_proto::collector::v1::collector_service_server::CollectorServiceServer;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::config::{Backend, Config};
use crate::engine::EngineConfig;
use crate::providers::Backends;
use crate::providers::simulated::{SimulatedBackend, SimulatedConfig};
use crate::run::RunContext;
use crate::service::{Collector, CollectorGrpc};
use crate::serving;

/// What a collector needs besides its database and backends.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// Lease time-to-live.
    pub lease_ttl: Duration,
    /// Fan-out caps.
    pub engine: EngineConfig,
    /// Minimum time between progress writes.
    pub progress_interval: Duration,
    /// How long shutdown waits for runs to release their leases.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// The settings `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        Settings {
            listen: config.listen,
            lease_ttl: config.lease_ttl,
            engine: EngineConfig {
                max_account_parallelism: config.max_account_parallelism as usize,
                region_parallelism: config.gcp_region_parallelism as usize,
            },
            progress_interval: config.progress_interval,
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// The backends `config` asks for, in its provider order.
pub fn backends_from_config(config: &Config) -> Backends {
    match config.backend {
        Backend::Simulated => {
            let sim = SimulatedConfig {
                seed: config.sim_seed,
                latency: config.sim_latency,
                jitter: config.sim_jitter,
                failure_rate: config.sim_failure_rate,
            };
            config.providers.iter().map(|&p| Arc::new(SimulatedBackend::new(p, sim.clone())) as _).collect()
        }
    }
}

/// A bound, not yet serving collector.
pub struct App {
    incoming: TcpIncoming,
    addr: SocketAddr,
    collector: Arc<Collector>,
    health: HealthReporter,
    settings: Settings,
}

/// Binds the listener and wires the services.
pub async fn build(settings: Settings, pool: PgPool, backends: Backends) -> anyhow::Result<App> {
    let (incoming, addr) = serving::bind(settings.listen)?;
    let collector = Arc::new(Collector::new(RunContext {
        pool,
        backends,
        engine: settings.engine.clone(),
        lease_ttl: settings.lease_ttl,
        progress_interval: settings.progress_interval,
    }));
    let health = HealthReporter::new();
    Ok(App { incoming, addr, collector, health, settings })
}

impl App {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The collector behind the server.
    pub fn collector(&self) -> Arc<Collector> {
        self.collector.clone()
    }

    /// Serves until `shutdown` resolves; then reports NOT_SERVING, stops the
    /// runs (releasing their leases) and drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { incoming, addr, collector, health, settings } = self;
        type Named = CollectorServiceServer<CollectorGrpc>;
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        serving::report::<Named>(&health, ServingStatus::NotServing).await;
        let stop_tracking = CancellationToken::new();
        let tracker = tokio::spawn(serving::track_readiness::<Named>(
            health.clone(),
            collector.pool().clone(),
            || true,
            stop_tracking.clone(),
        ));
        let (reflection_v1, reflection_v1alpha) = serving::reflection()?;
        let stopping = collector.clone();
        let drain = async move {
            shutdown.await;
            stop_tracking.cancel();
            let _ = tracker.await;
            serving::report::<Named>(&health, ServingStatus::NotServing).await;
            stopping.shutdown(settings.shutdown_timeout).await;
        };
        tracing::info!(%addr, "collector-service listening");
        Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(CollectorServiceServer::new(CollectorGrpc(collector)))
            .serve_with_incoming_shutdown(incoming, drain)
            .await?;
        tracing::info!("collector-service stopped");
        Ok(())
    }
}
