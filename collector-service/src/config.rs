//! collector-service configuration: flags, each with an environment
//! variable and a documented default, validated at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::accounts::SeedSpec;
use crate::auth::{InternalAuth, ServerTls, read_token};
use crate::domain::Provider;
use crate::metrics::{MetricsListen, parse_metrics_listen};
use crate::providers::live::CloudArgs;
use crate::telemetry::LogFormat;

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

    /// Where Prometheus scrapes metrics (`GET /metrics`); `off` serves none.
    #[arg(long, env = "CUDLY_METRICS_LISTEN", default_value = "127.0.0.1:9091", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
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
}

/// Subcommands (both services take the same).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// Recommendation sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Generated data, for demos, tests and benchmarks.
    Simulated,
    /// The clouds' cost APIs.
    Live,
}

/// A lease TTL: at least 300 ms, since the lease is renewed every third
/// of it.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if ttl < Duration::from_millis(300) {
        return Err("must be at least 300ms (the lease is renewed every third of it)".into());
    }
    Ok(ttl)
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    Provider::parse(s.trim()).ok_or_else(|| format!("{s:?} is not one of aws, azure, gcp"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

/// Database and logging flags both services take.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<SecretString>,

    /// Maximum database connections in the pool (at least 2: a run or the
    /// freshness listener holds one while others serve requests).
    #[arg(long, env = "CUDLY_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000), global = true)]
    pub db_max_connections: u32,

    /// How long `migrate` keeps retrying its database connection (`serve`
    /// starts at once and reports NOT_SERVING until the database answers).
    #[arg(long, env = "CUDLY_DB_CONNECT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub db_connect_timeout: Duration,

    /// Log line format (the filter comes from RUST_LOG, default info).
    #[arg(long, env = "CUDLY_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// Connects to the database these flags name, retrying for
    /// `--db-connect-timeout`.
    pub async fn connect(&self) -> anyhow::Result<sqlx::PgPool> {
        crate::db::connect(self.url()?, self.db_max_connections, self.db_connect_timeout).await
    }

    /// A pool that connects on first use (see [`crate::db::connect_lazy`]).
    pub fn connect_lazy(&self) -> anyhow::Result<sqlx::PgPool> {
        crate::db::connect_lazy(self.url()?, self.db_max_connections)
    }

    fn url(&self) -> anyhow::Result<&SecretString> {
        self.database_url.as_ref().ok_or_else(|| anyhow::anyhow!("DATABASE_URL (or --database-url) is required"))
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
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = Config::try_parse_from(["collector-service", "--lease-ttl", "10ms"]).unwrap_err().to_string();
        assert!(err.contains("at least 300ms"), "{err}");
        let err = Config::try_parse_from(["collector-service", "--sim-failure-rate", "2"]).unwrap_err().to_string();
        assert!(err.contains("probability"), "{err}");
        let err = Config::try_parse_from(["collector-service", "--providers", "aws,oracle"]).unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
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
