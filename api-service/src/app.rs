//! Building and running api-service: the same `build()`/`run()` serve
//! production and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cudly_core::files::read_file;
use cudly_core::metrics::MetricsEndpoint;
use cudly_core::quote::quoted;
use cudly_core::server;
use cudly_proto::recommendations::v1::accounts_service_server::{self, AccountsServiceServer};
use cudly_proto::recommendations::v1::notifications_service_server::{self, NotificationsServiceServer};
use cudly_proto::recommendations::v1::recommendations_service_server::{self, RecommendationsServiceServer};
use http::{HeaderName, HeaderValue, Method};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::accounts::AccountsApi;
use crate::auth::{AuthLayer, AuthSettings, Authenticator};
use crate::config::Config;
use crate::console::{Console, ConsoleLayer, ConsoleSettings};
use crate::dispatch::{CollectorCredentials, Dispatcher};
use crate::grpc::RecommendationsApi;
use crate::hub::Hub;
use crate::metrics::ApiMetrics;
use crate::notifications::NotificationsApi;
use crate::refresh::Refresher;
use crate::state::AutoRefresh;

/// The services api-service serves (besides health and reflection).
const SERVED: &[&str] = &[
    recommendations_service_server::SERVICE_NAME,
    accounts_service_server::SERVICE_NAME,
    notifications_service_server::SERVICE_NAME,
];

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
    /// Request headers gRPC-web callers may send (checked at `build`).
    pub cors_allowed_headers: Vec<String>,
    /// Drain deadline at shutdown.
    pub shutdown_timeout: Duration,
    /// Caller authentication.
    pub auth: AuthSettings,
    /// Serve server reflection.
    pub reflection: bool,
    /// TLS on the listener: PEM certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How to authenticate to the collector.
    pub collector_credentials: CollectorCredentials,
    /// Request limits.
    pub limits: Limits,
    /// Where metrics are served (`None`: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// The web console, if served.
    pub console: Option<ConsoleSettings>,
}

/// Request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// WatchFreshness streams per replica.
    pub max_watchers: u32,
    /// Calls served at once before shedding.
    pub max_concurrent_requests: u32,
    /// Deadline of a call until its response starts.
    pub request_timeout: Duration,
    /// Largest request message in bytes.
    pub max_request_bytes: usize,
    /// HTTP/2 keepalive ping interval.
    pub http2_keepalive: Duration,
}

impl Settings {
    /// The settings `config` asks for; fails when the authentication setup
    /// is incomplete.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let client = &config.collector_client;
        Ok(Settings {
            listen: config.listen,
            collector_url: config.collector_url.clone(),
            dispatch_timeout: config.dispatch_timeout,
            lease_ttl: config.lease_ttl,
            auto_refresh: AutoRefresh { stale_after: config.stale_after, backoff: config.auto_refresh_backoff },
            watch_heartbeat: config.watch_heartbeat,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            cors_allowed_headers: config.cors_allowed_headers.clone(),
            shutdown_timeout: config.shutdown_timeout,
            auth: config.auth.settings()?,
            reflection: config.reflection,
            tls: config.tls_cert_file.clone().zip(config.tls_key_file.clone()),
            collector_credentials: CollectorCredentials {
                token_file: client.collector_token_file.clone(),
                ca_file: client.collector_ca_file.clone(),
                client_identity: client
                    .collector_client_cert_file
                    .clone()
                    .zip(client.collector_client_key_file.clone()),
            },
            limits: Limits {
                max_watchers: config.limits.max_watchers,
                max_concurrent_requests: config.limits.max_concurrent_requests,
                request_timeout: config.limits.request_timeout,
                max_request_bytes: config.limits.max_request_bytes as usize,
                http2_keepalive: config.limits.http2_keepalive,
            },
            metrics_listen: config.metrics_listen.0,
            console: config.console.settings(config.auth.auth_disabled, config.auth.jwt_issuer.as_deref())?,
        })
    }
}

/// A bound, not yet serving api-service.
pub struct App {
    incoming: TcpIncoming,
    addr: SocketAddr,
    metrics_endpoint: MetricsEndpoint,
    api: RecommendationsApi,
    cors: CorsLayer,
    console: ConsoleLayer,
    auth: AuthLayer,
    tls: Option<ServerTlsConfig>,
    shutdown: CancellationToken,
    settings: Settings,
}

