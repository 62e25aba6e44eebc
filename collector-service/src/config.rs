//! collector-service configuration: flags, each with an environment
//! variable and a documented default, validated at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use cudly_core::config::{Command, CommonArgs, parse_ttl};
use cudly_core::domain::Provider;
use cudly_core::files::read_token;
use cudly_core::metrics::{MetricsListen, parse_metrics_listen};
use cudly_core::money::Amount;
use cudly_core::quote::quoted;

use crate::accounts::SeedSpec;
use crate::auth::{InternalAuth, ServerTls};
use crate::notices::{self, NoticeRules, Percent};
use crate::providers::live::CloudArgs;

/// Runs cloud-commitment recommendation collections in the background for
/// api-service, one at a time under a heartbeated, fenced Postgres lease.
#[derive(Debug, Parser)]
#[command(name = "collector-service", version)]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Database and logging.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "CUDLY_COLLECTOR_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    /// Lease time-to-live. The lease is renewed every third of it; a crashed
    /// collector's lease is free again within it.
    #[arg(long, env = "CUDLY_LEASE_TTL", default_value = "30s", value_parser = parse_ttl)]
    pub lease_ttl: Duration,

    /// Accounts of one provider collected at once.
    #[arg(long, env = "CUDLY_MAX_ACCOUNT_PARALLELISM", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_account_parallelism: u32,

    /// Regions of one GCP (account, service) collected at once.
    #[arg(long, env = "CUDLY_GCP_REGION_PARALLELISM", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub gcp_region_parallelism: u32,

    /// Minimum time between two progress writes to the state row.
    #[arg(long, env = "CUDLY_PROGRESS_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// Providers to collect, in the order their results are merged.
    #[arg(long, env = "CUDLY_PROVIDERS", value_delimiter = ',', default_value = "aws,azure,gcp", value_parser = parse_provider)]
    pub providers: Vec<Provider>,

    /// Where recommendations come from: `simulated` generates deterministic,
    /// plausible data (demos, tests, benchmarks); `live` calls AWS Cost
    /// Explorer, Azure Consumption and Advisor, and GCP Recommender with
    /// each registered account's credentials.
    #[arg(long, env = "CUDLY_BACKEND", value_enum, default_value = "simulated")]
    pub backend: Backend,

    /// The live backends' settings.
    #[command(flatten)]
    pub clouds: CloudArgs,

    /// Simulated accounts to upsert at start-up, e.g. `aws=3,azure=2,gcp=2`
    /// (for local runs; empty seeds nothing).
    #[arg(long, env = "CUDLY_SEED_ACCOUNTS", default_value = "")]
    pub seed_accounts: SeedSpec,

    /// Simulated backend: seed of the generated data.
    #[arg(long, env = "CUDLY_SIM_SEED", default_value_t = 42)]
    pub sim_seed: u64,

    /// Simulated backend: mean latency of one cloud API call.
    #[arg(long, env = "CUDLY_SIM_LATENCY", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub sim_latency: Duration,

    /// Simulated backend: each call's latency is uniform in latency ± jitter.
    #[arg(long, env = "CUDLY_SIM_JITTER", default_value = "20ms", value_parser = humantime::parse_duration)]
    pub sim_jitter: Duration,

    /// Simulated backend: probability (0–1) that one call fails.
    #[arg(long, env = "CUDLY_SIM_FAILURE_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub sim_failure_rate: f64,

    /// How long shutdown waits for runs to release their leases.
    #[arg(long, env = "CUDLY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// File holding the bearer token callers (api-service) must send.
    #[arg(long, env = "CUDLY_COLLECTOR_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// PEM certificate chain: serve TLS and require client certificates
    /// signed by --tls-client-ca-file (mTLS).
    #[arg(long, env = "CUDLY_COLLECTOR_TLS_CERT_FILE", requires_all = ["tls_key_file", "tls_client_ca_file"])]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "CUDLY_COLLECTOR_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA whose client certificates are accepted.
    #[arg(long, env = "CUDLY_COLLECTOR_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Accept callers without credentials. For local runs only; the service
    /// logs a warning at start-up.
    #[arg(long, env = "CUDLY_COLLECTOR_INSECURE_NO_AUTH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub insecure_no_auth: bool,

    /// PEM CA certificate(s) trusted for the email channel's SMTP servers
    /// besides the public roots (a private mail relay). Unset: public roots
    /// only.
    #[arg(long, env = "CUDLY_NOTIFY_SMTP_CA_FILE")]
    pub notify_smtp_ca_file: Option<PathBuf>,

    /// Where Prometheus scrapes metrics (`GET /metrics`); `off` serves none.
    #[arg(long, env = "CUDLY_METRICS_LISTEN", default_value = "127.0.0.1:9091", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,

    /// Deliver notices from the outbox in this replica (every replica may;
    /// each delivery is claimed by one at a time).
    #[arg(long, env = "CUDLY_NOTIFY_DELIVER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub notify_deliver: bool,

    /// Notices sent at once by this replica.
    #[arg(long, env = "CUDLY_NOTIFY_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub notify_concurrency: u32,

    /// How often the outbox is read for due retries and deliveries whose
    /// notification was missed (a new delivery wakes the deliverer at once).
    #[arg(long, env = "CUDLY_NOTIFY_POLL_INTERVAL", default_value = "5s", value_parser = parse_positive)]
    pub notify_poll_interval: Duration,

    /// The first retry of a failed delivery waits about this long,
    /// doubling with every attempt (with jitter).
    #[arg(long, env = "CUDLY_NOTIFY_RETRY_BASE", default_value = "2s", value_parser = parse_positive)]
    pub notify_retry_base: Duration,

    /// No retry waits longer than this; a receiver's `Retry-After` is
    /// honoured up to it.
    #[arg(long, env = "CUDLY_NOTIFY_RETRY_MAX", default_value = "10m", value_parser = parse_positive)]
    pub notify_retry_max: Duration,

    /// A delivery still failing this long after its notice was recorded
    /// gets one last attempt then, and is marked failed if that fails too.
    #[arg(long, env = "CUDLY_NOTIFY_RETRY_FOR", default_value = "24h", value_parser = parse_positive)]
    pub notify_retry_for: Duration,

    /// Deadline of one request to a receiver (webhook, Slack, each SMTP
    /// step). A claimed delivery whose sender died is tried again after
    /// three times this.
    #[arg(long, env = "CUDLY_NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_positive)]
    pub notify_timeout: Duration,
    /// Notices: a recommendation is announced only when its estimated
    /// monthly savings are at least this decimal amount, in its own currency.
    #[arg(long, env = "CUDLY_NOTIFY_MIN_SAVINGS", default_value = "0", value_name = "AMOUNT", allow_negative_numbers = true, value_parser = notices::non_negative)]
    pub notify_min_savings: Amount,

    /// Notices: an announced recommendation is announced again when its
    /// savings grew by at least this percentage of the level it was last
    /// announced at, and by --notify-growth-amount.
    #[arg(long, env = "CUDLY_NOTIFY_GROWTH_SHARE", default_value = "20", value_name = "PERCENT", allow_negative_numbers = true, value_parser = Percent::parse)]
    pub notify_growth_share: Percent,

    /// Notices: the growth an announced recommendation also needs, at least,
    /// to be announced again: a decimal amount in its own currency (see
    /// --notify-growth-share).
    #[arg(long, env = "CUDLY_NOTIFY_GROWTH_AMOUNT", default_value = "10", value_name = "AMOUNT", allow_negative_numbers = true, value_parser = notices::non_negative)]
    pub notify_growth_amount: Amount,

    /// The console's address (http or https), linked from every notice.
    #[arg(long, env = "CUDLY_CONSOLE_URL", value_name = "URL", value_parser = parse_console_url)]
    pub console_url: Option<String>,
}

