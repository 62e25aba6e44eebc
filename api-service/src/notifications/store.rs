//! The notification tables: every query NotificationsService makes. Absent
//! and duplicate channels are `Error::NotFound` and `Error::AlreadyExists`;
//! a test notice is queued as the run-end writer queues a run's: a notice,
//! its delivery and a `pg_notify` on [`NOTICES_CHANNEL`], in one
//! transaction.

use chrono::{DateTime, Utc};
use cudly_core::notice::NoticePayload;
use cudly_core::quote::quoted;
use cudly_core::schema::{CHANNELS_LOCK, NOTICES_CHANNEL};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::validate::{NewChannel, Settings};
use crate::error::Error;

/// Most channels a deployment may have (ListChannels does not page).
pub(super) const MAX_CHANNELS: i64 = 100;

/// A channel as stored.
#[derive(Debug)]
struct ChannelRow {
    name: String,
    kind: String,
    enabled: bool,
    settings: Json<serde_json::Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A channel with its settings decoded.
#[derive(Debug, PartialEq)]
pub(super) struct Channel {
    pub(super) name: String,
    pub(super) enabled: bool,
    pub(super) settings: Settings,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
}

impl TryFrom<ChannelRow> for Channel {
    type Error = Error;

    fn try_from(row: ChannelRow) -> Result<Self, Error> {
        let settings = Settings::from_stored(&row.kind, row.settings.0).map_err(|why| {
            Error::Database(sqlx::Error::Decode(format!("channel {}: {why}", quoted(&row.name)).into()))
        })?;
        Ok(Channel {
            name: row.name,
            enabled: row.enabled,
            settings,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// What an update changes; `None` keeps the stored value.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) enabled: Option<bool>,
    pub(super) settings: Option<Settings>,
}

/// One notice to one channel, as ListDeliveries shows it.
#[derive(Debug)]
pub(super) struct DeliveryRow {
    pub(super) id: Uuid,
    pub(super) channel: String,
    pub(super) collection_id: Option<Uuid>,
    pub(super) test: bool,
    pub(super) status: String,
    pub(super) attempts: i32,
    pub(super) last_error: Option<String>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) delivered_at: Option<DateTime<Utc>>,
    pub(super) next_attempt_at: DateTime<Utc>,
    pub(super) item_count: i32,
}

/// Where a ListDeliveries page ends: the last row's `(created_at, id)`,
/// the time in microseconds (Postgres' precision, so it round-trips).
pub(super) type DeliveryKey = (i64, Uuid);

impl DeliveryRow {
    pub(super) fn key(&self) -> DeliveryKey {
        (self.created_at.timestamp_micros(), self.id)
    }
}

/// A checked query reading [`ChannelRow`]s: `$head`, the stored columns,
/// then `$tail`, with the arguments after.
macro_rules! channel_query {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ChannelRow,
            $head + r#"name, kind, enabled, settings AS "settings: Json<serde_json::Value>", created_at, updated_at"#
                + $tail
            $(, $arg)*
        )
    };
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no notification channel {}", quoted(name)))
}

/// Adds `new`, committed; `AlreadyExists` when its name is taken,
/// `FailedPrecondition` when [`MAX_CHANNELS`] exist.
pub(super) async fn insert(pool: &PgPool, new: NewChannel) -> Result<Channel, Error> {
    let mut tx = pool.begin().await?;
    // Count and insert as one step for concurrent creates.
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", CHANNELS_LOCK).execute(&mut *tx).await?;
    let row = channel_query!(
        "INSERT INTO notification_channels (id, name, kind, enabled, settings)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO NOTHING
         RETURNING ",
        "",
        Uuid::new_v4(),
        &new.name,
        new.settings.kind(),
        new.enabled,
        Json(new.settings.to_json()) as _,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::AlreadyExists(format!("notification channel {} exists", quoted(&new.name))))?;
    let count =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM notification_channels"#).fetch_one(&mut *tx).await?;
    if count > MAX_CHANNELS {
        // Dropping `tx` rolls the insert back.
        return Err(Error::FailedPrecondition(format!(
            "at most {MAX_CHANNELS} notification channels may exist; delete one before adding another"
        )));
    }
    tx.commit().await?;
    row.try_into()
}

/// One channel; `NotFound` when there is none.
pub(super) async fn fetch(pool: &PgPool, name: &str) -> Result<Channel, Error> {
    let row =
        channel_query!("SELECT ", " FROM notification_channels WHERE name = $1", name).fetch_optional(pool).await?;
    row.ok_or_else(|| not_found(name))?.try_into()
}

/// Every channel, by name.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<Channel>, Error> {
    let rows = channel_query!("SELECT ", " FROM notification_channels ORDER BY name").fetch_all(pool).await?;
    rows.into_iter().map(Channel::try_from).collect()
}

