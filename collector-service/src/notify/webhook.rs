//! Webhook channels, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>): a JSON body `{"type", "timestamp",
//! "data"}` POSTed with `webhook-id` (the delivery's id, the same on every
//! attempt: the receiver's idempotency key), `webhook-timestamp` (unix
//! seconds at send) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the bytes of the
//! channel's `whsec_` secret).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cudly_core::channels::WebhookSettings;
use cudly_core::credentials::{SecretFileDirs, SecretRef};
use cudly_core::notice::NoticePayload;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use super::{Failure, SendError};

/// The body receivers get.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: &'a NoticePayload,
}

/// Sends `payload` to the channel `settings` describe, as delivery
/// `delivery_id`.
pub(crate) async fn send(
    client: &reqwest::Client,
    secret_files: &SecretFileDirs,
    timeout: Duration,
    settings: &WebhookSettings,
    delivery_id: Uuid,
    payload: &NoticePayload,
) -> Result<(), Failure> {
    let url =
        reqwest::Url::parse(&settings.url).map_err(|err| SendError::Permanent(format!("url: not a URL ({err})")))?;
    let secret = settings
        .signing_secret_ref
        .read(secret_files)
        .map_err(|why| SendError::Permanent(format!("signing_secret_ref: {why}")))?;
    let key = signing_key(secret.expose_secret(), &settings.signing_secret_ref)?;
    let body = serde_json::to_vec(&Envelope {
        kind: &payload.kind,
        timestamp: payload.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data: payload,
    })
    .map_err(|err| SendError::Permanent(format!("the notice does not encode: {err}")))?;
    let id = delivery_id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(key.expose_secret(), &id, timestamp, &body);
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(&id).expect("a uuid is a header value"));
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert("webhook-signature", HeaderValue::from_str(&signature).expect("base64 is a header value"));
    super::post::post_json(client, url, headers, body, timeout).await
}

/// The key bytes of a `whsec_` + base64 secret; anything else is refused
/// naming the reference, never quoting the value.
fn signing_key(secret: &str, reference: &SecretRef) -> Result<SecretSlice<u8>, SendError> {
    let refused = || {
        SendError::Permanent(format!(
            "signing_secret_ref: the secret behind {reference} is not a Standard Webhooks secret (whsec_ followed \
             by base64 of the key)"
        ))
    };
    let encoded = secret.trim().strip_prefix("whsec_").ok_or_else(refused)?;
    let key = STANDARD.decode(encoded).map_err(|_| refused())?;
    if key.is_empty() {
        return Err(refused());
    }
    Ok(SecretSlice::from(key))
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks reference libraries.
        let reference: SecretRef = "env:CUDLY_CLOUD_SECRET_HOOK".parse().unwrap();
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &reference).unwrap();
        let signature =
            sign(key.expose_secret(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_not_in_the_standard_form_is_refused_without_being_quoted() {
        let reference: SecretRef = "env:CUDLY_CLOUD_SECRET_HOOK".parse().unwrap();
        for bad in ["plain-s3cret-value", "whsec_", "whsec_not base64!", "s3cret_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            let err = signing_key(bad, &reference).unwrap_err();
            let SendError::Permanent(text) = &err else { panic!("{err:?}") };
            assert!(text.contains("env:CUDLY_CLOUD_SECRET_HOOK") && text.contains("whsec_"), "{text}");
            assert!(!text.contains("s3cret") && !text.contains("not base64"), "the value is never quoted: {text}");
        }
    }
}
