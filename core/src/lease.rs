//! The lease, in one place: acquiring it for a new run (or joining the run
//! that holds it), checking a delivered run holds it, heartbeating, fenced
//! progress, and the one run-end write that releases it, whether the run
//! finished, was cancelled, failed or could not be dispatched.
//!
//! Every collector write is fenced by the run's `(collection_id,
//! generation)` and an unexpired lease, judged by Postgres' clock. Zero rows
//! updated means the run no longer owns the lease and must stop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Outcome, ProviderStatus, Trigger};
use crate::schema::ACCOUNTS_LOCK;

/// What a run whose lease expired says, wherever it is shown: its collector
/// stopped heartbeating (crashed, frozen or cut off), and whatever it
/// collected was not written.
pub const ABANDONED_ERROR: &str = "the collector stopped heartbeating; its lease expired";

/// Why no lease could be taken or joined.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The lease kept changing hands while we tried to take or join it.
    #[error("the collection lease is changing hands; try again")]
    Contended,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A checked query: an UPDATE of the state row with the fence appended.
/// `$1` is the run id and `$2` its generation; further arguments follow.
macro_rules! fenced {
    ($sql:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query!(
            $sql + " WHERE id = 1 AND collection_id = $1 AND generation = $2"
                + " AND lease_expires_at > clock_timestamp()",
            $($arg),+
        )
    };
}

/// The lease a collection holds: its id and the generation it was started
/// under, which every write it makes is fenced by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The run id.
    pub collection_id: Uuid,
    /// The lease generation it was acquired with.
    pub generation: i64,
    /// Why it was started.
    pub trigger: Trigger,
}

/// Whether `lease` is the lease currently held (and not expired).
pub async fn holds_lease(pool: &PgPool, lease: &Lease) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT collection_id = $1 AND generation = $2 AND lease_expires_at > clock_timestamp()
         FROM collection_state WHERE id = 1",
        lease.collection_id,
        lease.generation,
    )
    .fetch_one(pool)
    .await
    .map(|held| held.unwrap_or(false))
}

/// Extends the lease by `ttl` from now. `false`: the lease was lost.
pub async fn renew_lease(pool: &PgPool, lease: &Lease, ttl: Duration) -> Result<bool, sqlx::Error> {
    let done = fenced!(
        "UPDATE collection_state SET lease_expires_at = clock_timestamp() + make_interval(secs => $3)",
        lease.collection_id,
        lease.generation,
        ttl.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Publishes the run's per-provider progress. `false`: the lease was lost.
/// (The run's `recommendation_count` stays 0 until it has written rows: what
/// it collected so far is in each provider's count.)
pub async fn write_progress(pool: &PgPool, lease: &Lease, providers: &[ProviderStatus]) -> Result<bool, sqlx::Error> {
    let done = fenced!(
        "UPDATE collection_state SET providers = $3",
        lease.collection_id,
        lease.generation,
        sqlx::types::Json(providers) as _,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How a run ends, as its one run-end write records it on the state row and
/// in the history.
#[derive(Clone, Copy, Debug)]
pub struct Ending<'a> {
    /// The outcome.
    pub outcome: Outcome,
    /// Why it failed or was cancelled (`None` clears the last error).
    pub error: Option<&'a str>,
    /// The final per-provider statuses; `None` keeps what the row has.
    pub providers: Option<&'a [ProviderStatus]>,
    /// Rows written, for a run that wrote its results: bumps the data
    /// version (and, when the outcome collected anything, the collection
    /// time). `None`: nothing was written.
    pub written: Option<u64>,
}

/// Ends the run holding `lease` (fenced): clears the lease so the next
/// trigger can start at once, and records `ending` on the state row and in
/// the history, in one statement. `false`: the lease was lost already, and
/// nothing was written. Run inside the transaction that wrote the results,
/// it commits with them.
pub async fn end_run<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    lease: &Lease,
    ending: &Ending<'_>,
) -> Result<bool, sqlx::Error> {
    write_end(conn, lease.collection_id, lease.generation, Fence::Unexpired, ending).await
}

/// Which lease a run-end write requires besides the run's id and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fence {
    /// An unexpired lease (database clock): what every collector write needs.
    Unexpired,
    /// Any lease not yet released: a run that was never dispatched may be
    /// ended even after its lease ran out, as long as no run took it over
    /// (which would have changed the generation).
    Unreleased,
}

/// The run-end write, the only one: the state row (compare on id and
/// generation, then the fence) and the run's history row.
async fn write_end<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    collection_id: Uuid,
    generation: i64,
    fence: Fence,
    ending: &Ending<'_>,
) -> Result<bool, sqlx::Error> {
    let written = ending.written.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let collected_something =
        written.is_some() && matches!(ending.outcome, Outcome::Succeeded | Outcome::PartiallySucceeded);
    let ended = sqlx::query_scalar!(
        "WITH ended AS (
             UPDATE collection_state
             SET lease_expires_at = NULL, finished_at = now(), outcome = $3, error = $4,
                 last_collection_error = $4,
                 providers = coalesce($5, providers),
                 recommendation_count = coalesce($6, recommendation_count),
                 data_version = data_version + CASE WHEN $6 IS NULL THEN 0 ELSE 1 END,
                 last_collected_at = CASE WHEN $7 THEN now() ELSE last_collected_at END
             WHERE id = 1 AND collection_id = $1 AND generation = $2
               AND lease_expires_at > CASE WHEN $8 THEN clock_timestamp() ELSE '-infinity' END
             RETURNING collection_id
         )
         UPDATE collection_runs
         SET finished_at = now(), outcome = $3, error = $4, providers = coalesce($5, providers),
             recommendation_count = coalesce($6, recommendation_count)
         WHERE id = (SELECT collection_id FROM ended)
         RETURNING id",
        collection_id,
        generation,
        ending.outcome.as_str(),
        ending.error,
        ending.providers.map(sqlx::types::Json) as _,
        written,
        collected_something,
        fence == Fence::Unexpired,
    )
    .fetch_optional(conn)
    .await?;
    Ok(ended.is_some())
}

