//! NotificationsService: `cudlyctl notifications channels
//! create|get|list|update|delete`, `notifications test` and `notifications
//! deliveries`. Secrets are references (`env:`/`file:`), never values; the
//! flags mirror the request's fields.

use clap::{ArgGroup, Args, Subcommand};
use cudly_core::credentials::SecretRef;
use cudly_core::quote::at_most;
use cudly_proto::recommendations::v1 as pb;

use crate::connect::Notifications;
use crate::output::{self, Format, time};
use crate::paging::{self, Pages};

/// The notifications subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NotificationsCmd {
    /// Manage the channels notices go to.
    #[command(subcommand)]
    Channels(ChannelsCmd),
    /// Queue a test notice to one channel (enabled or not) and print its
    /// delivery; follow it with `deliveries`.
    Test {
        /// The channel's name.
        name: String,
    },
    /// List deliveries, most recent first: status, attempts, last error.
    Deliveries {
        /// Only this channel's.
        #[arg(long)]
        channel: Option<String>,
        /// Deliveries to print, fetched in as many pages as that takes.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        pages: Pages,
    },
}

/// The channel subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ChannelsCmd {
    /// Add a channel of one kind (ALREADY_EXISTS, exit status 7, when the
    /// name is taken).
    Create {
        /// Its name: a-z, 0-9 and -, starting with a letter, at most 63.
        name: String,
        /// Whether run notices go to it (true when omitted).
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        #[command(flatten)]
        kind: KindArgs,
    },
    /// Print one channel.
    Get {
        /// The channel's name.
        name: String,
    },
    /// List every channel, by name.
    List,
    /// Change what is given, keep the rest; a kind's flags replace its
    /// settings whole (of the same kind or another).
    Update {
        /// The channel's name.
        name: String,
        /// Enable or disable run notices to it.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        #[command(flatten)]
        kind: KindArgs,
    },
    /// Remove a channel and its deliveries.
    Delete {
        /// The channel's name.
        name: String,
    },
}

/// What the channel is: the flags of one kind at most.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(ArgGroup::new("webhook").multiple(true).conflicts_with_all(["slack", "email"])))]
#[command(group(ArgGroup::new("slack").multiple(true).conflicts_with("email")))]
#[command(group(ArgGroup::new("email").multiple(true)))]
pub(crate) struct KindArgs {
    /// Webhook: where notices are POSTed (https://, or http:// to a
    /// loopback host).
    #[arg(long, group = "webhook", value_name = "URL")]
    webhook_url: Option<String>,
    /// Webhook: where the signing secret (whsec_…) is,
    /// env:CUDLY_CLOUD_SECRET_<NAME> or file:/absolute/path (never the
    /// secret itself).
    #[arg(long, group = "webhook", value_name = "REF")]
    signing_secret_ref: Option<String>,
    /// Slack: where the incoming webhook's URL is (it is a secret),
    /// env:CUDLY_CLOUD_SECRET_<NAME> or file:/absolute/path.
    #[arg(long, group = "slack", value_name = "REF")]
    slack_webhook_url_ref: Option<String>,
    /// Email: the SMTP server's host name (STARTTLS is required).
    #[arg(long, group = "email", value_name = "HOST")]
    smtp_host: Option<String>,
    /// Email: the SMTP submission port (587 when omitted).
    #[arg(long, group = "email", value_name = "PORT")]
    smtp_port: Option<u16>,
    /// Email: the SMTP user name.
    #[arg(long, group = "email", value_name = "USER")]
    smtp_username: Option<String>,
    /// Email: where the SMTP password is, env:CUDLY_CLOUD_SECRET_<NAME> or
    /// file:/absolute/path.
    #[arg(long, group = "email", value_name = "REF")]
    smtp_password_ref: Option<String>,
    /// Email: the sender address.
    #[arg(long, group = "email", value_name = "ADDRESS")]
    from: Option<String>,
    /// Email: the recipients, comma-separated (1 to 50).
    #[arg(long, group = "email", value_name = "ADDRESS,…", value_delimiter = ',')]
    to: Vec<String>,
}

