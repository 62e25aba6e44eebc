//! The live backends' settings (flags with environment variables and
//! conservative defaults) and their construction.

use std::sync::Arc;
use std::time::Duration;

use cudly_core::credentials::SecretFileDirs;
use cudly_core::domain::{PaymentOption, Provider};
use cudly_core::money::Currency;

use super::Backends;
use super::aws::{AwsBackend, AwsConfig};
use super::azure::{AzureBackend, AzureConfig};
use super::calls::{CallLimits, RateLimiter, RetryPolicy};
use super::gcp::{GcpBackend, GcpConfig};

/// Settings of the live (real cloud) backends.
#[derive(Debug, Clone, clap::Args)]
pub struct CloudArgs {
    /// AWS: Cost Explorer requests per second, shared by every account
    /// (each request is billed; Cost Explorer throttles beyond a few a second).
    #[arg(long, env = "CUDLY_AWS_RATE", default_value_t = 5.0, value_parser = parse_rate)]
    pub aws_rate: f64,

    /// AWS: days of usage recommendations consider: 7, 30 or 60.
    #[arg(long, env = "CUDLY_AWS_LOOKBACK_DAYS", default_value_t = 30, value_parser = parse_lookback)]
    pub aws_lookback_days: u32,

    /// AWS: terms swept, comma-separated: 1y, 3y.
    #[arg(long, env = "CUDLY_AWS_TERMS", value_delimiter = ',', default_value = "1y,3y", value_parser = parse_term)]
    pub aws_terms: Vec<i32>,

