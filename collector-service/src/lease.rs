//! The collector's side of the lease: checking a delivered run holds it,
//! heartbeating, fenced progress, and releasing it when a run is cancelled.
//!
//! Every write is fenced by the run's `(collection_id, generation)` and an
//! unexpired lease, judged by Postgres' clock. Zero rows updated means the
//! run no longer owns the lease and must stop.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Outcome, ProviderStatus, Trigger};

/// Appends the fence to an UPDATE of the state row: `$1` is the run id and
/// `$2` its generation.
macro_rules! fenced {
    ($sql:literal) => {
        concat!(
            $sql,
            " WHERE id = 1 AND collection_id = $1 AND generation = $2",
            " AND lease_expires_at > clock_timestamp()"
        )
    };
}
pub(crate) use fenced;

/// A run, identified by the lease it was started under.
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
    sqlx::query_scalar(
        "SELECT collection_id = $1 AND generation = $2 AND lease_expires_at > clock_timestamp()
         FROM collection_state WHERE id = 1",
    )
    .bind(lease.collection_id)
    .bind(lease.generation)
    .fetch_one(pool)
    .await
    .map(|held: Option<bool>| held.unwrap_or(false))
}

/// Extends the lease by `ttl` from now. `false`: the lease was lost.
pub async fn renew_lease(pool: &PgPool, lease: &Lease, ttl: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(fenced!(
        "UPDATE collection_state SET lease_expires_at = clock_timestamp() + make_interval(secs => $3)"
    ))
    .bind(lease.collection_id)
    .bind(lease.generation)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Publishes the run's per-provider progress. `false`: the lease was lost.
/// (The run's `recommendation_count` stays 0 until it has written rows: what
/// it collected so far is in each provider's count.)
pub async fn write_progress(pool: &PgPool, lease: &Lease, providers: &[ProviderStatus]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(fenced!("UPDATE collection_state SET providers = $3"))
        .bind(lease.collection_id)
        .bind(lease.generation)
        .bind(sqlx::types::Json(providers))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a run that will not finish (e.g. the collector shuts down): records
/// `outcome` and `error` and clears the lease, so the next trigger can start
/// at once instead of waiting out the TTL. `false`: the lease was lost
/// already, and nothing was written.
pub async fn release_lease(
    pool: &PgPool,
    lease: &Lease,
    outcome: Outcome,
    error: &str,
    providers: &[ProviderStatus],
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(fenced!(
        "UPDATE collection_state SET lease_expires_at = NULL, finished_at = now(), outcome = $3,
                error = $4, last_collection_error = $4, providers = $5"
    ))
    .bind(lease.collection_id)
    .bind(lease.generation)
    .bind(outcome.as_str())
    .bind(error)
    .bind(sqlx::types::Json(providers))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE collection_runs SET finished_at = now(), outcome = $2, error = $3, providers = $4
         WHERE id = $1",
    )
    .bind(lease.collection_id)
    .bind(outcome.as_str())
    .bind(error)
    .bind(sqlx::types::Json(providers))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
