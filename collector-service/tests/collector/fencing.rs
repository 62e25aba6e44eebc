//! The fence inside the results transaction: a finish that passed the check
//! before its transaction, then waited while its lease was lost, writes
//! nothing; and a results transaction left open by a frozen collector
//! does not cost the run that took its lease over its results. (The
//! lease's own writes are proven in `cudly-core`'s tests.)

use std::time::Duration;

use cudly_collector::engine::Collected;
use cudly_collector::persist::{FinishError, Finished, finish_run};
use cudly_core::domain::{Provider, ProviderStatus, Trigger};
use cudly_core::lease::{
    Acquired, Collection, Lease, acquire_lease, end_zombie_results_transactions, tag_results_transaction,
};
use cudly_core::schema::ACCOUNTS_LOCK;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use cudly_testkit::fixtures::recommendation;
use cudly_testkit::settings::notice_rules;

pub(crate) const ACCOUNT: &str = "123456789012";

pub(crate) async fn start_run(pool: &PgPool) -> (Lease, Collection) {
    match acquire_lease(pool, Trigger::User, Duration::from_secs(30)).await.unwrap() {
        Acquired::Started(run) => (run.lease(), run),
        Acquired::Joined(run) => panic!("run {} already holds the lease", run.collection_id),
    }
}

/// `n` rows of the registered account, distinct by resource type.
fn results(prefix: &str, n: usize) -> Collected {
    let recommendations: Vec<_> = (0..n).map(|i| recommendation(ACCOUNT, &format!("{prefix}.{i}"))).collect();
    Collected {
        sources: vec![ACCOUNT.to_string(); n],
        recommendations,
        providers: vec![ProviderStatus::pending(Provider::Aws, 1)],
        complete_accounts: vec![(Provider::Aws, ACCOUNT.to_string())],
    }
}

/// Holds the accounts lock (as a deletion would) until dropped or committed.
pub(crate) async fn hold_accounts_lock(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ACCOUNTS_LOCK).execute(&mut *tx).await.unwrap();
    tx
}

/// Waits (bounded) until `n` transactions wait for the accounts lock.
pub(crate) async fn waiting_for_the_lock(pool: &PgPool, n: i64) {
    for _ in 0..500 {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                .fetch_one(pool)
                .await
                .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} finishes never queued for the accounts lock");
}

/// Starts `finish_run` for `lease`; it passes the check before its
/// transaction and then waits for the accounts lock the test holds.
fn finish_in_background(
    pool: &PgPool,
    lease: Lease,
    collected: Collected,
) -> JoinHandle<Result<Finished, FinishError>> {
    let pool = pool.clone();
    tokio::spawn(async move { finish_run(&pool, &lease, collected, &notice_rules()).await })
}

