//! Entra ID tokens for ARM: OAuth2 client credentials at the v2.0 token
//! endpoint, one per app registration, kept in the kit's token cache (a
//! refused secret is remembered until it changes).

use std::time::Duration;

use cudly_core::credentials::AzureCredentials;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::AzureBackend;
use super::errors::{redact, refusal_message};
use crate::providers::calls::CallError;
use crate::providers::kit::http;
use crate::providers::kit::tokens::{Bearer, Credentials, Grant};
use crate::providers::kit::urls::endpoint;
use crate::providers::{BackendError, RequestCount};

/// The token audience: Azure Resource Manager (public cloud).
const ARM_SCOPE: &str = "https://management.azure.com/.default";

impl AzureBackend {
    /// An access token for ARM, from the cache while it is fresh (a
    /// refused secret is remembered until it changes).
    pub(super) async fn token(
        &self,
        creds: &AzureCredentials,
        subscription: &str,
        calls: &RequestCount,
    ) -> Result<Bearer, BackendError> {
        let what = format!("Azure token for subscription {subscription}");
        let read = || {
            let secret = creds.client_secret.read(&self.secret_files).map_err(|err| {
                BackendError::refused(format!(
                    "cannot read the client secret of client {}: {err}; fix it or set another reference with \
                     UpdateAccount",
                    creds.client_id
                ))
            })?;
            Ok(Credentials { value: secret.clone(), fingerprint: secret })
        };
        let what = what.as_str();
        let request = |secret: SecretString| async move {
            self.limits.call_unnamed(calls, what, || self.request_token(creds, &secret)).await
        };
        self.tokens.bearer(&format!("{}/{}", creds.tenant_id, creds.client_id), what, read, request).await
    }

    /// One client-credentials request to Entra ID.
    async fn request_token(&self, creds: &AzureCredentials, secret: &SecretString) -> Result<Grant, CallError> {
        let url = endpoint(&self.login, &[&creds.tenant_id, "oauth2", "v2.0", "token"], &[]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("scope", ARM_SCOPE),
        ];
        let response = self.client.post(url).form(&form).send().await.map_err(http::send_error)?;
        let status = response.status();
        if status.is_success() {
            let body = response.text().await.map_err(http::send_error)?;
            return parse_grant(&body).map_err(|err| CallError::Permanent(format!("Entra ID answered {err}")));
        }
        if matches!(status.as_u16(), 400 | 401) {
            let body = response.text().await.map_err(http::send_error)?;
            return Err(CallError::Refused(refusal_message(creds, status.as_u16(), &body, secret)));
        }
        let hint = format!("check the app registration {}", creds.client_id);
        Err(http::failure(response, &hint, |body| redact(body, secret)).await)
    }
}

/// Entra ID's token answer: the token and its lifetime.
fn parse_grant(body: &str) -> Result<Grant, String> {
    let doc: Value = serde_json::from_str(body).map_err(|err| format!("a token that is not JSON ({err})"))?;
    let token = doc.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    let token = token.ok_or("a token answer without access_token")?;
    // v2.0 sends a number of seconds; v1.0 sent it as a string.
    let expires_in = match doc.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let expires_in = expires_in.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(3600.0).min(86_400.0);
    Ok(Grant { token: SecretString::from(token.to_string()), lifetime: Duration::from_secs_f64(expires_in) })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::parse_grant;

    #[test]
    fn a_grant_lasts_its_expires_in_as_a_number_or_a_string() {
        let grant = parse_grant(r#"{"token_type": "Bearer", "expires_in": 3599, "access_token": "t"}"#).unwrap();
        assert_eq!((grant.token.expose_secret(), grant.lifetime), ("t", Duration::from_secs(3599)));
        let v1 = parse_grant(r#"{"expires_in": "600", "access_token": "t"}"#).unwrap();
        assert_eq!(v1.lifetime, Duration::from_secs(600));
        let huge = parse_grant(r#"{"expires_in": 1e12, "access_token": "t"}"#).unwrap();
        assert_eq!(huge.lifetime, Duration::from_secs(86_400), "a day at most");
        assert!(parse_grant(r#"{"access_token": ""}"#).is_err());
        assert!(parse_grant("<html>").unwrap_err().contains("not JSON"));
    }
}
