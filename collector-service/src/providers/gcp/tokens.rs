//! Access tokens: a service-account key's JWT-bearer grant (a fresh RS256
//! assertion per attempt), or, without a key, the metadata server; kept in
//! the kit's token cache (a refused key is remembered until it changes).

use std::time::Duration;

use cudly_core::credentials::{Credentials, SecretFileDirs, SecretRef};
use cudly_core::domain::Account;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::GcpBackend;
use super::errors::{google_error_text, token_failure};
use crate::providers::calls::CallError;
use crate::providers::kit::http::{self, send_error};
use crate::providers::kit::tokens::{Bearer, Credentials as ReadCredentials, Grant};
use crate::providers::kit::urls::endpoint;
use crate::providers::{BackendError, RequestCount};

/// The scope every token is asked for.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for a key file that names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

impl GcpBackend {
    /// An access token for the account's credentials, fetched once per
    /// credential source until shortly before it expires (a refused key is
    /// remembered until it changes).
    pub(super) async fn token(&self, account: &Account, calls: &RequestCount) -> Result<Bearer, BackendError> {
        let source = token_source(account)?;
        let key = match &source {
            TokenSource::Metadata => "metadata".to_string(),
            TokenSource::Key(secret) => format!("key:{secret}"),
        };
        let what = format!("GCP token for project {}", account.external_id);
        let what = what.as_str();
        let read = || match &source {
            TokenSource::Metadata => {
                Ok(ReadCredentials { value: Grantor::Metadata, fingerprint: SecretString::from(String::new()) })
            }
            // A key that cannot be read refuses every call of the account.
            TokenSource::Key(secret) => {
                let (key, text) = read_key(secret, &self.secret_files).map_err(BackendError::refused)?;
                Ok(ReadCredentials { value: Grantor::Key { key, reference: secret }, fingerprint: text })
            }
        };
        let request = |grantor| async move {
            match grantor {
                Grantor::Metadata => self.metadata_token(what, calls).await,
                Grantor::Key { key, reference } => self.key_token(&key, reference, what, calls).await,
            }
        };
        self.tokens.bearer(&key, what, read, request).await
    }

    async fn metadata_token(&self, what: &str, calls: &RequestCount) -> Result<Grant, BackendError> {
        let url = endpoint(
            &self.metadata_url,
            &["computeMetadata", "v1", "instance", "service-accounts", "default", "token"],
            &[],
        );
        let hint = "the metadata server has no usable default service account: attach one to the collector's \
                    workload, or set a service_account_key for this project";
        self.limits
            .call_unnamed(calls, what, || async {
                let answer =
                    self.http.get(url.clone()).header("Metadata-Flavor", "Google").send().await.map_err(|e| {
                        CallError::Transient(format!(
                            "metadata server unreachable ({e}); outside GCP, set a service_account_key for this project"
                        ))
                    })?;
                token_answer(answer, hint).await
            })
            .await
    }

    async fn key_token(
        &self,
        key: &ServiceAccountKey,
        reference: &SecretRef,
        what: &str,
        calls: &RequestCount,
    ) -> Result<Grant, BackendError> {
        let hint = format!("check the service-account key {reference}: it may be deleted, disabled or malformed");
        self.limits
            .call_unnamed(calls, what, || async {
                // Signed per attempt: `iat` must be fresh.
                let assertion = key.assertion().map_err(CallError::Permanent)?;
                let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)];
                let answer = self.http.post(key.token_uri.clone()).form(&form).send().await.map_err(send_error)?;
                token_answer(answer, &hint).await
            })
            .await
    }
}

/// Where an account's tokens come from.
enum TokenSource {
    Metadata,
    Key(SecretRef),
}

/// Who grants the token: the metadata server, or the token endpoint of a
/// key read from `reference`.
enum Grantor<'a> {
    Metadata,
    Key { key: ServiceAccountKey, reference: &'a SecretRef },
}

/// The account's token source: its key, or the metadata server.
fn token_source(account: &Account) -> Result<TokenSource, BackendError> {
    match &account.credentials {
        None => Ok(TokenSource::Metadata),
        Some(Credentials::Gcp(gcp)) => {
            Ok(gcp.service_account_key.clone().map_or(TokenSource::Metadata, TokenSource::Key))
        }
        Some(_) => Err(BackendError::refused(format!(
            "GCP project {}: its credentials are not GCP credentials; register a service_account_key or none",
            account.external_id
        ))),
    }
}

/// The fields of a service-account key file that the JWT grant needs.
struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    signer: jsonwebtoken::EncodingKey,
    token_uri: Url,
}

impl ServiceAccountKey {
    /// A fresh RS256 assertion for the JWT-bearer grant.
    fn assertion(&self) -> Result<String, String> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        let iat = chrono::Utc::now().timestamp();
        let claims =
            Claims { iss: &self.client_email, scope: SCOPE, aud: self.token_uri.as_str(), iat, exp: iat + 3600 };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.signer).map_err(|e| format!("signing the token request: {e}"))
    }
}

/// Reads and parses a key file, with its content (which tells a changed
/// key apart); errors never quote it.
fn read_key(secret: &SecretRef, dirs: &SecretFileDirs) -> Result<(ServiceAccountKey, SecretString), String> {
    #[derive(Deserialize)]
    struct KeyFile {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<String>,
        private_key: Option<String>,
        private_key_id: Option<String>,
        token_uri: Option<String>,
    }
    let text = secret.read(dirs)?;
    let file: KeyFile = serde_json::from_str(text.expose_secret()).map_err(|e| {
        format!("{secret} is not a service-account key (JSON {:?} error at line {})", e.classify(), e.line())
    })?;
    if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
        return Err(format!("{secret} is a {kind:?} credential; only service_account keys are supported"));
    }
    let missing = |field: &str| format!("{secret} has no {field}: download a service-account key (JSON)");
    let client_email = file.client_email.filter(|e| !e.is_empty()).ok_or_else(|| missing("client_email"))?;
    let private_key = file.private_key.ok_or_else(|| missing("private_key"))?;
    let signer = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes())
        .map_err(|e| format!("{secret}: its private_key is not an RSA key in PEM ({e})"))?;
    let token_uri = file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
    let token_uri = Url::parse(&token_uri)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("{secret}: its token_uri is not an http(s) URL"))?;
    Ok((ServiceAccountKey { client_email, private_key_id: file.private_key_id, signer, token_uri }, text))
}

/// An OAuth2 token answer (token endpoint or metadata server).
async fn token_answer(answer: reqwest::Response, hint: &str) -> Result<Grant, CallError> {
    #[derive(Deserialize)]
    struct TokenAnswer {
        access_token: Option<String>,
        expires_in: Option<u64>,
        token_type: Option<String>,
    }
    let status = answer.status();
    if !status.is_success() {
        return Err(token_failure(http::failure(answer, hint, google_error_text).await, hint));
    }
    let body = answer.bytes().await.map_err(send_error)?;
    let parsed: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|e| CallError::Permanent(format!("malformed token answer (JSON {:?} error)", e.classify())))?;
    if parsed.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(CallError::Permanent("the token answer is not a bearer token".into()));
    }
    let token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CallError::Permanent("the token answer has no access_token".into()))?;
    // A day at most: a huge `expires_in` must not overflow the deadline.
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).min(86_400));
    Ok(Grant { token: SecretString::from(token), lifetime })
}
