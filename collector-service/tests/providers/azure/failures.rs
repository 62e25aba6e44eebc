//! Throttling retried and counted, a malformed answer failing only its
//! service, a subscription the app may not read refused at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cudly_collector::engine;
use cudly_collector::providers::{Backends, CloudBackend, ErrorKind, Query, RequestCount, RunScope};
use cudly_core::domain::Recommendation;
use serde_json::json;

use super::answers::legacy;
use super::fake::start;
use super::{CLIENT_A, SUB_A, SUB_B, SecretFile, account, amount, backend, fetch, monthly};

#[tokio::test]
async fn throttling_with_retry_after_is_retried_and_every_attempt_is_counted() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.throttle.store(2, Ordering::SeqCst);
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let recs = fetch(&backend, &account, "sql_database", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].resource_type, "SQLDB_GP_Compute_Gen5");
    // A token, two 429s, then the page.
    assert_eq!(calls.get(), (4, 2));
    assert_eq!(fake.arm_requests().len(), 3);
}

#[tokio::test]
async fn a_malformed_payload_fails_only_its_service_and_names_it() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.malformed.insert("CosmosDB", json!({"value": "oops"}));
        let mut redis = legacy("Premium_P1", "westeurope", "P1Y", 2.0, 9000.0, 6300.0);
        redis["properties"]["netSavings"] = json!({"amount": 2700, "unit": "USD"});
        f.malformed.insert("RedisCache", json!({"value": [redis]}));
    })
    .await;
    let backends: Backends = vec![Arc::new(backend(&fake, vec![12, 36]))];
    let accounts = vec![account(SUB_A, "Payments prod", CLIENT_A, &secret)];
    let (progress, _watch) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &progress).await;

    let status = &collected.providers[0];
    assert_eq!((status.accounts_partial, status.accounts_failed), (1, 0), "the other services were collected");
    let account_failures = &status.failed_accounts[0];
    // CosmosDB's listing for both terms, Redis's P1Y item (its P3Y sweep
    // finds no item of its term, and succeeds).
    assert_eq!((account_failures.units_failed, account_failures.units_total), (3, 9));
    let failed: HashMap<&str, &str> =
        account_failures.failures.iter().map(|f| (f.service.as_str(), f.error.as_str())).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    let cosmos = failed["cosmos_db"];
    assert!(
        cosmos.contains("reservation recommendations (CosmosDB)") && cosmos.contains("`value` is a string"),
        "{cosmos}"
    );
    let redis = failed["redis_cache"];
    assert!(redis.contains("(RedisCache)") && redis.contains("netSavings.value is missing"), "{redis}");
    let services: HashSet<&str> = collected.recommendations.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, HashSet::from(["virtual_machines", "sql_database", "advisor"]));
    // Advisor keeps the App Service purchase; its VM reservation duplicates
    // virtual_machines and the resize is no purchase.
    let advisor: Vec<&Recommendation> = collected.recommendations.iter().filter(|r| r.service == "advisor").collect();
    assert_eq!(advisor.len(), 1);
    assert_eq!((advisor[0].resource_type.as_str(), advisor[0].platform.as_str()), ("P1v3", "AppService"));
    assert_eq!((advisor[0].estimated_monthly_savings, advisor[0].term_months), (amount("150"), 36));
    // A malformed answer is not retried, nor asked again by the run's
    // other term: one request.
    let requests = fake.arm_requests();
    assert_eq!(requests.iter().filter(|r| r.contains("'CosmosDB'")).count(), 1, "{requests:#?}");
}

#[tokio::test]
async fn a_subscription_the_app_may_not_read_fails_at_once_with_the_role_to_grant() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.forbidden.insert(SUB_B);
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_B, "Analytics", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let query =
        Query { account: &account, service: "advisor", region: None, sweep: monthly(12), calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "a 403 refuses the account's other calls too");
    let err = err.to_string();
    assert!(err.contains(&format!("Azure Advisor cost recommendations for subscription {SUB_B}: HTTP 403")), "{err}");
    assert!(err.contains("AuthorizationFailed") && err.contains("Reader"), "{err}");
    assert_eq!(calls.get(), (2, 1), "a token and one refused request: no retries");
}