    /// AWS: payment options swept, comma-separated: no_upfront,
    /// partial_upfront, all_upfront.
    #[arg(long, env = "CUDLY_AWS_PAYMENT_OPTIONS", value_delimiter = ',',
          default_value = "no_upfront,partial_upfront,all_upfront", value_parser = parse_aws_payment)]
    pub aws_payment_options: Vec<PaymentOption>,

    /// AWS: Cost Explorer's region.
    #[arg(long, env = "CUDLY_AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,

    /// AWS: endpoint override for Cost Explorer (a VPC endpoint, or a
    /// local fake).
    #[arg(long, env = "CUDLY_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// AWS: endpoint override for STS, which assumes the accounts' roles.
    #[arg(long, env = "CUDLY_AWS_STS_ENDPOINT_URL")]
    pub aws_sts_endpoint_url: Option<String>,

    /// Azure: ARM requests per second, shared by every subscription (ARM
    /// throttles reads per subscription and per principal, the cost APIs
    /// more strictly).
    #[arg(long, env = "CUDLY_AZURE_RATE", default_value_t = 2.0, value_parser = parse_rate)]
    pub azure_rate: f64,

    /// Azure: look-back period of reservation recommendations: 7, 30 or 60
    /// days.
    #[arg(long, env = "CUDLY_AZURE_LOOKBACK_DAYS", default_value_t = 30, value_parser = parse_lookback)]
    pub azure_lookback_days: u32,

    /// Azure: reservation terms swept, comma-separated: 1y, 3y.
    #[arg(long, env = "CUDLY_AZURE_TERMS", value_delimiter = ',', default_value = "1y,3y", value_parser = parse_term)]
    pub azure_terms: Vec<i32>,

    /// Azure: the currency of amounts Azure reports without one (legacy
    /// reservation recommendations of Enterprise Agreement and pay-as-you-go
    /// subscriptions, Advisor answers without `savingsCurrency`): your
    /// billing currency, as an ISO 4217 code.
    #[arg(long, env = "CUDLY_AZURE_BILLING_CURRENCY", default_value = "USD", value_parser = parse_currency)]
    pub azure_billing_currency: Currency,

    /// Azure: Resource Manager endpoint.
    #[arg(long, env = "CUDLY_AZURE_MANAGEMENT_URL", default_value = AzureConfig::DEFAULT_MANAGEMENT_URL)]
    pub azure_management_url: String,

    /// Azure: Entra ID (login) endpoint.
    #[arg(long, env = "CUDLY_AZURE_LOGIN_URL", default_value = AzureConfig::DEFAULT_LOGIN_URL)]
    pub azure_login_url: String,

    /// GCP: Recommender and Compute requests per second, shared by every
    /// project (the Recommender API's default quota is 100 reads a minute).
    #[arg(long, env = "CUDLY_GCP_RATE", default_value_t = 1.5, value_parser = parse_rate)]
    pub gcp_rate: f64,

    /// GCP: Recommender API endpoint.
    #[arg(long, env = "CUDLY_GCP_RECOMMENDER_URL", default_value = GcpConfig::DEFAULT_RECOMMENDER_URL)]
    pub gcp_recommender_url: String,

    /// GCP: Compute Engine API endpoint (region lists).
    #[arg(long, env = "CUDLY_GCP_COMPUTE_URL", default_value = GcpConfig::DEFAULT_COMPUTE_URL)]
    pub gcp_compute_url: String,

    /// GCP: metadata server (tokens for projects without a key reference).
    #[arg(long, env = "CUDLY_GCP_METADATA_URL", default_value = GcpConfig::DEFAULT_METADATA_URL)]
    pub gcp_metadata_url: String,

    /// All clouds: attempts per call, the first included, on throttling,
    /// server errors and timeouts (authentication and other client errors
    /// are never retried).
    #[arg(long, env = "CUDLY_CLOUD_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub cloud_max_attempts: u32,

    /// All clouds: deadline of one attempt.
    #[arg(long, env = "CUDLY_CLOUD_ATTEMPT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub cloud_attempt_timeout: Duration,

    /// All clouds: the first retry waits up to this long (full jitter),
    /// doubling with every retry.
    #[arg(long, env = "CUDLY_CLOUD_BACKOFF_BASE", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub cloud_backoff_base: Duration,

    /// All clouds: no retry waits longer than this (nor longer than a
    /// `Retry-After` up to it).
    #[arg(long, env = "CUDLY_CLOUD_BACKOFF_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
    pub cloud_backoff_max: Duration,

    /// Azure and GCP: the directories that `file:` credential references
    /// may be read from, comma-separated (symbolic links are resolved
    /// first: they must stay inside). Where the cloud secrets are mounted;
    /// never the collector's own secrets, /proc, /sys or /dev.
    #[arg(long, env = "CUDLY_SECRET_FILE_DIRS", default_value = "/var/run/secrets/cudly/clouds")]
    pub secret_file_dirs: SecretFileDirs,
}

impl CloudArgs {
    /// A provider's limits: an evenly spaced `rate` (a burst of one), and the
    /// shared retry policy.
    fn limits(&self, rate: f64) -> CallLimits {
        CallLimits {
            limiter: RateLimiter::new(rate, 1),
            retry: RetryPolicy {
                max_attempts: self.cloud_max_attempts,
                base_delay: self.cloud_backoff_base,
                max_delay: self.cloud_backoff_max,
                attempt_timeout: self.cloud_attempt_timeout,
            },
        }
    }
}

