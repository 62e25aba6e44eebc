//! Azure backend tests against a fake ARM and Entra ID.
//!
//! The fake speaks the documented wire formats: the v2.0 token endpoint
//! (form-encoded client credentials, `invalid_client` refusals), the
//! Consumption API's reservation recommendations (2024-08-01, `legacy` and
//! `modern` kinds, `totalHours`, absolute nextLinks), with the reference's
//! own examples, and Advisor's recommendations (2023-01-01, string extended
//! properties).
//!
//! - `fake`: the fake Entra ID and ARM.
//! - `answers`: answers shaped as the references document them.
//! - `mapping`: every page collected, look-back totals per month.
//! - `failures`: throttling, malformed answers, a subscription refused.
//! - `tokens`: one token per app, refused secrets, revoked tokens.

mod answers;
mod failures;
mod fake;
mod mapping;
mod tokens;

use std::path::PathBuf;
use std::time::Duration;

use cudly_collector::providers::azure::{AzureBackend, AzureConfig};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::{CloudBackend, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{AzureCredentials, Credentials, SecretFileDirs, SecretRef};
use cudly_core::domain::{Account, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};

use fake::Fake;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUB_A: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const SUB_B: &str = "5d3c8a9e-7f21-4b6e-9c0d-2a1e4f6b8c73";
const CLIENT_A: &str = "11111111-2222-4333-8444-555555555555";
const CLIENT_B: &str = "99999999-8888-4777-8666-555555555555";

/// A client secret in a file (no process environment is touched).
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(value: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cudly-azure-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{value}\n")).unwrap();
        SecretFile(path)
    }

    fn reference(&self) -> SecretRef {
        SecretRef::File(self.0.clone())
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn account(subscription: &str, name: &str, client: &str, secret: &SecretFile) -> Account {
    Account {
        provider: Provider::Azure,
        external_id: subscription.into(),
        display_name: name.into(),
        credentials: Some(Credentials::Azure(AzureCredentials {
            tenant_id: TENANT.into(),
            client_id: client.into(),
            client_secret: secret.reference(),
        })),
    }
}

fn backend(fake: &Fake, terms: Vec<i32>) -> AzureBackend {
    AzureBackend::new(config(fake, terms)).unwrap()
}

/// The backend's configuration against `fake`: quick retries, secret files
/// read from the temporary directory.
fn config(fake: &Fake, terms: Vec<i32>) -> AzureConfig {
    AzureConfig {
        management_url: fake.base.clone(),
        login_url: fake.base.clone(),
        lookback_days: 30,
        terms,
        billing_currency: Currency::USD,
        limits: CallLimits {
            limiter: RateLimiter::new(1000.0, 100),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
                attempt_timeout: Duration::from_secs(5),
            },
        },
        secret_files: SecretFileDirs::new([std::env::temp_dir()]).unwrap(),
    }
}

fn monthly(term_months: i32) -> Sweep {
    Sweep { term_months, payment: PaymentOption::Monthly }
}

/// One sweep of `run` (its listings are shared by the run's sweeps).
async fn fetch_in(
    run: &RunScope,
    backend: &AzureBackend,
    account: &Account,
    service: &'static str,
    term: i32,
    calls: &RequestCount,
) -> Vec<Recommendation> {
    let query = Query { account, service, region: None, sweep: monthly(term), calls, run };
    backend.fetch(query).await.unwrap()
}

/// One sweep of a run of its own.
async fn fetch(
    backend: &AzureBackend,
    account: &Account,
    service: &'static str,
    term: i32,
    calls: &RequestCount,
) -> Vec<Recommendation> {
    fetch_in(&RunScope::default(), backend, account, service, term, calls).await
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}