/// Binds the listeners (gRPC and metrics), loads the keys, starts the
/// freshness hub and wires the services. Unreadable keys or certificates
/// fail here, naming the file.
pub async fn build(settings: Settings, pool: PgPool) -> anyhow::Result<App> {
    server::install_crypto_provider();
    let cors = cors_layer(&settings.cors_allowed_origins, &settings.cors_allowed_headers)?;
    let console = ConsoleLayer::new(settings.console.as_ref().map(Console::load).transpose()?);
    let tls = match &settings.tls {
        Some((cert, key)) => {
            Some(ServerTlsConfig::new().identity(Identity::from_pem(read_file(cert)?, read_file(key)?)))
        }
        None => None,
    };
    let (incoming, addr) = server::bind(settings.listen)?;
    let mut registry = Registry::with_prefix("cudly");
    let metrics = ApiMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    let authenticator = match &settings.auth {
        AuthSettings::Disabled => {
            tracing::warn!(
                "CALLER AUTHENTICATION IS OFF (CUDLY_AUTH_DISABLED): every caller may refresh and read everything; \
                 use it for local runs only"
            );
            None
        }
        AuthSettings::Jwt(jwt) => Some(Arc::new(Authenticator::load(jwt, &metrics.keys).await?)),
    };
    let metrics_endpoint = MetricsEndpoint::start(settings.metrics_listen, registry).await?;
    let dispatcher =
        Dispatcher::new(&settings.collector_url, settings.dispatch_timeout, &settings.collector_credentials)?;
    let refresher = Arc::new(Refresher::new(pool.clone(), dispatcher, settings.lease_ttl, metrics.clone()));
    let hub = Hub::start(
        pool.clone(),
        settings.watch_heartbeat,
        shutdown.clone(),
        metrics.watchers.clone(),
        settings.limits.max_watchers,
    );
    let api = RecommendationsApi::new(pool, refresher, hub, settings.auto_refresh, settings.watch_heartbeat);
    // Last, so that nothing is left running when building fails.
    if let Some(authenticator) = &authenticator {
        authenticator.keep_keys_fresh(&shutdown);
    }
    let auth = AuthLayer::new(authenticator);
    Ok(App { incoming, addr, metrics_endpoint, api, cors, console, auth, tls, shutdown, settings })
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

    /// Serves until `shutdown` resolves; then reports NOT_SERVING, ends
    /// every WatchFreshness stream with UNAVAILABLE and drains in-flight
    /// calls for at most the shutdown timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { incoming, addr, api, cors, console, auth, tls, shutdown: stop_streams, settings, metrics_endpoint } =
            self;
        let (shutdown_timeout, limits) = (settings.shutdown_timeout, settings.limits);
        type Named = RecommendationsServiceServer<RecommendationsApi>;
        let health = HealthReporter::new();
        server::report::<Named>(&health, ServingStatus::NotServing).await;
        health.set_service_status(server::LIVENESS, ServingStatus::Serving).await;
        let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
        let stop_tracking = CancellationToken::new();
        let hub = api.hub().clone();
        let tracker = tokio::spawn(server::track_readiness::<Named>(
            health.clone(),
            api.pool().clone(),
            move || hub.is_synced(),
            stop_tracking.clone(),
        ));
        let (reflection_v1, reflection_v1alpha) = server::reflection(SERVED)?;
        let draining = CancellationToken::new();
        let signal = {
            let draining = draining.clone();
            async move {
                shutdown.await;
                stop_tracking.cancel();
                let _ = tracker.await;
                server::report::<Named>(&health, ServingStatus::NotServing).await;
                stop_streams.cancel();
                draining.cancel();
            }
        };
        let console_dir = settings.console.as_ref().map(|c| c.dir.display().to_string());
        tracing::info!(%addr, tls = tls.is_some(), reflection = settings.reflection, console_dir, "api-service listening (gRPC and gRPC-web)");
        let mut server = Server::builder()
            .accept_http1(true)
            .timeout(limits.request_timeout)
            .http2_keepalive_interval(Some(limits.http2_keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(tls) = tls {
            server = server.tls_config(tls)?;
        }
        // Outside in: the console's public files (GET and HEAD only; every
        // call is a POST), CORS and gRPC-web (browsers then meet the same
        // checks as native callers), latency recorded for every call,
        // shedding instead of queueing past the concurrency cap, then auth.
        let layers = tower::ServiceBuilder::new()
            .layer(console)
            .layer(cors)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(metrics_endpoint.rpc_layer())
            .layer(tower::util::MapResponseLayer::new(server::oversized_as_resource_exhausted::<tonic::body::Body>))
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_concurrent_requests as usize))
            .layer(auth)
            .into_inner();
        let accounts = AccountsApi::new(api.pool().clone());
        let notifications = NotificationsApi::new(api.pool().clone());
        let recommendations =
            RecommendationsServiceServer::new(api).max_decoding_message_size(limits.max_request_bytes);
        let accounts = AccountsServiceServer::new(accounts).max_decoding_message_size(limits.max_request_bytes);
        let notifications =
            NotificationsServiceServer::new(notifications).max_decoding_message_size(limits.max_request_bytes);
        let mut routes = Routes::builder();
        routes
            .add_service(health_service)
            .add_service(recommendations)
            .add_service(accounts)
            .add_service(notifications);
        if settings.reflection {
            routes.add_service(reflection_v1).add_service(reflection_v1alpha);
        }
        let routes = server::naming_what_is_served(routes.routes(), SERVED);
        let server = server.layer(layers).add_routes(routes).serve_with_incoming_shutdown(incoming, signal);
        let served = tokio::select! {
            served = server => served.map_err(anyhow::Error::from),
            _ = async { draining.cancelled().await; tokio::time::sleep(shutdown_timeout).await } => {
                tracing::warn!(?shutdown_timeout, "in-flight calls did not finish in time; stopping anyway");
                Ok(())
            }
        };
        drop(metrics_endpoint);
        served?;
        tracing::info!("api-service stopped");
        Ok(())
    }
}

