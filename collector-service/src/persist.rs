//! Finishing a run: one fenced transaction that upserts the results, evicts
//! what completed sweeps no longer return, records what the run announces
//! (`crate::notices`), records the run in the history and clears the lease.

use cudly_core::domain::{Outcome, Provider, Recommendation};
use cudly_core::lease::{self, Ending, Lease};
use cudly_core::schema::ACCOUNTS_LOCK;
use sqlx::{PgPool, Postgres, Transaction};

use crate::engine::Collected;
use crate::notices::{self, NoticeRules};

/// Rows per upsert statement: bounds the size of one message to Postgres.
const UPSERT_CHUNK: usize = 5_000;

/// Why a finish wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The run no longer holds the lease; a newer run owns the results.
    #[error("the run no longer holds the lease")]
    LeaseLost,
    /// The database failed; the transaction was rolled back.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a finished run recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The outcome.
    pub outcome: Outcome,
    /// Recommendations written.
    pub written: u64,
    /// Rows evicted from completed sweeps.
    pub evicted: u64,
    /// The notice it recorded, if it had anything to announce and a channel
    /// to announce it on.
    pub notice: Option<notices::Recorded>,
}

/// Writes a run's results and what it announces under `rules`, and ends it,
/// all or nothing. The fence is checked last, under the state row's lock, so
/// a run that lost its lease at any point before the commit writes nothing:
/// no row, no notice, no level.
///
/// A results transaction of an earlier run whose collector froze inside it
/// keeps the accounts lock: this one's wait for it times out. Then, while
/// this run holds the lease, that transaction is ended (it could never
/// commit: its run lost the lease) and the results are written again.
pub async fn finish_run(
    pool: &PgPool,
    lease: &Lease,
    collected: Collected,
    rules: &NoticeRules,
) -> Result<Finished, FinishError> {
    if !lease::holds_lease(pool, lease).await? {
        return Err(FinishError::LeaseLost);
    }
    let (outcome, error) = collected.outcome();
    let mut keyed: Vec<(uuid::Uuid, Recommendation, String)> = collected
        .recommendations
        .into_iter()
        .zip(collected.sources)
        .map(|(r, source)| (r.natural_id(), r, source))
        .collect();
    // Sorted by id so that concurrent writers lock rows in the same order;
    // the stable sort keeps the first of any duplicate in merge order.
    keyed.sort_by_key(|(id, _, _)| *id);
    keyed.dedup_by(|a, b| a.0 == b.0);
    let results = Results {
        keyed,
        complete_accounts: &collected.complete_accounts,
        outcome,
        error: error.as_deref(),
        providers: &collected.providers,
    };
    let mut attempts = 1;
    loop {
        match write_results(pool, lease, &results, rules).await {
            Err(FinishError::Database(err)) if is_lock_timeout(&err) && attempts < MAX_ATTEMPTS => {
                let ended = lease::end_zombie_results_transactions(pool, lease).await?;
                if ended.is_empty() {
                    return Err(FinishError::Database(err));
                }
                tracing::warn!(
                    backends = ?ended,
                    "ended the results transaction of a run that lost its lease and still held the accounts lock; \
                     writing the results again"
                );
                attempts += 1;
            }
            finished => return finished,
        }
    }
}

/// Attempts at the results transaction: the first, and one more after each
/// round of ending transactions left behind by runs that lost the lease.
const MAX_ATTEMPTS: u32 = 3;

/// 55P03 lock_not_available: a lock wait ran past `lock_timeout`.
fn is_lock_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// What one results transaction writes.
struct Results<'a> {
    /// The recommendations with their ids and source accounts, sorted by id.
    keyed: Vec<(uuid::Uuid, Recommendation, String)>,
    complete_accounts: &'a [(Provider, String)],
    outcome: Outcome,
    error: Option<&'a str>,
    providers: &'a [cudly_core::domain::ProviderStatus],
}

/// One results transaction: tagged with the run, the accounts lock, upsert,
/// evict, the notice, and the fenced run-end write last.
async fn write_results(
    pool: &PgPool,
    lease: &Lease,
    results: &Results<'_>,
    rules: &NoticeRules,
) -> Result<Finished, FinishError> {
    let mut tx = pool.begin().await?;
    lease::tag_results_transaction(&mut tx, lease).await?;
    // Serialized with DeleteAccount: an account deleted while the run
    // collected it is not written back.
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", ACCOUNTS_LOCK).execute(&mut *tx).await?;
    let registered: std::collections::HashSet<(String, String)> =
        sqlx::query!("SELECT provider, external_id FROM accounts")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|row| (row.provider, row.external_id))
            .collect();
    let keyed: Vec<_> = results
        .keyed
        .iter()
        .filter(|(_, r, source)| registered.contains(&(r.provider.as_str().to_string(), source.clone())))
        .collect();
    let mut written = 0;
    for chunk in keyed.chunks(UPSERT_CHUNK) {
        written += upsert_recommendations(&mut tx, lease.generation, chunk).await?;
    }
    let evicted = evict_unreturned(&mut tx, lease.generation, results.complete_accounts).await?;
    // Decided on what this transaction wrote; rolled back with it below
    // when the fence refuses the end.
    let notice = notices::record_notice(&mut tx, lease, results.outcome, rules).await?;
    let ending = Ending {
        outcome: results.outcome,
        error: results.error,
        providers: Some(results.providers),
        written: Some(written),
    };
    let ended = lease::end_run(&mut *tx, lease, &ending).await?;
    if !ended {
        // Everything above goes: rows, evictions, the notice, its
        // deliveries and wake-ups, and the levels it moved.
        tx.rollback().await?;
        return Err(FinishError::LeaseLost);
    }
    tx.commit().await?;
    Ok(Finished { outcome: results.outcome, written, evicted, notice })
}

