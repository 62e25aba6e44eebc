//! A notification channel's settings as `notification_channels.settings`
//! holds them: api-service validates and writes them, the collector's
//! deliverers read them. One type per kind, so writer and readers agree.
//! Secrets are references, never values.

use serde::{Deserialize, Serialize};

use crate::credentials::SecretRef;

/// A JSON webhook signed as the Standard Webhooks specification describes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// Where notices are POSTed: `https://`, or `http://` to a loopback host.
    pub url: String,
    /// Where the signing secret (`whsec_` and base64) is.
    pub signing_secret_ref: SecretRef,
}

/// A Slack-compatible incoming webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackSettings {
    /// Where the incoming webhook's URL is (whoever has it may post).
    pub webhook_url_ref: SecretRef,
}

/// The SMTP submission port (RFC 6409), taken when a channel names none.
pub const SUBMISSION_PORT: u16 = 587;

/// An email digest over SMTP with STARTTLS and authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSettings {
    /// The SMTP server (a name or an IP address; its certificate must match).
    pub smtp_host: String,
    /// Its port; 0 means [`SUBMISSION_PORT`] (api-service stores 587 then).
    pub smtp_port: u16,
    /// The account to authenticate as.
    pub username: String,
    /// Where the password is.
    pub password_ref: SecretRef,
    /// The sender, `cudly@example.com` or `Cudly <cudly@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

impl EmailSettings {
    /// The port to connect to: [`SUBMISSION_PORT`] when none is set.
    pub fn port(&self) -> u16 {
        if self.smtp_port == 0 { SUBMISSION_PORT } else { self.smtp_port }
    }
}
