//! cudlyctl: a small command-line client of api-service, for operators and
//! the local demo.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cudly_core::money::Amount;
use cudly_core::quote::at_most;
use cudly_core::telemetry::{ErrorChain, status_line};
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use tonic::transport::Channel;

/// Talks to api-service: refresh, watch freshness, list recommendations and
/// the run history.
#[derive(Debug, Parser)]
#[command(name = "cudlyctl", version)]
struct Cli {
    /// api-service URL (`https://` for a TLS listener).
    #[arg(long, env = "CUDLY_API_URL", default_value = "http://127.0.0.1:50051", global = true)]
    api: String,

    /// Bearer token (JWT) sent with every call.
    #[arg(long, env = "CUDLY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,

    /// PEM CA that signed api-service's certificate (https URLs).
    #[arg(long, env = "CUDLY_API_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a collection (or join the one in flight).
    Refresh {
        /// Mark it as a scheduled refresh rather than a user's.
        #[arg(long)]
        schedule: bool,
        /// Then stream its progress until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// Stream freshness changes until interrupted.
    Watch {
        /// Only changes after this version.
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
    /// Print the current freshness.
    Freshness,
    /// Check grpc.health.v1 (exit status 0 only when SERVING).
    Health,
    /// List recommendations, biggest savings first.
    List {
        /// aws, azure or gcp.
        #[arg(long)]
        provider: Option<String>,
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
        /// Rows to print.
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Print the run history, newest first.
    Collections {
        /// Runs to print.
        #[arg(long, default_value_t = 10)]
        limit: i32,
    },
    /// Print an HS256 token signed with the service's shared secret, for
    /// local runs and tests (production tokens come from your identity
    /// provider). Needs no running service.
    Token {
        /// File holding the HS256 secret.
        #[arg(long, env = "CUDLY_JWT_HS256_SECRET_FILE")]
        secret_file: std::path::PathBuf,
        /// `iss` claim.
        #[arg(long, env = "CUDLY_JWT_ISSUER")]
        issuer: String,
        /// `aud` claim.
        #[arg(long, env = "CUDLY_JWT_AUDIENCE")]
        audience: String,
        /// Permission to grant (repeatable).
        #[arg(long = "permission", default_value = "recommendations:view")]
        permissions: Vec<String>,
        /// Claim the permissions go in.
        #[arg(long, env = "CUDLY_JWT_PERMISSIONS_CLAIM", default_value = "permissions")]
        permissions_claim: String,
        /// `sub` claim.
        #[arg(long, default_value = "cudlyctl")]
        subject: String,
        /// Lifetime of the token.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Client = RecommendationsServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            match err.downcast_ref::<tonic::Status>() {
                Some(status) => eprintln!("cudlyctl: {:?}: {}", status.code(), status_line(status)),
                // Each cause once: transport errors repeat theirs.
                None => eprintln!("cudlyctl: {}", ErrorChain(err.as_ref())),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Token { secret_file, issuer, audience, permissions, permissions_claim, subject, ttl } = &cli.command {
        let secret =
            std::fs::read_to_string(secret_file).with_context(|| format!("reading {}", secret_file.display()))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let claims = serde_json::json!({
            "iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl.as_secs(),
            permissions_claim.as_str(): permissions,
        });
        let key = jsonwebtoken::EncodingKey::from_secret(secret.trim_end_matches(['\n', '\r']).as_bytes());
        println!("{}", jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)?);
        return Ok(());
    }
    let mut endpoint = Channel::from_shared(cli.api.clone())
        .with_context(|| format!("--api {:?} is not a URL", cli.api))?
        .connect_timeout(Duration::from_secs(5));
    if cli.api.starts_with("https://") {
        cudly_core::server::install_crypto_provider();
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &cli.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await.with_context(|| format!("cannot reach api-service at {}", cli.api))?;
    let bearer = match &cli.token {
        Some(token) => Some(
            format!("Bearer {}", token.trim())
                .parse()
                .map_err(|_| anyhow::anyhow!("--token is not a valid header value"))?,
        ),
        None => None,
    };
    let mut client = RecommendationsServiceClient::with_interceptor(channel.clone(), Bearer(bearer));
    match cli.command {
        Cmd::Token { .. } => unreachable!("handled above"),
        Cmd::Refresh { schedule, watch } => {
            let trigger = if schedule { pb::Trigger::Schedule } else { pb::Trigger::User };
            let response =
                client.refresh_recommendations(pb::RefreshRecommendationsRequest { trigger: trigger as i32 }).await?;
            let response = response.into_inner();
            let run = response.collection.unwrap_or_default();
            println!(
                "refresh: run {} (generation {}, trigger {}) {}; last collected {}",
                run.id,
                run.generation,
                trigger_name(run.trigger),
                if response.deduplicated { "already in flight, joined it" } else { "started" },
                response.last_collected_at.map(|t| format_time(&t)).unwrap_or_else(|| "never".into()),
            );
            if watch {
                follow_run(&mut client, &run.id).await?;
            }
        }
        Cmd::Watch { since } => {
            let mut stream =
                client.watch_freshness(pb::WatchFreshnessRequest { since_version: since }).await?.into_inner();
            while let Some(freshness) = stream.message().await? {
                println!("{}", describe(&freshness));
            }
        }
        Cmd::Health => {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            let status = health.check(request).await?.into_inner().status();
            println!("{}", status.as_str_name());
            if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                anyhow::bail!("api-service is not serving");
            }
        }
        Cmd::Freshness => {
            let freshness = client.get_freshness(pb::GetFreshnessRequest {}).await?.into_inner();
            println!("{}", describe(&freshness));
        }
        Cmd::List { provider, service, region, accounts, min_savings, currency, min_percentage, limit } => {
            let provider = match provider.as_deref() {
                None => 0,
                Some("aws") => pb::Provider::Aws as i32,
                Some("azure") => pb::Provider::Azure as i32,
                Some("gcp") => pb::Provider::Gcp as i32,
                Some(other) => anyhow::bail!("--provider {other:?} is not one of aws, azure, gcp"),
            };
            let min_monthly_savings = match (min_savings, currency) {
                (None, None) => None,
                (amount, currency) => {
                    let (units, nanos) = amount.unwrap_or(Amount::ZERO).units_and_nanos();
                    let currency_code = currency.unwrap_or_else(|| "USD".to_string()).to_ascii_uppercase();
                    Some(Money { currency_code, units, nanos })
                }
            };
            let response = client
                .list_recommendations(pb::ListRecommendationsRequest {
                    provider,
                    service: service.unwrap_or_default(),
                    region: region.unwrap_or_default(),
                    account_ids: accounts,
                    min_monthly_savings,
                    min_savings_percentage: min_percentage,
                    page_size: limit,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            print_table(&response);
        }
        Cmd::Collections { limit } => {
            let response = client
                .list_collections(pb::ListCollectionsRequest { page_size: limit, page_token: String::new() })
                .await?
                .into_inner();
            for run in response.collections {
                let requests: Vec<String> = run
                    .providers
                    .iter()
                    .map(|p| format!("{} {}", provider_name(p.provider), p.request_count))
                    .collect();
                println!(
                    "{}  gen {:>4}  {:<10} {:<20} {:>7} recs  requests [{}]  started {}  {}",
                    run.id,
                    run.generation,
                    trigger_name(run.trigger),
                    outcome_name(run.outcome),
                    run.recommendation_count,
                    requests.join(", "),
                    run.started_at.map(|t| format_time(&t)).unwrap_or_default(),
                    run.error
                );
            }
        }
    }
    Ok(())
}

/// Streams freshness until the run `id` has ended, one line per change.
async fn follow_run(client: &mut Client, id: &str) -> anyhow::Result<()> {
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
                println!("  (another run has replaced it)");
                return Ok(());
            }
            continue; // a snapshot from before the run started
        };
        seen = true;
        println!("  {}", describe(&freshness));
        if run.outcome != pb::Outcome::Running as i32 {
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

fn print_table(response: &pb::ListRecommendationsResponse) {
    println!(
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
    );
    for r in &response.recommendations {
        let savings = r.estimated_monthly_savings.as_ref();
        println!(
            "{:>12} {:<3} {:>6.1}  {:<5} {:<38} {:<26} {:<14} {:<26} {:>3}m {:<15} {:>5} {:>12}",
            format_money(savings),
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
            format_money(r.upfront_cost.as_ref())
        );
    }
    if let Some(s) = &response.summary {
        println!("\n{} recommendations match", s.count);
        for total in &s.totals {
            println!(
                "  {}: {} recommendations, estimated savings {} {}/month, upfront {} {}",
                total.currency_code,
                total.count,
                exact_money(total.monthly_savings.as_ref()),
                total.currency_code,
                exact_money(total.upfront_cost.as_ref()),
                total.currency_code
            );
        }
    }
    if let Some(f) = &response.freshness {
        println!("freshness: {}", describe(f));
    }
}

/// An amount rounded to cents for the table (the exact figure is in the
/// API's answer and in the totals).
fn format_money(money: Option<&Money>) -> String {
    match money.and_then(|m| Amount::from_units_and_nanos(m.units, i64::from(m.nanos))) {
        Some(amount) => format!("{:.2}", amount.approx_f64()),
        None => String::new(),
    }
}

/// An amount as its exact decimal.
fn exact_money(money: Option<&Money>) -> String {
    money
        .and_then(|m| Amount::from_units_and_nanos(m.units, i64::from(m.nanos)))
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn parse_amount(text: &str) -> Result<Amount, String> {
    Amount::parse(text).map_err(|err| err.to_string())
}

fn format_time(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
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

fn provider_name(v: i32) -> &'static str {
    match pb::Provider::try_from(v) {
        Ok(pb::Provider::Aws) => "aws",
        Ok(pb::Provider::Azure) => "azure",
        Ok(pb::Provider::Gcp) => "gcp",
        _ => "?",
    }
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
