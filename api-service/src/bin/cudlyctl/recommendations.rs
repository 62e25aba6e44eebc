//! RecommendationsService (and health): refresh, freshness, listings.

use clap::Args;
use clap::builder::TypedValueParser;
use cudly_core::domain::Provider;
use cudly_core::money::Amount;
use cudly_core::quote::at_most;
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::connect::Recommendations;
use crate::exit::Unreachable;
use crate::output::{self, Format, money_exact, money_rounded, time};
use crate::paging::{self, Pages};

/// `list`'s filters and paging.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub(crate) struct ListArgs {
    /// Only this cloud's.
    #[arg(long, value_parser = provider_parser())]
    provider: Option<Provider>,
    /// Service, e.g. ec2.
    #[arg(long)]
    service: Option<String>,
    /// Region, e.g. us-east-1.
    #[arg(long)]
    region: Option<String>,
    /// Account id (repeatable).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Minimum monthly savings, in --currency (exact decimal, e.g. 500.25).
    #[arg(long, value_parser = parse_amount)]
    min_savings: Option<Amount>,
    /// Currency of --min-savings (amounts are never converted: rows in
    /// other currencies are left out). Alone, it lists that currency only.
    #[arg(long)]
    currency: Option<String>,
    /// Minimum savings percentage.
    #[arg(long, default_value_t = 0.0)]
    min_percentage: f64,
    /// Rows to print, fetched in as many pages as that takes.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    #[command(flatten)]
    pages: Pages,
}

/// `collections`' paging.
#[derive(Debug, Args)]
pub(crate) struct CollectionsArgs {
    /// Runs to print, fetched in as many pages as that takes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    #[command(flatten)]
    pages: Pages,
}

/// The `--provider` values: the names the API's domain uses.
pub(crate) fn provider_parser() -> impl TypedValueParser<Value = Provider> {
    clap::builder::PossibleValuesParser::new(Provider::ALL.iter().map(|p| p.as_str()))
        .map(|name| Provider::parse(&name).expect("a possible value"))
}

fn parse_amount(text: &str) -> Result<Amount, String> {
    Amount::parse(text).map_err(|err| err.to_string())
}

/// `health`: exits 0 only when SERVING.
pub(crate) async fn health(channel: Channel, out: Format) -> anyhow::Result<()> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    let response = health.check(request).await?.into_inner();
    match out {
        Format::Table => output::line(response.status().as_str_name())?,
        Format::Json => output::json_named(&response, "grpc.health.v1.HealthCheckResponse")?,
    }
    if response.status() != ServingStatus::Serving {
        return Err(Unreachable("api-service is not serving".into()).into());
    }
    Ok(())
}

/// `refresh`, and with `watch` its progress to the end.
pub(crate) async fn refresh(
    client: &mut Recommendations,
    schedule: bool,
    watch: bool,
    out: Format,
) -> anyhow::Result<()> {
    let trigger = if schedule { pb::Trigger::Schedule } else { pb::Trigger::User };
    let response = client
        .refresh_recommendations(pb::RefreshRecommendationsRequest { trigger: trigger as i32 })
        .await?
        .into_inner();
    let run = response.collection.clone().unwrap_or_default();
    match out {
        Format::Json => output::json(&response)?,
        Format::Table => output::line(&format!(
            "refresh: run {} (generation {}, trigger {}) {}; last collected {}",
            run.id,
            run.generation,
            trigger_name(run.trigger),
            if response.deduplicated { "already in flight, joined it" } else { "started" },
            response.last_collected_at.as_ref().map(|t| time(Some(t))).unwrap_or_else(|| "never".into()),
        ))?,
    }
    if watch {
        follow_run(client, &run.id, out).await?;
    }
    Ok(())
}

/// `watch`: every message of the stream, heartbeats included.
pub(crate) async fn watch(client: &mut Recommendations, since: i64, out: Format) -> anyhow::Result<()> {
    let mut stream = client.watch_freshness(pb::WatchFreshnessRequest { since_version: since }).await?.into_inner();
    while let Some(freshness) = stream.message().await? {
        match out {
            Format::Json => output::json(&freshness)?,
            Format::Table => output::line(&describe(&freshness))?,
        }
    }
    Ok(())
}

/// `freshness`.
pub(crate) async fn freshness(client: &mut Recommendations, out: Format) -> anyhow::Result<()> {
    let freshness = client.get_freshness(pb::GetFreshnessRequest {}).await?.into_inner();
    match out {
        Format::Json => output::json(&freshness),
        Format::Table => output::line(&describe(&freshness)),
    }
}

