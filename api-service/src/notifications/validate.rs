//! Checking NotificationsService requests field by field: every refusal is
//! INVALID_ARGUMENT with a message that starts with the field's path
//! (`channel.webhook.url`, `channel.email.to[2]`). Values are quoted
//! bounded, and a value given where a secret reference belongs is never
//! quoted at all: it may be the secret itself.

use std::net::IpAddr;

use cudly_core::channels::{EmailSettings, SlackSettings, WebhookSettings};
use cudly_core::credentials::SecretRef;
use cudly_core::quote::quoted;
use cudly_proto::recommendations::v1 as pb;

use crate::error::Error;

/// Longest webhook URL.
const MAX_URL_LEN: usize = 2048;
/// Longest email address (RFC 5321's path limit less its brackets).
const MAX_ADDRESS_LEN: usize = 254;
/// Longest local part of an address (RFC 5321).
const MAX_LOCAL_PART_LEN: usize = 64;
/// Longest host name (RFC 1035).
const MAX_HOST_LEN: usize = 253;
/// Longest SMTP user name.
const MAX_USERNAME_LEN: usize = 256;
/// Most recipients of one email channel.
pub(super) const MAX_RECIPIENTS: usize = 50;

pub(super) fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// A channel's kind and its settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Settings {
    Webhook(WebhookSettings),
    Slack(SlackSettings),
    Email(EmailSettings),
}

impl Settings {
    /// `notification_channels.kind`.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Settings::Webhook(_) => "webhook",
            Settings::Slack(_) => "slack",
            Settings::Email(_) => "email",
        }
    }

    /// `notification_channels.settings`.
    pub(super) fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Settings::Webhook(s) => serde_json::to_value(s),
            Settings::Slack(s) => serde_json::to_value(s),
            Settings::Email(s) => serde_json::to_value(s),
        };
        value.expect("settings serialize")
    }

    /// The settings stored for a channel of `kind`.
    pub(super) fn from_stored(kind: &str, settings: serde_json::Value) -> Result<Self, String> {
        let parsed = match kind {
            "webhook" => serde_json::from_value(settings).map(Settings::Webhook),
            "slack" => serde_json::from_value(settings).map(Settings::Slack),
            "email" => serde_json::from_value(settings).map(Settings::Email),
            other => return Err(format!("unknown channel kind {}", quoted(other))),
        };
        parsed.map_err(|err| format!("{kind} settings do not parse: {err}"))
    }

    pub(super) fn into_proto(self) -> pb::channel::Kind {
        use pb::channel::Kind;
        match self {
            Settings::Webhook(s) => {
                Kind::Webhook(pb::WebhookChannel { url: s.url, signing_secret_ref: s.signing_secret_ref.to_string() })
            }
            Settings::Slack(s) => Kind::Slack(pb::SlackChannel { webhook_url_ref: s.webhook_url_ref.to_string() }),
            Settings::Email(s) => Kind::Email(pb::EmailChannel {
                smtp_host: s.smtp_host,
                smtp_port: u32::from(s.smtp_port),
                username: s.username,
                password_ref: s.password_ref.to_string(),
                from: s.from,
                to: s.to,
            }),
        }
    }
}

/// A new channel, validated.
#[derive(Debug, PartialEq)]
pub(super) struct NewChannel {
    pub(super) name: String,
    pub(super) enabled: bool,
    pub(super) settings: Settings,
}

pub(super) fn parse_new(channel: Option<pb::Channel>) -> Result<NewChannel, Error> {
    let channel = channel.ok_or_else(|| invalid("channel: required".into()))?;
    validate_name("channel.name", &channel.name)?;
    let kind = channel.kind.ok_or_else(|| invalid("channel.kind: required: one of webhook, slack or email".into()))?;
    let settings = parse_kind("channel.", kind)?;
    Ok(NewChannel { name: channel.name, enabled: channel.enabled.unwrap_or(true), settings })
}

/// An UpdateChannelRequest's new settings, validated (its fields are
/// named from the request: `webhook.url`).
pub(super) fn parse_update_kind(kind: pb::update_channel_request::Kind) -> Result<Settings, Error> {
    use pb::channel::Kind as C;
    use pb::update_channel_request::Kind as U;
    let kind = match kind {
        U::Webhook(w) => C::Webhook(w),
        U::Slack(s) => C::Slack(s),
        U::Email(e) => C::Email(e),
    };
    parse_kind("", kind)
}

