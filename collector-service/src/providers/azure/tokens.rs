//! Entra ID token answers and refusals, without ever showing the secret.

use super::*;

pub(super) fn parse_grant(body: &str) -> Result<Grant, String> {
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

pub(super) fn redact(text: &str, secret: &SecretString) -> String {
    let secret = secret.expose_secret();
    if secret.is_empty() { text.to_string() } else { text.replace(secret, "[redacted]") }
}
