//! collector-service integration tests: a real server on port 0 against a
//! real database per test, called with a real tonic client.

mod deliveries;
mod fencing;
mod migrations;
mod notices;

use std::sync::Arc;
use std::time::Duration;

use cudly_collector::accounts::seed_simulated_accounts;
use cudly_collector::app::{Settings, build};
use cudly_collector::collection::CollectionEnd;
use cudly_collector::grpc::Collector;
use cudly_collector::providers::simulated::{SimulatedBackend, SimulatedConfig};
use cudly_core::domain::Provider;
use cudly_core::domain::Trigger;
use cudly_core::lease::{Acquired, acquire_lease};
use cudly_proto::collector::v1::CollectRequest;
use cudly_proto::collector::v1::collector_service_client::CollectorServiceClient;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

struct TestCollector {
    client: CollectorServiceClient<Channel>,
    /// The simulated clouds, in provider order.
    sims: Vec<Arc<SimulatedBackend>>,
    health: HealthClient<Channel>,
    collector: Arc<Collector>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_collector(pool: &PgPool, latency: Duration) -> TestCollector {
    spawn_collector_with_ttl(pool, latency, Duration::from_secs(5)).await
}

async fn spawn_collector_with_ttl(pool: &PgPool, latency: Duration, lease_ttl: Duration) -> TestCollector {
    seed_simulated_accounts(pool, &"aws=2,gcp=1".parse().unwrap()).await.unwrap();
    let sim = SimulatedConfig { latency, jitter: Duration::ZERO, ..cudly_testkit::settings::simulated() };
    let sims: Vec<Arc<SimulatedBackend>> =
        Provider::ALL.iter().map(|&p| Arc::new(SimulatedBackend::new(p, sim.clone()))).collect();
    let backends = sims.iter().map(|s| s.clone() as _).collect();
    let settings = Settings {
        lease_ttl,
        progress_interval: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(5),
        ..cudly_testkit::settings::collector()
    };
    let app = build(settings, pool.clone(), backends).await.unwrap();
    let (addr, collector) = (app.local_addr(), app.collector());
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone().cancelled_owned()));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    TestCollector {
        client: CollectorServiceClient::new(channel.clone()),
        sims,
        health: HealthClient::new(channel),
        collector,
        stop,
        task,
    }
}

/// Takes the lease as api-service does, returning (run id, generation).
async fn take_lease(pool: &PgPool) -> (Uuid, i64) {
    match acquire_lease(pool, Trigger::User, Duration::from_secs(5)).await.unwrap() {
        Acquired::Started(run) => (run.collection_id, run.generation),
        Acquired::Joined(run) => panic!("run {} already holds the lease", run.collection_id),
    }
}

