//! Deciding what a run announces, and recording it in the outbox.
//!
//! Called inside the run's results transaction, after the upserts and the
//! eviction and before the fenced run-end write: a run that lost its lease
//! rolls back its notice, its deliveries and the levels it moved with its
//! results, so it announces nothing. What is recorded is delivered by any
//! replica (`crate::notify`), even if this process dies right after the
//! commit.
//!
//! The rules:
//! - Only a run that succeeded, fully or partly, announces.
//! - With no enabled channel nothing is recorded, not even levels: the
//!   first channel added later hears the full picture at the next run
//!   instead of only what changed after it was added.
//! - A recommendation this run wrote is announced when it saves at least
//!   the minimum and either was never announced (or was announced in
//!   another currency), or grew beyond the level it was last announced at
//!   by at least the configured share of that level *and* the configured
//!   amount. Amounts compare in each recommendation's own currency.
//! - An announced recommendation's level becomes its savings now. Levels are
//!   never lowered: a recommendation that dips and comes back is announced
//!   again only when it grows beyond its announced level by the thresholds.
//!   So the same level is never announced twice, across runs, restarts and
//!   replicas (runs are serialized by the lease and the accounts lock).
//! - A level stays when its recommendation disappears (evicted, or its
//!   account deleted): the recommendation's id is stable, so if it comes
//!   back it is judged against what was last announced. A level is 40 bytes
//!   per recommendation ever announced.

use cudly_core::domain::Outcome;
use cudly_core::lease::Lease;
use cudly_core::money::{Amount, NANOS_PER_UNIT};
use cudly_core::notice::{MAX_NOTICE_ITEMS, NoticeItem, NoticePayload, NoticeTotal};
use cudly_core::schema::NOTICES_CHANNEL;
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// The `type` of a run's notice.
pub const RUN_NOTICE_KIND: &str = "recommendations.new_savings";

/// What makes a recommendation worth announcing (from the `--notify-*`
/// flags and `--console-url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRules {
    /// Savings below this are never announced (in each recommendation's
    /// own currency).
    pub min_savings: Amount,
    /// An announced recommendation is announced again when its savings grew
    /// by at least this share of its announced level…
    pub growth_share: Percent,
    /// …and by at least this amount (its own currency).
    pub growth_amount: Amount,
    /// The console's address, put in every notice.
    pub console_url: Option<String>,
}

/// A non-negative percentage, exact to 10⁻⁹ of a percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percent(Amount);

impl Percent {
    /// Parses a decimal percentage (`20`, `12.5`); refuses negatives.
    pub fn parse(text: &str) -> Result<Self, String> {
        non_negative(text).map(Percent)
    }

    /// Billionths of a percent.
    fn nanos(self) -> i64 {
        self.0.nanos()
    }
}

/// Parses a decimal amount of money that must not be negative.
pub fn non_negative(text: &str) -> Result<Amount, String> {
    let amount = Amount::parse(text).map_err(|err| err.to_string())?;
    if amount.nanos() < 0 {
        return Err(format!("{} is negative; it must be 0 or more", cudly_core::quote::quoted(text.trim())));
    }
    Ok(amount)
}

/// A notice recorded by a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The notice's id.
    pub notice_id: Uuid,
    /// How many recommendations it names (new or grown), listed or not.
    pub item_count: u32,
    /// Deliveries queued, one per enabled channel.
    pub deliveries: u32,
}

/// Per currency, as the decision query sums it (`nanos` is a `numeric`'s
/// text: a sum of 50,000 amounts may leave `int8`).
#[derive(Debug, serde::Deserialize)]
struct TotalRow {
    currency: String,
    count: i64,
    nanos: String,
}

/// One of the largest candidates, as the decision query lists it.
#[derive(Debug, serde::Deserialize)]
struct ItemRow {
    id: Uuid,
    provider: String,
    account_id: String,
    account_name: String,
    service: String,
    region: String,
    resource_type: String,
    term_months: i32,
    payment_option: String,
    currency: String,
    savings: i64,
    previous: Option<i64>,
    savings_percentage: f64,
}

