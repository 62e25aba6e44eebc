//! Throttling retried and counted, no data that is no failure, refusals
//! that end only their account, malformed answers that fail only their
//! service.

use std::sync::Arc;

use cudly_collector::engine;
use cudly_collector::providers::aws::{AwsBackend, AwsConfig};
use cudly_collector::providers::{Backends, CloudBackend, ErrorKind, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::AwsCredentials;
use cudly_core::domain::{AccountFailures, AccountState, PaymentOption, ProviderState, ProviderStatus};
use serde_json::json;

use super::answers::{ri_detail, ri_page};
use super::fake::{EC2, Fake, RI, SP, key, start};
use super::{account, backend, config, fetch};

#[tokio::test]
async fn throttling_is_answered_with_backoff_and_every_attempt_is_counted() {
    let mut fake = Fake { throttle: 2, ..Fake::default() };
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("123456789012", "m5.large", "10")], None));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let calls = RequestCount::default();
    let recs = fetch(&backend, &account("123456789012", None), "ec2", &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(calls.get(), (3, 2), "two throttled attempts, then the answer");
}

#[tokio::test]
async fn an_account_without_enough_usage_has_no_recommendations_and_no_failure() {
    let mut fake = Fake { no_data: vec![EC2.to_string(), "COMPUTE_SP".to_string()], ..Fake::default() };
    fake.pages
        .insert(key(RI, "Amazon Redshift", ""), ri_page(vec![ri_detail("123456789012", "ra3.xlplus", "5")], None));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();
    assert!(fetch(&backend, &acct, "ec2", &calls).await.is_empty());
    assert!(fetch(&backend, &acct, "compute_savings_plans", &calls).await.is_empty());
    assert_eq!(calls.get(), (2, 0), "one request each, neither a failure nor retried");
    assert_eq!(fetch(&backend, &acct, "redshift", &calls).await.len(), 1, "the other services still answer");
}

#[tokio::test]
async fn collector_credentials_that_cannot_be_had_refuse_the_account_and_say_so() {
    // The collector's own identity is a role that STS refuses to let it assume.
    let denied = "arn:aws:iam::111111111111:role/cudly-collector";
    let (addr, _state) = start(Fake { denied_roles: vec![denied.to_string()], ..Fake::default() }).await;
    let config = config(addr, 100.0, 10);
    let bootstrap = aws_sdk_costexplorer::config::Credentials::new("AKIDTEST", "test-secret", None, None, "test");
    let sts = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(bootstrap)
        .load()
        .await;
    let ambient = aws_config::sts::AssumeRoleProvider::builder(denied).configure(&sts).build().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(ambient)
        .load()
        .await;
    let backend = AwsBackend::with_sdk_config(config, sdk);
    let sweep = Sweep { term_months: 12, payment: PaymentOption::NoUpfront };
    let (calls, run) = (RequestCount::default(), RunScope::default());
    let account = account("123456789012", None);
    let query = Query { account: &account, service: "ec2", region: None, sweep, calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");
    assert!(err.message.contains("no usable AWS credentials"), "{err}");
    assert!(err.message.contains("the collector's own AWS identity needs ce:"), "says what to grant: {err}");
    assert!(!err.message.contains("test-secret"), "{err}");
}

#[tokio::test]
async fn a_refused_role_fails_only_its_account_and_a_malformed_answer_only_its_service() {
    let denied = "arn:aws:iam::222222222222:role/cudly-read";
    let mut fake = Fake { denied_roles: vec![denied.to_string()], ..Fake::default() };
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("333333333333", "c6i.large", "10")], None));
    // RDS answers with an amount that is not one.
    let mut bad = ri_detail("333333333333", "db.r6g.large", "5");
    bad["UpfrontCost"] = json!("lots");
    fake.pages.insert(key(RI, "Amazon Relational Database Service", ""), ri_page(vec![bad], None));
    fake.raw.insert((SP.to_string(), "SAGEMAKER_SP".to_string()), "{\"SavingsPlansPurchaseRecommendation\": 7".into());
    let (addr, state) = start(fake).await;
    let backends: Backends = vec![Arc::new(backend(config(addr, 200.0, 20)).await)];
    let role = |arn: &str| AwsCredentials {
        role_arn: Some(arn.into()),
        external_id: Some("cudly-ext".into()),
        organization: false,
    };
    let accounts = vec![
        account("222222222222", Some(role(denied))),
        account("333333333333", Some(role("arn:aws:iam::333333333333:role/cudly-read"))),
    ];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;

    let status: &ProviderStatus = &collected.providers[0];
    assert_eq!(
        (status.accounts_succeeded, status.accounts_partial, status.accounts_failed),
        (0, 1, 1),
        "one account refused, one partly collected: {status:?}"
    );
    assert_eq!(status.state, ProviderState::PartiallySucceeded, "something was collected");
    let ids: Vec<&str> = status.failed_accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids, ["222222222222", "333333333333"], "both accounts appear, in account order");
    let refused = &status.failed_accounts[0];
    assert_eq!(refused.state, Some(AccountState::Failed));
    assert_eq!(refused.units_total, 8, "8 services × 1 term × 1 payment option");
    assert_eq!(refused.units_failed, 8, "nothing of it was collected");
    assert!(refused.error.contains("AssumeRole denied") && refused.error.contains(denied), "{}", refused.error);
    assert!(!refused.error.contains("test-secret"));
    let partial = &status.failed_accounts[1];
    assert_eq!(
        (partial.state, partial.units_failed, partial.units_total),
        (Some(AccountState::PartiallySucceeded), 2, 8)
    );
    let failed: Vec<&str> = partial.failures.iter().map(|f| f.service.as_str()).collect();
    assert_eq!(failed, ["rds", "sagemaker_savings_plans"], "only the malformed services failed");
    assert!(partial.error.contains("UpfrontCost"), "{}", partial.error);
    assert!(
        status.error.contains("1 of 2 accounts failed") && status.error.contains("1 of 2 accounts partly collected")
    );
    assert!(collected.recommendations.iter().any(|r| r.account_id == "333333333333" && r.service == "ec2"));
    assert!(collected.complete_accounts.is_empty(), "neither account completed a full sweep");
    let assumed = &state.lock().unwrap().assumed;
    assert!(assumed.iter().any(|(arn, ext)| arn.ends_with("333333333333:role/cudly-read") && ext == "cudly-ext"));
}

