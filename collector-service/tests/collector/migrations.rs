//! Upgrades move what is stored without loss: the schema of the previous
//! release with data in it, migrated to this one (and back).

use std::path::{Path, PathBuf};

use cudly_core::db::MIGRATOR;
use cudly_core::domain::ProviderStatus;
use sqlx::PgPool;

/// The last migration of the schema with `double precision` amounts.
const BEFORE_EXACT_MONEY: i64 = 20261129000003;

/// A copy of the migrations up to and including `version`, in a fresh
/// directory (removed on drop).
struct MigrationsUpTo(PathBuf);

impl MigrationsUpTo {
    fn new(version: i64) -> Self {
        let dir = std::env::temp_dir().join(format!("cudly-migrations-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let file_version: i64 = name.split('_').next().unwrap().parse().unwrap();
            if file_version <= version {
                std::fs::copy(&path, dir.join(&name)).unwrap();
            }
        }
        MigrationsUpTo(dir)
    }
}

impl Drop for MigrationsUpTo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A run status as the previous release wrote it: a flat list of failed
/// units, capped per provider.
fn old_providers() -> serde_json::Value {
    serde_json::json!([
        {"provider": "aws", "state": "partially_succeeded", "accounts_total": 3, "accounts_succeeded": 1,
         "accounts_failed": 2, "recommendation_count": 3, "error": "2 of 3 accounts failed (first: …)",
         "failures": [
             {"account_id": "222222222222", "service": "ec2", "region": "", "error": "12-month no_upfront: AssumeRole denied"},
             {"account_id": "222222222222", "service": "rds", "region": "", "error": "12-month no_upfront: AssumeRole denied"},
             {"account_id": "333333333333", "service": "redshift", "region": "", "error": "12-month all_upfront: HTTP 500"}
         ],
         "requests": 96, "request_errors": 17},
        {"provider": "gcp", "state": "succeeded", "accounts_total": 1, "accounts_succeeded": 1, "accounts_failed": 0,
         "recommendation_count": 1, "error": "", "failures": [], "requests": 12, "request_errors": 0}
    ])
}

/// (id, currency, savings, upfront, recurring, on demand, percentage, type).
type MigratedRow = (String, String, i64, i64, i64, i64, f64, String);

#[sqlx::test(migrations = false)]
async fn exact_money_moves_every_existing_row_and_run_status_without_loss(pool: PgPool) {
    let previous = MigrationsUpTo::new(BEFORE_EXACT_MONEY);
    sqlx::migrate::Migrator::new(previous.0.as_path()).await.unwrap().run(&pool).await.unwrap();
    // Rows as the previous release stored them: binary doubles, with the
    // noise floating point sums left in them.
    for (id, savings, upfront) in [
        ("00000000-0000-5000-8000-000000000001", 212701.82999999993_f64, 2047176.3200000008_f64),
        ("00000000-0000-5000-8000-000000000002", 0.1, 0.0),
        ("00000000-0000-5000-8000-000000000003", 79.2, 1412.0),
    ] {
        sqlx::query(
            "INSERT INTO recommendations (id, provider, account_id, account_name, service, region, resource_type,
                 platform, commitment_type, term_months, payment_option, recommended_count, upfront_cost,
                 recurring_monthly_cost, on_demand_monthly_cost, estimated_monthly_savings, savings_percentage,
                 break_even_months, collected_at, generation, source_account_id)
             VALUES ($1::uuid, 'aws', '123456789012', 'Payments', 'ec2', 'us-east-1', 'm5.large', 'Linux/UNIX',
                 'reserved_instance', 12, 'no_upfront', 4, $3, 201.48, $2 + 201.48, $2, 28.125, 7.3, now(), 1,
                 '123456789012')",
        )
        .bind(id)
        .bind(savings)
        .bind(upfront)
        .execute(&pool)
        .await
        .unwrap();
    }
    let old = old_providers();
    sqlx::query(
        "INSERT INTO collection_runs (id, generation, trigger, started_at, finished_at, outcome, error,
             recommendation_count, providers)
         VALUES (gen_random_uuid(), 1, 'user', now(), now(), 'partially_succeeded', 'aws: …', 4, $1)",
    )
    .bind(&old)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE collection_state SET providers = $1").bind(&old).execute(&pool).await.unwrap();

    MIGRATOR.run(&pool).await.unwrap();

    let rows: Vec<MigratedRow> = sqlx::query_as(
        "SELECT id::text, currency, estimated_monthly_savings_nanos, upfront_cost_nanos,
                recurring_monthly_cost_nanos, on_demand_monthly_cost_nanos, savings_percentage, resource_type
         FROM recommendations ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "no row lost");
    let exact: Vec<(i64, i64, i64, i64)> = rows.iter().map(|r| (r.2, r.3, r.4, r.5)).collect();
    assert_eq!(
        exact,
        [
            (212_701_830_000_000, 2_047_176_320_000_000, 201_480_000_000, 212_903_310_000_000),
            (100_000_000, 0, 201_480_000_000, 201_580_000_000),
            (79_200_000_000, 1_412_000_000_000, 201_480_000_000, 280_680_000_000),
        ],
        "the doubles' noise is gone, the figures intact"
    );
    assert!(rows.iter().all(|r| r.1 == "USD" && r.6 == 28.125 && r.7 == "m5.large"));

    for (table, query) in [
        ("collection_runs", "SELECT providers FROM collection_runs"),
        ("collection_state", "SELECT providers FROM collection_state"),
    ] {
        let json: serde_json::Value = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
        let statuses: Vec<ProviderStatus> = serde_json::from_value(json).unwrap();
        let aws = &statuses[0];
        assert_eq!((aws.accounts_total, aws.accounts_succeeded, aws.accounts_failed), (3, 1, 2), "{table}");
        assert_eq!((aws.requests, aws.request_errors, aws.recommendation_count), (96, 17, 3));
        let accounts: Vec<(&str, u32, &str, usize)> = aws
            .failed_accounts
            .iter()
            .map(|a| (a.account_id.as_str(), a.units_failed, a.error.as_str(), a.failures.len()))
            .collect();
        assert_eq!(
            accounts,
            [
                ("222222222222", 2, "12-month no_upfront: AssumeRole denied", 2),
                ("333333333333", 1, "12-month all_upfront: HTTP 500", 1)
            ],
            "every failure kept, grouped by account ({table})"
        );
        assert!(aws.failed_accounts.iter().all(|a| a.state.is_none() && a.units_total == 0), "not recorded then");
        assert_eq!(statuses[1].failed_accounts, []);
    }

    // And back: the previous schema's doubles and flat failure list.
    MIGRATOR.undo(&pool, BEFORE_EXACT_MONEY).await.unwrap();
    let back: Vec<(f64, f64)> =
        sqlx::query_as("SELECT estimated_monthly_savings, upfront_cost FROM recommendations ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(back, [(212701.83, 2047176.32), (0.1, 0.0), (79.2, 1412.0)]);
    let json: serde_json::Value =
        sqlx::query_scalar("SELECT providers FROM collection_runs").fetch_one(&pool).await.unwrap();
    assert_eq!(json[0]["failures"], old[0]["failures"], "the flat list comes back");

    // A downgrade that would mislabel another currency as USD refuses.
    MIGRATOR.run(&pool).await.unwrap();
    sqlx::query("UPDATE recommendations SET currency = 'EUR' WHERE estimated_monthly_savings_nanos = 100000000")
        .execute(&pool)
        .await
        .unwrap();
    let refused = MIGRATOR.undo(&pool, BEFORE_EXACT_MONEY).await.unwrap_err();
    assert!(refused.to_string().contains("currencies other than USD"), "{refused}");
}

