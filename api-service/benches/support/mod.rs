//! What the benchmarks share: the database, a synthetic fleet of results,
//! the lease, and percentiles.

#![allow(dead_code)]

use std::time::Duration;

use cudly_collector::engine::Collected;
use cudly_core::domain::{CommitmentType, PaymentOption, Provider, ProviderStatus, Recommendation, Trigger};
use cudly_core::lease::Lease;
use cudly_core::lease::{Acquired, acquire_lease};
use cudly_core::money::{Amount, Currency};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The database of `DATABASE_URL`, migrated and emptied.
pub(crate) async fn fresh_database() -> PgPool {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run the benchmark through scripts/bench");
    let pool = PgPoolOptions::new().max_connections(20).connect(&url).await.expect("connecting to DATABASE_URL");
    cudly_core::db::migrate(&pool).await.unwrap();
    sqlx::query("TRUNCATE recommendations, collection_runs, accounts").execute(&pool).await.unwrap();
    // The accounts `synthetic` spreads its results over: a run writes only
    // the results of registered accounts.
    sqlx::query(
        "INSERT INTO accounts (provider, external_id, display_name)
         SELECT p, p || '-account-' || lpad(i::text, 3, '0'), 'Benchmark account'
         FROM unnest(ARRAY['aws', 'azure', 'gcp']) AS p, generate_series(0, 49) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE collection_state SET collection_id = NULL, lease_expires_at = NULL, outcome = NULL,
             last_collected_at = NULL, finished_at = NULL",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// `n` distinct recommendations spread over 3 providers and 150 accounts,
/// with savings spread widely (so the sort order matters) and some ties.
pub(crate) fn synthetic(n: usize) -> Collected {
    let services = ["compute", "database", "cache", "search", "warehouse"];
    let regions = ["eu-west-1", "us-east-1", "us-east-2", "us-west-2", "asia-east1", "europe-west4"];
    let recommendations: Vec<Recommendation> = (0..n)
        .map(|i| {
            let provider = Provider::ALL[i % 3];
            let account = (i / 3) % 50;
            // Savings in tenths of a dollar, spread widely, with ties.
            let tenths = ((i * 7919) % 100_000) as i64;
            let savings = Amount::from_nanos(tenths * 100_000_000);
            let hundred = Amount::from_units(100).unwrap();
            Recommendation {
                provider,
                account_id: format!("{provider}-account-{account:03}"),
                account_name: format!("Benchmark {provider} account {account:03}"),
                service: services[(i / 150) % services.len()].to_string(),
                region: regions[(i / 750) % regions.len()].to_string(),
                resource_type: format!("type-{}", i / 4500),
                platform: String::new(),
                commitment_type: CommitmentType::ReservedInstance,
                term_months: 12,
                payment_option: PaymentOption::NoUpfront,
                currency: Currency::USD,
                recommended_count: 1.0 + (i % 7) as f64,
                upfront_cost: Amount::ZERO,
                recurring_monthly_cost: hundred,
                on_demand_monthly_cost: hundred.checked_add(savings).unwrap(),
                estimated_monthly_savings: savings,
                savings_percentage: savings.percent_of(hundred.checked_add(savings).unwrap()),
                break_even_months: 0.0,
            }
        })
        .collect();
    let complete_accounts =
        (0..150).map(|i| (Provider::ALL[i % 3], format!("{}-account-{:03}", Provider::ALL[i % 3], i / 3))).collect();
    let providers = Provider::ALL.iter().map(|&p| ProviderStatus::pending(p, 50)).collect();
    let sources = recommendations.iter().map(|r| r.account_id.clone()).collect();
    Collected { recommendations, sources, providers, complete_accounts }
}

/// Takes the lease for a run, as api-service does.
pub(crate) async fn take_lease(pool: &PgPool) -> Lease {
    match acquire_lease(pool, Trigger::User, Duration::from_secs(300)).await.unwrap() {
        Acquired::Started(run) => run.lease(),
        Acquired::Joined(run) => panic!("a run already holds the lease: {}", run.collection_id),
    }
}

/// The `p`th percentile (0–100) of sorted durations.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
