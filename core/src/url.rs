//! The one rule for URLs the services call out to (an identity provider's
//! keys, a notification webhook): `https://` with a host, or plain
//! `http://` to a loopback host only, where nothing on the way can read or
//! change what is sent.

use http::Uri;

use crate::quote::quoted;

/// The loopback hosts plain `http://` may reach, as [`Uri::host`] spells them.
const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// `url` parsed, if it may be called: `https` with a host, or `http` to a
/// loopback host (localhost, 127.0.0.1, ::1). The refusal quotes the URL,
/// bounded.
pub fn checked_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|_| format!("{} is not a URL", quoted(url)))?;
    let loopback = uri.host().is_some_and(|host| LOOPBACK_HOSTS.contains(&host));
    match uri.scheme_str() {
        Some("https") if uri.host().is_some_and(|host| !host.is_empty()) => Ok(uri),
        Some("http") if loopback => Ok(uri),
        Some("http") => Err(format!(
            "{} must use https (plain http is allowed to a loopback host only: localhost, 127.0.0.1, ::1)",
            quoted(url)
        )),
        _ => Err(format!("{} is not an https URL", quoted(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_plain_http_to_a_loopback_host() {
        assert!(checked_url("https://login.example.com/keys").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(checked_url("http://localhost/jwks").is_ok());
        assert!(checked_url("http://[::1]:9000/hook").is_ok());
        let err = checked_url("http://idp.example.com/jwks").unwrap_err();
        assert!(err.contains("must use https") && err.contains("loopback"), "{err}");
        assert!(checked_url("http://127.0.0.2/x").unwrap_err().contains("must use https"));
        assert!(checked_url("ftp://idp.example.com/jwks").unwrap_err().contains("not an https URL"));
        assert!(checked_url("/relative/path").unwrap_err().contains("not an https URL"));
        assert!(checked_url("").is_err());
        let long = format!("https://{}", "x".repeat(10_000));
        assert!(checked_url(&format!("{long} y")).unwrap_err().len() < 200, "quoted, bounded");
    }
}