/// Checks a channel name (`field` names it in the refusal):
/// `^[a-z][a-z0-9-]{0,62}$`.
pub(super) fn validate_name(field: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(invalid(format!("{field}: required")));
    }
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: {} is not a channel name: 1 to 63 characters of a-z, 0-9 and -, starting with a letter",
            quoted(name)
        )))
    }
}

/// The settings of one kind; `prefix` leads every field path.
fn parse_kind(prefix: &str, kind: pb::channel::Kind) -> Result<Settings, Error> {
    use pb::channel::Kind;
    match kind {
        Kind::Webhook(w) => {
            let field = format!("{prefix}webhook");
            let url = webhook_url(&format!("{field}.url"), w.url)?;
            let signing_secret_ref = secret_ref(&format!("{field}.signing_secret_ref"), &w.signing_secret_ref)?;
            Ok(Settings::Webhook(WebhookSettings { url, signing_secret_ref }))
        }
        Kind::Slack(s) => {
            let webhook_url_ref = secret_ref(&format!("{prefix}slack.webhook_url_ref"), &s.webhook_url_ref)?;
            Ok(Settings::Slack(SlackSettings { webhook_url_ref }))
        }
        Kind::Email(e) => parse_email(&format!("{prefix}email"), e).map(Settings::Email),
    }
}

fn parse_email(field: &str, e: pb::EmailChannel) -> Result<EmailSettings, Error> {
    smtp_host(&format!("{field}.smtp_host"), &e.smtp_host)?;
    let smtp_port = match e.smtp_port {
        0 => cudly_core::channels::SUBMISSION_PORT,
        port => u16::try_from(port).map_err(|_| {
            invalid(format!(
                "{field}.smtp_port: 1 to 65535 (0 means {}), got {port}",
                cudly_core::channels::SUBMISSION_PORT
            ))
        })?,
    };
    if e.username.is_empty() {
        return Err(invalid(format!("{field}.username: required (the server must authenticate us)")));
    }
    if e.username.chars().count() > MAX_USERNAME_LEN || e.username.chars().any(char::is_control) {
        return Err(invalid(format!("{field}.username: at most {MAX_USERNAME_LEN} characters, no control characters")));
    }
    let password_ref = secret_ref(&format!("{field}.password_ref"), &e.password_ref)?;
    address(&format!("{field}.from"), &e.from)?;
    if e.to.is_empty() {
        return Err(invalid(format!("{field}.to: at least one recipient")));
    }
    if e.to.len() > MAX_RECIPIENTS {
        return Err(invalid(format!("{field}.to: at most {MAX_RECIPIENTS} recipients, got {}", e.to.len())));
    }
    for (i, to) in e.to.iter().enumerate() {
        address(&format!("{field}.to[{i}]"), to)?;
        if e.to[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(to)) {
            return Err(invalid(format!("{field}.to[{i}]: {} is listed twice", quoted(to))));
        }
    }
    Ok(EmailSettings { smtp_host: e.smtp_host, smtp_port, username: e.username, password_ref, from: e.from, to: e.to })
}

/// A reference to a secret. The refusal names the field; it quotes the
/// value only when it is shaped as a reference (`SecretRef`'s own rule).
fn secret_ref(field: &str, value: &str) -> Result<SecretRef, Error> {
    if value.is_empty() {
        return Err(invalid(format!("{field}: required: env:CUDLY_CLOUD_SECRET_<NAME> or file:/absolute/path")));
    }
    value.parse().map_err(|e| invalid(format!("{field}: {e}")))
}

/// Where webhooks are POSTed: `https://` with a host, or `http://` to a
/// loopback host (the rule of `cudly_core::url`), without credentials in it.
fn webhook_url(field: &str, url: String) -> Result<String, Error> {
    if url.is_empty() {
        return Err(invalid(format!("{field}: required")));
    }
    if url.len() > MAX_URL_LEN {
        return Err(invalid(format!("{field}: at most {MAX_URL_LEN} characters")));
    }
    // Before anything quotes it: a URL with a user and password carries a
    // secret, and is refused without being echoed.
    if let Ok(uri) = url.parse::<http::Uri>()
        && uri.authority().is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(invalid(format!(
            "{field}: must not carry credentials (user:password@); the signing secret authenticates notices"
        )));
    }
    cudly_core::url::checked_url(&url).map_err(|err| invalid(format!("{field}: {err}")))?;
    Ok(url)
}

/// The SMTP server: a host name or an IP address, without scheme or port.
fn smtp_host(field: &str, host: &str) -> Result<(), Error> {
    if host.is_empty() {
        return Err(invalid(format!("{field}: required")));
    }
    if is_host_name(host) || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    Err(invalid(format!(
        "{field}: {} is not a host name (give the name alone: no scheme, no port, no spaces)",
        quoted(host)
    )))
}

