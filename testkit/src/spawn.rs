//! Spawns the real pair, collector-service and api-service, in-process on
//! port 0 against the test's own database, and a real tonic client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cudly_api::app::Limits;
use cudly_api::auth::AuthSettings;
use cudly_api::dispatch::CollectorCredentials;
use cudly_api::state::AutoRefresh;
use cudly_collector::accounts::{SeedSpec, seed_simulated_accounts};
use cudly_collector::auth::InternalAuth;
use cudly_collector::grpc::Collector;
use cudly_collector::providers::Backends;
use cudly_collector::providers::simulated::{SimulatedBackend, SimulatedConfig};
use cudly_core::domain::Provider;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::settings;

/// The API client tests call with.
pub type Client = RecommendationsServiceClient<Channel>;

/// How a test wants the pair: what it sets differs from the services'
/// defaults to make tests fast; the rest is the defaults.
#[derive(Clone)]
pub struct Options {
    /// The simulated clouds.
    pub sim: SimulatedConfig,
    /// The simulated accounts seeded, as `CUDLY_SEED_ACCOUNTS` takes them.
    pub seed: &'static str,
    /// Lease TTL of new runs.
    pub lease_ttl: Duration,
    /// WatchFreshness heartbeat.
    pub watch_heartbeat: Duration,
    /// When listed data is stale.
    pub stale_after: Duration,
    /// No automatic refresh within this long after a run ended.
    pub auto_refresh_backoff: Duration,
    /// Minimum time between progress writes.
    pub progress_interval: Duration,
    /// Start a collector with the API.
    pub with_collector: bool,
    /// Caller authentication of the API.
    pub auth: AuthSettings,
    /// Who the collector lets in.
    pub collector_auth: InternalAuth,
    /// How the API authenticates to the collector (and its URL scheme).
    pub collector_credentials: CollectorCredentials,
    /// `http` or `https` (the collector's URL scheme).
    pub collector_scheme: &'static str,
    /// The API's request limits.
    pub limits: Limits,
    /// Serve metrics on a free port.
    pub metrics: bool,
    /// Serve server reflection.
    pub reflection: bool,
    /// Request headers the API's CORS preflight allows.
    pub cors_allowed_headers: Vec<String>,
    /// Where the collector's deliverers read `file:` secret references;
    /// the flag's default directory otherwise.
    pub secret_files: Option<cudly_core::credentials::SecretFileDirs>,
    /// The web console the API serves, if any.
    pub console: Option<cudly_api::console::ConsoleSettings>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sim: SimulatedConfig {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(10),
                ..crate::settings::simulated()
            },
            seed: "aws=3,azure=2,gcp=2",
            lease_ttl: Duration::from_secs(5),
            watch_heartbeat: Duration::from_secs(15),
            stale_after: Duration::from_secs(24 * 3600),
            auto_refresh_backoff: Duration::from_secs(60),
            progress_interval: Duration::from_millis(50),
            with_collector: true,
            auth: AuthSettings::Disabled,
            collector_auth: InternalAuth { insecure: true, ..Default::default() },
            collector_credentials: CollectorCredentials::default(),
            collector_scheme: "http",
            limits: settings::api("http://127.0.0.1:1").limits,
            metrics: false,
            reflection: true,
            cors_allowed_headers: settings::api("http://127.0.0.1:1").cors_allowed_headers,
            secret_files: None,
            console: None,
        }
    }
}

