//! Access tokens: a service-account key's JWT-bearer grant, or the metadata
//! server.

use super::*;

pub(super) enum TokenSource {
    Metadata,
    Key(SecretRef),
}

/// Who grants the token: the metadata server, or the token endpoint of a
/// key read from `reference`.
pub(super) enum Grantor<'a> {
    Metadata,
    Key { key: ServiceAccountKey, reference: &'a SecretRef },
}

pub(super) fn token_source(account: &Account) -> Result<TokenSource, BackendError> {
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

pub(super) fn billing_account(account: &Account) -> Option<String> {
    match &account.credentials {
        Some(Credentials::Gcp(gcp)) => gcp
            .billing_account_id
            .as_deref()
            .map(|id| id.trim().trim_start_matches("billingAccounts/").to_string())
            .filter(|id| !id.is_empty()),
        _ => None,
    }
}

/// The fields of a service-account key file that the JWT grant needs.
pub(super) struct ServiceAccountKey {
    pub(super) client_email: String,
    pub(super) private_key_id: Option<String>,
    pub(super) signer: jsonwebtoken::EncodingKey,
    pub(super) token_uri: Url,
}

impl ServiceAccountKey {
    /// A fresh RS256 assertion for the JWT-bearer grant.
    pub(super) fn assertion(&self) -> Result<String, String> {
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
pub(super) fn read_key(secret: &SecretRef) -> Result<(ServiceAccountKey, SecretString), String> {
    #[derive(Deserialize)]
    struct KeyFile {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<String>,
        private_key: Option<String>,
        private_key_id: Option<String>,
        token_uri: Option<String>,
    }
    let text = secret.read()?;
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
pub(super) async fn token_answer(answer: reqwest::Response, hint: &str) -> Result<Grant, CallError> {
    #[derive(Deserialize)]
    struct TokenAnswer {
        access_token: Option<String>,
        expires_in: Option<u64>,
        token_type: Option<String>,
    }
    let status = answer.status();
    if !status.is_success() {
        // A refused grant (400 invalid_grant) or a missing account (404)
        // needs the same fix as a 401: the credentials are refused, and the
        // hint says what to check (a 401 or 403 carries it already).
        return Err(match http::failure(answer, hint, google_error_text).await {
            CallError::Permanent(m) => CallError::Refused(format!("{m}; {hint}")),
            other => other,
        });
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