/// CORS for browsers speaking gRPC-web: the request headers are listed
/// (a `*` does not cover `authorization`), the gRPC status headers exposed
/// (else errors sent in headers reach the browser as "missing trailer"),
/// and preflights cached for a day. A bad origin or header name fails
/// start-up, naming its setting.
fn cors_layer(origins: &[String], headers: &[String]) -> anyhow::Result<CorsLayer> {
    let allow_origin = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim()).map_err(|_| {
                    anyhow::anyhow!(
                        "--cors-allowed-origins (CUDLY_CORS_ALLOWED_ORIGINS): {} is not an origin",
                        quoted(o)
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    let allow_headers = headers.iter().map(|h| allowed_header(h)).collect::<anyhow::Result<Vec<_>>>()?;
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(allow_headers)
        .expose_headers([header("grpc-status"), header("grpc-message"), header("grpc-status-details-bin")])
        .max_age(Duration::from_secs(24 * 60 * 60)))
}

/// One entry of `--cors-allowed-headers`: an HTTP header name (any case,
/// surrounding spaces ignored). `*` is refused rather than passed on: the
/// Fetch standard does not let it cover `authorization`, so a page sending
/// a token would still fail its preflight.
fn allowed_header(entry: &str) -> anyhow::Result<HeaderName> {
    let name = entry.trim();
    let why = if name == "*" {
        "is not allowed: `*` does not cover `authorization`; list the headers"
    } else {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(header) => return Ok(header),
            Err(_) => "is not an HTTP header name",
        }
    };
    anyhow::bail!("--cors-allowed-headers (CUDLY_CORS_ALLOWED_HEADERS): {} {why}", quoted(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_header_names_are_checked_and_a_bad_one_is_quoted_bounded() {
        assert_eq!(allowed_header(" TraceParent ").unwrap(), "traceparent");
        for bad in ["", "x request id", "x-id\r\nset-cookie: a", "*"] {
            let err = allowed_header(bad).unwrap_err().to_string();
            assert!(err.contains("--cors-allowed-headers") && err.contains("CUDLY_CORS_ALLOWED_HEADERS"), "{err}");
            assert!(err.contains(&quoted(bad)), "{err}");
        }
        let long = format!("x {}", "y".repeat(10_000));
        let err = cors_layer(&["*".into()], &["content-type".into(), long]).unwrap_err().to_string();
        assert!(err.len() < 300, "the bad value is quoted bounded: {err}");
        let origin = "https://console\u{7}.example";
        let err = cors_layer(&[origin.into()], &[]).unwrap_err().to_string();
        assert!(err.contains("CUDLY_CORS_ALLOWED_ORIGINS") && err.contains(&quoted(origin)), "{err}");
    }
}