impl NotificationsCmd {
    /// Checks what clap cannot, before anything is sent: a secret
    /// reference that is not one is a usage error, and is never echoed (clap
    /// would quote a value it refuses): it may be the secret itself.
    pub(crate) fn check(&self) {
        if let NotificationsCmd::Channels(ChannelsCmd::Create { kind, .. } | ChannelsCmd::Update { kind, .. }) = self {
            for (flag, value) in [
                ("--signing-secret-ref", &kind.signing_secret_ref),
                ("--slack-webhook-url-ref", &kind.slack_webhook_url_ref),
                ("--smtp-password-ref", &kind.smtp_password_ref),
            ] {
                if let Some(Err(err)) = value.as_deref().map(str::parse::<SecretRef>) {
                    crate::usage_error(format!("{flag}: {err}"));
                }
            }
        }
    }
}

impl KindArgs {
    /// The settings the flags give, if any (missing fields go as empty, and
    /// the server names them).
    fn into_proto(self) -> Option<pb::channel::Kind> {
        use pb::channel::Kind;
        if self.webhook_url.is_some() || self.signing_secret_ref.is_some() {
            return Some(Kind::Webhook(pb::WebhookChannel {
                url: self.webhook_url.unwrap_or_default(),
                signing_secret_ref: self.signing_secret_ref.unwrap_or_default(),
            }));
        }
        if let Some(webhook_url_ref) = self.slack_webhook_url_ref {
            return Some(Kind::Slack(pb::SlackChannel { webhook_url_ref }));
        }
        let email = self.smtp_host.is_some()
            || self.smtp_port.is_some()
            || self.smtp_username.is_some()
            || self.smtp_password_ref.is_some()
            || self.from.is_some()
            || !self.to.is_empty();
        email.then(|| {
            Kind::Email(pb::EmailChannel {
                smtp_host: self.smtp_host.unwrap_or_default(),
                smtp_port: self.smtp_port.map_or(0, u32::from),
                username: self.smtp_username.unwrap_or_default(),
                password_ref: self.smtp_password_ref.unwrap_or_default(),
                from: self.from.unwrap_or_default(),
                to: self.to,
            })
        })
    }
}

impl paging::Page for pb::ListDeliveriesResponse {
    fn rows(&self) -> usize {
        self.deliveries.len()
    }
    fn next_page_token(&self) -> &str {
        &self.next_page_token
    }
}

/// Runs a notifications subcommand.
pub(crate) async fn run(client: &mut Notifications, cmd: NotificationsCmd, out: Format) -> anyhow::Result<()> {
    match cmd {
        NotificationsCmd::Channels(cmd) => channels(client, cmd, out).await,
        NotificationsCmd::Test { name } => {
            let delivery = client.send_test_notice(pb::SendTestNoticeRequest { name }).await?.into_inner();
            match out {
                Format::Json => output::json(&delivery),
                Format::Table => print_deliveries(std::slice::from_ref(&delivery), true),
            }
        }
        NotificationsCmd::Deliveries { channel, limit, pages } => {
            let channel = channel.unwrap_or_default();
            let mut header = true;
            let more = pages
                .fetch(
                    limit,
                    async |page_size, page_token| {
                        let request = pb::ListDeliveriesRequest { channel: channel.clone(), page_size, page_token };
                        client.list_deliveries(request).await.map(|r| r.into_inner())
                    },
                    |page| match out {
                        Format::Json => output::json(&page),
                        Format::Table => print_deliveries(&page.deliveries, std::mem::take(&mut header)),
                    },
                )
                .await?;
            paging::tell_more(more, out);
            Ok(())
        }
    }
}