/// A collection (one run of collecting recommendations) as the refresh
/// caller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Collection {
    /// The collection id.
    pub collection_id: Uuid,
    /// Its lease generation.
    pub generation: i64,
    /// Why it was started.
    pub trigger: Trigger,
    /// When it started (database clock).
    pub started_at: DateTime<Utc>,
    /// When data was last collected, if ever.
    pub last_collected_at: Option<DateTime<Utc>>,
    /// Whether starting it took over the expired lease of a run whose
    /// collector stopped heartbeating.
    pub took_over: bool,
}

impl Collection {
    /// The lease it holds, which fences its writes.
    pub fn lease(&self) -> Lease {
        Lease { collection_id: self.collection_id, generation: self.generation, trigger: self.trigger }
    }
}

/// Whether a call started a run or joined the one in flight.
#[derive(Clone, Debug, PartialEq)]
pub enum Acquired {
    /// This call took the lease for a new run.
    Started(Collection),
    /// A run already held the lease; this call joins it.
    Joined(Collection),
}

/// The row acquiring or joining reads.
struct CollectionRow {
    collection_id: Uuid,
    generation: i64,
    trigger: String,
    started_at: DateTime<Utc>,
    last_collected_at: Option<DateTime<Utc>>,
    took_over: bool,
}

impl From<CollectionRow> for Collection {
    fn from(row: CollectionRow) -> Self {
        Collection {
            collection_id: row.collection_id,
            generation: row.generation,
            trigger: Trigger::parse(&row.trigger).unwrap_or(Trigger::User),
            started_at: row.started_at,
            last_collected_at: row.last_collected_at,
            took_over: row.took_over,
        }
    }
}

/// Takes the lease for a new run when none is held or the held one expired
/// (one conditional UPDATE, database clock), recording the run in the
/// history and any expired run as abandoned. Otherwise joins the run that
/// holds it.
pub async fn acquire_lease(pool: &PgPool, trigger: Trigger, ttl: Duration) -> Result<Acquired, AcquireError> {
    // While a run is in flight (the common case under load) one read
    // answers. Otherwise try to take the lease; if another caller took it
    // first, join that run. The lease can also be released between two of
    // these statements; then we simply go round again.
    for _ in 0..5 {
        if let Some(row) = held_lease(pool).await? {
            return Ok(Acquired::Joined(row.into()));
        }
        let started = sqlx::query_as!(
            CollectionRow,
            // `previous` reads the row as it was before this statement (all
            // parts of one statement see the same snapshot): an abandoned
            // run ended when its lease expired, as every view shows it.
            r#"WITH previous AS (SELECT lease_expires_at FROM collection_state WHERE id = 1),
             acquired AS (
                 UPDATE collection_state
                 SET generation = generation + 1, collection_id = $1, trigger = $2,
                     started_at = now(), finished_at = NULL, outcome = NULL, error = NULL,
                     recommendation_count = 0, providers = '[]',
                     lease_expires_at = now() + make_interval(secs => $3)
                 WHERE id = 1 AND (lease_expires_at IS NULL OR lease_expires_at <= now())
                 RETURNING collection_id, generation, trigger, started_at, last_collected_at
             ),
             abandoned AS (
                 UPDATE collection_runs
                 SET outcome = 'abandoned',
                     finished_at = coalesce(finished_at, (SELECT lease_expires_at FROM previous), now()),
                     error = $4 || ' and was taken over'
                 WHERE outcome = 'running' AND generation < (SELECT generation FROM acquired)
                 RETURNING id
             ),
             recorded AS (
                 INSERT INTO collection_runs (id, generation, trigger, started_at)
                 SELECT collection_id, generation, trigger, started_at FROM acquired
             )
             SELECT collection_id AS "collection_id!", generation AS "generation!", trigger AS "trigger!",
                    started_at AS "started_at!", last_collected_at,
                    EXISTS (SELECT 1 FROM abandoned) AS "took_over!"
             FROM acquired"#,
            Uuid::new_v4(),
            trigger.as_str(),
            ttl.as_secs_f64(),
            ABANDONED_ERROR,
        )
        .fetch_optional(pool)
        .await?;
        if let Some(row) = started {
            return Ok(Acquired::Started(row.into()));
        }
    }
    Err(AcquireError::Contended)
}

