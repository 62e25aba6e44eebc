//! Building and running collector-service: the same `build()`/`run()` serve
//! production and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cudly_core::metrics::MetricsEndpoint;
use cudly_core::server;
use cudly_proto::collector::v1::collector_service_server::{self, CollectorServiceServer};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::auth::InternalAuth;
use crate::collection::CollectionContext;
use crate::config::{Backend, Config};
use crate::engine::EngineConfig;
use crate::grpc::{Collector, CollectorGrpc};
use crate::metrics::CollectorMetrics;
use crate::notices::NoticeRules;
use crate::notify::{Deliverer, DeliverySettings};
use crate::providers::Backends;
use crate::providers::simulated::{SimulatedBackend, SimulatedConfig};

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
    /// Who may deliver runs.
    pub auth: InternalAuth,
    /// Where metrics are served (`None`: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// Deliver queued notices from this replica.
    pub deliver_notices: bool,
    /// How notices are delivered.
    pub notify: DeliverySettings,
    /// What a run announces.
    pub notices: NoticeRules,
}

impl Settings {
    /// The settings `config` asks for; fails on unusable credentials.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.notify_retry_base <= config.notify_retry_max,
            "CUDLY_NOTIFY_RETRY_BASE ({}) is longer than CUDLY_NOTIFY_RETRY_MAX ({})",
            humantime::format_duration(config.notify_retry_base),
            humantime::format_duration(config.notify_retry_max)
        );
        Ok(Settings {
            listen: config.listen,
            lease_ttl: config.lease_ttl,
            engine: EngineConfig {
                max_account_parallelism: config.max_account_parallelism as usize,
                region_parallelism: config.gcp_region_parallelism as usize,
            },
            progress_interval: config.progress_interval,
            shutdown_timeout: config.shutdown_timeout,
            auth: config.internal_auth()?,
            metrics_listen: config.metrics_listen.0,
            deliver_notices: config.notify_deliver,
            notify: DeliverySettings {
                concurrency: config.notify_concurrency as usize,
                poll_interval: config.notify_poll_interval,
                retry_base: config.notify_retry_base,
                retry_max: config.notify_retry_max,
                retry_for: config.notify_retry_for,
                timeout: config.notify_timeout,
                secret_files: config.clouds.secret_file_dirs.clone(),
                smtp_ca_file: config.notify_smtp_ca_file.clone(),
            },
            notices: config.notice_rules(),
        })
    }
}

/// The backends `config` asks for, in its provider order.
pub async fn backends_from_config(config: &Config) -> anyhow::Result<Backends> {
    Ok(match config.backend {
        Backend::Simulated => {
            let sim = SimulatedConfig::from_config(config);
            config.providers.iter().map(|&p| Arc::new(SimulatedBackend::new(p, sim.clone())) as _).collect()
        }
        Backend::Live => crate::providers::live::live_backends(&config.clouds, &config.providers).await?,
    })
}

/// A bound, not yet serving collector.
pub struct App {
    incoming: TcpIncoming,
    addr: SocketAddr,
    metrics_endpoint: MetricsEndpoint,
    collector: Arc<Collector>,
    deliverer: Option<Deliverer>,
    health: HealthReporter,
    settings: Settings,
}

/// Binds the listeners (gRPC and metrics) and wires the services.
pub async fn build(settings: Settings, pool: PgPool, backends: Backends) -> anyhow::Result<App> {
    server::install_crypto_provider();
    if !settings.auth.is_configured() {
        anyhow::ensure!(settings.auth.insecure, "collector-service needs caller authentication");
        tracing::warn!(
            "CALLER AUTHENTICATION IS OFF (CUDLY_COLLECTOR_INSECURE_NO_AUTH): anyone who can reach this port can \
             start collections; use it for local runs only"
        );
    }
    let (incoming, addr) = server::bind(settings.listen)?;
    let mut registry = Registry::with_prefix("cudly");
    let metrics = CollectorMetrics::register(&mut registry);
    let metrics_endpoint = MetricsEndpoint::start(settings.metrics_listen, registry).await?;
    let deliverer = match settings.deliver_notices {
        true => Some(Deliverer::new(pool.clone(), settings.notify.clone(), metrics.clone())?),
        false => None,
    };
    let collector = Arc::new(Collector::new(CollectionContext {
        pool,
        backends,
        engine: settings.engine.clone(),
        lease_ttl: settings.lease_ttl,
        progress_interval: settings.progress_interval,
        metrics,
        notices: settings.notices.clone(),
    }));
    let health = HealthReporter::new();
    Ok(App { incoming, addr, metrics_endpoint, collector, deliverer, health, settings })
}

impl App {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address metrics are served on, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_endpoint.addr()
    }

    /// The collector behind the server.
    pub fn collector(&self) -> Arc<Collector> {
        self.collector.clone()
    }

    /// Serves (and delivers notices) until `shutdown` resolves; then reports
    /// NOT_SERVING, stops the runs (releasing their leases) and the
    /// deliverer, and drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { incoming, addr, collector, deliverer, health, settings, metrics_endpoint } = self;
        let stop_delivering = CancellationToken::new();
        let delivering = deliverer.map(|d| tokio::spawn(d.run(stop_delivering.clone())));
        type Named = CollectorServiceServer<CollectorGrpc>;
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        server::report::<Named>(&health, ServingStatus::NotServing).await;
        health.set_service_status(server::LIVENESS, ServingStatus::Serving).await;
        let stop_tracking = CancellationToken::new();
        let tracker = tokio::spawn(server::track_readiness::<Named>(
            health.clone(),
            collector.pool().clone(),
            || true,
            stop_tracking.clone(),
        ));
        let (reflection_v1, reflection_v1alpha) = server::reflection(&[collector_service_server::SERVICE_NAME])?;
        let stopping = collector.clone();
        let drain = async move {
            shutdown.await;
            stop_tracking.cancel();
            let _ = tracker.await;
            server::report::<Named>(&health, ServingStatus::NotServing).await;
            stop_delivering.cancel();
            let delivered = async {
                if let Some(task) = delivering {
                    let _ = task.await;
                }
            };
            tokio::join!(stopping.shutdown(settings.shutdown_timeout), delivered);
        };
        let mut server = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(tls) = &settings.auth.tls {
            server = server.tls_config(tls.server_config())?;
        }
        tracing::info!(%addr, tls = settings.auth.tls.is_some(), token = settings.auth.token.is_some(), "collector-service listening");
        let collect = CollectorServiceServer::new(CollectorGrpc(collector)).max_decoding_message_size(64 * 1024);
        let mut routes = Routes::builder();
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(InterceptedService::new(collect, Arc::new(settings.auth).interceptor()));
        let served = server
            .layer(tower::ServiceBuilder::new().layer(metrics_endpoint.rpc_layer()).layer(
                tower::util::MapResponseLayer::new(server::oversized_as_resource_exhausted::<tonic::body::Body>),
            ))
            .add_routes(server::naming_what_is_served(routes.routes(), &[collector_service_server::SERVICE_NAME]))
            .serve_with_incoming_shutdown(incoming, drain)
            .await;
        drop(metrics_endpoint);
        served?;
        tracing::info!("collector-service stopped");
        Ok(())
    }
}
