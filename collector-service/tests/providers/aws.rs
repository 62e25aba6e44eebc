//! The AWS backend, through the official SDK, against a fake Cost Explorer
//! (AWS JSON 1.1: `POST /`, `X-Amz-Target: AWSInsightsIndexService.<op>`)
//! and a fake STS (query protocol, XML) on one local port, via the SDK's
//! endpoint override.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cudly_collector::credentials::{AwsCredentials, Credentials};
use cudly_collector::domain::{Account, CommitmentType, PaymentOption, Provider, ProviderStatus};
use cudly_collector::engine::{self, EngineConfig};
use cudly_collector::providers::aws::{AwsBackend, AwsConfig};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::{Backends, CloudBackend, Query, RequestCount, Sweep};
use serde_json::{Value, json};

use crate::support::form;
use tokio::time::Instant;

/// What the fake answers, and what it saw.
#[derive(Default)]
struct Fake {
    /// Per (operation, service or plan type, page token): the answer.
    pages: HashMap<(String, String, String), Value>,
    /// Bodies that are not JSON objects the SDK can read.
    raw: HashMap<(String, String), String>,
    /// Roles that may not be assumed.
    denied_roles: Vec<String>,
    /// Throttle this many calls before answering.
    throttle: u32,
    /// Every Cost Explorer request: (when, operation, body).
    seen: Vec<(Instant, String, Value)>,
    assumed: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn handle(state: axum::extract::State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut fake = state.lock().unwrap();
    let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) else {
        return sts(&mut fake, &body);
    };
    let operation = target.trim_start_matches("AWSInsightsIndexService.").to_string();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.seen.push((Instant::now(), operation.clone(), request.clone()));
    if fake.throttle > 0 {
        fake.throttle -= 1;
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": "LimitExceededException", "Message": "Rate exceeded"}).to_string(),
        );
    }
    let subject = request["Service"].as_str().or(request["SavingsPlansType"].as_str()).unwrap_or("").to_string();
    if let Some(raw) = fake.raw.get(&(operation.clone(), subject.clone())) {
        return json_response(StatusCode::OK, raw.clone());
    }
    let token = request["NextPageToken"].as_str().unwrap_or("").to_string();
    let page = fake.pages.get(&(operation, subject, token)).cloned().unwrap_or_else(|| json!({}));
    json_response(StatusCode::OK, page.to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/x-amz-json-1.1")], body).into_response()
}

fn sts(fake: &mut Fake, body: &[u8]) -> Response {
    let form: HashMap<String, String> = form(std::str::from_utf8(body).unwrap_or(""));
    let role = form.get("RoleArn").cloned().unwrap_or_default();
    fake.assumed.push((role.clone(), form.get("ExternalId").cloned().unwrap_or_default()));
    if fake.denied_roles.contains(&role) {
        let xml = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>User: arn:aws:iam::111111111111:user/collector is not authorized \
             to perform: sts:AssumeRole on resource: {role}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        );
        return (StatusCode::FORBIDDEN, [("content-type", "text/xml")], xml).into_response();
    }
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>ASIATESTKEY</AccessKeyId><SecretAccessKey>test-secret</SecretAccessKey>\
         <SessionToken>test-session</SessionToken><Expiration>{expires}</Expiration></Credentials>\
         <AssumedRoleUser><Arn>{role}/cudly-collector</Arn><AssumedRoleId>AROA:cudly</AssumedRoleId></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></AssumeRoleResponse>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], xml).into_response()
}

async fn start(fake: Fake) -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(fake));
    let app = axum::Router::new().route("/", axum::routing::post(handle)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

fn config(addr: SocketAddr, rate: f64, burst: u32) -> AwsConfig {
    AwsConfig {
        endpoint_url: Some(format!("http://{addr}")),
        sts_endpoint_url: Some(format!("http://{addr}")),
        region: "us-east-1".into(),
        lookback_days: 60,
        terms: vec![12],
        payment_options: vec![PaymentOption::NoUpfront],
        limits: CallLimits {
            limiter: RateLimiter::new(rate, burst),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                attempt_timeout: Duration::from_secs(10),
            },
        },
    }
}

async fn backend(config: AwsConfig) -> AwsBackend {
    let credentials = aws_sdk_costexplorer::config::Credentials::new("AKIDTEST", "test-secret", None, None, "test");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(config.endpoint_url.clone().unwrap())
        .credentials_provider(credentials)
        .load()
        .await;
    AwsBackend::with_sdk_config(config, sdk)
}

fn account(id: &str, credentials: Option<AwsCredentials>) -> Account {
    Account {
        provider: Provider::Aws,
        external_id: id.into(),
        display_name: format!("Account {id}"),
        credentials: credentials.map(Credentials::Aws),
    }
}

