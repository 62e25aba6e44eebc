//! A notice as an email digest: a subject, a plain-text part and an HTML
//! part. Every value comes from a cloud or a caller, so each is cut to a
//! bounded length, loses its control characters, and is escaped in HTML.

use std::fmt::Write as _;

use cudly_core::notice::{MAX_NOTICE_ITEMS, NoticeItem, NoticePayload, NoticeTotal};
use cudly_core::quote::at_most;
use uuid::Uuid;

/// A value from a notice is cut to this many characters.
const MAX_FIELD_CHARS: usize = 120;
/// An amount (an exact decimal string) is cut to this many characters.
const MAX_AMOUNT_CHARS: usize = 40;
/// At most this many currencies are listed.
const MAX_TOTALS: usize = 20;
/// The subject is cut to this many characters.
const MAX_SUBJECT_CHARS: usize = 160;

/// The subject of a test notice.
pub(super) const TEST_SUBJECT: &str = "cudly test notice";

/// What the email says.
pub(super) struct Digest {
    pub(super) subject: String,
    pub(super) text: String,
    pub(super) html: String,
}

pub(super) fn render(payload: &NoticePayload, delivery_id: Uuid) -> Digest {
    let totals: Vec<&NoticeTotal> = payload.totals.iter().take(MAX_TOTALS).collect();
    let items: Vec<&NoticeItem> = payload.items.iter().take(MAX_NOTICE_ITEMS).collect();
    let more = u64::from(payload.omitted) + (payload.items.len() - items.len()) as u64;
    let test = payload.kind == "test";
    let subject = if test { TEST_SUBJECT.to_string() } else { subject(payload) };
    let intro = intro(payload, test);
    let console = payload.console_url.as_deref().map(|url| field(url, 2000));
    let footer = format!(
        "Delivery {delivery_id} (also in the X-Cudly-Delivery-Id header): a notice may arrive more than once, \
         always with the same id."
    );

    let mut text = format!("{intro}\n");
    if !totals.is_empty() {
        text.push_str("\nEstimated savings per month:\n");
        for t in &totals {
            let _ = writeln!(
                text,
                "  {} {}  ({} recommendations)",
                amount(&t.monthly_savings),
                field(&t.currency, 8),
                t.count
            );
        }
    }
    if !items.is_empty() {
        text.push_str("\nThe largest:\n");
        for (n, item) in items.iter().enumerate() {
            let _ = writeln!(
                text,
                "{:>3}. {} {}/month{} | {} | {} | {} | {} | {} | {} months | {}",
                n + 1,
                amount(&item.monthly_savings),
                field(&item.currency, 8),
                item.previous_monthly_savings.as_deref().map(|p| format!(" (was {})", amount(p))).unwrap_or_default(),
                field(&item.provider, 16),
                account(item),
                field(&item.service, MAX_FIELD_CHARS),
                field(&item.region, MAX_FIELD_CHARS),
                field(&item.resource_type, MAX_FIELD_CHARS),
                item.term_months,
                field(&item.payment_option, MAX_FIELD_CHARS),
            );
        }
    }
    if more > 0 {
        let _ = writeln!(text, "     and {more} more.");
    }
    if let Some(url) = &console {
        let _ = write!(text, "\nConsole: {url}\n");
    }
    let _ = write!(text, "\n-- \n{footer}\n");

    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<p>{}</p>\n",
        escape(&subject),
        escape(&intro)
    );
    if !totals.is_empty() {
        html.push_str(
            "<table cellpadding=\"4\"><caption>Estimated savings per month</caption>\n\
             <tr><th align=\"left\">Currency</th><th align=\"right\">Recommendations</th>\
             <th align=\"right\">Savings per month</th></tr>\n",
        );
        for t in &totals {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>",
                escape(&field(&t.currency, 8)),
                t.count,
                escape(&amount(&t.monthly_savings))
            );
        }
        html.push_str("</table>\n");
    }
    if !items.is_empty() {
        html.push_str(
            "<table cellpadding=\"4\" border=\"1\" style=\"border-collapse: collapse\"><caption>The largest</caption>\n<tr>",
        );
        for heading in
            ["Provider", "Account", "Service", "Region", "Resource", "Term", "Payment", "Savings per month", "Before"]
        {
            let _ = write!(html, "<th>{heading}</th>");
        }
        html.push_str("</tr>\n");
        for item in &items {
            let currency = field(&item.currency, 8);
            let cells = [
                field(&item.provider, 16),
                account(item),
                field(&item.service, MAX_FIELD_CHARS),
                field(&item.region, MAX_FIELD_CHARS),
                field(&item.resource_type, MAX_FIELD_CHARS),
                format!("{} months", item.term_months),
                field(&item.payment_option, MAX_FIELD_CHARS),
                format!("{} {currency}", amount(&item.monthly_savings)),
                item.previous_monthly_savings
                    .as_deref()
                    .map(|p| format!("{} {currency}", amount(p)))
                    .unwrap_or_else(|| "new".into()),
            ];
            html.push_str("<tr>");
            for cell in cells {
                let _ = write!(html, "<td>{}</td>", escape(&cell));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
    }
    if more > 0 {
        let _ = writeln!(html, "<p>and {more} more.</p>");
    }
    if let Some(url) = &console {
        // Only a web address becomes a link (never `javascript:`).
        if url.starts_with("https://") || url.starts_with("http://") {
            let _ = writeln!(html, "<p><a href=\"{0}\">{0}</a></p>", escape(url));
        } else {
            let _ = writeln!(html, "<p>Console: {}</p>", escape(url));
        }
    }
    let _ = write!(html, "<hr>\n<p style=\"color: #666; font-size: small\">{}</p>\n</body></html>\n", escape(&footer));

    Digest { subject, text, html }
}

/// `3 new savings: 1234.56 USD/month`, with every currency's total.
fn subject(payload: &NoticePayload) -> String {
    let count: u64 = payload.totals.iter().map(|t| u64::from(t.count)).sum();
    let count = if count == 0 { payload.items.len() as u64 + u64::from(payload.omitted) } else { count };
    let sums: Vec<String> = payload
        .totals
        .iter()
        .take(MAX_TOTALS)
        .map(|t| format!("{} {}/month", amount(&t.monthly_savings), field(&t.currency, 8)))
        .collect();
    let subject = if sums.is_empty() {
        format!("{count} new savings")
    } else {
        format!("{count} new savings: {}", sums.join(", "))
    };
    at_most(&subject, MAX_SUBJECT_CHARS)
}

fn intro(payload: &NoticePayload, test: bool) -> String {
    if test {
        return "This is a test notice from cudly: notices of this channel reach you.".into();
    }
    let run = match (payload.collection_id, payload.outcome.as_deref()) {
        (Some(id), Some(outcome)) => format!(" after run {id} ({})", field(outcome, 40)),
        (Some(id), None) => format!(" after run {id}"),
        _ => String::new(),
    };
    format!("Recommendations with new or grown estimated savings{run}.")
}

/// `name (id)`, or the id alone when the name says nothing more.
fn account(item: &NoticeItem) -> String {
    let (name, id) = (field(&item.account_name, MAX_FIELD_CHARS), field(&item.account_id, MAX_FIELD_CHARS));
    if name.is_empty() || name == id { id } else { format!("{name} ({id})") }
}

fn amount(value: &str) -> String {
    field(value, MAX_AMOUNT_CHARS)
}

/// `value` on one line and at most `max` characters.
fn field(value: &str, max: usize) -> String {
    let one_line: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    at_most(one_line.trim(), max)
}

/// `text` safe inside HTML text and double- or single-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_field_is_one_bounded_line() {
        assert_eq!(field("a\r\nSubject: forged", 100), "a  Subject: forged");
        assert_eq!(field(&"x".repeat(1000), 10).chars().count(), 10);
    }
}
