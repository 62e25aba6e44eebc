//! api-service's side of the lease: acquiring it for a new run (or joining
//! the run that holds it), and releasing it when dispatch failed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_collector::domain::Trigger;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Error;

/// A run as the refresh caller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The run id.
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

/// Whether a call started a run or joined the one in flight.
#[derive(Clone, Debug, PartialEq)]
pub enum Acquired {
    /// This call took the lease for a new run.
    Started(RunInfo),
    /// A run already held the lease; this call joins it.
    Joined(RunInfo),
}

#[derive(sqlx::FromRow)]
struct RunRow {
    collection_id: Uuid,
    generation: i64,
    trigger: String,
    started_at: DateTime<Utc>,
    last_collected_at: Option<DateTime<Utc>>,
    took_over: bool,
}

impl From<RunRow> for RunInfo {
    fn from(row: RunRow) -> Self {
        RunInfo {
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
pub async fn acquire_lease(pool: &PgPool, trigger: Trigger, ttl: Duration) -> Result<Acquired, Error> {
    // While a run is in flight (the common case under load) one read
    // answers. Otherwise try to take the lease; if another caller took it
    // first, join that run. The lease can also be released between two of
    // these statements; then we simply go round again.
    for _ in 0..5 {
        if let Some(row) = held_lease(pool).await? {
            return Ok(Acquired::Joined(row.into()));
        }
        let started: Option<RunRow> = sqlx::query_as(
            // `previous` reads the row as it was before this statement (all
            // parts of one statement see the same snapshot): an abandoned
            // run ended when its lease expired, as every view shows it.
            "WITH previous AS (SELECT lease_expires_at FROM collection_state WHERE id = 1),
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
             SELECT collection_id, generation, trigger, started_at, last_collected_at,
                    EXISTS (SELECT 1 FROM abandoned) AS took_over
             FROM acquired",
        )
        .bind(Uuid::new_v4())
        .bind(trigger.as_str())
        .bind(ttl.as_secs_f64())
        .bind(crate::state::ABANDONED_ERROR)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = started {
            return Ok(Acquired::Started(row.into()));
        }
    }
    Err(Error::Contended)
}

/// The run holding an unexpired lease, if any.
async fn held_lease(pool: &PgPool) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT collection_id, generation, trigger, started_at, last_collected_at, false AS took_over
         FROM collection_state
         WHERE id = 1 AND lease_expires_at > now()",
    )
    .fetch_optional(pool)
    .await
}

/// Releases the lease of a run that could not be dispatched (compare and
/// clear on id and generation), recording why. Returns whether it was still
/// held.
pub async fn release_undispatched(pool: &PgPool, run: &RunInfo, error: &str) -> Result<bool, sqlx::Error> {
    let released: Option<Uuid> = sqlx::query_scalar(
        "WITH cleared AS (
             UPDATE collection_state
             SET lease_expires_at = NULL, finished_at = now(), outcome = 'failed',
                 error = $3, last_collection_error = $3
             WHERE id = 1 AND collection_id = $1 AND generation = $2 AND lease_expires_at IS NOT NULL
             RETURNING collection_id
         )
         UPDATE collection_runs SET outcome = 'failed', finished_at = now(), error = $3
         WHERE id = (SELECT collection_id FROM cleared)
         RETURNING id",
    )
    .bind(run.collection_id)
    .bind(run.generation)
    .bind(error)
    .fetch_optional(pool)
    .await?;
    Ok(released.is_some())
}
