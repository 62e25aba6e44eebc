//! Tokens: one for many concurrent calls, the metadata server without a
//! key, and an unusable key named without showing its content.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cudly_collector::providers::{CloudBackend, RequestCount, RunScope};
use cudly_core::domain::Account;

use super::answers::compute_rec;
use super::fake::{Fake, compute_parent, spawn};
use super::{KeyFile, backend, fetch, project, quick_retries};

#[tokio::test]
async fn many_concurrent_calls_share_one_token() {
    let fake = Arc::new(Fake::default());
    let p = "alpha-project";
    let regions = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"];
    for r in regions {
        fake.set_list(
            compute_parent(p, r),
            vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
        );
    }
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    // Each fetch in a run of its own: no list is shared, the token is.
    let runs: Vec<RunScope> = (0..regions.len() * 2).map(|_| RunScope::default()).collect();
    let all = futures_util::future::join_all(
        regions
            .iter()
            .flat_map(|r| [12, 36].map(move |term| (r, term)))
            .zip(&runs)
            .map(|((r, term), run)| fetch(run, &backend, &account, "compute", Some(r), term, &calls)),
    )
    .await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 1, "no stampede on the token endpoint, across runs");
    assert_eq!(calls.get(), (17, 0), "one grant and, in sixteen runs, one list each");
}

#[tokio::test]
async fn without_a_key_the_metadata_server_gives_the_token() {
    let fake = Arc::new(Fake::default());
    fake.set_regions("gamma-project", &["us-central1"]);
    let base = spawn(fake.clone()).await;
    let backend = backend(&base, quick_retries());
    let ambient = Account { credentials: None, ..project("gamma-project", None, None) };

    let calls = RequestCount::new();
    assert_eq!(backend.regions(&ambient, &calls).await.unwrap(), Some(vec!["us-central1".to_string()]));
    let no_key = project("gamma-project", None, None);
    let run = RunScope::default();
    assert!(fetch(&run, &backend, &no_key, "compute", Some("us-central1"), 12, &calls).await.unwrap().is_empty());
    assert_eq!(fake.metadata_grants.load(Ordering::SeqCst), 1);
    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unusable_key_is_named_and_its_content_never_shown() {
    let fake = Arc::new(Fake::default());
    let base = spawn(fake.clone()).await;
    let user_key = KeyFile::new(&base, "authorized_user");
    let backend = backend(&base, quick_retries());

    let calls = RequestCount::new();
    let err = backend.regions(&project("delta-project", Some(&user_key), None), &calls).await.unwrap_err().to_string();
    assert!(err.contains("GCP token for project delta-project"), "{err}");
    assert!(err.contains("only service_account keys are supported"), "{err}");
    assert!(err.contains(&user_key.0.display().to_string()), "names the key's reference: {err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert_eq!(calls.get(), (0, 0), "nothing sent");

    let missing = KeyFile(std::env::temp_dir().join("cudly-gcp-test-only-missing.json"));
    let err = backend.regions(&project("delta-project", Some(&missing), None), &calls).await.unwrap_err().to_string();
    assert!(err.contains("reading") && err.contains("not found"), "{err}");
}
