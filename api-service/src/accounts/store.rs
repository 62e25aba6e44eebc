//! The accounts table: every query AccountsService makes. Absent and
//! duplicate accounts are `Error::NotFound` and `Error::AlreadyExists`.

use chrono::{DateTime, Utc};
use cudly_core::credentials::Credentials;
use cudly_core::domain::Provider;
use cudly_core::quote::quoted;
use cudly_core::schema::ACCOUNTS_LOCK;
use sqlx::PgPool;
use sqlx::types::Json;

use super::validate::NewAccount;
use crate::error::Error;

/// An account as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub(super) struct AccountRow {
    pub(super) provider: String,
    pub(super) external_id: String,
    pub(super) display_name: String,
    pub(super) enabled: bool,
    pub(super) credentials: Option<Json<Credentials>>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
}

/// What an update changes; `None` keeps the stored value.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) display_name: Option<String>,
    pub(super) enabled: Option<bool>,
    pub(super) credentials: Option<Credentials>,
    pub(super) clear_credentials: bool,
}

/// The stored columns, for `concat!` (queries must be static strings).
macro_rules! columns {
    () => {
        "provider, external_id, display_name, enabled, credentials, created_at, updated_at"
    };
}

fn not_found(provider: Provider, external_id: &str) -> Error {
    Error::NotFound(format!("no {provider} account {}", quoted(external_id)))
}

/// Registers `new`; `AlreadyExists` when the account is registered.
pub(super) async fn insert(pool: &PgPool, new: NewAccount) -> Result<AccountRow, Error> {
    let row: Option<AccountRow> = sqlx::query_as(concat!(
        "INSERT INTO accounts (provider, external_id, display_name, enabled, credentials)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, external_id) DO NOTHING
         RETURNING ",
        columns!()
    ))
    .bind(new.provider.as_str())
    .bind(&new.external_id)
    .bind(&new.display_name)
    .bind(new.enabled)
    .bind(new.credentials.map(Json))
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| {
        Error::AlreadyExists(format!("{} account {} is already registered", new.provider, quoted(&new.external_id)))
    })
}

/// One account; `NotFound` when there is none.
pub(super) async fn fetch(pool: &PgPool, provider: Provider, external_id: &str) -> Result<AccountRow, Error> {
    let row: Option<AccountRow> =
        sqlx::query_as(concat!("SELECT ", columns!(), " FROM accounts WHERE provider = $1 AND external_id = $2"))
            .bind(provider.as_str())
            .bind(external_id)
            .fetch_optional(pool)
            .await?;
    row.ok_or_else(|| not_found(provider, external_id))
}

/// Up to `limit` accounts after the key `after`, in key order, of one
/// provider or all.
pub(super) async fn list(
    pool: &PgPool,
    provider: Option<Provider>,
    after: (String, String),
    limit: i64,
) -> Result<Vec<AccountRow>, Error> {
    let rows = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM accounts
         WHERE ($1::text IS NULL OR provider = $1) AND (provider, external_id) > ($2, $3)
         ORDER BY provider, external_id LIMIT $4"
    ))
    .bind(provider.map(Provider::as_str))
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Applies `changes`; `NotFound` when there is no such account.
pub(super) async fn update(
    pool: &PgPool,
    provider: Provider,
    external_id: &str,
    changes: Changes,
) -> Result<AccountRow, Error> {
    let row: Option<AccountRow> = sqlx::query_as(concat!(
        "UPDATE accounts SET
             display_name = COALESCE($3, display_name),
             enabled = COALESCE($4, enabled),
             credentials = CASE WHEN $6 THEN NULL ELSE COALESCE($5, credentials) END,
             updated_at = now()
         WHERE provider = $1 AND external_id = $2
         RETURNING ",
        columns!()
    ))
    .bind(provider.as_str())
    .bind(external_id)
    .bind(changes.display_name)
    .bind(changes.enabled)
    .bind(changes.credentials.map(Json))
    .bind(changes.clear_credentials)
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| not_found(provider, external_id))
}

/// Deletes an account with its recommendations, committed; `NotFound`
/// when there is none. Returns how many recommendations went with it.
pub(super) async fn remove(pool: &PgPool, provider: Provider, external_id: &str) -> Result<u64, Error> {
    let mut tx = pool.begin().await?;
    let removed =
        delete_account(&mut tx, provider, external_id).await?.ok_or_else(|| not_found(provider, external_id))?;
    tx.commit().await?;
    Ok(removed)
}

/// Deletes an account with its recommendations (its own, and those
/// collected through it: an organization's linked accounts, a GCP billing
/// account) in `tx`, serialized with any run writing its results: that run
/// then leaves this account's rows out, or wrote them before this deletes
/// them. `None` when there is no such account. Commit `tx` to make it so.
pub async fn delete_account(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    provider: Provider,
    external_id: &str,
) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ACCOUNTS_LOCK).execute(&mut **tx).await?;
    let deleted = sqlx::query("DELETE FROM accounts WHERE provider = $1 AND external_id = $2")
        .bind(provider.as_str())
        .bind(external_id)
        .execute(&mut **tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Ok(None);
    }
    let removed =
        sqlx::query("DELETE FROM recommendations WHERE provider = $1 AND (account_id = $2 OR source_account_id = $2)")
            .bind(provider.as_str())
            .bind(external_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if removed > 0 {
        // Cached summaries are keyed by the data version.
        sqlx::query("UPDATE collection_state SET data_version = data_version + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some(removed))
}
