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
            Error::Database(db) => cudly_core::db::database_status(&db),
        }
    }
}
