//! The email channel: a notice as a plain-text and HTML digest, sent over
//! SMTP with STARTTLS required and the channel's credentials.
//!
//! Each send opens its own connection (channels name their own servers and
//! notices are few), and never authenticates before TLS: a server that does
//! not offer STARTTLS is refused before the credentials leave the process.

mod digest;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
pub(crate) use cudly_core::channels::EmailSettings;
use cudly_core::notice::NoticePayload;
use cudly_core::quote::{at_most, quoted};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use super::SendError;

/// The header that carries the delivery id, for receivers that deduplicate.
const DELIVERY_ID_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Cudly-Delivery-Id");

/// An error's text is cut to this many characters.
const MAX_ERROR_CHARS: usize = 300;

/// `host:port` of the channel's server, bounded, for error messages.
fn server(settings: &EmailSettings) -> String {
    format!("{}:{}", at_most(&settings.smtp_host, 80), settings.port())
}

/// Sends notices by email. One per process: it holds the trust roots and
/// the time limit of a send.
pub(crate) struct Mailer {
    extra_roots: Vec<Certificate>,
    timeout: Duration,
}

impl Mailer {
    /// `extra_ca_file`: a PEM CA trusted besides the public roots (a private
    /// mail relay). `timeout` bounds a whole send: connecting, TLS, AUTH and
    /// the message.
    pub(crate) fn new(extra_ca_file: Option<&Path>, timeout: Duration) -> anyhow::Result<Mailer> {
        let mut extra_roots = Vec::new();
        if let Some(path) = extra_ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading the SMTP CA file {}", path.display()))?;
            for der in CertificateDer::pem_slice_iter(&pem) {
                let der = der.with_context(|| format!("the SMTP CA file {} is not valid PEM", path.display()))?;
                extra_roots.push(Certificate::from_der(der.to_vec())?);
            }
            anyhow::ensure!(!extra_roots.is_empty(), "the SMTP CA file {} holds no certificate", path.display());
        }
        let mailer = Mailer { extra_roots, timeout };
        // Refuse an unusable CA at start-up rather than at every send.
        mailer
            .tls_parameters("localhost")
            .map_err(|e| anyhow::anyhow!("the SMTP CA file cannot be used as a trust root: {e}"))?;
        Ok(mailer)
    }

    /// Sends the digest; `delivery_id` becomes the Message-ID's local part and a
    /// `X-Cudly-Delivery-Id` header (receivers can deduplicate: delivery is at least once).
    pub(crate) async fn send(
        &self,
        settings: &EmailSettings,
        password: &SecretString,
        delivery_id: Uuid,
        payload: &NoticePayload,
    ) -> Result<(), SendError> {
        let message = compose(settings, delivery_id, payload)?;
        let transport = self.transport(settings, password)?;
        let redaction = Redaction::new(&settings.username, password);
        let server = server(settings);
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(classify(&err, &server, &redaction)),
            Err(_) => Err(SendError::Retryable(format!("smtp {server}: no answer within {:?}", self.timeout))),
        }
    }

    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut tls = TlsParameters::builder(host.to_string()).certificate_store(CertificateStore::WebpkiRoots);
        for root in &self.extra_roots {
            tls = tls.add_root_certificate(root.clone());
        }
        tls.build_rustls()
    }

    fn transport(
        &self,
        settings: &EmailSettings,
        password: &SecretString,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let tls = self.tls_parameters(&settings.smtp_host).map_err(|_| {
            SendError::Permanent(format!(
                "smtp_host {} is not a host name or IP address a certificate can name",
                quoted(&settings.smtp_host)
            ))
        })?;
        let credentials = Credentials::new(settings.username.clone(), password.expose_secret().to_string());
        // `builder_dangerous` only means "no TLS chosen yet": STARTTLS is
        // required on the next line, so AUTH never goes out in the clear.
        Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.smtp_host.as_str())
            .port(settings.port())
            .tls(Tls::Required(tls))
            .credentials(credentials)
            .authentication(vec![Mechanism::Plain, Mechanism::Login])
            .timeout(Some(self.timeout))
            .build())
    }
}

