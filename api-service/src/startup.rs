//! Building and running api-service: the same `build()`/`run()` serve
//! production and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cudly_collector::serving;
use cudly_proto::recommendations::v1::recommendations_service_server::RecommendationsServiceServer;
use http::{HeaderName, HeaderValue, Method};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::grpc::RecommendationsApi;
use crate::hub::Hub;
use crate::refresh::{AutoRefresh, Refresher};

/// What api-service needs besides its database.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// collector-service URL.
    pub collector_url: String,
    /// Deadline for the collector's acknowledgement.
    pub dispatch_timeout: Duration,
    /// Lease TTL of a new run.
    pub lease_ttl: Duration,
    /// When reads refresh by themselves.
    pub auto_refresh: AutoRefresh,
    /// WatchFreshness heartbeat (also how often the hub re-reads the row).
    pub watch_heartbeat: Duration,
    /// gRPC-web origins; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Drain deadline at shutdown.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// The settings `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        Settings {
            listen: config.listen,
            collector_url: config.collector_url.clone(),
            dispatch_timeout: config.dispatch_timeout,
            lease_ttl: config.lease_ttl,
            auto_refresh: AutoRefresh { stale_after: config.stale_after, backoff: config.auto_refresh_backoff },
            watch_heartbeat: config.watch_heartbeat,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// A bound, not yet serving api-service.
pub struct App {
    incoming: TcpIncoming,
    addr: SocketAddr,
    api: RecommendationsApi,
    cors: CorsLayer,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
}

/// Binds the listener, starts the freshness hub and wires the services.
pub async fn build(settings: Settings, pool: PgPool) -> anyhow::Result<App> {
    let cors = cors_layer(&settings.cors_allowed_origins)?;
    let (incoming, addr) = serving::bind(settings.listen)?;
    let dispatcher = Dispatcher::new(&settings.collector_url, settings.dispatch_timeout)?;
    let refresher = Arc::new(Refresher::new(pool.clone(), dispatcher, settings.lease_ttl));
    let shutdown = CancellationToken::new();
    let hub = Hub::start(pool.clone(), settings.watch_heartbeat, shutdown.clone());
    let api = RecommendationsApi::new(pool, refresher, hub, settings.auto_refresh, settings.watch_heartbeat);
    Ok(App { incoming, addr, api, cors, shutdown, shutdown_timeout: settings.shutdown_timeout })
}

impl App {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves; then reports NOT_SERVING, ends
    /// every WatchFreshness stream with UNAVAILABLE and drains in-flight
    /// calls for at most the shutdown timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { incoming, addr, api, cors, shutdown: stop_streams, shutdown_timeout } = self;
        type Named = RecommendationsServiceServer<RecommendationsApi>;
        let health = HealthReporter::new();
        serving::report::<Named>(&health, ServingStatus::NotServing).await;
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        let stop_tracking = CancellationToken::new();
        let hub = api.hub().clone();
        let tracker = tokio::spawn(serving::track_readiness::<Named>(
            health.clone(),
            api.pool().clone(),
            move || hub.is_synced(),
            stop_tracking.clone(),
        ));
        let (reflection_v1, reflection_v1alpha) = serving::reflection()?;
        let draining = CancellationToken::new();
        let signal = {
            let draining = draining.clone();
            async move {
                shutdown.await;
                stop_tracking.cancel();
                let _ = tracker.await;
                serving::report::<Named>(&health, ServingStatus::NotServing).await;
                stop_streams.cancel();
                draining.cancel();
            }
        };
        tracing::info!(%addr, "api-service listening (gRPC and gRPC-web)");
        let server = Server::builder()
            .accept_http1(true)
            .layer(cors)
            .layer(tonic_web::GrpcWebLayer::new())
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(RecommendationsServiceServer::new(api))
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::select! {
            served = server => served?,
            _ = async { draining.cancelled().await; tokio::time::sleep(shutdown_timeout).await } => {
                tracing::warn!(?shutdown_timeout, "in-flight calls did not finish in time; stopping anyway");
            }
        }
        tracing::info!("api-service stopped");
        Ok(())
    }
}

/// CORS for browsers speaking gRPC-web: the request headers are listed
/// (a `*` does not cover `authorization`), the gRPC status headers exposed
/// (else errors sent in headers reach the browser as "missing trailer"),
/// and preflights cached for a day.
fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| anyhow::anyhow!("CUDLY_CORS_ALLOWED_ORIGINS: {o:?} is not an origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("authorization"),
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
        ])
        .expose_headers([header("grpc-status"), header("grpc-message"), header("grpc-status-details-bin")])
        .max_age(Duration::from_secs(24 * 60 * 60)))
}
