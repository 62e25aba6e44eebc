//! Refresh: answers at once, one run at a time, dispatch failures, leases.

use std::collections::HashSet;
use std::time::Duration;

use cudly_collector::collection::CollectionEnd;
use cudly_collector::engine::Collected;
use cudly_collector::persist::{FinishError, finish_run};
use cudly_core::domain::{Provider, Trigger};
use cudly_core::lease::{Acquired, acquire_lease};
use cudly_core::lease::{renew_lease, write_progress};
use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use cudly_testkit::spawn::{Options, spawn_api, spawn_app, spawn_collector, unused_addr};

fn slow(latency_ms: u64) -> Options {
    let mut opts = Options::default();
    opts.sim.latency = Duration::from_millis(latency_ms);
    opts.sim.jitter = Duration::ZERO;
    opts
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refresh_returns_while_a_slow_collection_is_still_running(pool: PgPool) {
    // Every simulated call takes 2 s, so the run lasts at least 12 s.
    let mut app = spawn_app(pool, slow(2_000)).await;
    let response = app.refresh().await.unwrap();
    assert!(!response.deduplicated);
    let run = response.collection.unwrap();
    assert_eq!(run.trigger, pb::Trigger::User as i32);
    assert_eq!(run.generation, 1);

    let freshness = app.freshness().await;
    assert!(freshness.collecting, "the refresh answered before the collection ended");
    let current = freshness.collection.unwrap();
    assert_eq!((current.id.as_str(), current.outcome), (run.id.as_str(), pb::Outcome::Running as i32));

    // Shutting the collector down cancels the run and frees the lease at once.
    app.shutdown_collector().await;
    let freshness = app.freshness().await;
    assert!(!freshness.collecting);
    let ended = freshness.collection.unwrap();
    assert_eq!(ended.outcome, pb::Outcome::Cancelled as i32);
    assert_eq!(ended.error, "collector shutting down");
    assert!(!app.lease_held().await);
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_concurrent_refreshes_start_exactly_one_run(pool: PgPool) {
    let app = spawn_app(pool, slow(300)).await;
    let calls = (0..50).map(|_| app.refresh());
    let responses: Vec<_> = futures_util::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();

    let started = responses.iter().filter(|r| !r.deduplicated).count();
    assert_eq!(started, 1, "exactly one call starts the run; the others join it");
    let ids: HashSet<_> = responses.iter().map(|r| r.collection.as_ref().unwrap().id.clone()).collect();
    assert_eq!(ids.len(), 1, "every caller is told about the same run");
    let id = ids.into_iter().next().unwrap();

    let end = app.wait_for_end(&id).await;
    assert_eq!(end.collection.unwrap().outcome, pb::Outcome::Succeeded as i32);
    assert_eq!(app.history().await.len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_collector_that_is_down_gives_unavailable_and_leaves_no_lease(pool: PgPool) {
    let collector_addr = unused_addr();
    let opts = Options { with_collector: false, ..Options::default() };
    cudly_collector::accounts::seed_simulated_accounts(&pool, &"aws=2".parse().unwrap()).await.unwrap();
    let app = spawn_api(pool.clone(), &opts, collector_addr, None).await;

    let err = app.refresh().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("collector is unavailable"), "{}", err.message());
    assert!(!app.lease_held().await, "the lease taken for the run was released");
    let freshness = app.freshness().await;
    assert!(!freshness.collecting);
    assert!(freshness.last_collection_error.contains("dispatch to the collector failed"));
    let history = app.history().await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].1, "failed");

    // Once the collector is up, the next refresh works.
    let collector = spawn_collector(&pool, &opts, collector_addr).await;
    let response = app.refresh().await.unwrap();
    assert!(!response.deduplicated);
    let run = response.collection.unwrap();
    assert_eq!(run.generation, 2);
    let end = app.wait_for_end(&run.id).await;
    assert_eq!(end.collection.unwrap().outcome, pb::Outcome::Succeeded as i32);
    collector.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_that_stops_heartbeating_is_taken_over_and_its_late_writes_are_rejected(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    // A run whose collector died right after taking it: nobody heartbeats.
    let ttl = Duration::from_secs(1);
    let Acquired::Started(dead) = acquire_lease(&pool, Trigger::User, ttl).await.unwrap() else {
        panic!("the lease was free");
    };
    let joined = app.refresh().await.unwrap();
    assert!(joined.deduplicated, "while its lease is valid the dead run is joined, not replaced");

    // Its lease expires (moved in the database rather than slept out).
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let stalled = app.freshness().await;
    assert!(!stalled.collecting);
    assert_eq!(
        stalled.collection.unwrap().outcome,
        pb::Outcome::Abandoned as i32,
        "a run past its lease is not shown as running"
    );
    let taken = app.refresh().await.unwrap();
    assert!(!taken.deduplicated);
    let new_run = taken.collection.unwrap();
    assert_eq!(new_run.generation, dead.generation + 1);

    // The old run is recorded as abandoned; its late writes change nothing.
    let history = app.history().await;
    assert_eq!(history[0].0, dead.generation);
    assert_eq!(history[0].1, "abandoned");
    let old = dead.lease();
    assert!(!renew_lease(&pool, &old, ttl).await.unwrap());
    assert!(!write_progress(&pool, &old, &[]).await.unwrap());
    let late = Collected {
        recommendations: vec![],
        sources: vec![],
        providers: vec![cudly_core::domain::ProviderStatus::pending(Provider::Aws, 1)],
        complete_accounts: vec![(Provider::Aws, "100000000001".into())],
    };
    assert!(matches!(
        finish_run(&pool, &old, late, &cudly_testkit::settings::notice_rules()).await,
        Err(FinishError::LeaseLost)
    ));

    let end = app.wait_for_end(&new_run.id).await;
    assert_eq!(end.collection.unwrap().outcome, pb::Outcome::Succeeded as i32);
    let old_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE generation = $1")
        .bind(dead.generation)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(old_rows, 0);
    assert_eq!(app.history().await[0].1, "abandoned", "the late finish did not rewrite the history");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_collector_that_loses_its_lease_stops_without_writing(pool: PgPool) {
    let opts = Options { lease_ttl: Duration::from_secs(1), ..slow(400) };
    let app = spawn_app(pool.clone(), opts).await;
    let mut ends = app.collector.as_ref().unwrap().collector.subscribe_ends();
    let run = app.refresh().await.unwrap().collection.unwrap();

    // Another owner takes the lease over (as after a partition).
    sqlx::query("UPDATE collection_state SET collection_id = $1, generation = generation + 1")
        .bind(Uuid::new_v4())
        .execute(&pool)
        .await
        .unwrap();
    let (lease, end) = tokio::time::timeout(Duration::from_secs(10), ends.recv()).await.unwrap().unwrap();
    assert_eq!(lease.collection_id.to_string(), run.id);
    assert_eq!(end, CollectionEnd::LeaseLost);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recommendations").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0, "a run that lost its lease writes no results");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_longer_than_the_ttl_is_not_taken_over_while_it_heartbeats(pool: PgPool) {
    // TTL 1 s, heartbeat every 333 ms; an AWS account takes 6 × 400 ms.
    let opts = Options { lease_ttl: Duration::from_secs(1), seed: "aws=2", ..slow(400) };
    let app = spawn_app(pool, opts).await;
    let run = app.refresh().await.unwrap().collection.unwrap();
    let mut joined = 0;
    loop {
        let f = app.freshness().await;
        let current = f.collection.unwrap();
        assert_eq!(current.id, run.id, "the run was taken over while it heartbeated");
        if current.outcome != pb::Outcome::Running as i32 {
            assert_eq!(current.outcome, pb::Outcome::Succeeded as i32);
            break;
        }
        let again = app.refresh().await.unwrap();
        if again.deduplicated {
            joined += 1;
        }
        assert_eq!(again.collection.unwrap().id, run.id);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(joined >= 5, "refreshes during a 2.4 s run join it ({joined} did)");
    assert_eq!(app.history().await.len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn internal_triggers_cannot_be_requested(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let err = app
        .client
        .clone()
        .refresh_recommendations(pb::RefreshRecommendationsRequest { trigger: pb::Trigger::Stale as i32 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("trigger"));
    assert!(!app.lease_held().await, "a refused request takes no lease");
    let scheduled = app
        .client
        .clone()
        .refresh_recommendations(pb::RefreshRecommendationsRequest { trigger: pb::Trigger::Schedule as i32 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scheduled.collection.unwrap().trigger, pb::Trigger::Schedule as i32);
}