/// `list`.
pub(crate) async fn list(client: &mut Recommendations, args: ListArgs, out: Format) -> anyhow::Result<()> {
    let min_monthly_savings = match (args.min_savings, args.currency) {
        (None, None) => None,
        (amount, currency) => {
            let (units, nanos) = amount.unwrap_or(Amount::ZERO).units_and_nanos();
            let currency_code = currency.unwrap_or_else(|| "USD".to_string()).to_ascii_uppercase();
            Some(Money { currency_code, units, nanos })
        }
    };
    let request = pb::ListRecommendationsRequest {
        provider: args.provider.map_or(0, Provider::to_proto),
        service: args.service.unwrap_or_default(),
        region: args.region.unwrap_or_default(),
        account_ids: args.accounts,
        min_monthly_savings,
        min_savings_percentage: args.min_percentage,
        page_size: 0,
        page_token: String::new(),
    };
    let mut first = true;
    let mut last_page = None;
    let more = args
        .pages
        .fetch(
            args.limit,
            async |page_size, page_token| {
                let request = pb::ListRecommendationsRequest { page_size, page_token, ..request.clone() };
                client.list_recommendations(request).await.map(|r| r.into_inner())
            },
            |page| {
                match out {
                    Format::Json => output::json(&page)?,
                    Format::Table => {
                        print_recommendations(&page, first)?;
                        first = false;
                    }
                }
                last_page = Some(page);
                Ok(())
            },
        )
        .await?;
    if let (Format::Table, Some(page)) = (out, last_page) {
        print_summary(&page)?;
    }
    paging::tell_more(more, out);
    Ok(())
}

/// `collections`.
pub(crate) async fn collections(
    client: &mut Recommendations,
    args: CollectionsArgs,
    out: Format,
) -> anyhow::Result<()> {
    let more = args
        .pages
        .fetch(
            args.limit,
            async |page_size, page_token| {
                client
                    .list_collections(pb::ListCollectionsRequest { page_size, page_token })
                    .await
                    .map(|r| r.into_inner())
            },
            |page| match out {
                Format::Json => output::json(&page),
                Format::Table => page.collections.iter().try_for_each(|run| output::line(&describe_run(run))),
            },
        )
        .await?;
    paging::tell_more(more, out);
    Ok(())
}

fn describe_run(run: &pb::Collection) -> String {
    let requests: Vec<String> =
        run.providers.iter().map(|p| format!("{} {}", provider_name(p.provider), p.request_count)).collect();
    format!(
        "{}  gen {:>4}  {:<10} {:<20} {:>7} recs  requests [{}]  started {}  {}",
        run.id,
        run.generation,
        trigger_name(run.trigger),
        outcome_name(run.outcome),
        run.recommendation_count,
        requests.join(", "),
        time(run.started_at.as_ref()),
        run.error
    )
}

/// Streams freshness until the run `id` has ended, one line per change.
async fn follow_run(client: &mut Recommendations, id: &str, out: Format) -> anyhow::Result<()> {
    let mut stream = client.watch_freshness(pb::WatchFreshnessRequest { since_version: 0 }).await?.into_inner();
    let (mut last_version, mut seen) = (0, false);
    while let Some(freshness) = stream.message().await? {
        if freshness.version == last_version {
            continue; // heartbeat
        }
        last_version = freshness.version;
        let run = freshness.collection.as_ref().filter(|r| r.id == id);
        let Some(run) = run else {
            if seen {
                if out == Format::Table {
                    output::line("  (another run has replaced it)")?;
                }
                return Ok(());
            }
            continue; // a snapshot from before the run started
        };
        seen = true;
        let ended = run.outcome != pb::Outcome::Running as i32;
        match out {
            Format::Json => output::json(&freshness)?,
            Format::Table => output::line(&format!("  {}", describe(&freshness)))?,
        }
        if ended {
            return Ok(());
        }
    }
    anyhow::bail!("the stream ended before the run did")
}

