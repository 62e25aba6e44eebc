//! Reading the collection state row and the run history, and turning them
//! into the API's messages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_core::domain::{Outcome, ProviderStatus, Trigger, timestamp};
use cudly_core::lease::ABANDONED_ERROR;
use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

/// When reads start a collection by themselves: the policy
/// [`read_state`] judges a read by.
#[derive(Clone, Copy, Debug)]
pub struct AutoRefresh {
    /// Data older than this is stale.
    pub stale_after: Duration,
    /// No automatic run within this long after the last run ended.
    pub backoff: Duration,
}

/// The state row, as read.
#[derive(Debug)]
struct StateRow {
    version: i64,
    generation: i64,
    collection_id: Option<Uuid>,
    trigger: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    error: Option<String>,
    recommendation_count: i64,
    providers: Json<Vec<ProviderStatus>>,
    last_collected_at: Option<DateTime<Utc>>,
    last_collection_error: Option<String>,
    collecting: bool,
    data_version: i64,
    due: Option<String>,
}

/// The state as one read sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// What the API shows.
    pub freshness: pb::Freshness,
    /// Changes whenever the recommendations table does.
    pub data_version: i64,
    /// The trigger a read should start a run with, when asked to judge.
    pub due: Option<Trigger>,
}

/// The current freshness snapshot (one query).
pub async fn read_freshness(pool: &PgPool) -> Result<pb::Freshness, sqlx::Error> {
    read_state(pool, None).await.map(|s| s.freshness)
}

/// The state row in one query. With `auto`, also judges (by the database
/// clock) whether a read is due to start a run: COLD_START when nothing
/// was ever collected, STALE when the data is older than `stale_after`;
/// never while a run holds the lease or within `backoff` of the last end.
pub async fn read_state(pool: &PgPool, auto: Option<&AutoRefresh>) -> Result<State, sqlx::Error> {
    let row = sqlx::query_as!(
        StateRow,
        r#"SELECT version, generation, collection_id, trigger, started_at, finished_at, lease_expires_at,
                outcome, error, recommendation_count,
                providers AS "providers: Json<Vec<ProviderStatus>>",
                last_collected_at, last_collection_error,
                coalesce(lease_expires_at > now(), false) AS "collecting!", data_version,
                CASE
                    WHEN $1::float8 IS NULL THEN NULL
                    WHEN lease_expires_at > now() THEN NULL
                    WHEN finished_at > now() - make_interval(secs => $2) THEN NULL
                    WHEN last_collected_at IS NULL THEN 'cold_start'
                    WHEN last_collected_at < now() - make_interval(secs => $1) THEN 'stale'
                END AS due
         FROM collection_state WHERE id = 1"#,
        auto.map(|a| a.stale_after.as_secs_f64()),
        auto.map(|a| a.backoff.as_secs_f64()),
    )
    .fetch_one(pool)
    .await?;
    let (data_version, due) = (row.data_version, row.due.as_deref().and_then(Trigger::parse));
    // No outcome yet: running while the lease holds; past its expiry the
    // run is abandoned at once, in every view (ListCollections derives the
    // same), though it is recorded so only when the lease is taken over.
    let abandoned = row.outcome.is_none() && !row.collecting;
    let collection = row.collection_id.map(|id| CollectionRow {
        id,
        generation: row.generation,
        trigger: row.trigger.unwrap_or_default(),
        started_at: row.started_at.unwrap_or_default(),
        finished_at: if abandoned { row.finished_at.or(row.lease_expires_at) } else { row.finished_at },
        outcome: row.outcome.unwrap_or_else(|| {
            let shown = if abandoned { Outcome::Abandoned } else { Outcome::Running };
            shown.as_str().to_string()
        }),
        error: if abandoned { row.error.or_else(|| Some(ABANDONED_ERROR.to_string())) } else { row.error },
        recommendation_count: row.recommendation_count,
        providers: row.providers,
    });
    let freshness = pb::Freshness {
        last_collected_at: row.last_collected_at.map(timestamp),
        last_collection_error: row.last_collection_error.unwrap_or_default(),
        collecting: row.collecting,
        collection: collection.map(CollectionRow::into_proto),
        version: row.version,
        lease_expires_at: row.lease_expires_at.filter(|_| row.collecting).map(timestamp),
    };
    Ok(State { freshness, data_version, due })
}

/// One run of the history.
#[derive(Debug)]
pub struct CollectionRow {
    id: Uuid,
    generation: i64,
    trigger: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: String,
    error: Option<String>,
    recommendation_count: i64,
    providers: Json<Vec<ProviderStatus>>,
}

impl CollectionRow {
    /// The run's generation (the history's keyset).
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The protobuf message.
    pub fn into_proto(self) -> pb::Collection {
        pb::Collection {
            id: self.id.to_string(),
            generation: self.generation,
            trigger: Trigger::parse(&self.trigger).map(Trigger::to_proto).unwrap_or_default(),
            started_at: Some(timestamp(self.started_at)),
            finished_at: self.finished_at.map(timestamp),
            outcome: Outcome::parse(&self.outcome).map(Outcome::to_proto).unwrap_or_default(),
            error: self.error.unwrap_or_default(),
            recommendation_count: self.recommendation_count,
            providers: self.providers.0.iter().map(ProviderStatus::to_proto).collect(),
        }
    }
}

/// Up to `limit` runs older than generation `before` (all when `None`),
/// newest first. A run recorded as running whose lease is no longer held
/// (it expired; the run stopped heartbeating) is shown abandoned, as
/// GetFreshness shows it, before any takeover records it so.
pub async fn list_collections(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<CollectionRow>, sqlx::Error> {
    sqlx::query_as!(
        CollectionRow,
        r#"SELECT r.id, r.generation, r.trigger, r.started_at,
                CASE WHEN gone THEN coalesce(r.finished_at, s.expired_at) ELSE r.finished_at END AS finished_at,
                CASE WHEN gone THEN 'abandoned' ELSE r.outcome END AS "outcome!",
                CASE WHEN gone THEN coalesce(r.error, $3) ELSE r.error END AS error,
                r.recommendation_count, r.providers AS "providers: Json<Vec<ProviderStatus>>"
         FROM collection_runs r
         CROSS JOIN LATERAL (
             SELECT r.outcome = 'running'
                        AND NOT (s.generation = r.generation AND coalesce(s.lease_expires_at > now(), false)) AS gone,
                    CASE WHEN s.generation = r.generation THEN s.lease_expires_at END AS expired_at
             FROM collection_state s WHERE s.id = 1
         ) s
         WHERE $1::bigint IS NULL OR r.generation < $1
         ORDER BY r.generation DESC
         LIMIT $2"#,
        before,
        limit,
        ABANDONED_ERROR,
    )
    .fetch_all(pool)
    .await
}