/// Bulk upsert of `(id, recommendation)` pairs with distinct ids: one
/// statement, the columns sent as arrays.
async fn upsert_recommendations(
    tx: &mut Transaction<'_, Postgres>,
    generation: i64,
    recs: &[&(uuid::Uuid, Recommendation, String)],
) -> Result<u64, sqlx::Error> {
    fn col<'a, T>(recs: &[&'a (uuid::Uuid, Recommendation, String)], f: impl Fn(&'a Recommendation) -> T) -> Vec<T> {
        recs.iter().map(|&rec| f(&rec.1)).collect()
    }
    let done = sqlx::query!(
        "INSERT INTO recommendations (id, provider, account_id, account_name, service, region,
             resource_type, platform, commitment_type, term_months, payment_option, currency,
             recommended_count, upfront_cost_nanos, recurring_monthly_cost_nanos,
             on_demand_monthly_cost_nanos, estimated_monthly_savings_nanos, savings_percentage,
             break_even_months, source_account_id, collected_at, generation)
         SELECT u.*, now(), $21
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[],
                     $13::float8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::float8[],
                     $19::float8[], $20::text[]) AS u
         ON CONFLICT (id) DO UPDATE SET
             account_name = EXCLUDED.account_name,
             source_account_id = EXCLUDED.source_account_id,
             currency = EXCLUDED.currency,
             recommended_count = EXCLUDED.recommended_count,
             upfront_cost_nanos = EXCLUDED.upfront_cost_nanos,
             recurring_monthly_cost_nanos = EXCLUDED.recurring_monthly_cost_nanos,
             on_demand_monthly_cost_nanos = EXCLUDED.on_demand_monthly_cost_nanos,
             estimated_monthly_savings_nanos = EXCLUDED.estimated_monthly_savings_nanos,
             savings_percentage = EXCLUDED.savings_percentage,
             break_even_months = EXCLUDED.break_even_months,
             collected_at = EXCLUDED.collected_at,
             generation = EXCLUDED.generation",
        &recs.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        &col(recs, |r| r.provider.as_str()) as &[&str],
        &col(recs, |r| r.account_id.as_str()) as &[&str],
        &col(recs, |r| r.account_name.as_str()) as &[&str],
        &col(recs, |r| r.service.as_str()) as &[&str],
        &col(recs, |r| r.region.as_str()) as &[&str],
        &col(recs, |r| r.resource_type.as_str()) as &[&str],
        &col(recs, |r| r.platform.as_str()) as &[&str],
        &col(recs, |r| r.commitment_type.as_str()) as &[&str],
        &col(recs, |r| r.term_months),
        &col(recs, |r| r.payment_option.as_str()) as &[&str],
        &col(recs, |r| r.currency.as_str()) as &[&str],
        &col(recs, |r| r.recommended_count),
        &col(recs, |r| r.upfront_cost.nanos()),
        &col(recs, |r| r.recurring_monthly_cost.nanos()),
        &col(recs, |r| r.on_demand_monthly_cost.nanos()),
        &col(recs, |r| r.estimated_monthly_savings.nanos()),
        &col(recs, |r| r.savings_percentage),
        &col(recs, |r| r.break_even_months),
        &recs.iter().map(|(_, _, source)| source.as_str()).collect::<Vec<_>>() as &[&str],
        generation,
    )
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes the rows of completed (provider, account) sweeps that this run
/// did not write. Accounts that failed or swept partially keep their rows.
/// An account's rows are its own, found through the account index, and
/// those it collected for others (an organization's linked accounts), found
/// through the partial source index: one statement each, so that each can
/// use its index.
async fn evict_unreturned(
    tx: &mut Transaction<'_, Postgres>,
    generation: i64,
    complete: &[(Provider, String)],
) -> Result<u64, sqlx::Error> {
    if complete.is_empty() {
        return Ok(0);
    }
    let providers: Vec<&str> = complete.iter().map(|(p, _)| p.as_str()).collect();
    let accounts: Vec<&str> = complete.iter().map(|(_, a)| a.as_str()).collect();
    let own = sqlx::query!(
        "DELETE FROM recommendations r
         USING UNNEST($1::text[], $2::text[]) AS c(provider, account_id)
         WHERE r.provider = c.provider AND r.account_id = c.account_id AND r.source_account_id = c.account_id
           AND r.generation <> $3",
        &providers as &[&str],
        &accounts as &[&str],
        generation,
    )
    .execute(&mut **tx)
    .await?;
    let for_others = sqlx::query!(
        "DELETE FROM recommendations r
         USING UNNEST($1::text[], $2::text[]) AS c(provider, account_id)
         WHERE r.provider = c.provider AND r.source_account_id = c.account_id
           AND r.source_account_id <> r.account_id AND r.generation <> $3",
        &providers as &[&str],
        &accounts as &[&str],
        generation,
    )
    .execute(&mut **tx)
    .await?;
    Ok(own.rows_affected() + for_others.rows_affected())
}
