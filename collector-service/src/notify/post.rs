//! One JSON POST to a receiver (a webhook, Slack) and the sorting of its
//! answer: 2xx delivered; 408, 429, 5xx and no answer worth a retry; any
//! other answer permanent. The URL never appears in an error: a Slack
//! webhook's URL is its secret.

use std::time::Duration;

use cudly_core::quote::at_most;
use cudly_core::telemetry::ErrorChain;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::{Failure, SendError};
use crate::providers::calls::retry_after;

/// How much of an error answer's body is read, and how much of it is kept.
const BODY_READ_BYTES: usize = 2048;
const BODY_KEPT_CHARS: usize = 200;

/// The deliverers' HTTP client: the collector's, without redirects (a
/// receiver is the URL it was registered with; a redirect is answered as
/// a refusal, not followed with the signed body).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(crate::providers::kit::http::builder().redirect(reqwest::redirect::Policy::none()).build()?)
}

/// POSTs `body` (JSON) with `headers` to `url`, within `timeout`.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), Failure> {
    let response = client
        .post(url)
        .headers(headers)
        .header(CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(no_answer)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let wait = retry_after(response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()));
    let excerpt = excerpt(response).await;
    Err(classify(status, wait, &excerpt))
}

/// A request that got no answer (refused, reset, TLS, timed out): worth a
/// retry. reqwest's text names the URL: it is taken out first.
fn no_answer(err: reqwest::Error) -> Failure {
    let timed_out = err.is_timeout();
    let err = err.without_url();
    let text =
        if timed_out { format!("no answer in time: {}", ErrorChain(&err)) } else { ErrorChain(&err).to_string() };
    SendError::Retryable(at_most(&text, BODY_KEPT_CHARS + 100)).into()
}

/// The start of an error answer's body, on one line; nothing when it
/// cannot be read (the status still says what kind of failure it is).
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut read = Vec::new();
    while read.len() < BODY_READ_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            _ => break,
        }
    }
    read.truncate(BODY_READ_BYTES);
    let text = String::from_utf8_lossy(&read);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    at_most(&one_line, BODY_KEPT_CHARS)
}

/// Sorts a non-success answer by what another attempt could change.
pub(crate) fn classify(status: reqwest::StatusCode, retry_after: Option<Duration>, body: &str) -> Failure {
    let code = status.as_u16();
    let text = if body.is_empty() { format!("HTTP {code}") } else { format!("HTTP {code}: {body}") };
    match code {
        408 | 429 | 500..=599 => Failure { error: SendError::Retryable(text), retry_after },
        300..=399 => {
            SendError::Permanent(format!("HTTP {code}: redirects are not followed; register the final URL")).into()
        }
        _ => SendError::Permanent(text).into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn answers_are_sorted_by_what_another_attempt_could_change() {
        let throttled = classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(7)), "slow down");
        assert_eq!(throttled.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(throttled.error, SendError::Retryable("HTTP 429: slow down".into()));
        assert!(
            matches!(classify(StatusCode::SERVICE_UNAVAILABLE, None, "").error, SendError::Retryable(m) if m == "HTTP 503")
        );
        assert!(matches!(classify(StatusCode::REQUEST_TIMEOUT, None, "").error, SendError::Retryable(_)));
        assert!(
            matches!(classify(StatusCode::BAD_REQUEST, None, "bad").error, SendError::Permanent(m) if m == "HTTP 400: bad")
        );
        assert!(matches!(classify(StatusCode::GONE, None, "").error, SendError::Permanent(_)));
        assert!(
            matches!(classify(StatusCode::FOUND, None, "").error, SendError::Permanent(m) if m.contains("not followed"))
        );
    }

    #[tokio::test]
    async fn an_error_page_is_cut_to_one_short_line() {
        let page = format!("<html>\n  <body>{}</body>\n</html>", "x".repeat(10_000));
        let response = reqwest::Response::from(http::Response::builder().status(500).body(page).unwrap());
        let text = excerpt(response).await;
        assert!(text.chars().count() <= BODY_KEPT_CHARS, "{text}");
        assert!(text.starts_with("<html> <body>xx"), "{text}");
    }
}
