//! Entra ID tokens: one per app however many fetches, a refused secret
//! failing only its account (and asked once), a rotated secret tried at
//! once, a token ARM rejects replaced.

use std::collections::HashSet;
use std::sync::Arc;

use cudly_collector::engine;
use cudly_collector::providers::{Backends, CloudBackend, Query, RequestCount, RunScope};
use cudly_core::domain::{AccountState, Provider, ProviderState};
use futures_util::future::join_all;

use super::fake::start;
use cudly_collector::providers::azure::{AzureBackend, AzureConfig};
use cudly_core::credentials::SecretFileDirs;

use super::{CLIENT_A, CLIENT_B, SUB_A, SUB_B, SecretFile, TENANT, account, backend, config, fetch, monthly};

#[tokio::test]
async fn a_refused_client_secret_fails_only_its_account_and_says_which_app_without_the_secret() {
    let good = SecretFile::new("client-secret-a");
    let stale = SecretFile::new("an-expired-secret-b");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.secrets.insert(CLIENT_B, "the-current-secret-b".into());
    })
    .await;
    let backends: Backends = vec![Arc::new(backend(&fake, vec![12, 36]))];
    let accounts =
        vec![account(SUB_A, "Payments prod", CLIENT_A, &good), account(SUB_B, "Analytics", CLIENT_B, &stale)];
    let (progress, _watch) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &progress).await;

    let status = &collected.providers[0];
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (1, 1), "{status:#?}");
    assert_eq!(status.state, ProviderState::PartiallySucceeded);
    let refused = &status.failed_accounts[0];
    assert_eq!((refused.account_id.as_str(), refused.state), (SUB_B, Some(AccountState::Failed)));
    assert_eq!((refused.units_failed, refused.units_total), (9, 9), "4 services × 2 terms, and Advisor");
    assert!(!collected.recommendations.is_empty());
    assert!(collected.recommendations.iter().all(|r| r.account_id == SUB_A));
    let services: HashSet<&str> = collected.recommendations.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, HashSet::from(["virtual_machines", "sql_database", "cosmos_db", "redis_cache", "advisor"]));
    assert_eq!(collected.complete_accounts, vec![(Provider::Azure, SUB_A.to_string())]);

    assert!(!refused.failures.is_empty());
    assert!(refused.error.contains("Entra ID refused client"), "{}", refused.error);
    for failure in &refused.failures {
        assert_eq!(failure.account_id, SUB_B);
        let error = &failure.error;
        assert!(error.contains(&format!("Azure token for subscription {SUB_B}: ")), "{error}");
        assert!(error.contains(&format!("Entra ID refused client {CLIENT_B} in tenant {TENANT}")), "{error}");
        assert!(error.contains("AADSTS7000215") && error.contains(&stale.reference().to_string()), "{error}");
        assert!(!error.contains("an-expired-secret-b") && !error.contains("Trace ID"), "{error}");
    }
    assert!(status.error.contains(CLIENT_B), "{}", status.error);
    // Its five services and nine sweeps asked Entra ID once, not nine times.
    assert_eq!(fake.token_requests_of(CLIENT_B), 1);
    assert_eq!(fake.token_requests_of(CLIENT_A), 1);
}