/// Applies `changes`; `NotFound` when there is no such channel. New
/// settings replace the old ones whole, of the same kind or another.
pub(super) async fn update(pool: &PgPool, name: &str, changes: Changes) -> Result<Channel, Error> {
    let kind = changes.settings.as_ref().map(Settings::kind);
    let settings = changes.settings.as_ref().map(|s| Json(s.to_json()));
    let row = channel_query!(
        "UPDATE notification_channels SET
             enabled = COALESCE($2, enabled),
             kind = COALESCE($3, kind),
             settings = COALESCE($4, settings),
             updated_at = now()
         WHERE name = $1
         RETURNING ",
        "",
        name,
        changes.enabled,
        kind,
        settings as _,
    )
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| not_found(name))?.try_into()
}

/// Deletes a channel with its deliveries (and the test notices they
/// carried), committed; `NotFound` when there is none. Returns how many
/// deliveries went with it.
pub(super) async fn remove(pool: &PgPool, name: &str) -> Result<u64, Error> {
    let mut tx = pool.begin().await?;
    // Locked first: a run queueing a delivery to it (its foreign key check
    // shares this row) waits, so every delivery is counted or refused.
    let id = sqlx::query_scalar!("SELECT id FROM notification_channels WHERE name = $1 FOR UPDATE", name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found(name))?;
    let notices = sqlx::query_scalar!("DELETE FROM notice_deliveries WHERE channel_id = $1 RETURNING notice_id", id)
        .fetch_all(&mut *tx)
        .await?;
    // A test notice has one delivery: without it, it is nobody's.
    sqlx::query!("DELETE FROM notices WHERE test AND id = ANY($1)", &notices).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM notification_channels WHERE id = $1", id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(notices.len() as u64)
}

/// Queues a test notice to the channel `name` (enabled or not), committed,
/// and wakes the deliverers; `NotFound` when there is no such channel.
pub(super) async fn queue_test_notice(pool: &PgPool, name: &str) -> Result<DeliveryRow, Error> {
    let mut tx = pool.begin().await?;
    let channel = sqlx::query!(r#"SELECT id, now() AS "now!" FROM notification_channels WHERE name = $1"#, name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found(name))?;
    let payload = NoticePayload {
        kind: "test".into(),
        collection_id: None,
        created_at: channel.now,
        outcome: None,
        totals: Vec::new(),
        items: Vec::new(),
        omitted: 0,
        console_url: None,
    };
    let notice_id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO notices (id, test, collection_id, item_count, payload, created_at)
         VALUES ($1, true, NULL, 0, $2, $3)",
        notice_id,
        Json(&payload) as _,
        channel.now,
    )
    .execute(&mut *tx)
    .await?;
    let delivery = sqlx::query!(
        "INSERT INTO notice_deliveries (id, notice_id, channel_id, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $4)
         RETURNING id, status, attempts, last_error, created_at, delivered_at, next_attempt_at",
        Uuid::new_v4(),
        notice_id,
        channel.id,
        channel.now,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("SELECT pg_notify($1, $2)", NOTICES_CHANNEL, delivery.id.to_string()).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(DeliveryRow {
        id: delivery.id,
        channel: name.to_string(),
        collection_id: None,
        test: true,
        status: delivery.status,
        attempts: delivery.attempts,
        last_error: delivery.last_error,
        created_at: delivery.created_at,
        delivered_at: delivery.delivered_at,
        next_attempt_at: delivery.next_attempt_at,
        item_count: 0,
    })
}

/// The id of the channel `name`; `NotFound` when there is none.
pub(super) async fn channel_id(pool: &PgPool, name: &str) -> Result<Uuid, Error> {
    let id =
        sqlx::query_scalar!("SELECT id FROM notification_channels WHERE name = $1", name).fetch_optional(pool).await?;
    id.ok_or_else(|| not_found(name))
}

/// Up to `limit` deliveries after `after`, most recent first, of one
/// channel or all.
pub(super) async fn deliveries(
    pool: &PgPool,
    channel_id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, Error> {
    let (after_time, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id, c.name AS channel, n.collection_id AS "collection_id?", n.test, d.status, d.attempts,
                  d.last_error, d.created_at, d.delivered_at, d.next_attempt_at, n.item_count
           FROM notice_deliveries d
           JOIN notification_channels c ON c.id = d.channel_id
           JOIN notices n ON n.id = d.notice_id
           WHERE ($1::uuid IS NULL OR d.channel_id = $1)
             AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3))
           ORDER BY d.created_at DESC, d.id DESC
           LIMIT $4"#,
        channel_id,
        after_time,
        after_id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
