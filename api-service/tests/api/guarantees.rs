//! The guarantees that need the whole pair: every trigger competing for one
//! lease across replicas, watchers that cost the database nothing each,
//! readiness and health at shutdown, and partial failure as data.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cudly_core::domain::{Provider, ProviderStatus, Trigger};
use cudly_core::lease::{Acquired, Ending, acquire_lease, end_run, write_progress};
use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic_health::pb::health_check_response::ServingStatus;

use cudly_testkit::spawn::{Options, not_serving_throughout, serving_within, spawn_api, spawn_app, watch_health};

#[sqlx::test(migrations = "../migrations")]
async fn every_trigger_takes_the_same_lease_competing_across_replicas_and_answers_at_once(pool: PgPool) {
    // Nothing collected yet, no backoff: every list is a cold start. Every
    // cloud call takes an hour, so any answer that waited for the run would
    // never come.
    let mut opts = Options { auto_refresh_backoff: Duration::ZERO, ..Options::default() };
    opts.sim.latency = Duration::from_secs(3600);
    opts.sim.jitter = Duration::ZERO;
    let first = spawn_app(pool.clone(), opts.clone()).await;
    let collector_addr = first.collector.as_ref().unwrap().addr;
    let second = spawn_api(pool.clone(), &opts, collector_addr, None).await;

    let started = Instant::now();
    let calls = (0..60).map(|i| {
        let client = if i % 2 == 0 { first.client.clone() } else { second.client.clone() };
        async move {
            let mut client = client;
            match i % 3 {
                0 => client
                    .refresh_recommendations(pb::RefreshRecommendationsRequest { trigger: pb::Trigger::User as i32 })
                    .await
                    .map(|r| r.into_inner().collection.unwrap().id),
                1 => client
                    .refresh_recommendations(pb::RefreshRecommendationsRequest {
                        trigger: pb::Trigger::Schedule as i32,
                    })
                    .await
                    .map(|r| r.into_inner().collection.unwrap().id),
                _ => client
                    .list_recommendations(pb::ListRecommendationsRequest::default())
                    .await
                    .map(|r| r.into_inner().freshness.unwrap().collection.map(|c| c.id).unwrap_or_default()),
            }
        }
    });
    let answers: Vec<String> =
        futures_util::future::join_all(calls).await.into_iter().map(|a| a.expect("every call answered")).collect();
    let answered_within = started.elapsed();

    let ids: HashSet<&String> = answers.iter().collect();
    assert_eq!(ids.len(), 1, "every answer names the same run: {ids:?}");
    assert!(!answers[0].is_empty(), "the lists answered with the run in flight");
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, trigger FROM collection_runs").fetch_all(&pool).await.unwrap();
    assert_eq!(runs.len(), 1, "one run for 40 refreshes and 20 cold-start lists on two replicas: {runs:?}");
    assert_eq!(&runs[0].0, answers[0].as_str());
    let freshness = first.freshness().await;
    assert!(freshness.collecting, "the run is still collecting: all sixty answered while it ran");
    println!("60 triggers on two replicas answered within {answered_within:?}; the run is {}", runs[0].1);
}

/// Reads `stream` until it has shown `version` (bounded).
async fn seen(stream: &mut tonic::Streaming<pb::Freshness>, version: i64) {
    let next = async { while stream.message().await.unwrap().unwrap().version < version {} };
    tokio::time::timeout(Duration::from_secs(10), next).await.expect("the change reached the watcher");
}

