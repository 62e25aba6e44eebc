//! The lease's writes against a migrated database: the one run-end write
//! records the same ending on the state row and in the history and is
//! fenced, an undispatched run's release never clears a newer run's lease,
//! renewals and progress are fenced, and every visible change notifies on
//! the channel the hub listens to.

use std::time::Duration;

use cudly_core::domain::{Outcome, Provider, ProviderStatus, Trigger};
use cudly_core::lease::{
    Acquired, Collection, Ending, Lease, acquire_lease, end_run, release_undispatched, renew_lease, write_progress,
};
use cudly_core::schema::STATE_CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

async fn start_run(pool: &PgPool) -> (Lease, Collection) {
    match acquire_lease(pool, Trigger::User, Duration::from_secs(30)).await.unwrap() {
        Acquired::Started(run) => (run.lease(), run),
        Acquired::Joined(run) => panic!("run {} already holds the lease", run.collection_id),
    }
}

async fn expire_lease(pool: &PgPool) {
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(pool).await.unwrap();
}

/// What the state row or the history row says about a run.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Recorded {
    held: bool,
    outcome: Option<String>,
    error: Option<String>,
    count: i64,
    providers: serde_json::Value,
    finished: bool,
}

/// The state row, its data version and whether it has a collection time.
async fn state_row(pool: &PgPool) -> (Recorded, i64, bool) {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        recorded: Recorded,
        data_version: i64,
        collected: bool,
    }
    let row: Row = sqlx::query_as(
        "SELECT lease_expires_at IS NOT NULL AS held, outcome, error, recommendation_count AS count, providers,
                finished_at IS NOT NULL AS finished, data_version, last_collected_at IS NOT NULL AS collected
         FROM collection_state",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (row.recorded, row.data_version, row.collected)
}

