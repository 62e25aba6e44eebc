//! What the REST backends (Azure, GCP) share: one HTTP client, and the
//! sorting of an HTTP answer into success, throttling, a transient failure
//! worth a retry, or a permanent one.

use std::time::Duration;

use crate::providers::calls::{CallError, retry_after};

/// The HTTP client of the REST backends: rustls, HTTP/2 when offered, and a
/// connect timeout (each attempt also has its own deadline).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    cudly_core::server::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("cudly-collector/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A request that did not get an answer (connect, TLS, reset): transient.
pub(crate) fn send_error(err: reqwest::Error) -> CallError {
    // reqwest's error text names the URL but carries no credentials.
    CallError::Transient(format!("request failed: {err}"))
}

/// Sorts a non-success answer. `hint` is appended to authentication and
/// permission failures so that the message says what to do about them.
/// The body is cut short: an error page must not flood the run status.
pub(crate) fn classify(
    status: reqwest::StatusCode,
    retry_after_header: Option<&str>,
    body: &str,
    hint: &str,
) -> CallError {
    let body: String = body.chars().take(300).collect();
    let body = body.trim();
    match status.as_u16() {
        429 => {
            CallError::Throttled { retry_after: retry_after(retry_after_header), message: format!("HTTP 429: {body}") }
        }
        500..=599 => CallError::Transient(format!("HTTP {}: {body}", status.as_u16())),
        // A 403 is also how Google reports a disabled API (SERVICE_DISABLED).
        401 | 403 => CallError::Refused(format!("HTTP {}: {body}; {hint}", status.as_u16())),
        _ => CallError::Permanent(format!("HTTP {}: {body}", status.as_u16())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{CallError, classify};

    #[test]
    fn answers_are_sorted_by_what_a_retry_could_change() {
        let throttled = classify(reqwest::StatusCode::TOO_MANY_REQUESTS, Some("3"), "slow down", "");
        assert!(matches!(throttled, CallError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(3)));
        assert!(matches!(classify(reqwest::StatusCode::BAD_GATEWAY, None, "", ""), CallError::Transient(_)));
        let denied = classify(reqwest::StatusCode::FORBIDDEN, None, "no", "grant the Reader role");
        assert!(matches!(denied, CallError::Refused(m) if m.contains("grant the Reader role")));
        let unauthenticated = classify(reqwest::StatusCode::UNAUTHORIZED, None, "expired", "");
        assert!(matches!(unauthenticated, CallError::Refused(_)));
        assert!(matches!(classify(reqwest::StatusCode::NOT_FOUND, None, "", ""), CallError::Permanent(_)));
    }
}