/// The plan Postgres chooses for `query` (EXPLAIN, text); `query` is one
/// of this file's literals.
async fn plan(pool: &PgPool, query: &'static str) -> String {
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {query}"));
    let lines: Vec<String> = sqlx::query_scalar(explain).fetch_all(pool).await.unwrap();
    lines.join("\n")
}

#[sqlx::test(migrations = "../migrations")]
async fn eviction_and_account_deletion_find_rows_through_an_index(pool: PgPool) {
    // 20 000 rows of 500 accounts collected by themselves, and 2 000 rows
    // of 100 linked accounts collected through 10 management accounts.
    sqlx::query(
        "INSERT INTO recommendations (id, provider, account_id, account_name, service, region, resource_type,
             platform, commitment_type, term_months, payment_option, currency, recommended_count,
             upfront_cost_nanos, recurring_monthly_cost_nanos, on_demand_monthly_cost_nanos,
             estimated_monthly_savings_nanos, savings_percentage, break_even_months, collected_at, generation,
             source_account_id)
         SELECT gen_random_uuid(), 'aws', account, 'account', 'ec2', 'us-east-1', 'm5.' || n, 'Linux/UNIX',
                'reserved_instance', 12, 'no_upfront', 'USD', 1, 0, 70000000000, 100000000000, 30000000000, 30, 0,
                now(), 1, source
         FROM (SELECT n, lpad((n % 500)::text, 12, '0') AS account, lpad((n % 500)::text, 12, '0') AS source
               FROM generate_series(1, 20000) AS n
               UNION ALL
               SELECT n, lpad((1000 + n % 100)::text, 12, '0'), lpad((2000 + n % 10)::text, 12, '0')
               FROM generate_series(1, 2000) AS n) AS rows",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE recommendations").execute(&pool).await.unwrap();

    // The shapes of persist's two eviction statements and the accounts
    // store's deletion.
    let own = plan(
        &pool,
        "SELECT r.id FROM recommendations r
         JOIN UNNEST(ARRAY['aws'], ARRAY['000000000042']) AS c(provider, account_id)
           ON r.provider = c.provider AND r.account_id = c.account_id AND r.source_account_id = c.account_id
         WHERE r.generation <> 2",
    )
    .await;
    assert!(own.contains("recommendations_by_account") && !own.contains("Seq Scan"), "{own}");
    let for_others = plan(
        &pool,
        "SELECT r.id FROM recommendations r
         JOIN UNNEST(ARRAY['aws'], ARRAY['000000002003']) AS c(provider, account_id)
           ON r.provider = c.provider AND r.source_account_id = c.account_id
          AND r.source_account_id <> r.account_id
         WHERE r.generation <> 2",
    )
    .await;
    assert!(for_others.contains("recommendations_by_source") && !for_others.contains("Seq Scan"), "{for_others}");
    let deletion = plan(
        &pool,
        "SELECT id FROM recommendations
         WHERE provider = 'aws'
           AND (account_id = '000000002003' OR source_account_id = '000000002003' AND source_account_id <> account_id)",
    )
    .await;
    assert!(deletion.contains("recommendations_by_source") && !deletion.contains("Seq Scan"), "{deletion}");
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE source_account_id <> account_id")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(indexed, 2000, "the source index holds only the rows collected for another account");
}
