//! What both services' command lines share: the subcommands, the database
//! and logging flags, and the lease TTL's parser.

use std::time::Duration;

use clap::Subcommand;
use secrecy::SecretString;

use crate::telemetry::LogFormat;

/// Subcommands (both services take the same).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
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

    /// Applies every pending migration to the database these flags name:
    /// what the `migrate` subcommand does.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        crate::db::migrate(&self.connect().await?).await?;
        tracing::info!("migrations applied");
        Ok(())
    }

    /// A pool that connects on first use (see [`crate::db::connect_lazy`]).
    pub fn connect_lazy(&self) -> anyhow::Result<sqlx::PgPool> {
        crate::db::connect_lazy(self.url()?, self.db_max_connections)
    }

    fn url(&self) -> anyhow::Result<&SecretString> {
        self.database_url.as_ref().ok_or_else(|| anyhow::anyhow!("DATABASE_URL (or --database-url) is required"))
    }
}
