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
#[derive(Clone, Debug, PartialEq)]
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

/// A checked query reading [`AccountRow`]s: `$head`, the stored columns,
/// then `$tail`, with the arguments after.
macro_rules! account_query {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            AccountRow,
            $head + r#"provider, external_id, display_name, enabled,
                       credentials AS "credentials: Json<Credentials>", created_at, updated_at"# + $tail
            $(, $arg)*
        )
    };
}

fn not_found(provider: Provider, external_id: &str) -> Error {
    Error::NotFound(format!("no {provider} account {}", quoted(external_id)))
}

/// Registers `new`; `AlreadyExists` when the account is registered.
pub(super) async fn insert(pool: &PgPool, new: NewAccount) -> Result<AccountRow, Error> {
    let row = account_query!(
        "INSERT INTO accounts (provider, external_id, display_name, enabled, credentials)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, external_id) DO NOTHING
         RETURNING ",
        "",
        new.provider.as_str(),
        &new.external_id,
        &new.display_name,
        new.enabled,
        new.credentials.map(Json) as _,
    )
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| {
        Error::AlreadyExists(format!("{} account {} is already registered", new.provider, quoted(&new.external_id)))
    })
}

/// One account; `NotFound` when there is none.
pub(super) async fn fetch(pool: &PgPool, provider: Provider, external_id: &str) -> Result<AccountRow, Error> {
    let row = account_query!(
        "SELECT ",
        " FROM accounts WHERE provider = $1 AND external_id = $2",
        provider.as_str(),
        external_id,
    )
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
    let rows = account_query!(
        "SELECT ",
        " FROM accounts
         WHERE ($1::text IS NULL OR provider = $1) AND (provider, external_id) > ($2, $3)
         ORDER BY provider, external_id LIMIT $4",
        provider.map(Provider::as_str),
        after.0,
        after.1,
        limit,
    )
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
    let row = account_query!(
        "UPDATE accounts SET
             display_name = COALESCE($3, display_name),
             enabled = COALESCE($4, enabled),
             credentials = CASE WHEN $6 THEN NULL ELSE COALESCE($5, credentials) END,
             updated_at = now()
         WHERE provider = $1 AND external_id = $2
         RETURNING ",
        "",
        provider.as_str(),
        external_id,
        changes.display_name,
        changes.enabled,
        changes.credentials.map(Json) as _,
        changes.clear_credentials,
    )
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
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", ACCOUNTS_LOCK).execute(&mut **tx).await?;
    let deleted =
        sqlx::query!("DELETE FROM accounts WHERE provider = $1 AND external_id = $2", provider.as_str(), external_id,)
            .execute(&mut **tx)
            .await?;
    if deleted.rows_affected() == 0 {
        return Ok(None);
    }
    let removed = sqlx::query!(
        "DELETE FROM recommendations
         WHERE provider = $1 AND (account_id = $2 OR source_account_id = $2 AND source_account_id <> account_id)",
        provider.as_str(),
        external_id,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if removed > 0 {
        // Cached summaries are keyed by the data version.
        sqlx::query!("UPDATE collection_state SET data_version = data_version + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some(removed))
}
