//! How Google words its failures: the Google APIs' and OAuth2's error
//! bodies as one line, and what a token endpoint's refusal means.

use serde_json::Value;

use crate::providers::calls::CallError;

/// `{"error": {"status", "message"}}` (Google APIs) or `{"error",
/// "error_description"}` (OAuth2) as one line; anything else as is.
pub(super) fn google_error_text(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else { return body.to_string() };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match json.get("error") {
        Some(Value::Object(error)) => {
            let status = text(error.get("status"));
            let message = text(error.get("message"));
            if status.is_empty() { message } else { format!("{status}: {message}") }
        }
        Some(Value::String(code)) => match text(json.get("error_description")) {
            d if d.is_empty() => code.clone(),
            d => format!("{code}: {d}"),
        },
        _ => body.to_string(),
    }
}

/// A token endpoint's (or the metadata server's) failure: a client error
/// there (400 `invalid_grant`, 404 for a missing account) needs the same
/// fix as a 401, so it is a refusal of the credentials, with the `hint`
/// (which a 401 or 403 carries already).
pub(super) fn token_failure(failure: CallError, hint: &str) -> CallError {
    match failure {
        CallError::Permanent(message) => CallError::Refused(format!("{message}; {hint}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::calls::CallError;

    use super::{google_error_text, token_failure};

    #[test]
    fn google_errors_are_read_as_one_line() {
        assert_eq!(
            google_error_text(r#"{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}"#),
            "PERMISSION_DENIED: denied"
        );
        assert_eq!(
            google_error_text(r#"{"error": "invalid_grant", "error_description": "bad"}"#),
            "invalid_grant: bad"
        );
        assert_eq!(google_error_text("<html>"), "<html>");
    }

    #[test]
    fn a_token_endpoints_client_error_is_a_refusal_that_says_what_to_check() {
        let refused = token_failure(CallError::Permanent("HTTP 400: invalid_grant: bad".into()), "check the key");
        assert!(matches!(&refused, CallError::Refused(m) if m == "HTTP 400: invalid_grant: bad; check the key"));
        let already = token_failure(CallError::Refused("HTTP 401: no; check the key".into()), "check the key");
        assert!(matches!(&already, CallError::Refused(m) if m == "HTTP 401: no; check the key"), "not twice");
        let transient = token_failure(CallError::Transient("HTTP 503".into()), "check the key");
        assert!(matches!(transient, CallError::Transient(_)), "a server error is still worth a retry");
    }
}