/// The message: From and To from the settings, the digest as
/// multipart/alternative, and the delivery id in the Message-ID and its own
/// header.
fn compose(settings: &EmailSettings, delivery_id: Uuid, payload: &NoticePayload) -> Result<Message, SendError> {
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|_| SendError::Permanent(format!("from {} is not an email address", quoted(&settings.from))))?;
    if settings.to.is_empty() {
        return Err(SendError::Permanent("to: no recipients".into()));
    }
    let digest = digest::render(payload, delivery_id);
    let mut message = Message::builder()
        .message_id(Some(format!("<{delivery_id}@{}>", from.email.domain())))
        .raw_header(HeaderValue::new(DELIVERY_ID_HEADER, delivery_id.to_string()))
        .from(from)
        .subject(digest.subject);
    for (i, to) in settings.to.iter().enumerate() {
        let to: Mailbox =
            to.parse().map_err(|_| SendError::Permanent(format!("to[{i}] {} is not an email address", quoted(to))))?;
        message = message.to(to);
    }
    message
        .multipart(MultiPart::alternative_plain_html(digest.text, digest.html))
        .map_err(|e| SendError::Permanent(format!("the message cannot be built: {}", at_most(&e.to_string(), 200))))
}

/// Sorts a failed send: what another attempt may cure is retryable (no
/// connection, a time-out, a 4xx reply, a dropped conversation); a 5xx
/// reply (rejected credentials, an unknown mailbox), a server without
/// STARTTLS and a certificate that does not verify are permanent.
fn classify(err: &lettre::transport::smtp::Error, server: &str, redaction: &Redaction) -> SendError {
    let text = |what: String| at_most(&redaction.apply(&format!("smtp {server}: {what}")), MAX_ERROR_CHARS);
    let cause = innermost_cause(err);
    if let Some(code) = err.status() {
        let reply = text(format!("replied {code} {cause}"));
        return if err.is_transient() { SendError::Retryable(reply) } else { SendError::Permanent(reply) };
    }
    // lettre reports a failed STARTTLS handshake as a connection error;
    // rustls' own error, wrapped in an io::Error, says it is TLS.
    if err.is_tls() || tls_failure(err) {
        return SendError::Permanent(text(format!("TLS failed: {cause}")));
    }
    if err.is_client() {
        // Decided before anything was sent: no STARTTLS offered, no AUTH
        // mechanism in common, an address the server cannot take.
        return SendError::Permanent(text(format!("refused before sending: {cause}")));
    }
    if err.is_timeout() {
        return SendError::Retryable(text("timed out".into()));
    }
    SendError::Retryable(text(format!("connection failed: {cause}")))
}

/// The errors under `err`, outermost first.
fn causes(err: &lettre::transport::smtp::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(err), |e| e.source())
}

/// The deepest cause's text (lettre's own layers each repeat it).
fn innermost_cause(err: &lettre::transport::smtp::Error) -> String {
    causes(err).last().map(ToString::to_string).unwrap_or_else(|| err.to_string())
}

fn tls_failure(err: &lettre::transport::smtp::Error) -> bool {
    causes(err).any(|e| {
        e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
    })
}

/// The forms the credentials take on the wire (AUTH PLAIN and LOGIN send
/// them base64-encoded), to be cut out of anything a server says back.
struct Redaction {
    secrets: Vec<String>,
}

impl Redaction {
    fn new(username: &str, password: &SecretString) -> Redaction {
        let password = password.expose_secret();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secrets = if password.is_empty() {
            Vec::new()
        } else {
            vec![b64(&format!("\0{username}\0{password}")), b64(password), password.to_string()]
        };
        Redaction { secrets }
    }

    /// `text` without the secrets, and without control characters (a reply
    /// spans lines; an error is one).
    fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
    }
}
