//! The AWS backend, through the official SDK, against a fake Cost Explorer
//! (AWS JSON 1.1: `POST /`, `X-Amz-Target: AWSInsightsIndexService.<op>`)
//! and a fake STS (query protocol, XML) on one local port, via the SDK's
//! endpoint override.
//!
//! - `fake`: the fake Cost Explorer and STS.
//! - `answers`: answers shaped as the API reference documents them.
//! - `mapping`: every page collected, every field mapped.
//! - `failures`: throttling, no data, refusals, malformed answers.
//! - `accounts`: organizations, many accounts, the request rate and count.

mod accounts;
mod answers;
mod failures;
mod fake;
mod mapping;

use std::net::SocketAddr;
use std::time::Duration;

use cudly_collector::providers::aws::{AwsBackend, AwsConfig};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::{CloudBackend, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{AwsCredentials, Credentials};
use cudly_core::domain::{Account, PaymentOption, Provider};
use cudly_core::money::Amount;

fn config(addr: SocketAddr, rate: f64, burst: u32) -> AwsConfig {
    AwsConfig {
        endpoint_url: Some(format!("http://{addr}")),
        sts_endpoint_url: Some(format!("http://{addr}")),
        region: "us-east-1".into(),
        lookback_days: 60,
        terms: vec![12],
        payment_options: vec![PaymentOption::NoUpfront],
        limits: CallLimits {
            limiter: RateLimiter::new(rate, burst),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                attempt_timeout: Duration::from_secs(10),
            },
        },
    }
}

async fn backend(config: AwsConfig) -> AwsBackend {
    let credentials = aws_sdk_costexplorer::config::Credentials::new("AKIDTEST", "test-secret", None, None, "test");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(config.endpoint_url.clone().unwrap())
        .credentials_provider(credentials)
        .load()
        .await;
    AwsBackend::with_sdk_config(config, sdk)
}

fn account(id: &str, credentials: Option<AwsCredentials>) -> Account {
    Account {
        provider: Provider::Aws,
        external_id: id.into(),
        display_name: format!("Account {id}"),
        credentials: credentials.map(Credentials::Aws),
    }
}

async fn fetch(
    backend: &AwsBackend,
    account: &Account,
    service: &'static str,
    calls: &RequestCount,
) -> Vec<cudly_core::domain::Recommendation> {
    let sweep = Sweep { term_months: 12, payment: PaymentOption::NoUpfront };
    let run = RunScope::default();
    backend.fetch(Query { account, service, region: None, sweep, calls, run: &run }).await.unwrap()
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}