/// Letters, digits and hyphens in dot-separated labels of at most 63
/// characters, no label starting or ending with a hyphen, 253 in all.
fn is_host_name(host: &str) -> bool {
    host.len() <= MAX_HOST_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The characters of an unquoted local part (RFC 5322 `atext`).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A plausible email address: `local@domain`, the local part a dot-atom of
/// at most 64 characters, the domain a host name; no display name, no
/// quoted local part, no whitespace or control characters (so no header
/// can be smuggled in through it).
fn address(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(invalid(format!("{field}: required")));
    }
    let refuse = |why: &str| Err(invalid(format!("{field}: {} is not an email address: {why}", quoted(value))));
    if value.chars().count() > MAX_ADDRESS_LEN {
        return refuse("at most 254 characters");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("no spaces or control characters");
    }
    let Some((local, domain)) = value.split_once('@') else {
        return refuse("expected local-part@domain");
    };
    if domain.contains('@') {
        return refuse("more than one @");
    }
    let dot_atom = !local.is_empty()
        && local.len() <= MAX_LOCAL_PART_LEN
        && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    if !dot_atom {
        return refuse("the part before @ is 1 to 64 letters, digits or !#$%&'*+-/=?^_`{|}~, dot-separated");
    }
    if !is_host_name(domain) {
        return refuse("the part after @ is not a domain name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str, secret: &str) -> pb::channel::Kind {
        pb::channel::Kind::Webhook(pb::WebhookChannel { url: url.into(), signing_secret_ref: secret.into() })
    }

    fn email() -> pb::EmailChannel {
        pb::EmailChannel {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 0,
            username: "cudly".into(),
            password_ref: "file:/var/run/secrets/cudly/smtp".into(),
            from: "cudly@example.com".into(),
            to: vec!["finops@example.com".into(), "ops+cudly@eu.example.com".into()],
        }
    }

    fn channel(name: &str, kind: pb::channel::Kind) -> Option<pb::Channel> {
        Some(pb::Channel { name: name.into(), kind: Some(kind), ..Default::default() })
    }

    /// The field path a refusal names.
    fn field_of(result: Result<NewChannel, Error>) -> String {
        let err = result.unwrap_err().to_string();
        err.split(": ").next().unwrap().to_string()
    }

    const SECRET: &str = "env:CUDLY_CLOUD_SECRET_WEBHOOK";

    #[test]
    fn channels_are_validated_field_by_field() {
        let ok = parse_new(channel("finops-hook", webhook("https://hooks.example.com/cudly", SECRET))).unwrap();
        assert!(ok.enabled, "enabled unless said otherwise");
        assert_eq!(ok.settings.kind(), "webhook");
        assert!(parse_new(channel("local", webhook("http://127.0.0.1:8080/hook", SECRET))).is_ok());
        assert_eq!(field_of(parse_new(None)), "channel");
        assert_eq!(field_of(parse_new(Some(pb::Channel { name: "x".into(), ..Default::default() }))), "channel.kind");
        for name in ["", "Finops", "1st", "has space", "-x", &"a".repeat(64), "ünï"] {
            let kind = webhook("https://hooks.example.com", SECRET);
            assert_eq!(field_of(parse_new(channel(name, kind))), "channel.name", "{name:?}");
        }
        assert!(parse_new(channel(&format!("a{}", "-".repeat(62)), webhook("https://h.example", SECRET))).is_ok());
        for url in ["", "not a url", "ftp://hooks.example.com", "http://hooks.example.com/x", "/relative"] {
            let result = parse_new(channel("hook", webhook(url, SECRET)));
            assert_eq!(field_of(result), "channel.webhook.url", "{url:?}");
        }
        let err = parse_new(channel("hook", webhook("http://hooks.example.com/x", SECRET))).unwrap_err().to_string();
        assert!(err.contains("must use https") && err.contains("loopback"), "{err}");
        let err = parse_new(channel("hook", webhook("https://bob:hunter2@hooks.example.com/", SECRET)))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("channel.webhook.url: must not carry credentials") && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse_new(channel("hook", webhook("https://hooks.example.com", "whsec_c2VjcmV0LWtleQ==")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("channel.webhook.signing_secret_ref: ") && !err.contains("whsec_"), "{err}");
        let slack = |r: &str| pb::channel::Kind::Slack(pb::SlackChannel { webhook_url_ref: r.into() });
        let err = parse_new(channel("chat", slack("https://hooks.slack.com/services/T0/B0/XYZ"))).unwrap_err();
        assert!(!err.to_string().contains("hooks.slack.com"), "a secret is not echoed: {err}");
        assert_eq!(field_of(parse_new(channel("chat", slack("")))), "channel.slack.webhook_url_ref");
        assert!(parse_new(channel("chat", slack("file:/var/run/secrets/cudly/slack-url"))).is_ok());
    }

    #[test]
    fn email_channels_are_validated_field_by_field() {
        let with = |f: &dyn Fn(&mut pb::EmailChannel)| {
            let mut e = email();
            f(&mut e);
            parse_new(channel("mail", pb::channel::Kind::Email(e)))
        };
        let ok = with(&|_| {}).unwrap();
        let Settings::Email(settings) = &ok.settings else { panic!("{ok:?}") };
        assert_eq!(settings.smtp_port, 587, "0 is the submission port");
        assert!(with(&|e| e.smtp_host = "127.0.0.1".into()).is_ok());
        assert!(with(&|e| e.smtp_port = 2525).is_ok());
        for host in ["", "smtp://smtp.example.com", "smtp.example.com:587", "smtp example.com", "-bad.example"] {
            assert_eq!(field_of(with(&|e| e.smtp_host = host.into())), "channel.email.smtp_host", "{host:?}");
        }
        assert_eq!(field_of(with(&|e| e.smtp_port = 65_536)), "channel.email.smtp_port");
        assert_eq!(field_of(with(&|e| e.username = String::new())), "channel.email.username");
        assert_eq!(field_of(with(&|e| e.username = "a\nb".into())), "channel.email.username");
        let err = with(&|e| e.password_ref = "correct horse battery".into()).unwrap_err().to_string();
        assert!(err.starts_with("channel.email.password_ref: ") && !err.contains("horse"), "{err}");
        for bad in [
            "",
            "plain",
            "two@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "ops@example.com\r\nBcc: all@example.com",
            "\"quoted\"@example.com",
            ".dot@example.com",
            "a..b@example.com",
            "ops@",
            "ops@-x.example",
            "Ops <ops@example.com>",
        ] {
            assert_eq!(field_of(with(&|e| e.from = bad.into())), "channel.email.from", "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(300));
        let err = with(&|e| e.from = long.clone()).unwrap_err().to_string();
        assert!(err.len() < 300, "quoted bounded: {err}");
        assert_eq!(field_of(with(&|e| e.to = vec![])), "channel.email.to");
        assert_eq!(field_of(with(&|e| e.to.push("not-an-address".into()))), "channel.email.to[2]");
        assert_eq!(field_of(with(&|e| e.to.push("FinOps@example.com".into()))), "channel.email.to[2]");
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("r{i}@example.com")).collect();
        let err = with(&|e| e.to = many.clone()).unwrap_err().to_string();
        assert!(err.starts_with("channel.email.to: at most 50 recipients"), "{err}");
        assert!(with(&|e| e.to = many[..MAX_RECIPIENTS].to_vec()).is_ok());
    }

    #[test]
    fn update_fields_are_named_from_the_request() {
        let kind = pb::update_channel_request::Kind::Webhook(pb::WebhookChannel {
            url: "http://example.com".into(),
            signing_secret_ref: SECRET.into(),
        });
        let err = parse_update_kind(kind).unwrap_err().to_string();
        assert!(err.starts_with("webhook.url: "), "{err}");
    }

    #[test]
    fn settings_are_stored_as_the_deliverers_read_them() {
        let Ok(NewChannel { settings, .. }) = parse_new(channel("mail", pb::channel::Kind::Email(email()))) else {
            panic!()
        };
        let json = settings.to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "smtp_host": "smtp.example.com", "smtp_port": 587, "username": "cudly",
                "password_ref": "file:/var/run/secrets/cudly/smtp", "from": "cudly@example.com",
                "to": ["finops@example.com", "ops+cudly@eu.example.com"],
            })
        );
        assert_eq!(Settings::from_stored("email", json).unwrap(), settings);
        let hook = parse_new(channel("hook", webhook("https://hooks.example.com/x", SECRET))).unwrap().settings;
        assert_eq!(
            hook.to_json(),
            serde_json::json!({"url": "https://hooks.example.com/x", "signing_secret_ref": SECRET})
        );
        let slack = Settings::Slack(SlackSettings { webhook_url_ref: "env:CUDLY_CLOUD_SECRET_SLACK".parse().unwrap() });
        assert_eq!(slack.to_json(), serde_json::json!({"webhook_url_ref": "env:CUDLY_CLOUD_SECRET_SLACK"}));
        assert!(Settings::from_stored("pager", serde_json::json!({})).is_err());
    }
}
