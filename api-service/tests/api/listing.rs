//! ListRecommendations and ListCollections: results, eviction, partial
//! failure, cold start, stale data, pagination.

use std::collections::HashSet;
use std::time::Duration;

use cudly_core::domain::Provider;
use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic::Code;

use cudly_testkit::spawn::{Options, TestApp, spawn_app};

fn all() -> pb::ListRecommendationsRequest {
    pb::ListRecommendationsRequest { page_size: 1000, ..Default::default() }
}

async fn ids_of(app: &TestApp, provider: Provider) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT resource_type || '@' || id::text, generation FROM recommendations WHERE provider = $1 ORDER BY id",
    )
    .bind(provider.as_str())
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failing_provider_keeps_its_old_rows_and_the_others_results(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let first = app.collect().await;
    assert_eq!(first.collection.unwrap().outcome, pb::Outcome::Succeeded as i32);
    let azure_before = ids_of(&app, Provider::Azure).await;
    assert!(!azure_before.is_empty());

    // Rows the next sweep will not return: one of a completed account
    // (evicted) and one of the failing provider's (kept).
    for (provider, account) in [("aws", "100000000001"), ("azure", "00000000-0000-4000-8000-000000000001")] {
        sqlx::query(
            "INSERT INTO recommendations (id, provider, account_id, account_name, service, region, resource_type,
                 platform, commitment_type, term_months, payment_option, currency, recommended_count,
                 upfront_cost_nanos, recurring_monthly_cost_nanos, on_demand_monthly_cost_nanos,
                 estimated_monthly_savings_nanos, savings_percentage, break_even_months, collected_at, generation,
                 source_account_id)
             SELECT gen_random_uuid(), provider, $2, account_name, service, region, 'retired-type', platform,
                 commitment_type, term_months, payment_option, currency, recommended_count, upfront_cost_nanos,
                 recurring_monthly_cost_nanos, on_demand_monthly_cost_nanos, estimated_monthly_savings_nanos,
                 savings_percentage, break_even_months, collected_at, generation, $2
             FROM recommendations WHERE provider = $1 LIMIT 1",
        )
        .bind(provider)
        .bind(account)
        .execute(&pool)
        .await
        .unwrap();
    }
    let azure_before = ids_of(&app, Provider::Azure).await;

    app.sim(Provider::Azure).set_failure_rate(1.0);
    let second = app.collect().await;
    let run = second.collection.unwrap();
    assert_eq!(run.outcome, pb::Outcome::PartiallySucceeded as i32);
    assert!(run.error.contains("azure"), "{}", run.error);
    let azure = run.providers.iter().find(|p| p.provider == pb::Provider::Azure as i32).unwrap();
    assert_eq!(azure.state, pb::ProviderState::Failed as i32);
    assert_eq!((azure.accounts_failed, azure.accounts_partially_succeeded, azure.accounts_succeeded), (2, 0, 0));
    assert_eq!(azure.failed_accounts.len(), 2, "every failed account is listed");
    for account in &azure.failed_accounts {
        assert_eq!(account.state, pb::AccountState::Failed as i32);
        assert_eq!(account.units_failed, account.units_total, "nothing of it was collected");
        assert!(account.error.contains("simulated azure API error"), "{}", account.error);
        assert!(!account.failures.is_empty() && account.failures.len() <= 5);
    }
    assert!(second.last_collection_error.contains("azure"));

    assert_eq!(ids_of(&app, Provider::Azure).await, azure_before, "the failed provider's rows are untouched");
    let aws = ids_of(&app, Provider::Aws).await;
    assert!(!aws.is_empty());
    assert!(aws.iter().all(|(_, generation)| *generation == 2), "aws rows come from the second run");
    assert!(
        aws.iter().all(|(key, _)| !key.starts_with("retired-type@")),
        "a completed sweep evicts what it no longer returns"
    );
    assert_eq!(
        ids_of(&app, Provider::Azure).await.iter().filter(|(key, _)| key.starts_with("retired-type@")).count(),
        1,
        "a failed sweep keeps even the rows it would not have returned"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cold_start_list_starts_a_run_and_answers_at_once(pool: PgPool) {
    // Every cloud call takes an hour: a list that waited for the run would
    // never answer.
    let mut opts = Options::default();
    opts.sim.latency = Duration::from_secs(3600);
    let app = spawn_app(pool, opts).await;

    let response = tokio::time::timeout(Duration::from_secs(30), app.list(all())).await.expect("answered").unwrap();
    assert!(response.recommendations.is_empty());
    let freshness = response.freshness.unwrap();
    assert!(freshness.collecting, "the list shows the cold-start run in flight");
    let run = freshness.collection.unwrap();
    assert_eq!(run.trigger, pb::Trigger::ColdStart as i32);

    // Another read while it runs starts nothing new.
    let again = app.list(all()).await.unwrap().freshness.unwrap();
    assert_eq!(again.collection.unwrap().id, run.id);
    assert_eq!(app.history().await.len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn stale_data_is_served_at_once_and_refreshed_in_the_background(pool: PgPool) {
    let mut opts = Options::default();
    opts.sim.latency = Duration::from_millis(5);
    let app = spawn_app(pool.clone(), opts).await;
    app.collect().await;
    let count = app.list(all()).await.unwrap().summary.unwrap().count;

    // A day and an hour later (moved in the database, not slept out).
    sqlx::query(
        "UPDATE collection_state SET last_collected_at = now() - interval '25 hours',
                                     finished_at = now() - interval '25 hours'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let response = app.list(all()).await.unwrap();
    assert_eq!(response.summary.unwrap().count, count, "the stale rows are served meanwhile");
    let freshness = response.freshness.unwrap();
    let run = freshness.collection.unwrap();
    assert_eq!(run.trigger, pb::Trigger::Stale as i32);
    let end = app.wait_for_end(&run.id).await;
    assert_eq!(end.collection.unwrap().outcome, pb::Outcome::Succeeded as i32);

    // Fresh data starts nothing.
    app.list(all()).await.unwrap();
    assert_eq!(app.history().await.len(), 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn pagination_returns_every_matching_row_exactly_once_in_order(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    app.collect().await;
    // Ties on the sort key: paging must fall back to the id.
    sqlx::query("UPDATE recommendations SET estimated_monthly_savings_nanos = 100000000000 WHERE id IN (SELECT id FROM recommendations ORDER BY id LIMIT 40)")
        .execute(&pool)
        .await
        .unwrap();

    for filter in [
        pb::ListRecommendationsRequest::default(),
        pb::ListRecommendationsRequest { provider: pb::Provider::Aws as i32, ..Default::default() },
        pb::ListRecommendationsRequest { min_monthly_savings: Some(usd(100, 0)), ..Default::default() },
        pb::ListRecommendationsRequest {
            account_ids: vec!["100000000001".into(), "simulated-project-002".into()],
            min_savings_percentage: 30.0,
            ..Default::default()
        },
    ] {
        let mut seen = Vec::new();
        let mut token = String::new();
        let summary = loop {
            let page = app
                .list(pb::ListRecommendationsRequest { page_size: 7, page_token: token.clone(), ..filter.clone() })
                .await
                .unwrap();
            assert!(page.recommendations.len() <= 7);
            seen.extend(
                page.recommendations.iter().map(|r| (nanos(r.estimated_monthly_savings.as_ref()), r.id.clone())),
            );
            if page.next_page_token.is_empty() {
                break page.summary.unwrap();
            }
            token = page.next_page_token;
        };
        let unique: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(unique.len(), seen.len(), "no row twice");
        assert_eq!(seen.len() as i64, summary.count, "every matching row once ({filter:?})");
        assert!(summary.count > 0);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        assert_eq!(seen, sorted, "savings descending, then id");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn filters_and_summary_match_the_rows(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    app.collect().await;
    let response = app
        .list(pb::ListRecommendationsRequest {
            provider: pb::Provider::Gcp as i32,
            service: "compute".into(),
            region: "us-central1".into(),
            ..all()
        })
        .await
        .unwrap();
    assert!(!response.recommendations.is_empty());
    for r in &response.recommendations {
        assert_eq!(
            (r.provider, r.service.as_str(), r.region.as_str()),
            (pb::Provider::Gcp as i32, "compute", "us-central1")
        );
        assert_eq!(r.commitment_type, pb::CommitmentType::CommittedUseDiscount as i32);
        assert!(r.account_name.starts_with("Simulated"), "simulated data says so");
    }
    let summary = response.summary.unwrap();
    let total: i64 = response.recommendations.iter().map(|r| nanos(r.estimated_monthly_savings.as_ref())).sum();
    assert_eq!(summary.count as usize, response.recommendations.len());
    assert_eq!(summary.totals.len(), 1, "the simulated clouds report USD");
    let usd = &summary.totals[0];
    assert_eq!((usd.currency_code.as_str(), usd.count), ("USD", summary.count));
    assert_eq!(nanos(usd.monthly_savings.as_ref()), total, "the total is exactly the sum of the rows");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_list_requests_get_invalid_argument_naming_the_field(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    for (req, field) in [
        (pb::ListRecommendationsRequest { page_token: "bm90IGEgdG9rZW4".into(), ..Default::default() }, "page_token"),
        (
            pb::ListRecommendationsRequest { min_savings_percentage: -3.0, ..Default::default() },
            "min_savings_percentage",
        ),
        (pb::ListRecommendationsRequest { provider: 17, ..Default::default() }, "provider"),
    ] {
        let err = app.list(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    let err = app
        .client
        .clone()
        .list_collections(pb::ListCollectionsRequest { page_size: 10, page_token: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_run_history_pages_newest_first(pool: PgPool) {
    let mut opts = Options::default();
    opts.sim.latency = Duration::from_millis(1);
    let app = spawn_app(pool, opts).await;
    for _ in 0..3 {
        app.collect().await;
    }
    let first = app
        .client
        .clone()
        .list_collections(pb::ListCollectionsRequest { page_size: 2, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.collections.iter().map(|c| c.generation).collect::<Vec<_>>(), [3, 2]);
    assert!(first.collections.iter().all(|c| c.outcome == pb::Outcome::Succeeded as i32 && c.recommendation_count > 0));
    assert_eq!(first.collections[0].providers.len(), 3);
    let rest = app
        .client
        .clone()
        .list_collections(pb::ListCollectionsRequest { page_size: 2, page_token: first.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.collections.iter().map(|c| c.generation).collect::<Vec<_>>(), [1]);
    assert!(rest.next_page_token.is_empty());
}

fn usd(units: i64, nanos: i32) -> cudly_proto::google::r#type::Money {
    cudly_proto::google::r#type::Money { currency_code: "USD".into(), units, nanos }
}

/// An amount in nano-units (exact), from the API's Money.
fn nanos(money: Option<&cudly_proto::google::r#type::Money>) -> i64 {
    let m = money.expect("every amount is set");
    m.units * 1_000_000_000 + i64::from(m.nanos)
}
