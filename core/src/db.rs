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

/// The schema version this build was made for: its latest embedded
/// migration.
pub fn expected_schema_version() -> i64 {
    embedded_versions().max().unwrap_or(0)
}

fn embedded_versions() -> impl Iterator<Item = i64> {
    MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version)
}

/// Where the database's schema stands against the migrations this build
/// embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Every embedded migration is applied, and nothing newer.
    Current,
    /// Every embedded migration is applied, and newer ones too (a newer
    /// release migrated the database, as a rolling upgrade does before its
    /// pods replace these): served, since migrations are applied before the
    /// release that needs them and must keep the previous one working.
    Newer {
        /// The latest version applied.
        applied: i64,
    },
    /// An embedded migration is not applied yet: `migrate` has not run.
    Behind {
        /// The latest version applied (`None`: no migration at all).
        applied: Option<i64>,
    },
    /// A migration failed half-way (sqlx recorded it as unsuccessful): an
    /// operator must repair it before anything is served.
    Failed {
        /// The failed migration.
        version: i64,
    },
}

impl Schema {
    /// Whether a service built with these migrations can serve.
    pub fn is_usable(self) -> bool {
        matches!(self, Schema::Current | Schema::Newer { .. })
    }

    /// Judges the applied migrations `(version, success)` against the
    /// embedded ones.
    fn judge(applied: &[(i64, bool)]) -> Schema {
        if let Some(&(version, _)) = applied.iter().find(|(_, success)| !success) {
            return Schema::Failed { version };
        }
        let latest = applied.iter().map(|&(version, _)| version).max();
        if embedded_versions().any(|v| !applied.iter().any(|&(a, _)| a == v)) {
            return Schema::Behind { applied: latest };
        }
        match latest {
            Some(latest) if latest > expected_schema_version() => Schema::Newer { applied: latest },
            _ => Schema::Current,
        }
    }
}

/// Reads the applied migrations and judges them: one query, which also
/// tells whether the database answers at all (an error).
pub async fn schema(pool: &PgPool) -> Result<Schema, sqlx::Error> {
    let applied = sqlx::query!("SELECT version, success FROM _sqlx_migrations").fetch_all(pool).await;
    match applied {
        Ok(rows) => Ok(Schema::judge(&rows.into_iter().map(|r| (r.version, r.success)).collect::<Vec<_>>())),
        // 42P01 undefined_table: no migration ever ran here.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Ok(Schema::Behind { applied: None }),
        Err(err) => Err(err),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_usable_once_every_embedded_migration_is_applied() {
        let embedded: Vec<(i64, bool)> = embedded_versions().map(|v| (v, true)).collect();
        let expected = expected_schema_version();
        assert_eq!(Schema::judge(&embedded), Schema::Current);
        assert_eq!(Schema::judge(&[]), Schema::Behind { applied: None });
        let behind = &embedded[..embedded.len() - 1];
        assert_eq!(Schema::judge(behind), Schema::Behind { applied: behind.iter().map(|m| m.0).max() });
        let mut newer = embedded.clone();
        newer.push((expected + 1, true));
        assert_eq!(Schema::judge(&newer), Schema::Newer { applied: expected + 1 });
        let mut failed = embedded.clone();
        failed.last_mut().unwrap().1 = false;
        assert_eq!(Schema::judge(&failed), Schema::Failed { version: expected });
        let mut gap = embedded.clone();
        gap.remove(0);
        assert!(!Schema::judge(&gap).is_usable(), "a migration skipped in the middle is missing too");
        assert!(Schema::Current.is_usable() && Schema::Newer { applied: 1 }.is_usable());
    }
}