/// A running collector-service.
pub struct TestCollector {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its runs.
    pub collector: Arc<Collector>,
    /// The simulated clouds, in provider order (aws, azure, gcp).
    pub sims: Vec<Arc<SimulatedBackend>>,
    /// Where it serves metrics, if it does.
    pub metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestCollector {
    /// Stops it as SIGTERM would (runs release their leases) and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Starts a collector on `addr` (port 0 for any).
pub async fn spawn_collector(pool: &PgPool, opts: &Options, addr: SocketAddr) -> TestCollector {
    let sims: Vec<Arc<SimulatedBackend>> =
        Provider::ALL.iter().map(|&p| Arc::new(SimulatedBackend::new(p, opts.sim.clone()))).collect();
    let backends: Backends = sims.iter().map(|s| s.clone() as _).collect();
    let settings = cudly_collector::app::Settings {
        listen: addr,
        lease_ttl: opts.lease_ttl,
        progress_interval: opts.progress_interval,
        shutdown_timeout: Duration::from_secs(5),
        auth: opts.collector_auth.clone(),
        metrics_listen: opts.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        ..settings::collector()
    };
    let settings = match &opts.secret_files {
        Some(dirs) => cudly_collector::app::Settings {
            notify: cudly_collector::notify::DeliverySettings { secret_files: dirs.clone(), ..settings.notify },
            ..settings
        },
        None => settings,
    };
    let app = cudly_collector::app::build(settings, pool.clone(), backends).await.unwrap();
    let (addr, collector, metrics_addr) = (app.local_addr(), app.collector(), app.metrics_addr());
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone().cancelled_owned()));
    TestCollector { addr, collector, sims, metrics_addr, stop, task }
}

/// The pair and a client.
pub struct TestApp {
    /// The test's database.
    pub pool: PgPool,
    /// A client of the API.
    pub client: Client,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Where the API serves metrics, if it does.
    pub metrics_addr: Option<SocketAddr>,
    /// The collector, unless the test runs without one.
    pub collector: Option<TestCollector>,
    stop: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Seeds accounts, starts the collector (unless told not to) and the API.
pub async fn spawn_app(pool: PgPool, opts: Options) -> TestApp {
    seed_simulated_accounts(&pool, &opts.seed.parse::<SeedSpec>().unwrap()).await.unwrap();
    let collector = if opts.with_collector {
        Some(spawn_collector(&pool, &opts, "127.0.0.1:0".parse().unwrap()).await)
    } else {
        None
    };
    let collector_addr = match &collector {
        Some(c) => c.addr,
        None => unused_addr(),
    };
    spawn_api(pool, &opts, collector_addr, collector).await
}

/// Starts api-service delivering to `collector_addr`.
pub async fn spawn_api(
    pool: PgPool,
    opts: &Options,
    collector_addr: SocketAddr,
    collector: Option<TestCollector>,
) -> TestApp {
    let collector_url = format!("{}://{}", opts.collector_scheme, collector_url_host(collector_addr, opts));
    let settings = cudly_api::app::Settings {
        lease_ttl: opts.lease_ttl,
        auto_refresh: AutoRefresh { stale_after: opts.stale_after, backoff: opts.auto_refresh_backoff },
        watch_heartbeat: opts.watch_heartbeat,
        shutdown_timeout: Duration::from_secs(5),
        auth: opts.auth.clone(),
        reflection: opts.reflection,
        cors_allowed_headers: opts.cors_allowed_headers.clone(),
        collector_credentials: opts.collector_credentials.clone(),
        limits: opts.limits.clone(),
        metrics_listen: opts.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        console: opts.console.clone(),
        ..settings::api(&collector_url)
    };
    let app = cudly_api::app::build(settings, pool.clone()).await.unwrap();
    let (addr, metrics_addr) = (app.local_addr(), app.metrics_addr());
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone().cancelled_owned()));
    let client = Client::connect(format!("http://{addr}")).await.unwrap();
    wait_until_serving(addr).await;
    TestApp { pool, client, addr, metrics_addr, collector, stop, task: Some(task) }
}

/// The collector's host:port; TLS needs the name its certificate carries.
fn collector_url_host(addr: SocketAddr, opts: &Options) -> String {
    if opts.collector_scheme == "https" { format!("localhost:{}", addr.port()) } else { addr.to_string() }
}

