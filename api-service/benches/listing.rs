//! Listing: ListRecommendations over 100,000 rows through the real server,
//! with each filter, paging 200 pages deep (100 rows a page): latency per
//! page, and the plan of a deep page (index use, no OFFSET).
//!
//!   scripts/bench listing

mod support;

use std::time::Instant;

use cudly_api::recommendations::{self, page_query};
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const ROWS: usize = 100_000;
const PAGES: usize = 200;

#[tokio::main]
async fn main() {
    let pool = support::fresh_database().await;
    let lease = support::take_lease(&pool).await;
    cudly_collector::persist::finish_run(
        &pool,
        &lease,
        support::synthetic(ROWS),
        &cudly_testkit::settings::notice_rules(),
    )
    .await
    .unwrap();
    sqlx::query("ANALYZE recommendations").execute(&pool).await.unwrap();

    let settings = cudly_testkit::settings::api("http://127.0.0.1:9");
    let app = cudly_api::app::build(settings, pool.clone()).await.unwrap();
    let addr = app.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone().cancelled_owned()));
    let mut client = RecommendationsServiceClient::connect(format!("http://{addr}")).await.unwrap();

    let cases: Vec<(&str, pb::ListRecommendationsRequest)> = vec![
        ("no filter", pb::ListRecommendationsRequest::default()),
        ("provider", pb::ListRecommendationsRequest { provider: pb::Provider::Aws as i32, ..Default::default() }),
        ("service", pb::ListRecommendationsRequest { service: "database".into(), ..Default::default() }),
        ("region", pb::ListRecommendationsRequest { region: "us-east-1".into(), ..Default::default() }),
        (
            "2 accounts",
            pb::ListRecommendationsRequest {
                account_ids: vec!["aws-account-001".into(), "gcp-account-007".into()],
                ..Default::default()
            },
        ),
        ("min savings", pb::ListRecommendationsRequest { min_monthly_savings: Some(usd(2_500)), ..Default::default() }),
        ("min percentage", pb::ListRecommendationsRequest { min_savings_percentage: 90.0, ..Default::default() }),
        (
            "provider+region+savings",
            pb::ListRecommendationsRequest {
                provider: pb::Provider::Gcp as i32,
                region: "eu-west-1".into(),
                min_monthly_savings: Some(usd(1_000)),
                ..Default::default()
            },
        ),
    ];
    println!("listing: {ROWS} rows, pages of 100, up to {PAGES} pages deep per filter (target p99 <= 10 ms)");
    println!(
        "{:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "filter", "pages", "first ms", "p50 ms", "p99 ms", "max ms", "ratio"
    );
    let mut all = Vec::new();
    for (name, filter) in &cases {
        let mut token = String::new();
        let mut took = Vec::new();
        let mut deep_token = None;
        for page in 0..PAGES {
            let request =
                pb::ListRecommendationsRequest { page_size: 100, page_token: token.clone(), ..filter.clone() };
            let started = Instant::now();
            let response = client.list_recommendations(request).await.unwrap().into_inner();
            took.push(started.elapsed());
            if page == PAGES / 2 || deep_token.is_none() && response.next_page_token.is_empty() {
                deep_token = Some(token.clone());
            }
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
        }
        let first = took[0];
        all.extend_from_slice(&took);
        took.sort();
        let p99 = support::percentile(&took, 99.0);
        println!(
            "{name:<24} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2}x",
            took.len(),
            support::ms(first),
            support::ms(support::percentile(&took, 50.0)),
            support::ms(p99),
            support::ms(*took.last().unwrap()),
            p99.as_secs_f64() / 0.010
        );
        explain(&pool, name, filter, deep_token.unwrap_or_default()).await;
    }
    all.sort();
    println!(
        "all pages: {} pages, p50 {:.2} ms, p99 {:.2} ms (target 10 ms, ratio {:.2})",
        all.len(),
        support::ms(support::percentile(&all, 50.0)),
        support::ms(support::percentile(&all, 99.0)),
        support::percentile(&all, 99.0).as_secs_f64() / 0.010
    );
    stop.cancel();
}

/// Prints the plan of the page query as the server runs it, deep in the
/// result (the page after `token`).
async fn explain(pool: &PgPool, name: &str, filter: &pb::ListRecommendationsRequest, token: String) {
    let request = pb::ListRecommendationsRequest { page_size: 100, page_token: token, ..filter.clone() };
    let query = recommendations::parse_request(request).unwrap();
    let mut q = page_query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ", &query);
    let plan: Vec<String> = q.build_query_scalar().fetch_all(pool).await.unwrap();
    let nodes: Vec<&str> = plan
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.contains("Scan") || l.contains("Sort") || l.starts_with("Execution Time"))
        .map(|l| l.trim_start_matches("-> "))
        .collect();
    println!("    deep page plan ({name}): {}", nodes.join(" | "));
}

/// A whole amount of US dollars.
fn usd(units: i64) -> cudly_proto::google::r#type::Money {
    cudly_proto::google::r#type::Money { currency_code: "USD".into(), units, nanos: 0 }
}
