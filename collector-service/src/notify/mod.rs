//! Delivering notices: any collector replica claims due deliveries from the
//! outbox (`notice_deliveries`, `FOR UPDATE SKIP LOCKED`), renders the
//! notice for its channel and sends it, at least once, with the delivery's
//! id as the receivers' idempotency key; failures are retried with
//! exponential backoff for the configured time, then marked failed.
//!
//! - [`worker`]: claiming, waking (LISTEN and a poll), concurrency,
//!   recording each attempt's outcome.
//! - `webhook`: Standard Webhooks (signed JSON).
//! - `slack`: a Slack-compatible incoming webhook (blocks).
//! - `post`: one JSON POST and the sorting of its answer, for both.

use std::time::Duration;

mod post;
mod slack;
mod webhook;
pub mod worker;

pub use worker::{Deliverer, DeliverySettings};

// The delivery worker sends through it; until that lands only the tests do.
pub(crate) mod email;

/// Why a send failed. The text is bounded and never holds a secret (a
/// password, a signing key, a Slack webhook URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt (unreachable, timed out, 5xx, 429, a
    /// temporary SMTP reply).
    #[error("{0}")]
    Retryable(String),
    /// Another attempt would fail the same way (4xx, rejected credentials,
    /// a permanent SMTP reply, a secret reference that does not resolve).
    #[error("{0}")]
    Permanent(String),
}

/// A failed attempt: why, and how long the receiver asked to be left alone
/// (`Retry-After`), if it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) error: SendError,
    pub(crate) retry_after: Option<Duration>,
}

impl From<SendError> for Failure {
    fn from(error: SendError) -> Self {
        Failure { error, retry_after: None }
    }
}