fn ri_detail(account: &str, instance_type: &str, savings: &str) -> Value {
    json!({
        "AccountId": account,
        "InstanceDetails": {"EC2InstanceDetails": {
            "Family": "m5", "InstanceType": instance_type, "Region": "US East (N. Virginia)",
            "Platform": "Linux/UNIX", "Tenancy": "shared", "CurrentGeneration": true, "SizeFlexEligible": true
        }},
        "RecommendedNumberOfInstancesToPurchase": "4",
        "UpfrontCost": "0.0",
        "RecurringStandardMonthlyCost": "201.48",
        "EstimatedMonthlyOnDemandCost": "280.32",
        "EstimatedMonthlySavingsAmount": savings,
        "EstimatedMonthlySavingsPercentage": "28.12",
        "EstimatedBreakEvenInMonths": "0.0",
        "CurrencyCode": "USD"
    })
}

fn ri_page(details: Vec<Value>, next: Option<&str>) -> Value {
    let mut page = json!({
        "Metadata": {"RecommendationId": "r", "GenerationTimestamp": "2026-11-28T00:00:00Z", "LookbackPeriodInDays": "SIXTY_DAYS"},
        "Recommendations": [{
            "AccountScope": "PAYER", "LookbackPeriodInDays": "SIXTY_DAYS", "TermInYears": "ONE_YEAR",
            "PaymentOption": "NO_UPFRONT", "ServiceSpecification": {"EC2Specification": {"OfferingClass": "STANDARD"}},
            "RecommendationDetails": details,
            "RecommendationSummary": {"TotalEstimatedMonthlySavingsAmount": "1", "CurrencyCode": "USD"}
        }]
    });
    if let Some(token) = next {
        page["NextPageToken"] = json!(token);
    }
    page
}

const RI: &str = "GetReservationPurchaseRecommendation";
const SP: &str = "GetSavingsPlansPurchaseRecommendation";
const EC2: &str = "Amazon Elastic Compute Cloud - Compute";

fn key(op: &str, subject: &str, token: &str) -> (String, String, String) {
    (op.to_string(), subject.to_string(), token.to_string())
}

async fn fetch(
    backend: &AwsBackend,
    account: &Account,
    service: &'static str,
    calls: &RequestCount,
) -> Vec<cudly_collector::domain::Recommendation> {
    let sweep = Sweep { term_months: 12, payment: PaymentOption::NoUpfront };
    backend.fetch(Query { account, service, region: None, sweep, calls }).await.unwrap()
}

#[tokio::test]
async fn every_page_is_collected_and_mapped_and_the_lookback_goes_with_every_call() {
    let mut fake = Fake::default();
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("123456789012", "m5.large", "79.20")], Some("p2")));
    fake.pages.insert(key(RI, EC2, "p2"), ri_page(vec![ri_detail("123456789012", "m5.xlarge", "12.00")], Some("p3")));
    fake.pages.insert(key(RI, EC2, "p3"), ri_page(vec![ri_detail("123456789012", "m5.2xlarge", "3.50")], None));
    fake.pages.insert(
        key(SP, "COMPUTE_SP", ""),
        json!({"SavingsPlansPurchaseRecommendation": {
            "AccountScope": "PAYER", "SavingsPlansType": "COMPUTE_SP", "TermInYears": "ONE_YEAR",
            "PaymentOption": "NO_UPFRONT", "LookbackPeriodInDays": "SIXTY_DAYS",
            "SavingsPlansPurchaseRecommendationDetails": [{
                "SavingsPlansDetails": {"Region": "", "InstanceFamily": "", "OfferingId": "o-1"},
                "AccountId": "123456789012", "UpfrontCost": "0", "CurrencyCode": "USD",
                "EstimatedSPCost": "1440", "EstimatedOnDemandCost": "2880",
                "EstimatedSavingsAmount": "1440", "EstimatedSavingsPercentage": "50",
                "HourlyCommitmentToPurchase": "1.0", "EstimatedMonthlySavingsAmount": "730",
                "CurrentAverageHourlyOnDemandSpend": "2.0"
            }]
        }}),
    );
    let (addr, state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();

    let recs = fetch(&backend, &acct, "ec2", &calls).await;
    assert_eq!(recs.len(), 3, "three pages, one recommendation each");
    assert_eq!(calls.get(), (3, 0), "each page is a request");
    let first = &recs[0];
    assert_eq!(
        (first.provider, first.account_id.as_str(), first.account_name.as_str()),
        (Provider::Aws, "123456789012", "Account 123456789012")
    );
    assert_eq!((first.service.as_str(), first.region.as_str()), ("ec2", "us-east-1"));
    assert_eq!((first.resource_type.as_str(), first.platform.as_str()), ("m5.large", "Linux/UNIX"));
    assert_eq!(
        (first.commitment_type, first.term_months, first.payment_option),
        (CommitmentType::ReservedInstance, 12, PaymentOption::NoUpfront)
    );
    assert_eq!(first.recommended_count, 4.0);
    assert_eq!((first.upfront_cost, first.recurring_monthly_cost, first.on_demand_monthly_cost), (0.0, 201.48, 280.32));
    assert_eq!((first.estimated_monthly_savings, first.savings_percentage), (79.20, 28.12));

    let sp = fetch(&backend, &acct, "compute_savings_plans", &calls).await;
    assert_eq!(sp.len(), 1);
    // 2 USD an hour of on-demand spend is 1,460 USD a month of 730 hours.
    assert!((sp[0].on_demand_monthly_cost - 1460.0).abs() < 1e-9, "{}", sp[0].on_demand_monthly_cost);
    assert_eq!(
        (sp[0].recurring_monthly_cost, sp[0].estimated_monthly_savings, sp[0].recommended_count),
        (730.0, 730.0, 1.0)
    );
    assert_eq!(
        (sp[0].commitment_type, sp[0].region.as_str(), sp[0].resource_type.as_str()),
        (CommitmentType::SavingsPlan, "global", "compute")
    );

    let seen = &state.lock().unwrap().seen;
    assert_eq!(seen.len(), 4);
    for (_, _, body) in seen {
        assert_eq!(body["LookbackPeriodInDays"], "SIXTY_DAYS", "{body}");
        assert_eq!(body["TermInYears"], "ONE_YEAR");
        assert_eq!(body["PaymentOption"], "NO_UPFRONT");
    }
    assert_eq!(seen[1].2["NextPageToken"], "p2");
}