fn request(id: Uuid, generation: i64) -> CollectRequest {
    CollectRequest {
        collection_id: id.to_string(),
        generation,
        trigger: cudly_proto::recommendations::v1::Trigger::User as i32,
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_duplicate_delivery_is_acknowledged_and_ignored(pool: PgPool) {
    let c = spawn_collector(&pool, Duration::from_millis(200)).await;
    let mut ends = c.collector.subscribe_ends();
    let (id, generation) = take_lease(&pool).await;
    let first = c.client.clone().collect(request(id, generation)).await.unwrap().into_inner();
    let second = c.client.clone().collect(request(id, generation)).await.unwrap().into_inner();
    assert!(!first.duplicate);
    assert!(second.duplicate);

    let (lease, end) = tokio::time::timeout(Duration::from_secs(20), ends.recv()).await.unwrap().unwrap();
    assert_eq!(lease.collection_id, id);
    assert!(matches!(end, CollectionEnd::Finished(_)), "{end:?}");
    // Exactly one run's calls reached the clouds: a second run of the same
    // lease would have made its own meanwhile (its first calls go out at
    // once, the run lasts several latencies).
    let counted: serde_json::Value = sqlx::query_scalar("SELECT providers FROM collection_runs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let statuses: Vec<cudly_core::domain::ProviderStatus> = serde_json::from_value(counted).unwrap();
    let one_run: u64 = statuses.iter().map(|p| p.requests).sum();
    let made: u64 = c.sims.iter().map(|s| s.calls()).sum();
    assert!(one_run > 0);
    assert_eq!(made, one_run, "the duplicate delivery started no second run");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_delivery_that_does_not_hold_the_lease_is_refused(pool: PgPool) {
    let c = spawn_collector(&pool, Duration::from_millis(5)).await;
    let (old_id, old_generation) = take_lease(&pool).await;
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let (_, generation) = take_lease(&pool).await;
    assert_eq!(generation, old_generation + 1);

    let err = c.client.clone().collect(request(old_id, old_generation)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("does not hold the collection lease"), "{}", err.message());

    let err = c
        .client
        .clone()
        .collect(CollectRequest {
            collection_id: "nope".into(),
            generation: 1,
            trigger: cudly_proto::recommendations::v1::Trigger::User as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("collection_id"));
}

#[sqlx::test(migrations = "../migrations")]
async fn health_serves_and_shutdown_releases_the_running_lease_with_a_reason(pool: PgPool) {
    let c = spawn_collector(&pool, Duration::from_secs(5)).await;
    let mut serving = false;
    for _ in 0..100 {
        let status = c.health.clone().check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
        serving = status.status == ServingStatus::Serving as i32;
        if serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(serving, "SERVING once the database answered");
    let named = HealthCheckRequest { service: "cudly.collector.v1.CollectorService".into() };
    assert_eq!(c.health.clone().check(named).await.unwrap().into_inner().status, ServingStatus::Serving as i32);

    let (id, generation) = take_lease(&pool).await;
    c.client.clone().collect(request(id, generation)).await.unwrap();
    c.stop.cancel();
    c.task.await.unwrap().unwrap();

    let (lease, outcome, error): (Option<chrono::DateTime<chrono::Utc>>, String, String) =
        sqlx::query_as("SELECT lease_expires_at, outcome, error FROM collection_state").fetch_one(&pool).await.unwrap();
    assert_eq!((lease, outcome.as_str(), error.as_str()), (None, "cancelled", "collector shutting down"));
    let run: String = sqlx::query_scalar("SELECT outcome FROM collection_runs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(run, "cancelled");
}

#[sqlx::test(migrations = false)]
async fn the_collector_is_not_ready_until_the_database_has_the_schema_it_was_built_for(pool: PgPool) {
    // The database answers, but nothing is migrated: a run delivered now
    // could not even read its accounts.
    let sims = Provider::ALL.iter().map(|&p| Arc::new(SimulatedBackend::new(p, cudly_testkit::settings::simulated())));
    let backends = sims.map(|s| s as _).collect();
    let app = build(cudly_testkit::settings::collector(), pool.clone(), backends).await.unwrap();
    let addr = app.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone().cancelled_owned()));
    let mut watch = cudly_testkit::spawn::watch_health(addr).await;
    // Readiness is checked every 500 ms while not ready: three checks.
    cudly_testkit::spawn::not_serving_throughout(&mut watch, Duration::from_millis(1500), "on an unmigrated database")
        .await;
    cudly_core::db::MIGRATOR.run(&pool).await.unwrap();
    cudly_testkit::spawn::serving_within(&mut watch, Duration::from_secs(10)).await;
    drop(watch);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lease_renewal_wakes_no_watcher_but_progress_does(pool: PgPool) {
    let (id, generation) = take_lease(&pool).await;
    let lease = cudly_core::lease::Lease { collection_id: id, generation, trigger: cudly_core::domain::Trigger::User };
    let version = || async {
        sqlx::query_scalar::<_, i64>("SELECT version FROM collection_state").fetch_one(&pool).await.unwrap()
    };
    let before = version().await;
    assert!(cudly_core::lease::renew_lease(&pool, &lease, Duration::from_secs(5)).await.unwrap());
    assert_eq!(version().await, before, "a heartbeat is not a visible change");
    let progress = [cudly_core::domain::ProviderStatus::pending(Provider::Aws, 2)];
    assert!(cudly_core::lease::write_progress(&pool, &lease, &progress).await.unwrap());
    assert_eq!(version().await, before + 1, "progress is");
}

/// Writes one run's results: (account, via, resource type) rows, and the
/// accounts whose sweep completed.
async fn finish(pool: &PgPool, rows: &[(&str, &str, &str)], complete: &[&str]) {
    let (collection_id, generation) = take_lease(pool).await;
    let lease = cudly_core::lease::Lease { collection_id, generation, trigger: cudly_core::domain::Trigger::User };
    let collected = cudly_testkit::fixtures::collected(rows, complete);
    cudly_collector::persist::finish_run(pool, &lease, collected, &cudly_testkit::settings::notice_rules())
        .await
        .unwrap();
}

async fn rows_of(pool: &PgPool, account: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT resource_type FROM recommendations WHERE account_id = $1 ORDER BY resource_type")
        .bind(account)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn rows_collected_through_an_account_are_evicted_with_its_sweep_and_a_deleted_account_is_not_written_back(
    pool: PgPool,
) {
    let (payer, linked_a, linked_b, single) = ("400000000000", "400000000001", "400000000002", "500000000000");
    sqlx::query(
        "INSERT INTO accounts (provider, external_id, display_name) VALUES ('aws', $1, 'Org'), ('aws', $2, 'One')",
    )
    .bind(payer)
    .bind(single)
    .execute(&pool)
    .await
    .unwrap();
    finish(
        &pool,
        &[(linked_a, payer, "m5.large"), (linked_b, payer, "c6i.large"), (single, single, "r6g.large")],
        &[payer, single],
    )
    .await;
    assert_eq!(rows_of(&pool, linked_b).await, ["c6i.large"]);

    // The organization no longer recommends anything for linked account B:
    // its row goes, though B itself was never registered.
    finish(&pool, &[(linked_a, payer, "m5.large")], &[payer]).await;
    assert!(rows_of(&pool, linked_b).await.is_empty(), "evicted with the payer's complete sweep");
    assert_eq!(rows_of(&pool, linked_a).await, ["m5.large"]);
    assert_eq!(rows_of(&pool, single).await, ["r6g.large"], "an account not swept this time keeps its rows");

    // An account deleted (with its rows) while a run collected it is not
    // written back by that run.
    sqlx::query("DELETE FROM accounts WHERE external_id = $1").bind(single).execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM recommendations WHERE account_id = $1").bind(single).execute(&pool).await.unwrap();
    finish(&pool, &[(single, single, "r6g.xlarge"), (linked_a, payer, "m5.large")], &[payer, single]).await;
    assert!(rows_of(&pool, single).await.is_empty());
    assert_eq!(rows_of(&pool, linked_a).await, ["m5.large"]);
}

/// A TCP relay to Postgres that can be frozen: once frozen, what either side
/// sends is read and held, never delivered, as when the network to the
/// database fails without closing connections.
struct FreezableRelay {
    addr: std::net::SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl FreezableRelay {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, _) = tokio::sync::watch::channel(false);
        let gate = frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(Self::pipe(ri, wo, gate.subscribe()));
                tokio::spawn(Self::pipe(ro, wi, gate.subscribe()));
            }
        });
        FreezableRelay { addr, frozen }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut frozen: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if frozen.wait_for(|f| !f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_that_cannot_renew_its_lease_cancels_itself_before_it_could_be_taken_over(pool: PgPool) {
    // The collector reaches the database through a relay the test freezes:
    // its renewals then neither succeed nor fail, they hang. TTL 1 s, a
    // renewal every 333 ms, each with a deadline of 333 ms; every cloud
    // call takes 30 s, so only the heartbeat can end the run.
    let ttl = Duration::from_secs(1);
    let options = (*pool.connect_options()).clone();
    let upstream = tokio::net::lookup_host(format!("{}:{}", options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = FreezableRelay::start(upstream).await;
    let relayed = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options.host("127.0.0.1").port(relay.addr.port()))
        .await
        .unwrap();
    let c = spawn_collector_with_ttl(&relayed, Duration::from_secs(30), ttl).await;
    let mut ends = c.collector.subscribe_ends();
    let (id, generation) = match acquire_lease(&pool, Trigger::User, ttl).await.unwrap() {
        Acquired::Started(run) => (run.collection_id, run.generation),
        Acquired::Joined(run) => panic!("run {} already holds the lease", run.collection_id),
    };
    c.client.clone().collect(request(id, generation)).await.unwrap();
    let frozen_at = std::time::Instant::now();
    relay.freeze();

    let (lease, end) = tokio::time::timeout(Duration::from_secs(10), ends.recv()).await.unwrap().unwrap();
    let stopped = frozen_at.elapsed();
    assert_eq!(
        (lease.collection_id, &end),
        (id, &CollectionEnd::LeaseLost),
        "it stopped, as a run that lost its lease"
    );
    assert!(stopped < ttl + Duration::from_millis(500), "cancelled {stopped:?} after the database froze (TTL {ttl:?})");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recommendations").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0, "it wrote nothing");

    // Its lease runs out on its own; the next refresh starts a new run.
    let next = loop {
        match acquire_lease(&pool, Trigger::User, Duration::from_secs(30)).await.unwrap() {
            Acquired::Started(run) => break run,
            Acquired::Joined(_) => {
                assert!(frozen_at.elapsed() < ttl * 5, "the self-cancelled run's lease never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!((next.generation, next.took_over), (generation + 1, true));
    // Let the collector's connections drain before the database is dropped.
    relay.thaw();
    c.stop.cancel();
    c.task.await.unwrap().unwrap();
}
