//! The collector's errors and their one mapping to gRPC statuses.

use tonic::Status;

/// Why a `Collect` call was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The delivered run does not hold the lease (stale or unknown generation).
    #[error("run {collection_id} generation {generation} does not hold the collection lease")]
    NotLeaseHolder {
        /// The delivered run id.
        collection_id: uuid::Uuid,
        /// The delivered generation.
        generation: i64,
    },
    /// The collector is shutting down and takes no new runs.
    #[error("collector shutting down")]
    ShuttingDown,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(msg) => Status::invalid_argument(msg),
            Error::NotLeaseHolder { .. } => Status::failed_precondition(err.to_string()),
            Error::ShuttingDown => Status::unavailable(err.to_string()),
            Error::Database(db) => database_status(&db),
        }
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