#[tokio::test]
async fn a_client_secret_outside_the_allowed_directories_fails_its_account_and_is_never_read() {
    let allowed = std::env::temp_dir().join(format!("cudly-azure-allowed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&allowed).unwrap();
    let inside = SecretFile(allowed.join("client-a"));
    std::fs::write(&inside.0, "client-secret-a\n").unwrap();
    // A valid secret, but outside the allowed directory, reached through a
    // link that is inside it.
    let outside = SecretFile::new("the-current-secret-b");
    let link = SecretFile(allowed.join("client-b"));
    std::os::unix::fs::symlink(&outside.0, &link.0).unwrap();
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.secrets.insert(CLIENT_B, "the-current-secret-b".into());
    })
    .await;
    let config =
        AzureConfig { secret_files: SecretFileDirs::new([allowed.clone()]).unwrap(), ..config(&fake, vec![12]) };
    let backends: Backends = vec![Arc::new(AzureBackend::new(config).unwrap())];
    let accounts =
        vec![account(SUB_A, "Payments prod", CLIENT_A, &inside), account(SUB_B, "Analytics", CLIENT_B, &link)];
    let (progress, _watch) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &cudly_testkit::settings::engine(), &progress).await;

    let status = &collected.providers[0];
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (1, 1), "{status:#?}");
    let failed = &status.failed_accounts[0];
    assert_eq!((failed.account_id.as_str(), failed.state), (SUB_B, Some(AccountState::Failed)));
    assert!(failed.error.contains("is not inside a directory secret files may be read from"), "{}", failed.error);
    assert!(failed.error.contains("CUDLY_SECRET_FILE_DIRS"), "says what to change: {}", failed.error);
    for error in std::iter::once(&failed.error).chain(failed.failures.iter().map(|f| &f.error)) {
        assert!(!error.contains("the-current-secret-b"), "no file content in a message: {error}");
    }
    assert_eq!(fake.token_requests_of(CLIENT_B), 0, "the secret was never sent");
    drop((link, inside));
    std::fs::remove_dir_all(&allowed).unwrap();
}

#[tokio::test]
async fn one_token_serves_every_fetch_of_an_app_even_when_they_start_together() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let accounts = [account(SUB_A, "Payments prod", CLIENT_A, &secret), account(SUB_B, "Analytics", CLIENT_A, &secret)];
    let calls = RequestCount::new();
    let run = RunScope::default();
    let services = ["virtual_machines", "sql_database", "cosmos_db", "redis_cache", "advisor"];
    let fetches = accounts.iter().flat_map(|a| services.iter().map(move |s| (a, *s)));
    let results = join_all(fetches.map(|(account, service)| {
        let query = Query { account, service, region: None, sweep: monthly(36), calls: &calls, run: &run };
        backend.fetch(query)
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for account in &accounts {
        fetch(&backend, account, "virtual_machines", 12, &calls).await;
    }
    assert_eq!(fake.token_requests_of(CLIENT_A), 1, "ten concurrent fetches and two more asked once");
}

#[tokio::test]
async fn a_refused_app_is_asked_once_for_all_its_subscriptions_and_a_new_secret_is_tried_at_once() {
    let secret = SecretFile::new("an-expired-secret-b");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_B, "the-current-secret-b".into());
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let analytics = account(SUB_B, "Analytics", CLIENT_B, &secret);
    let reporting = account(SUB_A, "Reporting", CLIENT_B, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    for account in [&analytics, &reporting] {
        let query = Query { account, service: "cosmos_db", region: None, sweep: monthly(12), calls: &calls, run: &run };
        let err = backend.fetch(query).await.unwrap_err().to_string();
        // Each failure names its own subscription, though one answer is reused.
        let expected =
            format!("Azure token for subscription {}: Entra ID refused client {CLIENT_B}", account.external_id);
        assert!(err.starts_with(&expected), "{err}");
    }
    assert_eq!(fake.token_requests_of(CLIENT_B), 1);
    assert_eq!(calls.get(), (1, 1));

    // The operator rotates the secret behind the same reference.
    std::fs::write(&secret.0, "the-current-secret-b").unwrap();
    let recs = fetch(&backend, &reporting, "cosmos_db", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(fake.token_requests_of(CLIENT_B), 2);
}

#[tokio::test]
async fn a_token_arm_rejects_is_replaced_by_the_next_fetch() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.revoke_first_token = true;
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let query =
        Query { account: &account, service: "redis_cache", region: None, sweep: monthly(12), calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 401") && err.contains("ExpiredAuthenticationToken"), "{err}");
    let recs = fetch(&backend, &account, "redis_cache", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(fake.token_requests_of(CLIENT_A), 2, "the rejected token was not kept");
}
