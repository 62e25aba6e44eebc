//! Many accounts and organizations: one call per sweep for a management
//! account, the configured request rate never exceeded, and what ten
//! accounts cost in requests.

use std::sync::Arc;
use std::time::Duration;

use cudly_collector::engine::{self, EngineConfig};
use cudly_collector::providers::Backends;
use cudly_collector::providers::aws::AwsConfig;
use cudly_core::credentials::AwsCredentials;
use cudly_core::domain::{Account, PaymentOption};
use serde_json::Value;
use tokio::time::Instant;

use super::answers::{ri_detail, ri_page};
use super::fake::{EC2, Fake, RI, key, start};
use super::{account, backend, config};

/// Answers every operation of one page with one detail per linked account.
fn organization_fake(linked: &[String]) -> Fake {
    let mut fake = Fake::default();
    let details: Vec<Value> = linked.iter().map(|id| ri_detail(id, "m5.large", "10")).collect();
    for (_, service) in [
        ("ec2", EC2),
        ("rds", "Amazon Relational Database Service"),
        ("elasticache", "Amazon ElastiCache"),
        ("opensearch", "Amazon OpenSearch Service"),
        ("redshift", "Amazon Redshift"),
    ] {
        fake.pages.insert(key(RI, service, ""), ri_page(details.clone(), None));
    }
    fake
}

#[tokio::test]
async fn an_organization_is_collected_with_one_call_per_sweep_split_by_linked_account() {
    let linked: Vec<String> = (1..=10).map(|n| format!("{:012}", 400_000_000_000u64 + n)).collect();
    let (addr, state) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(config(addr, 500.0, 50)).await)];
    let payer = AwsCredentials { role_arn: None, external_id: None, organization: true };
    let accounts = vec![account("400000000000", Some(payer))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    assert_eq!(collected.providers[0].failed_accounts, [], "{:?}", collected.providers[0]);
    let mut owners: Vec<&str> = collected.recommendations.iter().map(|r| r.account_id.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners, linked.iter().map(String::as_str).collect::<Vec<_>>(), "split by the detail's AccountId");
    assert_eq!(collected.complete_accounts.len(), 1, "the management account's sweep completed");
    assert!(collected.sources.iter().all(|s| s == "400000000000"), "every row came through it");
    let seen = &state.lock().unwrap().seen;
    assert!(seen.iter().all(|(_, _, body)| body["AccountScope"] == "LINKED"));
    // 8 services × 1 term × 1 payment option: one request each.
    assert_eq!(collected.providers[0].requests, 8);
}

#[tokio::test]
async fn fifty_accounts_at_parallelism_twenty_never_exceed_the_configured_rate() {
    let (addr, state) = start(Fake::default()).await;
    let rate = 100.0;
    let backends: Backends = vec![Arc::new(backend(config(addr, rate, 1)).await)];
    let accounts: Vec<Account> = (1..=50).map(|n| account(&format!("{:012}", 500_000_000_000u64 + n), None)).collect();
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let caps = EngineConfig { max_account_parallelism: 20, ..cudly_testkit::settings::engine() };
    let collected = engine::collect(&backends, &accounts, &caps, &tx).await;
    assert_eq!(collected.providers[0].accounts_succeeded, 50);
    let seen: Vec<Instant> = state.lock().unwrap().seen.iter().map(|(at, _, _)| *at).collect();
    assert_eq!(seen.len(), 50 * 8, "every account, every service");
    assert_eq!(collected.providers[0].requests, 400);
    // In every one-second window the server saw at most the rate (plus the
    // one-request burst and a request of scheduling slack).
    let mut worst = 0;
    for (i, start) in seen.iter().enumerate() {
        let in_window = seen[i..].iter().take_while(|t| t.duration_since(*start) < Duration::from_secs(1)).count();
        worst = worst.max(in_window);
    }
    assert!(worst as f64 <= rate + 2.0, "{worst} requests within one second at a limit of {rate}/s");
}

#[tokio::test]
async fn ten_accounts_cost_forty_eight_requests_each_or_forty_eight_in_all_as_an_organization() {
    // The default sweeps: 8 services × 2 terms × 3 payment options.
    let defaults = |addr| AwsConfig {
        terms: vec![12, 36],
        payment_options: vec![PaymentOption::NoUpfront, PaymentOption::PartialUpfront, PaymentOption::AllUpfront],
        ..config(addr, 1000.0, 50)
    };
    let linked: Vec<String> = (1..=10).map(|n| format!("{:012}", 600_000_000_000u64 + n)).collect();
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let (addr, _) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(defaults(addr)).await)];
    let each: Vec<Account> = linked.iter().map(|id| account(id, None)).collect();
    let per_account = engine::collect(&backends, &each, &cudly_testkit::settings::engine(), &tx).await;

    let (addr, _) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(defaults(addr)).await)];
    let payer = AwsCredentials { role_arn: None, external_id: None, organization: true };
    let organization =
        engine::collect(&backends, &[account("600000000000", Some(payer))], &cudly_testkit::settings::engine(), &tx)
            .await;

    assert_eq!(per_account.providers[0].requests, 480, "10 accounts × 48");
    assert_eq!(organization.providers[0].requests, 48, "one management account for all 10");
    println!(
        "10 AWS accounts, one run: {} Cost Explorer requests per account, {} as an organization",
        per_account.providers[0].requests, organization.providers[0].requests
    );
}
