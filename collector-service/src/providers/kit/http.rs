//! What the REST backends (Azure, GCP) share: one HTTP client, and the
//! sorting of an HTTP answer into success, throttling, a transient failure
//! worth a retry, a permanent one or a refusal, with the cloud's own error
//! message read from the body.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderName, RETRY_AFTER};
use secrecy::ExposeSecret;

use super::tokens::{Bearer, TokenCache};
use crate::providers::calls::{CallError, retry_after};

/// The HTTP client of the REST backends: rustls, HTTP/2 when offered, and a
/// connect timeout (each attempt also has its own deadline).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(builder().build()?)
}

/// How the collector's HTTP clients start: the REST backends' client is
/// this as is; the notice deliverers' adds what receivers need.
pub(crate) fn builder() -> reqwest::ClientBuilder {
    cudly_core::server::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("cudly-collector/", env!("CARGO_PKG_VERSION")))
}

/// A request that did not get an answer (connect, TLS, reset): transient.
pub(crate) fn send_error(err: reqwest::Error) -> CallError {
    // reqwest's error text names the URL but carries no credentials; why
    // the request failed (refused, reset, TLS) is in its causes.
    CallError::Transient(format!("request failed: {}", cudly_core::telemetry::ErrorChain(&err)))
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

/// One authorized GET of a JSON document (one attempt): the body of a
/// success, `None` for 204 No Content, or the sorted failure (`error_text`
/// reads the cloud's error body, `hint` says what to do about a refusal).
/// A 401 drops the token from `tokens`, so that the next call asks for a
/// new one instead of failing until it expires.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    bearer: &Bearer,
    tokens: &TokenCache,
    hint: &str,
    error_text: fn(&str) -> String,
) -> Result<Option<Vec<u8>>, CallError> {
    let response = client
        .get(url.clone())
        .bearer_auth(bearer.token.expose_secret())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(send_error)?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    if !status.is_success() {
        if status == reqwest::StatusCode::UNAUTHORIZED {
            tokens.forget(bearer).await;
        }
        return Err(failure(response, hint, error_text).await);
    }
    Ok(Some(response.bytes().await.map_err(send_error)?.to_vec()))
}

/// Sorts a non-success answer by its status and `Retry-After`, with the
/// readable part of its body: `error_text` is how the cloud words errors
/// (ARM's `{"error": {"code", "message"}}`, Google's `{"error": {"status",
/// "message"}}`). A body that cannot be read counts as empty: the status
/// still says what kind of failure it is.
pub(crate) async fn failure(
    response: reqwest::Response,
    hint: &str,
    error_text: impl FnOnce(&str) -> String,
) -> CallError {
    let status = response.status();
    let retry_after = header(&response, RETRY_AFTER);
    let body = response.text().await.unwrap_or_default();
    classify(status, retry_after.as_deref(), &error_text(&body), hint)
}

/// A header's value, when it is text.
pub(crate) fn header(response: &reqwest::Response, name: HeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{CallError, classify, failure};

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

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> reqwest::Response {
        let mut answer = http::Response::builder().status(status);
        if let Some(seconds) = retry_after {
            answer = answer.header("retry-after", seconds);
        }
        reqwest::Response::from(answer.body(body.to_string()).unwrap())
    }

    #[tokio::test]
    async fn an_error_answer_is_sorted_with_the_clouds_own_words_for_it() {
        let first_line = |body: &str| body.lines().next().unwrap_or("").to_string();
        let throttled = failure(answer(429, Some("2"), "slow down\ntrace 1"), "", first_line).await;
        assert!(
            matches!(&throttled, CallError::Throttled { retry_after: Some(d), message }
                if *d == Duration::from_secs(2) && message == "HTTP 429: slow down"),
            "{throttled:?}"
        );
        let refused = failure(answer(403, None, "denied\ntrace 2"), "grant the role", first_line).await;
        assert!(matches!(&refused, CallError::Refused(m) if m == "HTTP 403: denied; grant the role"), "{refused:?}");
        let long = "x".repeat(1000);
        let permanent = failure(answer(404, None, &long), "", |body| body.to_string()).await;
        assert!(matches!(&permanent, CallError::Permanent(m) if m.len() < 320), "an error page is cut short");
    }

    #[tokio::test]
    async fn an_authorized_get_sends_the_token_reads_204_as_nothing_and_drops_a_rejected_token() {
        use axum::http::{HeaderMap, StatusCode};
        use secrecy::{ExposeSecret, SecretString};

        use crate::providers::kit::tokens::{Credentials, Grant, TokenCache};

        async fn answer(uri: axum::http::Uri, headers: HeaderMap) -> (StatusCode, String) {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            assert_eq!(header("accept"), "application/json");
            match (uri.path(), header("authorization").as_str()) {
                ("/empty", _) => (StatusCode::NO_CONTENT, String::new()),
                (_, "Bearer revoked") => (StatusCode::UNAUTHORIZED, "expired".into()),
                (_, "Bearer fresh") => (StatusCode::OK, r#"{"value": []}"#.into()),
                _ => (StatusCode::FORBIDDEN, "who?".into()),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(answer)).await.unwrap() });

        let tokens = TokenCache::default();
        let issued = std::sync::Mutex::new(vec!["fresh", "revoked"]);
        let grant = |_: ()| async {
            let token = issued.lock().unwrap().pop().unwrap();
            Ok(Grant { token: SecretString::from(token.to_string()), lifetime: Duration::from_secs(3600) })
        };
        let read = || Ok(Credentials { value: (), fingerprint: SecretString::from(String::new()) });
        let client = super::client().unwrap();
        let url = |path: &str| reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        let revoked = tokens.bearer("app", "Token", read, grant).await.unwrap();
        let text = |body: &str| body.to_string();

        let empty = super::get(&client, &url("/empty"), &revoked, &tokens, "", text).await.unwrap();
        assert_eq!(empty, None, "204 No Content");
        let rejected = super::get(&client, &url("/list"), &revoked, &tokens, "renew it", text).await.unwrap_err();
        assert!(matches!(&rejected, CallError::Refused(m) if m == "HTTP 401: expired; renew it"), "{rejected:?}");
        let renewed = tokens.bearer("app", "Token", read, grant).await.unwrap();
        assert_eq!(renewed.token.expose_secret(), "fresh", "the rejected token was dropped");
        let body = super::get(&client, &url("/list"), &renewed, &tokens, "", text).await.unwrap().unwrap();
        assert_eq!(body, br#"{"value": []}"#);
    }
}
