//! Reading the collection state row and the run history, and turning them
//! into the API's messages.

use chrono::{DateTime, Utc};
use cudly_collector::domain::{Outcome, ProviderStatus, Trigger, timestamp};
use cudly_proto::recommendations::v1 as pb;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// The state row, as read.
#[derive(Debug, FromRow)]
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
}

/// The current freshness snapshot (one query).
pub async fn read_freshness(pool: &PgPool) -> Result<pb::Freshness, sqlx::Error> {
    let row: StateRow = sqlx::query_as(
        "SELECT version, generation, collection_id, trigger, started_at, finished_at, lease_expires_at,
                outcome, error, recommendation_count, providers, last_collected_at, last_collection_error,
                coalesce(lease_expires_at > now(), false) AS collecting
         FROM collection_state WHERE id = 1",
    )
    .fetch_one(pool)
    .await?;
    let collection = row.collection_id.map(|id| RunRow {
        id,
        generation: row.generation,
        trigger: row.trigger.unwrap_or_default(),
        started_at: row.started_at.unwrap_or_default(),
        finished_at: row.finished_at,
        outcome: row.outcome.unwrap_or_else(|| Outcome::Running.as_str().to_string()),
        error: row.error,
        recommendation_count: row.recommendation_count,
        providers: row.providers,
    });
    Ok(pb::Freshness {
        last_collected_at: row.last_collected_at.map(timestamp),
        last_collection_error: row.last_collection_error.unwrap_or_default(),
        collecting: row.collecting,
        collection: collection.map(RunRow::into_proto),
        version: row.version,
        lease_expires_at: row.lease_expires_at.filter(|_| row.collecting).map(timestamp),
    })
}

/// One run of the history.
#[derive(Debug, FromRow)]
pub struct RunRow {
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

impl RunRow {
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
/// newest first.
pub async fn list_runs(pool: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, generation, trigger, started_at, finished_at, outcome, error, recommendation_count, providers
         FROM collection_runs
         WHERE $1::bigint IS NULL OR generation < $1
         ORDER BY generation DESC
         LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}
