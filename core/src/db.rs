//! Connecting to Postgres, migrating it, and the one mapping of database
//! errors to gRPC statuses.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tonic::Status;

/// The migrations of `migrations/`, embedded in the binaries.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pool that connects on first use, so a service can start (and report
/// NOT_SERVING) while the database is still down. A request that finds the
/// database unreachable fails within the acquire timeout.
pub fn connect_lazy(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(pool_options(max_connections).connect_lazy_with(connect_options(url)?))
}

/// The URL's options plus session limits: a statement waits at most 5 s
/// for a row lock (the state row is locked only briefly; a longer wait
/// means its holder is stuck, and the caller gets a retryable error), and
/// a transaction left idle by a frozen process is ended after 30 s, which
/// frees its locks instead of leaving them to TCP keepalive.
fn connect_options(url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|err| anyhow::anyhow!("DATABASE_URL is not a valid Postgres URL: {err}"))?;
    Ok(options.options([("lock_timeout", "5s"), ("idle_in_transaction_session_timeout", "30s")]))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(3))
}

/// Connects, retrying with backoff for up to `patience` (a database that
/// starts after the service is normal in a cluster). The URL never reaches
/// a log line.
pub async fn connect(url: &SecretString, max_connections: u32, patience: Duration) -> anyhow::Result<PgPool> {
    let options = pool_options(max_connections);
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(250);
    loop {
        match options.clone().connect_with(connect_options(url)?).await {
            Ok(pool) => return Ok(pool),
            Err(err) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(err) => anyhow::bail!("could not connect to the database: {err}"),
        }
    }
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Maps a database error to a status without leaking its details: they go
/// to the log. Connection trouble is retryable (`UNAVAILABLE`); anything
/// else is `INTERNAL`.
pub fn database_status(err: &sqlx::Error) -> Status {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            tracing::warn!(error = %err, "database unavailable");
            Status::unavailable("database unavailable, try again")
        }
        // 55P03: a lock wait hit lock_timeout (the state row's holder is stuck).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "55P03") =>
        {
            tracing::warn!(error = %err, "database unavailable");
            Status::unavailable("database unavailable, try again")
        }
        _ => {
            tracing::error!(error = %err, "database error");
            Status::internal("internal error")
        }
    }
}
