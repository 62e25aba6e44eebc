//! What both services' command lines share: the subcommands, the database
//! and logging flags, and the lease TTL's parser.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use clap::Subcommand;
use secrecy::{ExposeSecret as _, SecretString};

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
    /// Postgres connection URL (or --database-url-file).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<SecretString>,

    /// File holding the Postgres connection URL, e.g. a mounted Secret, so
    /// the password stays out of the environment; a trailing newline is
    /// ignored. Not with --database-url.
    #[arg(long, env = "CUDLY_DATABASE_URL_FILE", global = true, conflicts_with = "database_url")]
    pub database_url_file: Option<PathBuf>,

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
        crate::db::connect(&self.url()?, self.db_max_connections, self.db_connect_timeout).await
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
        crate::db::connect_lazy(&self.url()?, self.db_max_connections)
    }

    /// The URL from `--database-url`, or read from `--database-url-file`
    /// (checked to be a Postgres URL here, so an error can name the file;
    /// no error shows the URL).
    fn url(&self) -> anyhow::Result<SecretString> {
        match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(file)) => {
                let url = crate::files::read_secret_line(file)?;
                sqlx::postgres::PgConnectOptions::from_str(url.expose_secret()).map_err(|err| {
                    anyhow::anyhow!("{} (CUDLY_DATABASE_URL_FILE): not a valid Postgres URL: {err}", file.display())
                })?;
                Ok(url)
            }
            (None, None) => anyhow::bail!(
                "a database is required: set DATABASE_URL (--database-url) or CUDLY_DATABASE_URL_FILE (--database-url-file)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> Result<CommonArgs, clap::Error> {
        Cli::try_parse_from([&["svc"], args].concat()).map(|cli| cli.common)
    }

    /// The defaults with only these two set: the tests may run with
    /// DATABASE_URL in their environment (scripts/with-postgres sets it).
    fn with(url: Option<&str>, file: Option<&std::path::Path>) -> CommonArgs {
        let mut args = parse(&[]).unwrap();
        args.database_url = url.map(|u| SecretString::from(u.to_string()));
        args.database_url_file = file.map(|f| f.to_path_buf());
        args
    }

    #[test]
    fn the_database_url_file_is_read_trimmed_and_never_quoted_in_errors() {
        let dir = std::env::temp_dir().join(format!("cudly-db-url-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        let secret = "postgres://cudly:s3cret-password@db.internal:5432/cudly?sslmode=require";
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        let args = with(None, Some(&file));
        assert_eq!(args.url().unwrap().expose_secret(), secret, "the trailing newline is dropped");

        let not_a_url = "postgres://cudly:s3cret-password@db.internal:port/cudly";
        std::fs::write(&file, not_a_url).unwrap();
        let err = format!("{:#}", args.url().unwrap_err());
        assert!(err.contains(&file.display().to_string()) && err.contains("CUDLY_DATABASE_URL_FILE"), "{err}");
        assert!(!err.contains("s3cret"), "the URL's password leaked: {err}");

        std::fs::write(&file, "\n").unwrap();
        let err = args.url().unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("empty"), "{err}");

        let missing = dir.join("missing");
        let err = with(None, Some(&missing)).url().unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_url_and_its_file_exclude_each_other_and_one_is_required() {
        let err = parse(&["--database-url", "postgres://h/d", "--database-url-file", "/run/url"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{err}");
        let err = with(None, None).url().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL") && err.contains("CUDLY_DATABASE_URL_FILE"), "{err}");
        let direct = with(Some("postgres://h/d"), None);
        assert_eq!(direct.url().unwrap().expose_secret(), "postgres://h/d");
    }
}
