//! How Azure words its failures: ARM's error bodies, and Entra ID's refusal
//! of an app, told without ever showing the secret.

use cudly_core::credentials::AzureCredentials;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// ARM errors are `{"error": {"code", "message"}}`: keep the readable part.
pub(super) fn arm_error_text(body: &str) -> String {
    let doc: Option<Value> = serde_json::from_str(body).ok();
    let error = doc.as_ref().and_then(|d| d.get("error"));
    let part = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    match (part("code"), part("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => body.to_string(),
    }
}

/// What an operator reads when Entra ID refuses the app: the client, the
/// tenant, Entra's first line (`AADSTS…: reason`, without trace ids) and
/// where the secret comes from, never the secret.
pub(super) fn refusal_message(creds: &AzureCredentials, status: u16, body: &str, secret: &SecretString) -> String {
    let doc: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| doc.as_ref().and_then(|d| d.get(name)).and_then(Value::as_str).map(str::to_owned);
    let error = field("error").unwrap_or_else(|| format!("HTTP {status}"));
    let description = field("error_description").unwrap_or_else(|| body.to_string());
    let first_line: String = description.lines().next().unwrap_or("").trim().chars().take(300).collect();
    format!(
        "Entra ID refused client {} in tenant {} ({error}): {}; check the client secret behind {} (expired or \
         replaced?) and that the app registration exists in that tenant",
        creds.client_id,
        creds.tenant_id,
        redact(&first_line, secret),
        creds.client_secret
    )
}

/// `text` with the secret cut out, wherever it appears.
pub(super) fn redact(text: &str, secret: &SecretString) -> String {
    let secret = secret.expose_secret();
    if secret.is_empty() { text.to_string() } else { text.replace(secret, "[redacted]") }
}

#[cfg(test)]
mod tests {
    use cudly_core::credentials::{AzureCredentials, SecretRef};
    use secrecy::SecretString;
    use serde_json::json;

    use super::{arm_error_text, refusal_message};

    #[test]
    fn entra_refusals_name_the_client_tenant_and_reference_never_the_secret() {
        let creds = AzureCredentials {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8a3f2c1e-0000-4000-8000-000000000001".into(),
            client_secret: SecretRef::Env("CUDLY_CLOUD_SECRET_PAYMENTS".into()),
        };
        let secret = SecretString::from("s3cr3t-Value~x".to_string());
        let body = json!({
            "error": "invalid_client",
            "error_description":
                "AADSTS7000215: Invalid client secret provided (got s3cr3t-Value~x).\r\nTrace ID: 1\r\nCorrelation: 2",
            "error_codes": [7000215]
        })
        .to_string();
        let message = refusal_message(&creds, 401, &body, &secret);
        assert!(
            message.starts_with("Entra ID refused client 8a3f2c1e-0000-4000-8000-000000000001 in tenant 72f988bf"),
            "{message}"
        );
        assert!(message.contains("(invalid_client): AADSTS7000215: Invalid client secret provided"), "{message}");
        assert!(message.contains("env:CUDLY_CLOUD_SECRET_PAYMENTS"), "{message}");
        assert!(!message.contains("s3cr3t") && !message.contains("Trace ID"), "{message}");
    }

    #[test]
    fn arm_errors_keep_their_code_and_message() {
        let body = json!({"error": {"code": "AuthorizationFailed", "message": "no access", "target": null}});
        assert_eq!(arm_error_text(&body.to_string()), "AuthorizationFailed: no access");
        assert_eq!(arm_error_text("<html>Bad gateway</html>"), "<html>Bad gateway</html>", "anything else as is");
        assert_eq!(arm_error_text(r#"{"error": {"code": "X"}}"#), r#"{"error": {"code": "X"}}"#);
    }
}
