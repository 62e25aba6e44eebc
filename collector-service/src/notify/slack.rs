//! Slack-compatible incoming webhooks: a fallback `text` and Block Kit
//! `blocks` (a header, the totals, the top items, a link to the console),
//! POSTed to the URL behind the channel's reference. That URL is the
//! channel's secret: it never reaches a log line or an error.

use std::time::Duration;

use cudly_core::channels::SlackSettings;
use cudly_core::credentials::SecretFileDirs;
use cudly_core::notice::{NoticeItem, NoticePayload};
use cudly_core::quote::at_most;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Failure, SendError};

/// At most this many recommendations are listed in a message (Slack shows
/// a section's text up to 3,000 characters).
const MAX_LISTED: usize = 10;
/// Each listed line is cut to this many characters.
const MAX_LINE_CHARS: usize = 250;

/// Sends `payload` to the webhook behind `settings`.
pub(crate) async fn send(
    client: &reqwest::Client,
    secret_files: &SecretFileDirs,
    timeout: Duration,
    settings: &SlackSettings,
    payload: &NoticePayload,
) -> Result<(), Failure> {
    let reference = &settings.webhook_url_ref;
    let secret = reference.read(secret_files).map_err(|why| SendError::Permanent(format!("webhook_url_ref: {why}")))?;
    let url = reqwest::Url::parse(secret.expose_secret().trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "https" | "http"))
        .ok_or_else(|| {
            SendError::Permanent(format!("webhook_url_ref: the secret behind {reference} is not an http(s) URL"))
        })?;
    let body = serde_json::to_vec(&render(payload)).expect("a JSON value encodes");
    super::post::post_json(client, url, HeaderMap::new(), body, timeout).await
}

/// The message for `payload`.
pub(crate) fn render(payload: &NoticePayload) -> Value {
    let link = payload.console_url.as_deref().map(|url| {
        json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("<{}|Open the cudly console>", escape(url))}
        ]})
    });
    if payload.kind == "test" {
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": "test notice from cudly"}})];
        blocks.extend(link);
        return json!({"text": "test notice from cudly", "blocks": blocks});
    }
    let count: u64 = payload.totals.iter().map(|t| u64::from(t.count)).sum();
    let sums: Vec<String> =
        payload.totals.iter().map(|t| format!("{} {} a month", t.monthly_savings, t.currency)).collect();
    let text = format!(
        "cudly: {count} recommendation{} with new or grown savings, {}",
        if count == 1 { "" } else { "s" },
        sums.join(", ")
    );
    let totals: Vec<String> = payload
        .totals
        .iter()
        .map(|t| {
            format!("*{}* in {}: *{} {}* a month in all", t.count, escape(&t.currency), t.monthly_savings, t.currency)
        })
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "New savings recommendations"}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": totals.join("\n")}}),
    ];
    let mut lines: Vec<String> = payload.items.iter().take(MAX_LISTED).map(line).collect();
    let more = payload.items.len().saturating_sub(MAX_LISTED) + payload.omitted as usize;
    if more > 0 {
        lines.push(format!("…and {more} more"));
    }
    if !lines.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}}));
    }
    blocks.extend(link);
    json!({"text": text, "blocks": blocks})
}

/// One recommendation as a line.
fn line(item: &NoticeItem) -> String {
    let change = match &item.previous_monthly_savings {
        None => "new".to_string(),
        Some(before) => format!("was {before}"),
    };
    let text = format!(
        "• *{} {}* {} in {}, {} months {}: *{} {}* a month ({change}), {}",
        item.provider,
        item.service,
        item.resource_type,
        item.region,
        item.term_months,
        item.payment_option,
        item.monthly_savings,
        item.currency,
        item.account_name,
    );
    at_most(&escape(&text), MAX_LINE_CHARS)
}

/// Slack's mrkdwn escapes: its control characters as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use cudly_core::notice::NoticeTotal;

    use super::*;

    fn item(n: usize) -> NoticeItem {
        NoticeItem {
            id: uuid::Uuid::new_v4(),
            provider: "aws".into(),
            account_id: "123456789012".into(),
            account_name: "Payments <prod>".into(),
            service: "ec2".into(),
            region: "us-east-1".into(),
            resource_type: format!("m5.{n}xlarge"),
            term_months: 12,
            payment_option: "no_upfront".into(),
            currency: "USD".into(),
            monthly_savings: format!("{}.50", 1000 - n),
            previous_monthly_savings: (n % 2 == 1).then(|| "10.00".into()),
            savings_percentage: 30.0,
        }
    }

    fn payload(items: usize, omitted: u32) -> NoticePayload {
        NoticePayload {
            kind: "recommendations.new_savings".into(),
            collection_id: Some(uuid::Uuid::new_v4()),
            created_at: chrono::Utc::now(),
            outcome: Some("succeeded".into()),
            totals: vec![NoticeTotal {
                currency: "USD".into(),
                count: items as u32 + omitted,
                monthly_savings: "12345.67".into(),
            }],
            items: (0..items).map(item).collect(),
            omitted,
            console_url: Some("https://cudly.example.com/?a=1&b=2".into()),
        }
    }

    #[test]
    fn a_message_has_the_totals_the_top_ten_and_the_console_link() {
        let message = render(&payload(12, 3));
        let text = message["text"].as_str().unwrap();
        assert!(text.contains("15 recommendations") && text.contains("12345.67 USD"), "{text}");
        let blocks = message["blocks"].as_array().unwrap();
        let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["header", "section", "section", "context"]);
        let listed = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(listed.lines().count(), 11, "ten items and a line for the rest: {listed}");
        assert!(listed.ends_with("…and 5 more"), "{listed}");
        assert!(listed.contains("Payments &lt;prod&gt;"), "escaped: {listed}");
        assert!(listed.contains("(new)") && listed.contains("(was 10.00)"), "{listed}");
        let link = blocks[3]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(link, "<https://cudly.example.com/?a=1&amp;b=2|Open the cudly console>");
    }

    #[test]
    fn a_test_notice_is_one_short_line() {
        let test = NoticePayload { kind: "test".into(), totals: vec![], items: vec![], ..payload(0, 0) };
        let message = render(&test);
        assert_eq!(message["text"], "test notice from cudly");
        assert_eq!(message["blocks"][0]["text"]["text"], "test notice from cudly");
    }
}