async fn history_row(pool: &PgPool, lease: &Lease) -> Recorded {
    sqlx::query_as(
        "SELECT false AS held, outcome, error, recommendation_count AS count, providers,
                finished_at IS NOT NULL AS finished
         FROM collection_runs WHERE id = $1",
    )
    .bind(lease.collection_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cancelled_run_ends_alike_in_both_rows_and_leaves_the_data_alone(pool: PgPool) {
    let (lease, _) = start_run(&pool).await;
    let providers = [ProviderStatus::pending(Provider::Aws, 2)];
    let ending = Ending {
        outcome: Outcome::Cancelled,
        error: Some("shutting down"),
        providers: Some(&providers),
        written: None,
    };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());

    let (state, data_version, collected) = state_row(&pool).await;
    let expected = Recorded {
        held: false,
        outcome: Some("cancelled".into()),
        error: Some("shutting down".into()),
        count: 0,
        providers: serde_json::to_value(providers).unwrap(),
        finished: true,
    };
    assert_eq!(state, expected);
    assert_eq!(history_row(&pool, &lease).await, expected);
    assert_eq!((data_version, collected), (0, false), "nothing was written, so the data did not change");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_that_wrote_its_results_moves_the_data_version_and_the_collection_time(pool: PgPool) {
    let (lease, _) = start_run(&pool).await;
    let ending = Ending { outcome: Outcome::Succeeded, error: None, providers: Some(&[]), written: Some(7) };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let (state, data_version, collected) = state_row(&pool).await;
    assert_eq!((state.outcome.as_deref(), state.error, state.count), (Some("succeeded"), None, 7));
    assert_eq!((data_version, collected), (1, true));
    assert_eq!(history_row(&pool, &lease).await.count, 7);

    // A failed run that wrote nothing keeps the data version and the last
    // collection time, and `None` keeps the providers the row has.
    let (lease, _) = start_run(&pool).await;
    let ending =
        Ending { outcome: Outcome::Failed, error: Some("no account answered"), providers: None, written: None };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let (state, data_version, collected) = state_row(&pool).await;
    assert_eq!((state.outcome.as_deref(), data_version, collected), (Some("failed"), 1, true));
    assert_eq!(history_row(&pool, &lease).await.providers, serde_json::json!([]));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_run_that_wrote_its_results_moves_the_data_version_but_not_the_collection_time(pool: PgPool) {
    // Every provider failed: the results transaction still ran (its
    // evictions, none here) and moves the data version, but nothing was
    // collected, so "last collected" stays as it was (never, here).
    let (lease, _) = start_run(&pool).await;
    let ending =
        Ending { outcome: Outcome::Failed, error: Some("no account answered"), providers: Some(&[]), written: Some(0) };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let (state, data_version, collected) = state_row(&pool).await;
    assert_eq!((state.outcome.as_deref(), data_version, collected), (Some("failed"), 1, false));
    // A succeeded run that wrote nothing new still collected: the time moves.
    let (lease, _) = start_run(&pool).await;
    let ending = Ending { outcome: Outcome::Succeeded, error: None, providers: Some(&[]), written: Some(0) };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let (_, data_version, collected) = state_row(&pool).await;
    assert_eq!((data_version, collected), (2, true));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_end_without_an_unexpired_lease_writes_nothing(pool: PgPool) {
    let (lease, _) = start_run(&pool).await;
    let ending = Ending { outcome: Outcome::Succeeded, error: None, providers: Some(&[]), written: Some(3) };
    let stale = Lease { generation: lease.generation - 1, ..lease };
    assert!(!end_run(&pool, &stale, &ending).await.unwrap(), "another generation never ends this run");

    expire_lease(&pool).await;
    assert!(!end_run(&pool, &lease, &ending).await.unwrap(), "an expired lease fences the write");
    let (state, data_version, _) = state_row(&pool).await;
    assert_eq!((state.outcome, state.finished, data_version), (None, false, 0));
    assert_eq!(history_row(&pool, &lease).await.outcome.as_deref(), Some("running"));
}

#[sqlx::test(migrations = "../migrations")]
async fn an_undispatched_run_is_ended_even_after_its_lease_ran_out_unless_taken_over(pool: PgPool) {
    let (lease, run) = start_run(&pool).await;
    expire_lease(&pool).await;
    assert!(release_undispatched(&pool, &run, "dispatch to the collector failed: timeout").await.unwrap());
    let (state, _, _) = state_row(&pool).await;
    assert_eq!(
        (state.held, state.outcome.as_deref(), state.error.as_deref()),
        (false, Some("failed"), Some("dispatch to the collector failed: timeout"))
    );
    assert_eq!(history_row(&pool, &lease).await.outcome.as_deref(), Some("failed"));
    assert!(!release_undispatched(&pool, &run, "again").await.unwrap(), "a released lease is not released twice");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_release_never_clears_a_newer_runs_lease(pool: PgPool) {
    let (_, undispatched) = start_run(&pool).await;
    // Its dispatch is slow; meanwhile its lease expires and a newer run takes it.
    expire_lease(&pool).await;
    let (newer, newer_info) = start_run(&pool).await;

    let released = release_undispatched(&pool, &undispatched, "dispatch to the collector failed: timeout").await;
    assert!(!released.unwrap(), "the undispatched run no longer held the lease");
    let (id, generation, held, outcome): (Option<uuid::Uuid>, i64, bool, Option<String>) =
        sqlx::query_as("SELECT collection_id, generation, lease_expires_at > now(), outcome FROM collection_state")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((id, generation, held, outcome), (Some(newer.collection_id), newer.generation, true, None));
    assert_eq!(history_row(&pool, &newer).await.outcome.as_deref(), Some("running"), "its history is untouched");

    // Its own release (the compare matches) clears it.
    assert!(release_undispatched(&pool, &newer_info, "dispatch to the collector failed").await.unwrap());
    assert!(!state_row(&pool).await.0.held);
}

#[sqlx::test(migrations = "../migrations")]
async fn every_visible_change_notifies_on_the_channel_the_hub_listens_to(pool: PgPool) {
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(STATE_CHANNEL).await.unwrap();
    let (lease, _) = start_run(&pool).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM collection_state").fetch_one(&pool).await.unwrap();
    let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.unwrap().unwrap();
    assert_eq!(note.channel(), STATE_CHANNEL);
    assert_eq!(note.payload(), version.to_string(), "the payload is the row's new version");

    let ending = Ending { outcome: Outcome::Succeeded, error: None, providers: Some(&[]), written: Some(0) };
    assert!(end_run(&pool, &lease, &ending).await.unwrap());
    let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.unwrap().unwrap();
    assert_eq!(note.payload(), (version + 1).to_string());
}

#[sqlx::test(migrations = "../migrations")]
async fn renewals_and_progress_are_fenced_by_id_generation_and_expiry(pool: PgPool) {
    let (lease, _) = start_run(&pool).await;
    let ttl = Duration::from_secs(30);
    let progress = [ProviderStatus::pending(Provider::Gcp, 1)];
    let other_generation = Lease { generation: lease.generation + 1, ..lease };
    let other_run = Lease { collection_id: uuid::Uuid::new_v4(), ..lease };
    for stale in [other_generation, other_run] {
        assert!(!renew_lease(&pool, &stale, ttl).await.unwrap(), "{stale:?} renewed the lease");
        assert!(!write_progress(&pool, &stale, &progress).await.unwrap(), "{stale:?} wrote progress");
    }
    assert_eq!(state_row(&pool).await.0.providers, serde_json::json!([]), "nothing was written");
    assert!(renew_lease(&pool, &lease, ttl).await.unwrap());
    assert!(write_progress(&pool, &lease, &progress).await.unwrap());

    expire_lease(&pool).await;
    assert!(!renew_lease(&pool, &lease, ttl).await.unwrap(), "an expired lease is not renewed");
    assert!(!write_progress(&pool, &lease, &[]).await.unwrap(), "nor written through");
}

/// Every trigger, and none more than a user's, joins a lease taken while
/// it waited: the first read saw no lease, but another replica's acquire
/// held the row; once that commits, the conditional UPDATE finds the lease
/// held and takes nothing (the race the read-first path leaves open).
#[sqlx::test(migrations = "../migrations")]
async fn a_lease_taken_while_a_trigger_waited_for_the_row_is_joined_by_every_trigger(pool: PgPool) {
    for trigger in Trigger::ALL.iter().copied() {
        let mut other = pool.begin().await.unwrap();
        let generation: i64 = sqlx::query_scalar(
            "UPDATE collection_state
             SET generation = generation + 1, collection_id = gen_random_uuid(), trigger = 'user',
                 started_at = now(), finished_at = NULL, lease_expires_at = now() + interval '30 s'
             WHERE id = 1 RETURNING generation",
        )
        .fetch_one(&mut *other)
        .await
        .unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { acquire_lease(&pool, trigger, Duration::from_secs(30)).await.unwrap() }
        });
        // Until the acquire waits for the row the other replica holds.
        for attempt in 0.. {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UPDATE collection_state%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if blocked > 0 {
                break;
            }
            assert!(attempt < 500, "the acquire never waited for the row");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        other.commit().await.unwrap();
        match waiting.await.unwrap() {
            Acquired::Joined(run) => assert_eq!(run.generation, generation, "{trigger:?} joined the run that took it"),
            Acquired::Started(run) => panic!("{trigger:?} took a held lease over (generation {})", run.generation),
        }
        expire_lease(&pool).await;
    }
}
