//! The GCP backend against one fake server playing Google's OAuth2 token
//! endpoint, the metadata server, the Recommender API (v1) and Compute
//! Engine's `regions.list`, speaking their documented JSON. The service
//! account's key is a test-only RSA key under `fixtures/`; the fake checks
//! each grant's RS256 signature with its public half.
//!
//! - `fake`: the fake server.
//! - `answers`: recommendations as the Recommender writes them.
//! - `mapping`: every page of regions and recommendations, ACTIVE ones
//!   only, spend-based ones in every location, amounts and currencies.
//! - `failures`: a disabled API, throttling, a refused project, malformed
//!   answers.
//! - `tokens`: one token for many calls, the metadata server, unusable keys.

mod answers;
mod failures;
mod fake;
mod mapping;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::gcp::{GcpBackend, GcpConfig};
use cudly_collector::providers::{CloudBackend, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{Credentials, GcpCredentials, SecretFileDirs, SecretRef};
use cudly_core::domain::{Account, PaymentOption, Provider};
use cudly_core::money::Amount;
use serde_json::{Value, json};

use fake::{Fake, compute_parent, spawn};

const PRIVATE_KEY: &str = include_str!("../fixtures/gcp-sa-test-only.key.pem");
const CLIENT_EMAIL: &str = "cudly-collector@cudly-test.iam.gserviceaccount.com";
const BILLING: &str = "01A2B3-C4D5E6-F7A8B9";

/// A service-account key file for the fake, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(base: &str, kind: &str) -> KeyFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("cudly-gcp-test-only-{}-{n}.json", std::process::id()));
        let key = json!({
            "type": kind,
            "project_id": "cudly-test",
            "private_key_id": "test-key-id",
            "private_key": PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{base}/token")
        });
        std::fs::write(&path, serde_json::to_vec(&key).unwrap()).unwrap();
        KeyFile(path)
    }

    fn secret(&self) -> SecretRef {
        SecretRef::File(self.0.clone())
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn project(id: &str, key: Option<&KeyFile>, billing: Option<&str>) -> Account {
    Account {
        provider: Provider::Gcp,
        external_id: id.into(),
        display_name: format!("Project {id}"),
        credentials: Some(Credentials::Gcp(GcpCredentials {
            service_account_key: key.map(KeyFile::secret),
            billing_account_id: billing.map(str::to_string),
        })),
    }
}

fn backend(base: &str, retry: RetryPolicy) -> GcpBackend {
    GcpBackend::new(GcpConfig {
        recommender_url: base.into(),
        compute_url: base.into(),
        metadata_url: base.into(),
        limits: CallLimits { limiter: RateLimiter::new(1000.0, 100), retry },
        secret_files: SecretFileDirs::new([std::env::temp_dir()]).unwrap(),
    })
    .unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }
}

fn query<'a>(
    run: &'a RunScope,
    account: &'a Account,
    service: &'static str,
    region: Option<&'a str>,
    term_months: i32,
    calls: &'a RequestCount,
) -> Query<'a> {
    Query { account, service, region, sweep: Sweep { term_months, payment: PaymentOption::Monthly }, calls, run }
}

/// One sweep of `run` (its lists are shared by the run's sweeps).
async fn fetch(
    run: &RunScope,
    backend: &GcpBackend,
    account: &Account,
    service: &'static str,
    region: Option<&str>,
    term_months: i32,
    calls: &RequestCount,
) -> Result<Vec<cudly_core::domain::Recommendation>, String> {
    backend.fetch(query(run, account, service, region, term_months, calls)).await.map_err(|e| e.to_string())
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

/// The 12-month compute sweep of project `p` in region `r`, whose list the
/// fake serves as `recs`.
async fn one_sweep(fake: &Arc<Fake>, p: &str, r: &str, recs: Vec<Value>) -> Vec<cudly_core::domain::Recommendation> {
    fake.set_list(compute_parent(p, r), recs);
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);
    fetch(&RunScope::default(), &backend, &account, "compute", Some(r), 12, &RequestCount::new()).await.unwrap()
}