#[sqlx::test(migrations = "../migrations")]
async fn watchers_share_one_listen_connection_and_one_state_read_per_change(pool: PgPool) {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&pool).await.expect(
        "pg_stat_statements must be loaded (scripts/with-postgres preloads it; run the tests through scripts/test)",
    );
    let app = spawn_app(pool.clone(), Options { with_collector: false, ..Options::default() }).await;
    const WATCHERS: usize = 200;
    let mut streams = Vec::new();
    for _ in 0..WATCHERS {
        let mut stream =
            app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let listens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' || $1 || '%'",
    )
    .bind(cudly_core::schema::STATE_CHANNEL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(listens, 1, "one LISTEN connection for {WATCHERS} watchers");

    sqlx::query("SELECT pg_stat_statements_reset()").execute(&pool).await.unwrap();
    // Five visible changes: a run starts, makes progress three times, ends.
    // Each is seen by a watcher before the next is made, so that none is
    // coalesced with another: the hub must read the state once per change.
    let version = || async {
        sqlx::query_scalar::<_, i64>("SELECT version FROM collection_state").fetch_one(&pool).await.unwrap()
    };
    let Acquired::Started(run) = acquire_lease(&pool, Trigger::User, Duration::from_secs(30)).await.unwrap() else {
        panic!("the lease was free");
    };
    seen(&mut streams[0], version().await).await;
    let lease = run.lease();
    for done in 1..=3 {
        let mut status = ProviderStatus::pending(Provider::Aws, 3);
        status.accounts_succeeded = done;
        assert!(write_progress(&pool, &lease, &[status]).await.unwrap());
        seen(&mut streams[0], version().await).await;
    }
    let outcome = cudly_core::domain::Outcome::Cancelled;
    let ending = Ending { outcome, error: Some("stopped by the test"), providers: Some(&[]), written: None };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let last = version().await;
    for stream in &mut streams {
        seen(stream, last).await;
    }

    let reads: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.query LIKE 'SELECT version, generation, collection_id%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((5..=6).contains(&reads), "{reads} reads of the state for 5 changes and {WATCHERS} watchers");
    let listens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' || $1 || '%'",
    )
    .bind(cudly_core::schema::STATE_CHANNEL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(listens, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn health_turns_not_serving_when_api_service_shuts_down(pool: PgPool) {
    let mut app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watch = health.watch(tonic_health::pb::HealthCheckRequest::default()).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let stopping = tokio::spawn(async move {
        app.shutdown_api().await;
    });
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap();
    let next = next.expect("the health stream told its watcher before it ended").expect("a message, not the end");
    assert_eq!(next.status, ServingStatus::NotServing as i32, "NOT_SERVING at shutdown");
    drop(watch);
    stopping.await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_partly_collected_account_lists_which_units_failed_and_keeps_its_rows(pool: PgPool) {
    let mut opts = Options { seed: "gcp=2", ..Options::default() };
    opts.sim.latency = Duration::from_millis(2);
    let app = spawn_app(pool.clone(), opts).await;
    app.collect().await;
    let rows = |service: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT generation FROM recommendations WHERE service = $1")
                .bind(service)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let sql_before = rows("cloud_sql").await;
    assert!(!sql_before.is_empty());

    // Cloud SQL's recommendations can no longer be read; the rest can.
    app.sim(Provider::Gcp).fail_service("cloud_sql");
    let second = app.collect().await;
    let run = second.collection.unwrap();
    assert_eq!(run.outcome, pb::Outcome::PartiallySucceeded as i32);
    let gcp = run.providers.iter().find(|p| p.provider == pb::Provider::Gcp as i32).unwrap();
    assert_eq!(gcp.state, pb::ProviderState::PartiallySucceeded as i32);
    assert_eq!((gcp.accounts_partially_succeeded, gcp.accounts_failed, gcp.accounts_succeeded), (2, 0, 0));
    let regions: HashSet<&str> = cudly_collector::providers::simulated::GCP_REGIONS.iter().copied().collect();
    for account in &gcp.failed_accounts {
        assert_eq!(account.state, pb::AccountState::PartiallySucceeded as i32);
        // compute, cloud_sql and memorystore in 8 regions × 2 terms; Cloud
        // SQL's 16 failed.
        assert_eq!((account.units_failed, account.units_total), (16, 48), "{account:?}");
        assert_eq!(account.failures.len(), 5);
        for failure in &account.failures {
            assert_eq!(failure.account_id, account.account_id);
            assert_eq!(failure.service, "cloud_sql");
            assert!(regions.contains(failure.region.as_str()), "{failure:?}");
            assert!(failure.error.contains("simulated gcp API error on cloud_sql"), "{failure:?}");
        }
    }
    assert_eq!(rows("cloud_sql").await, sql_before, "the failed units' rows are kept as they were");
    assert!(rows("compute").await.iter().all(|g| *g == run.generation), "the rest was written by this run");
}

/// Starts api-service on `pool` (no collector), returning its address and
/// what stops it.
async fn serve_api(pool: &PgPool) -> (std::net::SocketAddr, impl FnOnce() -> tokio::task::JoinHandle<()>) {
    let collector_url = format!("http://{}", cudly_testkit::spawn::unused_addr());
    let settings = cudly_api::app::Settings {
        watch_heartbeat: Duration::from_millis(200),
        ..cudly_testkit::settings::api(&collector_url)
    };
    let app = cudly_api::app::build(settings, pool.clone()).await.unwrap();
    let addr = app.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run(stop.clone().cancelled_owned()));
    (addr, move || {
        stop.cancel();
        tokio::spawn(async move { server.await.unwrap().unwrap() })
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn api_service_is_ready_only_once_it_can_read_the_collection_state(pool: PgPool) {
    // The schema is the one this build needs, but the state row cannot be
    // read: api-service cannot serve freshness, so it is not ready.
    sqlx::query("ALTER TABLE collection_state RENAME TO collection_state_away").execute(&pool).await.unwrap();
    let (addr, stop) = serve_api(&pool).await;
    let mut watch = watch_health(addr).await;
    // Readiness is checked every 500 ms while not ready: three checks.
    not_serving_throughout(&mut watch, Duration::from_millis(1500), "before the state could be read").await;
    sqlx::query("ALTER TABLE collection_state_away RENAME TO collection_state").execute(&pool).await.unwrap();
    serving_within(&mut watch, Duration::from_secs(10)).await;
    drop(watch);
    stop().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn api_service_is_ready_only_once_the_schema_is_at_the_version_it_was_built_for(pool: PgPool) {
    // Every migration but the latest: the state row can be read, but this
    // build needs the latest one too.
    let versions: Vec<i64> = cudly_core::db::MIGRATOR.iter().map(|m| m.version).collect();
    let previous = versions.iter().copied().filter(|&v| v < cudly_core::db::expected_schema_version()).max().unwrap();
    cudly_core::db::MIGRATOR.run_to(previous, &pool).await.unwrap();
    let (addr, stop) = serve_api(&pool).await;
    let mut watch = watch_health(addr).await;
    not_serving_throughout(&mut watch, Duration::from_millis(1500), "on a schema older than this build's").await;
    cudly_core::db::MIGRATOR.run(&pool).await.unwrap();
    serving_within(&mut watch, Duration::from_secs(10)).await;
    drop(watch);
    stop().await.unwrap();
}