/// Decides what the run holding `lease` announces and records it: the
/// levels of what it announces, one notice and one pending delivery per
/// enabled channel, and a `pg_notify` per delivery (sent at commit). Runs
/// inside the results transaction, after the run's rows were written.
/// `None`: nothing to announce (or nobody to tell).
pub(crate) async fn record_notice(
    tx: &mut Transaction<'_, Postgres>,
    lease: &Lease,
    outcome: Outcome,
    rules: &NoticeRules,
) -> Result<Option<Recorded>, sqlx::Error> {
    if !matches!(outcome, Outcome::Succeeded | Outcome::PartiallySucceeded) {
        return Ok(None);
    }
    // KEY SHARE: a channel deleted meanwhile either is gone from this
    // snapshot or waits for this commit (then its deliveries go with it);
    // its deliveries' foreign key never fails the results. Enabling,
    // disabling or editing a channel is not blocked.
    let channels: Vec<Uuid> =
        sqlx::query_scalar!("SELECT id FROM notification_channels WHERE enabled ORDER BY id FOR KEY SHARE")
            .fetch_all(&mut **tx)
            .await?;
    if channels.is_empty() {
        return Ok(None);
    }
    // One pass over the run's rows joined to their levels: decide, move the
    // levels of what is announced, and sum and list it. The growth tests
    // compare in numeric, exactly: growth / level >= share / 100.
    let decided = sqlx::query!(
        r#"WITH candidates AS MATERIALIZED (
               SELECT r.id, r.currency, r.estimated_monthly_savings_nanos AS savings,
                      CASE WHEN l.currency = r.currency THEN l.savings_nanos END AS previous
               FROM recommendations r
               LEFT JOIN notified_levels l ON l.recommendation_id = r.id
               WHERE r.generation = $1
                 AND r.estimated_monthly_savings_nanos >= $2
                 AND (l.recommendation_id IS NULL
                      OR l.currency <> r.currency
                      OR (r.estimated_monthly_savings_nanos > l.savings_nanos
                          AND r.estimated_monthly_savings_nanos::numeric - l.savings_nanos >= $4::int8
                          AND (r.estimated_monthly_savings_nanos::numeric - l.savings_nanos) * 100000000000
                              >= $3::int8::numeric * l.savings_nanos))
           ),
           levels AS (
               INSERT INTO notified_levels (recommendation_id, currency, savings_nanos, notified_at)
               SELECT id, currency, savings, now() FROM candidates
               ON CONFLICT (recommendation_id) DO UPDATE
               SET currency = EXCLUDED.currency, savings_nanos = EXCLUDED.savings_nanos,
                   notified_at = EXCLUDED.notified_at
           )
           SELECT now() AS "now!",
                  (SELECT count(*) FROM candidates) AS "count!",
                  (SELECT coalesce(jsonb_agg(t ORDER BY t.currency), '[]')
                   FROM (SELECT currency, count(*) AS count, sum(savings)::text AS nanos
                         FROM candidates GROUP BY currency) t) AS "totals!: Json<Vec<TotalRow>>",
                  (SELECT coalesce(jsonb_agg(i ORDER BY i.savings DESC, i.id), '[]')
                   FROM (SELECT c.id, r.provider, r.account_id, r.account_name, r.service, r.region,
                                r.resource_type, r.term_months, r.payment_option, c.currency, c.savings,
                                c.previous, r.savings_percentage
                         FROM (SELECT * FROM candidates ORDER BY savings DESC, id LIMIT $5) c
                         JOIN recommendations r ON r.id = c.id) i) AS "items!: Json<Vec<ItemRow>>""#,
        lease.generation,
        rules.min_savings.nanos(),
        rules.growth_share.nanos(),
        rules.growth_amount.nanos(),
        MAX_NOTICE_ITEMS as i64,
    )
    .fetch_one(&mut **tx)
    .await?;
    if decided.count == 0 {
        return Ok(None);
    }
    let item_count = u32::try_from(decided.count).unwrap_or(u32::MAX);
    let items: Vec<NoticeItem> = decided.items.0.into_iter().map(notice_item).collect();
    let payload = NoticePayload {
        kind: RUN_NOTICE_KIND.to_string(),
        collection_id: Some(lease.collection_id),
        created_at: decided.now,
        outcome: Some(outcome.as_str().to_string()),
        totals: decided.totals.0.into_iter().map(notice_total).collect(),
        omitted: item_count.saturating_sub(items.len() as u32),
        items,
        console_url: rules.console_url.clone(),
    };
    let notice_id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO notices (id, test, collection_id, item_count, payload, created_at)
         VALUES ($1, false, $2, $3, $4, $5)",
        notice_id,
        lease.collection_id,
        i32::try_from(item_count).unwrap_or(i32::MAX),
        Json(&payload) as _,
        decided.now,
    )
    .execute(&mut **tx)
    .await?;
    let delivery_ids: Vec<Uuid> = channels.iter().map(|_| Uuid::new_v4()).collect();
    // The wake-up is sent at commit, and only then: a rolled-back run wakes
    // nobody.
    sqlx::query!(
        "WITH queued AS (
             INSERT INTO notice_deliveries (id, notice_id, channel_id)
             SELECT d.id, $1, d.channel_id FROM UNNEST($2::uuid[], $3::uuid[]) AS d(id, channel_id)
             RETURNING id
         )
         SELECT pg_notify($4, id::text) FROM queued",
        notice_id,
        &delivery_ids,
        &channels,
        NOTICES_CHANNEL,
    )
    .execute(&mut **tx)
    .await?;
    Ok(Some(Recorded { notice_id, item_count, deliveries: channels.len() as u32 }))
}

