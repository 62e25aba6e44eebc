//! WatchFreshness: snapshot first, every change in order, heartbeats,
//! since_version, UNAVAILABLE at shutdown.

use std::time::Duration;

use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic::Code;

use cudly_testkit::spawn::{Options, spawn_app};

async fn next(stream: &mut tonic::Streaming<pb::Freshness>) -> Result<Option<pb::Freshness>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("a message within 10 s")
}

#[sqlx::test(migrations = "../migrations")]
async fn watch_delivers_the_snapshot_every_change_to_the_end_heartbeats_and_unavailable_on_shutdown(pool: PgPool) {
    let mut opts = Options { watch_heartbeat: Duration::from_millis(300), ..Options::default() };
    opts.sim.latency = Duration::from_millis(60);
    let mut app = spawn_app(pool, opts).await;
    let mut stream =
        app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();

    let first = next(&mut stream).await.unwrap().unwrap();
    assert!(first.collection.is_none(), "nothing ran yet");
    assert!(!first.collecting);

    let run = app.refresh().await.unwrap().collection.unwrap();
    let mut seen = vec![first.clone()];
    let last = loop {
        let f = next(&mut stream).await.unwrap().unwrap();
        seen.push(f.clone());
        let current = f.collection.as_ref();
        if current.is_some_and(|c| c.id == run.id && c.outcome != pb::Outcome::Running as i32) {
            break f;
        }
    };
    let versions: Vec<i64> = seen.iter().map(|f| f.version).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "versions never go back: {versions:?}");
    assert!(seen.iter().any(|f| f.collecting), "the run was seen in flight");
    assert!(
        seen.iter().any(|f| f.collection.as_ref().is_some_and(|c| c
            .providers
            .iter()
            .any(|p| p.accounts_succeeded > 0)
            && f.collecting)),
        "progress was streamed before the end"
    );
    let ended = last.collection.as_ref().unwrap();
    assert_eq!(ended.outcome, pb::Outcome::Succeeded as i32);
    assert!(ended.recommendation_count > 0);
    assert!(last.last_collected_at.is_some());

    // Nothing changes now: the next message is a heartbeat of the same state.
    let heartbeat = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(heartbeat.version, last.version);
    assert_eq!(heartbeat.collection, last.collection);

    app.shutdown_api().await;
    let end = next(&mut stream).await.unwrap_err();
    assert_eq!(end.code(), Code::Unavailable);
}

#[sqlx::test(migrations = "../migrations")]
async fn watching_since_the_current_version_waits_for_the_next_change(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let current = app.freshness().await.version;
    let mut stream = app
        .client
        .clone()
        .watch_freshness(pb::WatchFreshnessRequest { since_version: current })
        .await
        .unwrap()
        .into_inner();
    let nothing = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(nothing.is_err(), "no message until something changes");

    app.refresh().await.unwrap();
    let change = next(&mut stream).await.unwrap().unwrap();
    assert!(change.version > current);
    assert!(change.collecting);

    let err = app.client.clone().watch_freshness(pb::WatchFreshnessRequest { since_version: -1 }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_watcher_sees_the_final_state_after_the_listener_connection_is_killed(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let mut stream =
        app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
    next(&mut stream).await.unwrap().unwrap();

    let killed: i64 = sqlx::query_scalar(
        // The hub's LISTEN (the collector's deliverers listen on another
        // channel).
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' || $1 || '%'",
    )
    .bind(cudly_core::schema::STATE_CHANNEL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1, "one LISTEN connection per replica, however many watchers");

    let run = app.refresh().await.unwrap().collection.unwrap();
    loop {
        let f = next(&mut stream).await.unwrap().unwrap();
        if f.collection.as_ref().is_some_and(|c| c.id == run.id && c.outcome == pb::Outcome::Succeeded as i32) {
            break;
        }
    }
}