fn describe(f: &pb::Freshness) -> String {
    let Some(run) = &f.collection else {
        return format!("v{} no collection yet", f.version);
    };
    let providers: Vec<String> = run
        .providers
        .iter()
        .map(|p| {
            let mut troubles = Vec::new();
            if p.accounts_failed > 0 {
                troubles.push(format!("{} failed", p.accounts_failed));
            }
            if p.accounts_partially_succeeded > 0 {
                troubles.push(format!("{} partly collected", p.accounts_partially_succeeded));
            }
            format!(
                "{} {} {}/{} accounts{} {} recs {} requests",
                provider_name(p.provider),
                state_name(p.state),
                p.accounts_succeeded + p.accounts_partially_succeeded + p.accounts_failed,
                p.accounts_total,
                if troubles.is_empty() { String::new() } else { format!(" ({})", troubles.join(", ")) },
                p.recommendation_count,
                p.request_count
            )
        })
        .collect();
    let providers = if providers.is_empty() { "starting".to_string() } else { providers.join(" | ") };
    let state = if f.collecting { "collecting" } else { outcome_name(run.outcome) };
    let mut line = format!("v{} {state} [{providers}]", f.version);
    if !f.collecting {
        line.push_str(&format!(" — {} recommendations", run.recommendation_count));
        if let (Some(start), Some(end)) = (&run.started_at, &run.finished_at) {
            let secs = (end.seconds - start.seconds) as f64 + f64::from(end.nanos - start.nanos) / 1e9;
            line.push_str(&format!(" in {secs:.1}s"));
        }
        if !run.error.is_empty() {
            line.push_str(&format!("; error: {}", run.error));
        }
    }
    line
}

fn print_recommendations(response: &pb::ListRecommendationsResponse, header: bool) -> anyhow::Result<()> {
    if header {
        output::line(&format!(
            "{:>12} {:<3} {:>6}  {:<5} {:<38} {:<26} {:<14} {:<26} {:>4} {:<15} {:>5} {:>12}",
            "savings/mo",
            "",
            "%",
            "cloud",
            "account",
            "service",
            "region",
            "resource",
            "term",
            "payment",
            "count",
            "upfront"
        ))?;
    }
    for r in &response.recommendations {
        let savings = r.estimated_monthly_savings.as_ref();
        output::line(&format!(
            "{:>12} {:<3} {:>6.1}  {:<5} {:<38} {:<26} {:<14} {:<26} {:>3}m {:<15} {:>5} {:>12}",
            money_rounded(savings),
            savings.map(|m| m.currency_code.as_str()).unwrap_or(""),
            r.savings_percentage,
            provider_name(r.provider),
            at_most(&r.account_name, 38),
            at_most(&r.service, 26),
            at_most(&r.region, 14),
            at_most(format!("{} {}", r.resource_type, r.platform).trim(), 26),
            r.term_months,
            payment_name(r.payment_option),
            r.recommended_count,
            money_rounded(r.upfront_cost.as_ref())
        ))?;
    }
    Ok(())
}

/// The totals (over every matching row, whichever page) and the freshness.
fn print_summary(response: &pb::ListRecommendationsResponse) -> anyhow::Result<()> {
    if let Some(s) = &response.summary {
        output::line(&format!("\n{} recommendations match", s.count))?;
        for total in &s.totals {
            output::line(&format!(
                "  {}: {} recommendations, estimated savings {} {}/month, upfront {} {}",
                total.currency_code,
                total.count,
                money_exact(total.monthly_savings.as_ref()),
                total.currency_code,
                money_exact(total.upfront_cost.as_ref()),
                total.currency_code
            ))?;
        }
    }
    if let Some(f) = &response.freshness {
        output::line(&format!("freshness: {}", describe(f)))?;
    }
    Ok(())
}

fn trigger_name(v: i32) -> &'static str {
    pb::Trigger::try_from(v).map(|t| t.as_str_name()).unwrap_or("?").trim_start_matches("TRIGGER_")
}

fn outcome_name(v: i32) -> &'static str {
    pb::Outcome::try_from(v).map(|t| t.as_str_name()).unwrap_or("?").trim_start_matches("OUTCOME_")
}

fn state_name(v: i32) -> &'static str {
    pb::ProviderState::try_from(v).map(|t| t.as_str_name()).unwrap_or("?").trim_start_matches("PROVIDER_STATE_")
}

/// A provider's short name (`aws`), `?` for one this client does not know.
pub(crate) fn provider_name(v: i32) -> &'static str {
    Provider::from_proto(v).map_or("?", Provider::as_str)
}

fn payment_name(v: i32) -> &'static str {
    match pb::PaymentOption::try_from(v) {
        Ok(pb::PaymentOption::NoUpfront) => "no upfront",
        Ok(pb::PaymentOption::PartialUpfront) => "partial upfront",
        Ok(pb::PaymentOption::AllUpfront) => "all upfront",
        Ok(pb::PaymentOption::Monthly) => "monthly",
        _ => "?",
    }
}