fn notice_item(row: ItemRow) -> NoticeItem {
    NoticeItem {
        id: row.id,
        provider: row.provider,
        account_id: row.account_id,
        account_name: row.account_name,
        service: row.service,
        region: row.region,
        resource_type: row.resource_type,
        term_months: row.term_months,
        payment_option: row.payment_option,
        currency: row.currency,
        monthly_savings: Amount::from_nanos(row.savings).to_string(),
        previous_monthly_savings: row.previous.map(|nanos| Amount::from_nanos(nanos).to_string()),
        savings_percentage: row.savings_percentage,
    }
}

fn notice_total(row: TotalRow) -> NoticeTotal {
    NoticeTotal {
        currency: row.currency,
        count: u32::try_from(row.count).unwrap_or(u32::MAX),
        monthly_savings: exact_sum(&row.nanos),
    }
}

/// A sum of nano-units (a `numeric`'s text, never negative: every amount
/// summed is at least the non-negative minimum) as an exact decimal, the
/// way [`Amount`] writes one, even beyond what an [`Amount`] holds.
fn exact_sum(nanos: &str) -> String {
    match nanos.parse::<i128>() {
        Ok(sum) => match i64::try_from(sum) {
            Ok(sum) => Amount::from_nanos(sum).to_string(),
            Err(_) => {
                let units = sum / i128::from(NANOS_PER_UNIT);
                let fraction = Amount::from_nanos((sum % i128::from(NANOS_PER_UNIT)) as i64).to_string();
                // `fraction` is "0" or "0.…" (or "-0.…" for a negative sum).
                format!("{units}{}", fraction.trim_start_matches('-').trim_start_matches('0'))
            }
        },
        // Postgres' numeric sum of integers is always an integer's text.
        Err(_) => nanos.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_written_exactly_whatever_their_size() {
        assert_eq!(exact_sum("0"), "0");
        assert_eq!(exact_sum("1500000000"), "1.5");
        assert_eq!(exact_sum("123000000001"), "123.000000001");
        assert_eq!(exact_sum(&i64::MAX.to_string()), Amount::from_nanos(i64::MAX).to_string());
        // Beyond an i64: 20 billion units and a half.
        assert_eq!(exact_sum("20000000000500000000"), "20000000000.5");
        assert_eq!(exact_sum("20000000000000000000"), "20000000000");
    }

    #[test]
    fn thresholds_refuse_negatives_and_keep_decimals_exact() {
        assert_eq!(non_negative("12.5").unwrap(), Amount::parse("12.5").unwrap());
        assert_eq!(non_negative("0").unwrap(), Amount::ZERO);
        let err = non_negative("-1").unwrap_err();
        assert!(err.contains("negative") && err.contains("\"-1\""), "{err}");
        assert!(non_negative("ten").is_err());
        assert_eq!(Percent::parse("20").unwrap().nanos(), 20 * NANOS_PER_UNIT);
        assert!(Percent::parse("-0.5").is_err());
    }
}
