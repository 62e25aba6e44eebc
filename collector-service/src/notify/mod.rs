//! Delivering notices: any collector replica claims due deliveries from the
//! outbox (`notice_deliveries`, `FOR UPDATE SKIP LOCKED`), renders the
//! notice for its channel and sends it, at least once, with the delivery's
//! id as the receivers' idempotency key; failures are retried with
//! exponential backoff for the configured time, then marked failed.

// The delivery worker sends through it; until that lands only the tests do.
#[cfg_attr(not(test), allow(dead_code))]
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
