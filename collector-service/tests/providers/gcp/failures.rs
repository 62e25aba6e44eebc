//! A disabled API reported instead of old data, throttling retried after
//! its Retry-After, a refused project failing alone, a malformed answer
//! failing only its service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudly_collector::engine::collect;
use cudly_collector::providers::{Backends, RequestCount, RunScope};
use cudly_core::domain::{AccountState, Provider, ProviderState};
use serde_json::json;

use super::answers::compute_rec;
use super::fake::{Fake, billing_parent, compute_parent, spawn};
use super::{BILLING, KeyFile, backend, fetch, project, quick_retries};

#[tokio::test]
async fn a_new_run_asks_again_and_reports_a_disabled_api_instead_of_old_data() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-central1");
    fake.set_regions(p, &[r]);
    fake.set_list(
        compute_parent(p, r),
        vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project(p, Some(&key), None)];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let first = collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    assert_eq!(first.outcome().0, cudly_core::domain::Outcome::Succeeded);
    assert_eq!(first.recommendations.len(), 1);

    // A second later the project's Recommender API is disabled.
    fake.disabled.lock().unwrap().insert(p.to_string());
    let second = collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    assert_eq!(second.outcome().0, cudly_core::domain::Outcome::Failed, "nothing was fetched in this run");
    assert!(second.recommendations.is_empty(), "the first run's list is not reported again");
    let refused = &second.providers[0].failed_accounts[0];
    assert_eq!(refused.state, Some(AccountState::Failed));
    assert!(
        refused.error.contains("SERVICE_DISABLED") || refused.error.contains("has not been used"),
        "{}",
        refused.error
    );
    assert!(second.complete_accounts.is_empty(), "the account keeps its rows");
    assert_eq!(fake.requests_to(&format!("/v1/projects/{p}/")).len(), 2, "each run asked the Recommender itself");
}

#[tokio::test]
async fn throttling_is_retried_after_the_retry_after_and_every_attempt_counts() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-west1");
    fake.set_list(
        compute_parent(p, r),
        vec![compute_rec(p, r, "a", "TWELVE_MONTH", "GENERAL_PURPOSE_E2", 4, ("-40", 0))],
    );
    fake.throttled.lock().unwrap().insert(compute_parent(p, r), 2);
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    let started = Instant::now();
    let recs = fetch(&RunScope::default(), &backend, &account, "compute", Some(r), 12, &calls).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(calls.get(), (4, 2), "a token grant, two 429s and the answer");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After: 1 was honoured twice: {:?}", started.elapsed());
    assert_eq!(fake.requests_to("/v1/").len(), 3);
}

#[tokio::test]
async fn a_refused_project_fails_alone_with_what_to_enable_and_grant() {
    let fake = Arc::new(Fake::default());
    for p in ["alpha-project", "beta-project"] {
        fake.set_regions(p, &["europe-west1", "us-central1"]);
        for r in ["europe-west1", "us-central1"] {
            fake.set_list(
                compute_parent(p, r),
                vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
            );
        }
    }
    fake.forbidden.lock().unwrap().insert("beta-project".into());
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project("alpha-project", Some(&key), None), project("beta-project", Some(&key), None)];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let collected = collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    let gcp = &collected.providers[0];
    assert_eq!((gcp.state, gcp.accounts_succeeded, gcp.accounts_failed), (ProviderState::PartiallySucceeded, 1, 1));
    assert_eq!(collected.complete_accounts, [(Provider::Gcp, "alpha-project".to_string())]);
    assert_eq!(collected.recommendations.len(), 2, "alpha's two regions");
    assert!(collected.recommendations.iter().all(|r| r.account_id == "alpha-project"));
    let beta = &gcp.failed_accounts[0];
    assert_eq!((beta.account_id.as_str(), beta.state), ("beta-project", Some(AccountState::Failed)));
    // compute in two regions × two terms; without a billing account the
    // spend-based services (global and both regions) answer nothing.
    assert_eq!((beta.units_failed, beta.units_total), (16, 16), "the refusal ended the sweep");
    assert!(!beta.failures.is_empty() && beta.failures.len() <= 2, "only the calls in flight were made");
    for failure in &beta.failures {
        assert_eq!((failure.account_id.as_str(), failure.service.as_str()), ("beta-project", "compute"));
        for needle in ["project beta-project", "HTTP 403", "Recommender API", "roles/recommender.computeViewer"] {
            assert!(failure.error.contains(needle), "{needle:?} missing from {:?}", failure.error);
        }
    }
    assert!(gcp.error.contains("1 of 2 accounts failed"), "{}", gcp.error);
    let asked = fake.requests_to("/v1/projects/beta-project/").len();
    assert!((1..=2).contains(&asked), "{asked}: a refusal is never retried, and it stops the account's other calls");
}

#[tokio::test]
async fn a_malformed_answer_fails_only_its_service() {
    let fake = Arc::new(Fake::default());
    let p = "alpha-project";
    fake.set_regions(p, &["asia-east1", "europe-west1", "us-central1"]);
    fake.set_list(
        compute_parent(p, "us-central1"),
        vec![compute_rec(p, "us-central1", "ok", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
    );
    let mut bad_units = compute_rec(p, "europe-west1", "bad", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0));
    bad_units["primaryImpact"]["costProjection"]["cost"]["units"] = json!("lots");
    fake.set_list(compute_parent(p, "europe-west1"), vec![bad_units]);
    fake.malformed.lock().unwrap().insert(compute_parent(p, "asia-east1"), "<html>oops</html>".into());
    fake.malformed.lock().unwrap().insert(billing_parent("global"), r#"{"recommendations": {"not": "a list"}}"#.into());
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project(p, Some(&key), Some(BILLING))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let collected = collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    assert_eq!(collected.recommendations.len(), 1, "us-central1 still collected");
    assert_eq!(collected.recommendations[0].region, "us-central1");
    let account = &collected.providers[0].failed_accounts[0];
    assert_eq!(account.state, Some(AccountState::PartiallySucceeded));
    // compute: 3 regions × 2 terms; each spend-based service: global and 3
    // regions × 2 terms. Failed: compute in asia-east1 and europe-west1, and
    // both spend-based services in global.
    assert_eq!((account.units_failed, account.units_total), (8, 22));
    let listed: Vec<(&str, &str)> = account.failures.iter().map(|f| (f.service.as_str(), f.region.as_str())).collect();
    assert_eq!(
        listed,
        [
            ("compute", "asia-east1"),
            ("compute", "asia-east1"),
            ("compute", "europe-west1"),
            ("compute", "europe-west1"),
            ("cloud_sql", "global")
        ],
        "the first five, in merge order"
    );
    let error_of = |service: &str, region: &str| {
        account.failures.iter().find(|f| f.service == service && f.region == region).unwrap().error.clone()
    };
    assert!(
        error_of("compute", "europe-west1").contains("recommendation projects/alpha-project"),
        "names the recommendation"
    );
    assert!(error_of("compute", "europe-west1").contains("\"lots\" is not an integer"));
    assert!(error_of("compute", "asia-east1").contains("malformed answer"));
    assert!(error_of("cloud_sql", "global").contains("malformed answer"));
}