#[tokio::test]
async fn throttling_is_answered_with_backoff_and_every_attempt_is_counted() {
    let mut fake = Fake { throttle: 2, ..Fake::default() };
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("123456789012", "m5.large", "10")], None));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let calls = RequestCount::default();
    let recs = fetch(&backend, &account("123456789012", None), "ec2", &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(calls.get(), (3, 2), "two throttled attempts, then the answer");
}

#[tokio::test]
async fn a_refused_role_fails_only_its_account_and_a_malformed_answer_only_its_service() {
    let denied = "arn:aws:iam::222222222222:role/cudly-read";
    let mut fake = Fake { denied_roles: vec![denied.to_string()], ..Fake::default() };
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("333333333333", "c6i.large", "10")], None));
    // RDS answers with a number that is not one.
    let mut bad = ri_detail("333333333333", "db.r6g.large", "5");
    bad["UpfrontCost"] = json!("lots");
    fake.pages.insert(key(RI, "Amazon Relational Database Service", ""), ri_page(vec![bad], None));
    fake.raw.insert((SP.to_string(), "SAGEMAKER_SP".to_string()), "{\"SavingsPlansPurchaseRecommendation\": 7".into());
    let (addr, state) = start(fake).await;
    let backends: Backends = vec![Arc::new(backend(config(addr, 200.0, 20)).await)];
    let role = |arn: &str| AwsCredentials {
        role_arn: Some(arn.into()),
        external_id: Some("cudly-ext".into()),
        organization: false,
    };
    let accounts = vec![
        account("222222222222", Some(role(denied))),
        account("333333333333", Some(role("arn:aws:iam::333333333333:role/cudly-read"))),
    ];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &EngineConfig::default(), &tx).await;

    let status: &ProviderStatus = &collected.providers[0];
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (0, 2), "{status:?}");
    let of = |id: &str| status.failures.iter().filter(|f| f.account_id == id).collect::<Vec<_>>();
    let refused = of("222222222222");
    assert_eq!(refused.len(), 8, "every service of the refused account failed");
    assert!(
        refused[0].error.contains("AssumeRole denied") && refused[0].error.contains(denied),
        "{}",
        refused[0].error
    );
    assert!(!refused[0].error.contains("test-secret"));
    let partial = of("333333333333");
    let failed: Vec<&str> = partial.iter().map(|f| f.service.as_str()).collect();
    assert_eq!(failed, ["rds", "sagemaker_savings_plans"], "only the malformed services failed");
    assert!(partial[0].error.contains("UpfrontCost"), "{}", partial[0].error);
    assert!(collected.recommendations.iter().any(|r| r.account_id == "333333333333" && r.service == "ec2"));
    assert!(collected.complete_accounts.is_empty(), "neither account completed a full sweep");
    let assumed = &state.lock().unwrap().assumed;
    assert!(assumed.iter().any(|(arn, ext)| arn.ends_with("333333333333:role/cudly-read") && ext == "cudly-ext"));
}