impl Config {
    /// The caller authentication these flags describe. No credential and no
    /// --insecure-no-auth is an error: the collector never runs open by
    /// accident.
    pub fn internal_auth(&self) -> anyhow::Result<InternalAuth> {
        let token = self.token_file.as_deref().map(read_token).transpose()?;
        let tls = match (&self.tls_cert_file, &self.tls_key_file, &self.tls_client_ca_file) {
            (Some(cert), Some(key), Some(ca)) => Some(ServerTls::load(cert, key, ca)?),
            _ => None,
        };
        let auth = InternalAuth { token, tls, insecure: self.insecure_no_auth };
        anyhow::ensure!(
            auth.is_configured() || auth.insecure,
            "collector-service needs caller authentication: set CUDLY_COLLECTOR_TOKEN_FILE and/or \
             CUDLY_COLLECTOR_TLS_CERT_FILE, _KEY_FILE and _CLIENT_CA_FILE (or CUDLY_COLLECTOR_INSECURE_NO_AUTH=true \
             for a local run)"
        );
        Ok(auth)
    }

    /// What a run announces, as these flags say.
    pub fn notice_rules(&self) -> NoticeRules {
        NoticeRules {
            min_savings: self.notify_min_savings,
            growth_share: self.notify_growth_share,
            growth_amount: self.notify_growth_amount,
            console_url: self.console_url.clone(),
        }
    }
}

