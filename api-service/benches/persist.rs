//! Persisting results: 100,000 recommendations written by the finish
//! transaction (bulk UNNEST upsert, eviction, the notice decision with one
//! enabled channel, history, lease release), against the same rows inserted
//! with 500-row multi-row INSERTs.
//!
//!   scripts/bench persist

mod support;

use std::time::{Duration, Instant};

use cudly_collector::persist::finish_run;
use sqlx::{PgPool, QueryBuilder};

const ROWS: usize = 100_000;

#[tokio::main]
async fn main() {
    let pool = support::fresh_database().await;
    // One enabled channel, so that each finish decides what it announces.
    sqlx::query(
        "INSERT INTO notification_channels (id, name, kind, settings)
         VALUES (gen_random_uuid(), 'bench', 'webhook',
                 '{\"url\": \"https://127.0.0.1:9/hook\", \"signing_secret_ref\": \"env:CUDLY_CLOUD_SECRET_BENCH\"}')
         ON CONFLICT (name) DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    println!("persist: {ROWS} recommendations");

    let (mut fresh, mut update, mut baseline, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        // No levels either: the first finish announces every row.
        sqlx::query("TRUNCATE recommendations, notified_levels, notices, notice_deliveries")
            .execute(&pool)
            .await
            .unwrap();
        fresh.push(finish(&pool, ROWS as u32).await);
        // The same rows again: every one is an update, none is announced.
        update.push(finish(&pool, 0).await);
        baseline.push(multi_row_inserts(&pool).await);
        floor.push(server_side_copy(&pool).await);
        println!(
            "  round {round}: finish into an empty table {:.0} ms, finish with all rows updated {:.0} ms, \
             500-row INSERTs {:.0} ms, server-side copy {:.0} ms",
            support::ms(fresh[round]),
            support::ms(update[round]),
            support::ms(baseline[round]),
            support::ms(floor[round])
        );
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap();
    let (fresh, update, baseline, floor) = (best(&fresh), best(&update), best(&baseline), best(&floor));
    println!("finish transaction, new rows (all announced):    {:>7.0} ms (target <= 2000 ms)", support::ms(fresh));
    println!("finish transaction, all updates (none announced): {:>7.0} ms", support::ms(update));
    println!("baseline 500-row INSERT batches:  {:>7.0} ms", support::ms(baseline));
    println!("floor: INSERT ... SELECT inside Postgres, same table and indexes: {:.0} ms", support::ms(floor));
    println!("ratio baseline / finish:          {:>7.2}x (target >= 5x)", baseline.as_secs_f64() / fresh.as_secs_f64());
    println!("ratio finish / floor:             {:>7.2}x", fresh.as_secs_f64() / floor.as_secs_f64());
}

/// One finish of the synthetic rows; `announced` of them are new or grew.
async fn finish(pool: &PgPool, announced: u32) -> Duration {
    let lease = support::take_lease(pool).await;
    let collected = support::synthetic(ROWS);
    let rules = cudly_testkit::settings::notice_rules();
    let started = Instant::now();
    let finished = finish_run(pool, &lease, collected, &rules).await.unwrap();
    let took = started.elapsed();
    assert_eq!(finished.written, ROWS as u64);
    assert_eq!(finished.notice.map_or(0, |n| n.item_count), announced);
    took
}

/// The baseline: the same rows into a table of the same shape and indexes,
/// 500 rows per INSERT statement, in one transaction.
async fn multi_row_inserts(pool: &PgPool) -> Duration {
    sqlx::query("DROP TABLE IF EXISTS baseline_recommendations").execute(pool).await.unwrap();
    sqlx::query("CREATE TABLE baseline_recommendations (LIKE recommendations INCLUDING ALL)")
        .execute(pool)
        .await
        .unwrap();
    let recs = support::synthetic(ROWS).recommendations;
    let started = Instant::now();
    let mut tx = pool.begin().await.unwrap();
    for chunk in recs.chunks(500) {
        let mut q = QueryBuilder::new(
            "INSERT INTO baseline_recommendations (id, provider, account_id, account_name, service, region,
                 resource_type, platform, commitment_type, term_months, payment_option, currency,
                 recommended_count, upfront_cost_nanos, recurring_monthly_cost_nanos,
                 on_demand_monthly_cost_nanos, estimated_monthly_savings_nanos, savings_percentage,
                 break_even_months, source_account_id, collected_at, generation) ",
        );
        q.push_values(chunk, |mut row, r| {
            row.push_bind(r.natural_id())
                .push_bind(r.provider.as_str())
                .push_bind(r.account_id.clone())
                .push_bind(r.account_name.clone())
                .push_bind(r.service.clone())
                .push_bind(r.region.clone())
                .push_bind(r.resource_type.clone())
                .push_bind(r.platform.clone())
                .push_bind(r.commitment_type.as_str())
                .push_bind(r.term_months)
                .push_bind(r.payment_option.as_str())
                .push_bind(r.currency.as_str().to_string())
                .push_bind(r.recommended_count)
                .push_bind(r.upfront_cost.nanos())
                .push_bind(r.recurring_monthly_cost.nanos())
                .push_bind(r.on_demand_monthly_cost.nanos())
                .push_bind(r.estimated_monthly_savings.nanos())
                .push_bind(r.savings_percentage)
                .push_bind(r.break_even_months)
                .push_bind(r.account_id.clone())
                .push("now()")
                .push_bind(1_i64);
        });
        q.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    started.elapsed()
}

/// The floor: the same rows copied inside Postgres (no client, no protocol)
/// into a table of the same shape and indexes.
async fn server_side_copy(pool: &PgPool) -> Duration {
    sqlx::query("DROP TABLE IF EXISTS floor_recommendations").execute(pool).await.unwrap();
    sqlx::query("CREATE TABLE floor_recommendations (LIKE recommendations INCLUDING ALL)").execute(pool).await.unwrap();
    let started = Instant::now();
    sqlx::query("INSERT INTO floor_recommendations SELECT * FROM recommendations ORDER BY id")
        .execute(pool)
        .await
        .unwrap();
    started.elapsed()
}