async fn channels(client: &mut Notifications, cmd: ChannelsCmd, out: Format) -> anyhow::Result<()> {
    match cmd {
        ChannelsCmd::Create { name, enabled, kind } => {
            let channel = pb::Channel { name, enabled, kind: kind.into_proto(), created_at: None, updated_at: None };
            let channel = client.create_channel(pb::CreateChannelRequest { channel: Some(channel) }).await?;
            print_one(&channel.into_inner(), out)
        }
        ChannelsCmd::Get { name } => {
            print_one(&client.get_channel(pb::GetChannelRequest { name }).await?.into_inner(), out)
        }
        ChannelsCmd::List => {
            let response = client.list_channels(pb::ListChannelsRequest {}).await?.into_inner();
            match out {
                Format::Json => output::json(&response),
                Format::Table => print_channels(&response.channels),
            }
        }
        ChannelsCmd::Update { name, enabled, kind } => {
            use pb::channel::Kind as C;
            use pb::update_channel_request::Kind as U;
            let kind = kind.into_proto().map(|k| match k {
                C::Webhook(w) => U::Webhook(w),
                C::Slack(s) => U::Slack(s),
                C::Email(e) => U::Email(e),
            });
            let request = pb::UpdateChannelRequest { name, enabled, kind };
            print_one(&client.update_channel(request).await?.into_inner(), out)
        }
        ChannelsCmd::Delete { name } => {
            let response = client.delete_channel(pb::DeleteChannelRequest { name: name.clone() }).await?.into_inner();
            match out {
                Format::Json => output::json(&response),
                Format::Table => output::line(&format!(
                    "deleted notification channel {name} and {} deliveries",
                    response.deleted_deliveries
                )),
            }
        }
    }
}

fn print_one(channel: &pb::Channel, out: Format) -> anyhow::Result<()> {
    match out {
        Format::Json => output::json(channel),
        Format::Table => print_channels(std::slice::from_ref(channel)),
    }
}

fn print_channels(channels: &[pb::Channel]) -> anyhow::Result<()> {
    output::line(&format!("{:<24} {:<7} {:<7} {:<23} settings", "name", "kind", "enabled", "updated"))?;
    for c in channels {
        output::line(&format!(
            "{:<24} {:<7} {:<7} {:<23} {}",
            at_most(&c.name, 24),
            kind_name(c.kind.as_ref()),
            if c.enabled.unwrap_or(true) { "yes" } else { "no" },
            time(c.updated_at.as_ref()),
            describe(c.kind.as_ref()),
        ))?;
    }
    Ok(())
}

fn kind_name(kind: Option<&pb::channel::Kind>) -> &'static str {
    match kind {
        Some(pb::channel::Kind::Webhook(_)) => "webhook",
        Some(pb::channel::Kind::Slack(_)) => "slack",
        Some(pb::channel::Kind::Email(_)) => "email",
        None => "",
    }
}

/// The settings in a few words (references only: the API never holds a
/// secret value).
fn describe(kind: Option<&pb::channel::Kind>) -> String {
    let text = match kind {
        Some(pb::channel::Kind::Webhook(w)) => format!("{} signed with {}", w.url, w.signing_secret_ref),
        Some(pb::channel::Kind::Slack(s)) => format!("url {}", s.webhook_url_ref),
        Some(pb::channel::Kind::Email(e)) => format!(
            "{} via {}:{} as {} (password {}) to {}",
            e.from,
            e.smtp_host,
            e.smtp_port,
            e.username,
            e.password_ref,
            e.to.join(", ")
        ),
        None => String::new(),
    };
    at_most(&text, 200)
}

fn print_deliveries(deliveries: &[pb::Delivery], header: bool) -> anyhow::Result<()> {
    if header {
        output::line(&format!(
            "{:<36} {:<24} {:<9} {:>8} {:>5} {:<23} {:<36} last error",
            "id", "channel", "status", "attempts", "items", "created", "run"
        ))?;
    }
    for d in deliveries {
        let status = match d.status() {
            pb::DeliveryStatus::Pending => "pending",
            pb::DeliveryStatus::Delivered => "delivered",
            pb::DeliveryStatus::Failed => "failed",
            pb::DeliveryStatus::Unspecified => "",
        };
        let run = if d.test { "test" } else { d.collection_id.as_str() };
        output::line(&format!(
            "{:<36} {:<24} {:<9} {:>8} {:>5} {:<23} {:<36} {}",
            d.id,
            at_most(&d.channel, 24),
            status,
            d.attempts,
            d.item_count,
            time(d.created_at.as_ref()),
            run,
            at_most(&d.last_error, 120),
        ))?;
    }
    Ok(())
}