/// The run holding an unexpired lease, if any.
async fn held_lease(pool: &PgPool) -> Result<Option<CollectionRow>, sqlx::Error> {
    sqlx::query_as!(
        CollectionRow,
        r#"SELECT collection_id AS "collection_id!", generation, trigger AS "trigger!",
                  started_at AS "started_at!", last_collected_at, false AS "took_over!"
           FROM collection_state
           WHERE id = 1 AND lease_expires_at > now()"#,
    )
    .fetch_optional(pool)
    .await
}

/// Releases the lease of a run that could not be dispatched (compare and
/// clear on id and generation), recording why. Returns whether it was still
/// held.
pub async fn release_undispatched(pool: &PgPool, run: &Collection, error: &str) -> Result<bool, sqlx::Error> {
    let ending = Ending { outcome: Outcome::Failed, error: Some(error), providers: None, written: None };
    write_end(pool, run.collection_id, run.generation, Fence::Unreleased, &ending).await
}

/// Tags the transaction on `conn` as the results transaction of `lease`'s
/// run until it ends: its `application_name` (visible to every session in
/// `pg_stat_activity`, unlike anything the transaction writes) becomes
/// `cudly:<run id>:<generation>` (at most 62 bytes: Postgres keeps 63),
/// and reverts at commit or rollback. Call it first in the transaction,
/// before any lock is taken, so that a transaction holding the accounts
/// lock is always known by its run.
pub async fn tag_results_transaction(conn: &mut sqlx::PgConnection, lease: &Lease) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT set_config('application_name', 'cudly:' || $1::uuid || ':' || $2::int8, true)",
        lease.collection_id,
        lease.generation,
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Ends the results transactions of runs that no longer hold the lease and
/// still hold the accounts lock, while `lease` holds it (database clock),
/// waiting up to 5 s for each to be gone; returns their backends' pids.
///
/// A collector frozen (paused, swapped out, cut off) inside its results
/// transaction keeps the accounts lock and its row locks until Postgres
/// notices (`idle_in_transaction_session_timeout`), while the run that took
/// its lease over waits for them and times out. Its fence would refuse its
/// commit anyway, so ending it loses nothing. Which transactions to end is
/// decided in one statement against the state row: only while `lease` is
/// the unexpired lease, so only transactions tagged
/// ([`tag_results_transaction`]) with another run, which by the lease's
/// uniqueness cannot hold it; never an untagged holder of the lock (an
/// account deletion), never the live run's own transaction. (The waiter
/// cannot ask `pg_blocking_pids` after its lock wait timed out: it no
/// longer waits; the lock's holders are read from `pg_locks` instead.)
pub async fn end_zombie_results_transactions(pool: &PgPool, lease: &Lease) -> Result<Vec<i32>, sqlx::Error> {
    let ended = sqlx::query!(
        r#"SELECT a.pid AS "pid!", pg_terminate_backend(a.pid, 5000) AS "ended!"
           FROM pg_stat_activity a, collection_state s
           WHERE s.id = 1 AND s.collection_id = $1 AND s.generation = $2
             AND s.lease_expires_at > clock_timestamp()
             AND a.pid <> pg_backend_pid()
             AND a.datname = current_database()
             AND a.application_name LIKE 'cudly:%'
             AND a.application_name <> 'cudly:' || s.collection_id || ':' || s.generation
             AND EXISTS (
                 SELECT 1 FROM pg_locks l
                 WHERE l.pid = a.pid AND l.granted AND l.locktype = 'advisory' AND l.objsubid = 1
                   AND (l.classid::int8 << 32) | l.objid::int8 = $3
             )"#,
        lease.collection_id,
        lease.generation,
        ACCOUNTS_LOCK,
    )
    .fetch_all(pool)
    .await?;
    Ok(ended.into_iter().filter(|row| row.ended).map(|row| row.pid).collect())
}