/// Answers every operation of one page with one detail per linked account.
fn organization_fake(linked: &[String]) -> Fake {
    let mut fake = Fake::default();
    let details: Vec<Value> = linked.iter().map(|id| ri_detail(id, "m5.large", "10")).collect();
    for (_, service) in [
        ("ec2", EC2),
        ("rds", "Amazon Relational Database Service"),
        ("elasticache", "Amazon ElastiCache"),
        ("opensearch", "Amazon OpenSearch Service"),
        ("redshift", "Amazon Redshift"),
    ] {
        fake.pages.insert(key(RI, service, ""), ri_page(details.clone(), None));
    }
    fake
}

#[tokio::test]
async fn an_organization_is_collected_with_one_call_per_sweep_split_by_linked_account() {
    let linked: Vec<String> = (1..=10).map(|n| format!("{:012}", 400_000_000_000u64 + n)).collect();
    let (addr, state) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(config(addr, 500.0, 50)).await)];
    let payer = AwsCredentials { role_arn: None, external_id: None, organization: true };
    let accounts = vec![account("400000000000", Some(payer))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    assert_eq!(collected.providers[0].accounts_failed, 0, "{:?}", collected.providers[0]);
    let mut owners: Vec<&str> = collected.recommendations.iter().map(|r| r.account_id.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners, linked.iter().map(String::as_str).collect::<Vec<_>>(), "split by the detail's AccountId");
    assert_eq!(collected.complete_accounts.len(), 1, "the management account's sweep completed");
    assert!(collected.sources.iter().all(|s| s == "400000000000"), "every row came through it");
    let seen = &state.lock().unwrap().seen;
    assert!(seen.iter().all(|(_, _, body)| body["AccountScope"] == "LINKED"));
    // 8 services × 1 term × 1 payment option: one request each.
    assert_eq!(collected.providers[0].requests, 8);
}

#[tokio::test]
async fn fifty_accounts_at_parallelism_twenty_never_exceed_the_configured_rate() {
    let (addr, state) = start(Fake::default()).await;
    let rate = 100.0;
    let backends: Backends = vec![Arc::new(backend(config(addr, rate, 1)).await)];
    let accounts: Vec<Account> = (1..=50).map(|n| account(&format!("{:012}", 500_000_000_000u64 + n), None)).collect();
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let caps = EngineConfig { max_account_parallelism: 20, ..EngineConfig::default() };
    let collected = engine::collect(&backends, &accounts, &caps, &tx).await;
    assert_eq!(collected.providers[0].accounts_succeeded, 50);
    let seen: Vec<Instant> = state.lock().unwrap().seen.iter().map(|(at, _, _)| *at).collect();
    assert_eq!(seen.len(), 50 * 8, "every account, every service");
    assert_eq!(collected.providers[0].requests, 400);
    // In every one-second window the server saw at most the rate (plus the
    // one-request burst and a request of scheduling slack).
    let mut worst = 0;
    for (i, start) in seen.iter().enumerate() {
        let in_window = seen[i..].iter().take_while(|t| t.duration_since(*start) < Duration::from_secs(1)).count();
        worst = worst.max(in_window);
    }
    assert!(worst as f64 <= rate + 2.0, "{worst} requests within one second at a limit of {rate}/s");
}

#[tokio::test]
async fn ten_accounts_cost_forty_eight_requests_each_or_forty_eight_in_all_as_an_organization() {
    // The default sweeps: 8 services × 2 terms × 3 payment options.
    let defaults = |addr| AwsConfig {
        terms: vec![12, 36],
        payment_options: vec![PaymentOption::NoUpfront, PaymentOption::PartialUpfront, PaymentOption::AllUpfront],
        ..config(addr, 1000.0, 50)
    };
    let linked: Vec<String> = (1..=10).map(|n| format!("{:012}", 600_000_000_000u64 + n)).collect();
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let (addr, _) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(defaults(addr)).await)];
    let each: Vec<Account> = linked.iter().map(|id| account(id, None)).collect();
    let per_account = engine::collect(&backends, &each, &EngineConfig::default(), &tx).await;

    let (addr, _) = start(organization_fake(&linked)).await;
    let backends: Backends = vec![Arc::new(backend(defaults(addr)).await)];
    let payer = AwsCredentials { role_arn: None, external_id: None, organization: true };
    let organization =
        engine::collect(&backends, &[account("600000000000", Some(payer))], &EngineConfig::default(), &tx).await;

    assert_eq!(per_account.providers[0].requests, 480, "10 accounts × 48");
    assert_eq!(organization.providers[0].requests, 48, "one management account for all 10");
    println!(
        "10 AWS accounts, one run: {} Cost Explorer requests per account, {} as an organization",
        per_account.providers[0].requests, organization.providers[0].requests
    );
}