/// Recommendation sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Generated data, for demos, tests and benchmarks.
    Simulated,
    /// The clouds' cost APIs.
    Live,
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    Provider::parse(s.trim()).ok_or_else(|| format!("{s:?} is not one of aws, azure, gcp"))
}

fn parse_positive(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".to_string()),
        Err(err) => Err(err.to_string()),
    }
}

/// An absolute http(s) URL with a host and no credentials: it is sent to
/// every channel.
fn parse_console_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s.trim()).map_err(|err| format!("{} is not a URL: {err}", quoted(s)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{} is not an http or https URL", quoted(s)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with credentials would be sent to every channel; give one without".into());
    }
    Ok(url.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_defaults_parse() {
        Config::command_for_tests().debug_assert();
        let config = Config::try_parse_from(["collector-service", "--database-url", "postgres://x"]).unwrap();
        assert_eq!(config.lease_ttl, Duration::from_secs(30));
        assert_eq!(config.providers, Provider::ALL);
        assert_eq!(config.max_account_parallelism, 20);
        assert!(config.notify_deliver);
        assert_eq!((config.notify_concurrency, config.notify_retry_for), (8, Duration::from_secs(24 * 3600)));
        let off = Config::try_parse_from(["collector-service", "--notify-deliver=false"]).unwrap();
        assert!(!off.notify_deliver);
        let rules = config.notice_rules();
        assert_eq!(rules.min_savings, Amount::ZERO);
        assert_eq!(rules.growth_share, Percent::parse("20").unwrap());
        assert_eq!(rules.growth_amount, Amount::from_units(10).unwrap());
        assert_eq!(rules.console_url, None);
    }

    #[test]
    fn notice_thresholds_are_exact_and_never_negative() {
        let config = Config::try_parse_from([
            "collector-service",
            "--notify-min-savings",
            "12.345",
            "--notify-growth-share",
            "12.5",
            "--console-url",
            "https://cudly.example.com/console",
        ])
        .unwrap();
        let rules = config.notice_rules();
        assert_eq!(rules.min_savings, Amount::parse("12.345").unwrap());
        assert_eq!(rules.growth_share, Percent::parse("12.5").unwrap());
        assert_eq!(rules.console_url.as_deref(), Some("https://cudly.example.com/console"));
        for flag in ["--notify-min-savings", "--notify-growth-share", "--notify-growth-amount"] {
            let err = Config::try_parse_from(["collector-service", flag, "-5"]).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains("negative"), "{err}");
        }
        let err =
            Config::try_parse_from(["collector-service", "--notify-growth-amount", "ten"]).unwrap_err().to_string();
        assert!(err.contains("--notify-growth-amount") && err.contains("not a decimal number"), "{err}");
        for bad in ["ftp://cudly.example.com", "cudly.example.com", "https://user:pw@cudly.example.com"] {
            let err = Config::try_parse_from(["collector-service", "--console-url", bad]).unwrap_err().to_string();
            assert!(err.contains("--console-url"), "{err}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = Config::try_parse_from(["collector-service", "--lease-ttl", "10ms"]).unwrap_err().to_string();
        assert!(err.contains("at least 300ms"), "{err}");
        let err = Config::try_parse_from(["collector-service", "--sim-failure-rate", "2"]).unwrap_err().to_string();
        assert!(err.contains("probability"), "{err}");
        let err = Config::try_parse_from(["collector-service", "--providers", "aws,oracle"]).unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
        let err = Config::try_parse_from(["collector-service", "--notify-retry-base", "0s"]).unwrap_err().to_string();
        assert!(err.contains("more than 0"), "{err}");
    }

    #[test]
    fn the_collector_never_runs_open_by_accident() {
        let config = Config::try_parse_from(["collector-service"]).unwrap();
        let err = config.internal_auth().unwrap_err().to_string();
        assert!(err.contains("CUDLY_COLLECTOR_TOKEN_FILE") && err.contains("INSECURE_NO_AUTH"), "{err}");
        let open = Config::try_parse_from(["collector-service", "--insecure-no-auth"]).unwrap();
        assert!(open.internal_auth().unwrap().insecure);
        let partial = Config::try_parse_from(["collector-service", "--tls-cert-file", "c"]);
        assert!(partial.is_err(), "a certificate needs its key and the client CA");
        let missing = Config::try_parse_from(["collector-service", "--token-file", "/nonexistent/token"]).unwrap();
        assert!(missing.internal_auth().unwrap_err().to_string().contains("/nonexistent/token"));
    }

    impl Config {
        fn command_for_tests() -> clap::Command {
            <Config as clap::CommandFactory>::command()
        }
    }
}