async fn rows_of_generation(pool: &PgPool, generation: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE generation = $1")
        .bind(generation)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub(crate) async fn register(pool: &PgPool) {
    sqlx::query("INSERT INTO accounts (provider, external_id, display_name) VALUES ('aws', $1, 'Payments')")
        .bind(ACCOUNT)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_finish_that_waited_while_its_lease_was_taken_over_writes_nothing(pool: PgPool) {
    register(&pool).await;
    let (old, _) = start_run(&pool).await;
    let lock = hold_accounts_lock(&pool).await;
    let stale = finish_in_background(&pool, old, results("stale", 3));
    waiting_for_the_lock(&pool, 1).await;

    // Meanwhile its lease expires and a newer run takes it over and finishes.
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let (newer, run) = start_run(&pool).await;
    assert!(run.took_over);
    let current = finish_in_background(&pool, newer, results("current", 2));
    waiting_for_the_lock(&pool, 2).await;
    lock.commit().await.unwrap();

    assert!(matches!(stale.await.unwrap(), Err(FinishError::LeaseLost)), "the fence inside the transaction held");
    let finished = current.await.unwrap().unwrap();
    assert_eq!(finished.written, 2);
    assert_eq!(rows_of_generation(&pool, old.generation).await, 0, "no row of the old generation");
    assert_eq!(rows_of_generation(&pool, newer.generation).await, 2, "the newer run's rows are intact");
    let types: Vec<String> = sqlx::query_scalar("SELECT resource_type FROM recommendations ORDER BY resource_type")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(types, ["current.0", "current.1"], "nothing of the stale run, not even evicted rows of the newer");
    assert_eq!(outcomes(&pool).await, [(old.generation, "abandoned".into()), (newer.generation, "succeeded".into())]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_finish_whose_generation_moved_on_writes_nothing(pool: PgPool) {
    register(&pool).await;
    let (old, _) = start_run(&pool).await;
    let lock = hold_accounts_lock(&pool).await;
    let stale = finish_in_background(&pool, old, results("stale", 3));
    waiting_for_the_lock(&pool, 1).await;
    // The same run id under a newer generation: the generation alone must
    // fence (ids are random, but a fencing token must not rely on that).
    sqlx::query("UPDATE collection_state SET generation = generation + 1").execute(&pool).await.unwrap();
    lock.commit().await.unwrap();

    assert!(matches!(stale.await.unwrap(), Err(FinishError::LeaseLost)));
    assert_eq!(rows_of_generation(&pool, old.generation).await, 0);
    let lease_held: bool =
        sqlx::query_scalar("SELECT lease_expires_at IS NOT NULL FROM collection_state").fetch_one(&pool).await.unwrap();
    assert!(lease_held, "the stale finish did not clear the newer generation's lease");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_finish_after_its_lease_expired_writes_nothing_even_before_any_takeover(pool: PgPool) {
    register(&pool).await;
    let (old, _) = start_run(&pool).await;
    let lock = hold_accounts_lock(&pool).await;
    let stale = finish_in_background(&pool, old, results("stale", 3));
    waiting_for_the_lock(&pool, 1).await;
    // The right id and generation, but past its lease: nobody took over yet.
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    lock.commit().await.unwrap();

    assert!(matches!(stale.await.unwrap(), Err(FinishError::LeaseLost)));
    assert_eq!(rows_of_generation(&pool, old.generation).await, 0);
    let (outcome, finished): (Option<String>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT outcome, finished_at FROM collection_state").fetch_one(&pool).await.unwrap();
    assert_eq!((outcome, finished), (None, None), "the expired run did not record an end either");
}

/// A pool whose lock waits time out after 300 ms (the services' pools wait
/// 5 s), so that a finish meets a held accounts lock quickly.
async fn impatient(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options()).clone().options([("lock_timeout", "300ms")]);
    sqlx::postgres::PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap()
}

/// A transaction holding the accounts lock, tagged as the results
/// transaction of `run` (`None`: untagged, as a deletion), and its backend.
async fn holding_the_accounts_lock(
    pool: &PgPool,
    run: Option<&Lease>,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, i32) {
    let mut tx = pool.begin().await.unwrap();
    if let Some(run) = run {
        tag_results_transaction(&mut tx, run).await.unwrap();
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ACCOUNTS_LOCK).execute(&mut *tx).await.unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
    (tx, pid)
}

async fn backend_alive(pool: &PgPool, pid: i32) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_that_took_over_ends_the_frozen_results_transaction_of_the_old_run_and_writes_its_own(pool: PgPool) {
    register(&pool).await;
    let (old, _) = start_run(&pool).await;
    // The old run's collector froze inside its results transaction, holding
    // the accounts lock.
    let (mut zombie, zombie_pid) = holding_the_accounts_lock(&pool, Some(&old)).await;
    // Its lease expires and a newer run takes it over and finishes.
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let (newer, run) = start_run(&pool).await;
    assert!(run.took_over);
    let finished = finish_run(&impatient(&pool).await, &newer, results("current", 2), &notice_rules())
        .await
        .expect("the run that took over writes its results");

    assert_eq!(finished.written, 2);
    assert_eq!(rows_of_generation(&pool, newer.generation).await, 2);
    assert!(!backend_alive(&pool, zombie_pid).await, "the zombie's transaction was ended");
    assert!(sqlx::query("SELECT 1").execute(&mut *zombie).await.is_err(), "its connection is gone");
    assert_eq!(outcomes(&pool).await, [(old.generation, "abandoned".into()), (newer.generation, "succeeded".into())]);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_live_runs_results_transaction_and_a_deletion_are_never_ended(pool: PgPool) {
    register(&pool).await;
    let (old, _) = start_run(&pool).await;
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let (live, _) = start_run(&pool).await;
    let impatient = impatient(&pool).await;

    // The live run is writing its results. The old run, which lost its
    // lease, may end nothing, and writes nothing.
    let (mut writing, writing_pid) = holding_the_accounts_lock(&pool, Some(&live)).await;
    assert_eq!(end_zombie_results_transactions(&pool, &old).await.unwrap(), Vec::<i32>::new());
    assert!(matches!(
        finish_run(&impatient, &old, results("stale", 2), &notice_rules()).await,
        Err(FinishError::LeaseLost)
    ));
    // Nor does the live run end its own transaction (a second finish of it).
    assert_eq!(end_zombie_results_transactions(&pool, &live).await.unwrap(), Vec::<i32>::new());
    assert!(backend_alive(&pool, writing_pid).await);
    sqlx::query("SELECT 1").execute(&mut *writing).await.expect("the live run's transaction goes on");
    writing.rollback().await.unwrap();

    // A deletion holding the lock (untagged) makes the live run's finish wait
    // and time out; it is never ended.
    let (deletion, deletion_pid) = holding_the_accounts_lock(&pool, None).await;
    let waited = finish_run(&impatient, &live, results("live", 2), &notice_rules()).await;
    assert!(matches!(waited, Err(FinishError::Database(_))), "{waited:?}");
    assert!(backend_alive(&pool, deletion_pid).await, "a deletion is not a zombie");
    deletion.commit().await.unwrap();
    let finished = finish_run(&impatient, &live, results("live", 2), &notice_rules()).await.unwrap();
    assert_eq!(finished.written, 2);
}

/// Every run's generation and outcome, oldest first.
async fn outcomes(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT generation, outcome FROM collection_runs ORDER BY generation").fetch_all(pool).await.unwrap()
}