/// The live backends of `providers`, in that order.
pub async fn live_backends(args: &CloudArgs, providers: &[Provider]) -> anyhow::Result<Backends> {
    let mut backends: Backends = Vec::new();
    for provider in providers {
        match provider {
            Provider::Aws => {
                let config = AwsConfig {
                    endpoint_url: args.aws_endpoint_url.clone(),
                    sts_endpoint_url: args.aws_sts_endpoint_url.clone(),
                    region: args.aws_region.clone(),
                    lookback_days: args.aws_lookback_days,
                    terms: args.aws_terms.clone(),
                    payment_options: args.aws_payment_options.clone(),
                    limits: args.limits(args.aws_rate),
                };
                backends.push(Arc::new(AwsBackend::new(config).await));
            }
            Provider::Azure => {
                let config = AzureConfig {
                    management_url: args.azure_management_url.clone(),
                    login_url: args.azure_login_url.clone(),
                    lookback_days: args.azure_lookback_days,
                    terms: args.azure_terms.clone(),
                    billing_currency: args.azure_billing_currency,
                    limits: args.limits(args.azure_rate),
                    secret_files: args.secret_file_dirs.clone(),
                };
                backends.push(Arc::new(AzureBackend::new(config)?));
            }
            Provider::Gcp => {
                let config = GcpConfig {
                    recommender_url: args.gcp_recommender_url.clone(),
                    compute_url: args.gcp_compute_url.clone(),
                    metadata_url: args.gcp_metadata_url.clone(),
                    limits: args.limits(args.gcp_rate),
                    secret_files: args.secret_file_dirs.clone(),
                };
                backends.push(Arc::new(GcpBackend::new(config)?));
            }
        }
    }
    Ok(backends)
}

fn parse_currency(s: &str) -> Result<Currency, String> {
    Currency::parse(s)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000.0 => Ok(rate),
        _ => Err(format!("{s:?} is not a rate in requests per second (more than 0, at most 10000)")),
    }
}

fn parse_lookback(s: &str) -> Result<u32, String> {
    match s.trim() {
        "7" => Ok(7),
        "30" => Ok(30),
        "60" => Ok(60),
        _ => Err(format!("{s:?}: the clouds offer look-backs of 7, 30 or 60 days")),
    }
}

fn parse_term(s: &str) -> Result<i32, String> {
    match s.trim() {
        "1y" | "12" => Ok(12),
        "3y" | "36" => Ok(36),
        _ => Err(format!("{s:?} is not a term: 1y or 3y")),
    }
}

fn parse_aws_payment(s: &str) -> Result<PaymentOption, String> {
    match PaymentOption::parse(s.trim()) {
        Some(p @ (PaymentOption::NoUpfront | PaymentOption::PartialUpfront | PaymentOption::AllUpfront)) => Ok(p),
        _ => Err(format!("{s:?} is not one of no_upfront, partial_upfront, all_upfront")),
    }
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::Provider;

    use super::{CloudArgs, live_backends, parse_aws_payment, parse_lookback, parse_rate, parse_term};

    #[test]
    fn cloud_settings_are_checked() {
        assert_eq!(parse_term("3y").unwrap(), 36);
        assert!(parse_term("5y").unwrap_err().contains("1y or 3y"));
        assert!(parse_lookback("14").unwrap_err().contains("7, 30 or 60"));
        assert!(parse_rate("0").is_err() && parse_rate("NaN").is_err() && parse_rate("2.5").is_ok());
        assert!(parse_aws_payment("monthly").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        clouds: CloudArgs,
    }

    #[tokio::test]
    async fn the_live_backends_come_in_the_configured_provider_order() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["collector", "--aws-endpoint-url", "http://127.0.0.1:9"]).unwrap();
        assert_eq!(cli.clouds.aws_terms, [12, 36]);
        assert_eq!(cli.clouds.aws_lookback_days, 30);
        let backends = live_backends(&cli.clouds, &[Provider::Gcp, Provider::Aws, Provider::Azure]).await.unwrap();
        let order: Vec<Provider> = backends.iter().map(|b| b.provider()).collect();
        assert_eq!(order, [Provider::Gcp, Provider::Aws, Provider::Azure]);
        // 8 services × 2 terms × 3 payment options by default.
        assert_eq!(backends[1].services().len(), 8);
        assert_eq!(backends[1].sweeps("ec2").len(), 6);
        let err = Cli::try_parse_from(["collector", "--aws-lookback-days", "14"]).err().unwrap().to_string();
        assert!(err.contains("7, 30 or 60"), "{err}");
    }
}