/// Waits (bounded) until the server's health reports SERVING.
pub async fn wait_until_serving(addr: SocketAddr) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..200 {
        let status = health.check(HealthCheckRequest::default()).await.unwrap().into_inner().status;
        if status == ServingStatus::Serving as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{addr} did not become SERVING within 5 s");
}

/// A Watch of `addr`'s overall health (the empty service name, what
/// readiness probes ask).
pub async fn watch_health(addr: SocketAddr) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health.watch(tonic_health::pb::HealthCheckRequest::default()).await.unwrap().into_inner()
}

/// Asserts every status `watch` reports during `duration` is NOT_SERVING
/// (`why` says what readiness must not ignore).
pub async fn not_serving_throughout(
    watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    duration: Duration,
    why: &str,
) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let until = tokio::time::Instant::now() + duration;
    while let Ok(next) = tokio::time::timeout_at(until, watch.message()).await {
        let status = next.unwrap().unwrap().status;
        assert_eq!(status, ServingStatus::NotServing as i32, "ready {why}");
    }
}

/// Waits (bounded by `within`) until `watch` reports SERVING.
pub async fn serving_within(watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>, within: Duration) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let until = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(until, watch.message()).await;
        let status = next.unwrap_or_else(|_| panic!("not SERVING within {within:?}")).unwrap().unwrap().status;
        if status == ServingStatus::Serving as i32 {
            return;
        }
    }
}

/// An address nothing listens on.
pub fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl TestApp {
    /// Calls RefreshRecommendations.
    pub async fn refresh(&self) -> Result<pb::RefreshRecommendationsResponse, tonic::Status> {
        self.client
            .clone()
            .refresh_recommendations(pb::RefreshRecommendationsRequest::default())
            .await
            .map(|r| r.into_inner())
    }

    /// Calls GetFreshness.
    pub async fn freshness(&self) -> pb::Freshness {
        self.client.clone().get_freshness(pb::GetFreshnessRequest {}).await.unwrap().into_inner()
    }

    /// Calls ListRecommendations.
    pub async fn list(
        &self,
        req: pb::ListRecommendationsRequest,
    ) -> Result<pb::ListRecommendationsResponse, tonic::Status> {
        self.client.clone().list_recommendations(req).await.map(|r| r.into_inner())
    }

    /// Polls until run `id` has ended (bounded), returning that freshness.
    pub async fn wait_for_end(&self, id: &str) -> pb::Freshness {
        for _ in 0..600 {
            let f = self.freshness().await;
            let run = f.collection.as_ref().unwrap();
            assert!(run.id == id || f.collecting, "run {id} was replaced by {}", run.id);
            if run.id == id && run.outcome != pb::Outcome::Running as i32 {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end within 30 s");
    }

    /// Refreshes and waits for that run to end.
    pub async fn collect(&self) -> pb::Freshness {
        let run = self.refresh().await.unwrap().collection.unwrap();
        self.wait_for_end(&run.id).await
    }

    /// Stops api-service as SIGTERM would and waits for it.
    pub async fn shutdown_api(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the collector as SIGTERM would and waits for it.
    pub async fn shutdown_collector(&mut self) {
        if let Some(c) = self.collector.take() {
            c.shutdown().await;
        }
    }

    /// The simulated cloud of `provider`.
    pub fn sim(&self, provider: Provider) -> Arc<SimulatedBackend> {
        let idx = Provider::ALL.iter().position(|&p| p == provider).unwrap();
        self.collector.as_ref().unwrap().sims[idx].clone()
    }

    /// (outcome, error) of every run in the history, oldest first.
    pub async fn history(&self) -> Vec<(i64, String, Option<String>)> {
        sqlx::query_as("SELECT generation, outcome, error FROM collection_runs ORDER BY generation")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Whether any lease is held (expired or not).
    pub async fn lease_held(&self) -> bool {
        sqlx::query_scalar("SELECT lease_expires_at IS NOT NULL FROM collection_state")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}