#[tokio::test]
async fn a_refused_account_stops_spending_billed_calls_at_its_first_refusal() {
    // The default sweeps: 8 services × 2 terms × 3 payment options = 48
    // billed calls per account. Cost Explorer refuses one account's role.
    let refused_key = "ASIA777777777777".to_string();
    let fake = Fake { denied_keys: vec![refused_key.clone()], ..Fake::default() };
    let (addr, state) = start(fake).await;
    let defaults = AwsConfig {
        terms: vec![12, 36],
        payment_options: vec![PaymentOption::NoUpfront, PaymentOption::PartialUpfront, PaymentOption::AllUpfront],
        ..config(addr, 1000.0, 50)
    };
    let backends: Backends = vec![Arc::new(backend(defaults).await)];
    let role = |id: &str| AwsCredentials {
        role_arn: Some(format!("arn:aws:iam::{id}:role/cudly-read")),
        external_id: None,
        organization: false,
    };
    let accounts =
        vec![account("777777777777", Some(role("777777777777"))), account("888888888888", Some(role("888888888888")))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;

    let status = &collected.providers[0];
    let keys = state.lock().unwrap().keys_seen.clone();
    let spent_on_refused = keys.iter().filter(|k| **k == refused_key).count();
    let spent_on_other = keys.iter().filter(|k| *k == "ASIA888888888888").count();
    assert_eq!(spent_on_other, 48, "the other account is swept in full");
    assert!(
        (1..=8).contains(&spent_on_refused),
        "at most one call per service was in flight when the refusal came: {spent_on_refused} of 48"
    );
    assert_eq!(status.requests, 48 + spent_on_refused as u64, "every call made is counted");
    let refused = &status.failed_accounts[0];
    assert_eq!(refused.account_id, "777777777777");
    assert_eq!((refused.state, refused.units_failed, refused.units_total), (Some(AccountState::Failed), 48, 48));
    assert!(refused.error.contains("AccessDeniedException"), "{}", refused.error);
    assert!(refused.error.contains("remaining calls were not made"), "{}", refused.error);
    assert!(refused.failures.len() <= AccountFailures::MAX_LISTED);
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (1, 1));
    let complete: Vec<&str> = collected.complete_accounts.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(complete, ["888888888888"], "the refused account keeps its old rows");
}
