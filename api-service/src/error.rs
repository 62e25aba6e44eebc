//! api-service errors and their one mapping to gRPC statuses.

use tonic::Status;

use crate::hub::WatchError;

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; the message starts with the field's name.
    #[error("{0}")]
    InvalidArgument(String),
    /// What the request names does not exist; the message says what.
    #[error("{0}")]
    NotFound(String),
    /// What the request would create exists already; the message says what.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is sound but the state it meets forbids it (a cap
    /// reached); the message says what to change first.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The collector could not take the run; the lease taken for it was
    /// released, so the next refresh can try again.
    #[error("collector unavailable: {0}")]
    CollectorUnavailable(String),
    /// The lease kept changing hands while we tried to take or join it.
    #[error("the collection lease is changing hands; try again")]
    Contended,
    /// A freshness stream could not start, or ended.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<cudly_core::lease::AcquireError> for Error {
    fn from(err: cudly_core::lease::AcquireError) -> Self {
        match err {
            cudly_core::lease::AcquireError::Contended => Error::Contended,
            cudly_core::lease::AcquireError::Database(db) => Error::Database(db),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(msg) => Status::invalid_argument(msg),
            Error::NotFound(msg) => Status::not_found(msg),
            Error::AlreadyExists(msg) => Status::already_exists(msg),
            Error::FailedPrecondition(msg) => Status::failed_precondition(msg),
            Error::CollectorUnavailable(_) => {
                Status::unavailable("the collector is unavailable; no collection was started, try again")
            }
            Error::Contended => Status::aborted(err.to_string()),
            Error::Watch(watch) => match watch {
                WatchError::NotSynced | WatchError::ShuttingDown | WatchError::Stopped => {
                    Status::unavailable(watch.to_string())
                }
                WatchError::Full(_) => Status::resource_exhausted(watch.to_string()),
                WatchError::TokenExpired => Status::unauthenticated(watch.to_string()),
            },
            Error::Database(db) => cudly_core::db::database_status(&db),
        }
    }
}
