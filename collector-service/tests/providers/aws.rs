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
use cudly_collector::engine::{self, EngineConfig};
use cudly_collector::providers::aws::{AwsBackend, AwsConfig};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::{Backends, CloudBackend, ErrorKind, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{AwsCredentials, Credentials};
use cudly_core::domain::{
    Account, AccountFailures, AccountState, CommitmentType, PaymentOption, Provider, ProviderState, ProviderStatus,
};
use cudly_core::money::{Amount, Currency};
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
    /// Access keys (one per assumed role's account) Cost Explorer refuses
    /// with AccessDeniedException.
    denied_keys: Vec<String>,
    /// The access key of every Cost Explorer request, in order.
    keys_seen: Vec<String>,
    /// Throttle this many calls before answering.
    throttle: u32,
    /// Services or plan types answered with `DataUnavailableException`
    /// (too little usage for recommendations).
    no_data: Vec<String>,
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
    // SigV4: `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/…`.
    let access_key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .unwrap_or("")
        .to_string();
    fake.keys_seen.push(access_key.clone());
    if fake.denied_keys.contains(&access_key) {
        let message = format!(
            "User: arn:aws:sts::{0}:assumed-role/cudly-read/cudly-collector is not authorized to perform: \
             ce:{operation} on resource: arn:aws:ce:us-east-1:{0}:/{operation}",
            access_key.trim_start_matches("ASIA")
        );
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": "AccessDeniedException", "Message": message}).to_string(),
        );
    }
    if fake.throttle > 0 {
        fake.throttle -= 1;
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": "LimitExceededException", "Message": "Rate exceeded"}).to_string(),
        );
    }
    let subject = request["Service"].as_str().or(request["SavingsPlansType"].as_str()).unwrap_or("").to_string();
    if fake.no_data.contains(&subject) {
        let message = "Recommendations are not available for this account: not enough usage data.";
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": "DataUnavailableException", "Message": message}).to_string(),
        );
    }
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
    // One access key per role's account, so Cost Explorer can tell them apart.
    let account = role.split(':').nth(4).unwrap_or("000000000000");
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>ASIA{account}</AccessKeyId><SecretAccessKey>test-secret</SecretAccessKey>\
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

/// One `RecommendationDetails` entry of `GetReservationPurchaseRecommendation`
/// with every documented field, values as Cost Explorer sends them (strings,
/// ten decimals, a region's display name, title-cased tenancy): the EC2
/// entry of a captured answer.
fn ri_detail(account: &str, instance_type: &str, savings: &str) -> Value {
    json!({
        "AccountId": account,
        "InstanceDetails": {"EC2InstanceDetails": {
            "AvailabilityZone": "", "Family": "m5", "InstanceType": instance_type,
            "Region": "US East (N. Virginia)", "Platform": "Linux/UNIX", "Tenancy": "Shared",
            "CurrentGeneration": true, "SizeFlexEligible": true
        }},
        "RecommendedNumberOfInstancesToPurchase": "4",
        "RecommendedNormalizedUnitsToPurchase": "32.0",
        "MinimumNumberOfInstancesUsedPerHour": "3.0000000000",
        "MinimumNormalizedUnitsUsedPerHour": "24.0000000000",
        "MaximumNumberOfInstancesUsedPerHour": "4.0000000000",
        "MaximumNormalizedUnitsUsedPerHour": "32.0000000000",
        "AverageNumberOfInstancesUsedPerHour": "3.9523809524",
        "AverageNormalizedUnitsUsedPerHour": "31.6190476190",
        "AverageUtilization": "98.8095238095",
        "EstimatedBreakEvenInMonths": "0.0",
        "CurrencyCode": "USD",
        "EstimatedMonthlySavingsAmount": savings,
        "EstimatedMonthlySavingsPercentage": "28.1250000000",
        "EstimatedMonthlyOnDemandCost": "280.3200000000",
        "EstimatedReservationCostForLookbackPeriod": "402.9600000000",
        "UpfrontCost": "0.0000000000",
        "RecurringStandardMonthlyCost": "201.4800000000"
    })
}

/// A detail of another RI service: `instance` is its `InstanceDetails`.
fn detail_of(instance: Value, currency: &str) -> Value {
    json!({
        "AccountId": "123456789012",
        "InstanceDetails": instance,
        "RecommendedNumberOfInstancesToPurchase": "2",
        "AverageUtilization": "91.5000000000",
        "EstimatedBreakEvenInMonths": "7.3042938468",
        "CurrencyCode": currency,
        "EstimatedMonthlySavingsAmount": "75.6442855770",
        "EstimatedMonthlySavingsPercentage": "39.0000",
        "EstimatedMonthlyOnDemandCost": "193.3109523810",
        "EstimatedReservationCostForLookbackPeriod": "27.0794520864",
        "UpfrontCost": "1412.0000000000",
        "RecurringStandardMonthlyCost": "0.0000000000"
    })
}

/// A `GetReservationPurchaseRecommendation` answer as the API reference
/// documents it: metadata, one recommendation with its details and summary.
fn ri_page(details: Vec<Value>, next: Option<&str>) -> Value {
    let mut page = json!({
        "Metadata": {"RecommendationId": "49063162-94c2-4e6e-967a-7e72e0f14fbc",
                     "GenerationTimestamp": "2026-11-28T00:00:00Z", "AdditionalMetadata": ""},
        "Recommendations": [{
            "AccountScope": "PAYER", "LookbackPeriodInDays": "SIXTY_DAYS", "TermInYears": "ONE_YEAR",
            "PaymentOption": "NO_UPFRONT", "ServiceSpecification": {"EC2Specification": {"OfferingClass": "STANDARD"}},
            "RecommendationDetails": details,
            "RecommendationSummary": {"TotalEstimatedMonthlySavingsAmount": "1", "TotalEstimatedMonthlySavingsPercentage": "28.0",
                                      "CurrencyCode": "USD"}
        }]
    });
    if let Some(token) = next {
        page["NextPageToken"] = json!(token);
    }
    page
}

/// A `GetSavingsPlansPurchaseRecommendation` answer with every documented
/// field of its one detail.
fn sp_page(kind: &str, detail: Value) -> Value {
    json!({
        "Metadata": {"RecommendationId": "a1b2", "GenerationTimestamp": "2026-11-28T00:00:00Z",
                     "AdditionalMetadata": ""},
        "SavingsPlansPurchaseRecommendation": {
            "AccountScope": "PAYER", "SavingsPlansType": kind, "TermInYears": "ONE_YEAR",
            "PaymentOption": "PARTIAL_UPFRONT", "LookbackPeriodInDays": "SIXTY_DAYS",
            "SavingsPlansPurchaseRecommendationDetails": [detail],
            "SavingsPlansPurchaseRecommendationSummary": {
                "CurrencyCode": "USD", "CurrentOnDemandSpend": "2880", "DailyCommitmentToPurchase": "24",
                "EstimatedMonthlySavingsAmount": "730", "EstimatedOnDemandCostWithCurrentCommitment": "2880",
                "EstimatedROI": "100", "EstimatedSavingsAmount": "1440", "EstimatedSavingsPercentage": "50",
                "EstimatedTotalCost": "1440", "HourlyCommitmentToPurchase": "1.0", "TotalRecommendationCount": "1"
            }
        }
    })
}

fn sp_detail(region: &str, family: &str, hourly: &str, upfront: &str, on_demand_hourly: &str) -> Value {
    json!({
        "SavingsPlansDetails": {"Region": region, "InstanceFamily": family, "OfferingId": "o-1"},
        "AccountId": "123456789012", "UpfrontCost": upfront, "CurrencyCode": "USD",
        "EstimatedSPCost": "1440", "EstimatedOnDemandCost": "1440",
        "EstimatedOnDemandCostWithCurrentCommitment": "2880", "EstimatedROI": "100",
        "EstimatedSavingsAmount": "1440", "EstimatedSavingsPercentage": "50.0",
        "EstimatedAverageUtilization": "100", "RecommendationDetailId": "d-1",
        "HourlyCommitmentToPurchase": hourly, "EstimatedMonthlySavingsAmount": "730.1234567890",
        "CurrentMinimumHourlyOnDemandSpend": "1.5", "CurrentMaximumHourlyOnDemandSpend": "2.5",
        "CurrentAverageHourlyOnDemandSpend": on_demand_hourly
    })
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
) -> Vec<cudly_core::domain::Recommendation> {
    let sweep = Sweep { term_months: 12, payment: PaymentOption::NoUpfront };
    let run = RunScope::default();
    backend.fetch(Query { account, service, region: None, sweep, calls, run: &run }).await.unwrap()
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

#[tokio::test]
async fn every_page_is_collected_and_mapped_and_the_lookback_goes_with_every_call() {
    let mut fake = Fake::default();
    fake.pages
        .insert(key(RI, EC2, ""), ri_page(vec![ri_detail("123456789012", "m5.large", "79.2000000000")], Some("p2")));
    fake.pages.insert(key(RI, EC2, "p2"), ri_page(vec![ri_detail("123456789012", "m5.xlarge", "12.00")], Some("p3")));
    fake.pages.insert(key(RI, EC2, "p3"), ri_page(vec![ri_detail("123456789012", "m5.2xlarge", "3.50")], None));
    fake.pages.insert(key(SP, "COMPUTE_SP", ""), sp_page("COMPUTE_SP", sp_detail("", "", "1.0", "0", "2.0")));
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
    assert_eq!((first.currency, first.recommended_count), (Currency::USD, 4.0));
    assert_eq!(
        (first.upfront_cost, first.recurring_monthly_cost, first.on_demand_monthly_cost),
        (Amount::ZERO, amount("201.48"), amount("280.32"))
    );
    assert_eq!((first.estimated_monthly_savings, first.savings_percentage), (amount("79.2"), 28.125));

    let seen = &state.lock().unwrap().seen;
    assert_eq!(seen.len(), 3);
    for (_, _, body) in seen {
        assert_eq!(body["LookbackPeriodInDays"], "SIXTY_DAYS", "{body}");
        assert_eq!(body["TermInYears"], "ONE_YEAR");
        assert_eq!(body["PaymentOption"], "NO_UPFRONT");
        assert_eq!(body["AccountId"], "123456789012", "the account's own recommendations");
    }
    assert_eq!(seen[1].2["NextPageToken"], "p2");
}

#[tokio::test]
async fn every_reserved_instance_service_gets_its_documented_type_without_a_repeated_part() {
    let mut fake = Fake::default();
    let pages = [
        (
            "Amazon Relational Database Service",
            json!({"RDSInstanceDetails": {"Family": "db.r5", "InstanceType": "db.r5.large",
                "Region": "US East (N. Virginia)", "DatabaseEngine": "PostgreSQL", "DatabaseEdition": "",
                "DeploymentOption": "Multi-AZ", "LicenseModel": "No license required",
                "CurrentGeneration": true, "SizeFlexEligible": true}}),
        ),
        (
            "Amazon ElastiCache",
            json!({"ElastiCacheInstanceDetails": {"Family": "cache.r6g", "NodeType": "cache.r6g.large",
                "Region": "EU (Ireland)", "ProductDescription": "redis", "CurrentGeneration": true,
                "SizeFlexEligible": true}}),
        ),
        (
            "Amazon Redshift",
            json!({"RedshiftInstanceDetails": {"Family": "ra3", "NodeType": "ra3.xlplus",
                "Region": "US East (Ohio)", "CurrentGeneration": true, "SizeFlexEligible": false}}),
        ),
    ];
    for (service, instance) in pages {
        fake.pages.insert(key(RI, service, ""), ri_page(vec![detail_of(instance, "USD")], None));
    }
    // OpenSearch: the class, and a size that already carries it (as seen),
    // that does not, or that lacks the suffix: one type each time.
    let search = |class: &str, size: &str| {
        detail_of(
            json!({"ESInstanceDetails": {"InstanceClass": class, "InstanceSize": size,
                "Region": "US West (Oregon)", "CurrentGeneration": true, "SizeFlexEligible": false}}),
            "USD",
        )
    };
    fake.pages.insert(
        key(RI, "Amazon OpenSearch Service", ""),
        ri_page(
            vec![
                search("c6g", "c6g.xlarge.search"),
                search("r6g", "large.search"),
                search("m6g", "2xlarge"),
                search("m5", "m5.large.elasticsearch"),
            ],
            None,
        ),
    );
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();
    let types = |recs: &[cudly_core::domain::Recommendation]| {
        recs.iter().map(|r| (r.resource_type.clone(), r.platform.clone(), r.region.clone())).collect::<Vec<_>>()
    };
    let owned = |t: &[(&str, &str, &str)]| {
        t.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect::<Vec<_>>()
    };

    let rds = fetch(&backend, &acct, "rds", &calls).await;
    assert_eq!(types(&rds), owned(&[("db.r5.large", "PostgreSQL (Multi-AZ)", "us-east-1")]));
    let cache = fetch(&backend, &acct, "elasticache", &calls).await;
    assert_eq!(types(&cache), owned(&[("cache.r6g.large", "redis", "eu-west-1")]));
    let redshift = fetch(&backend, &acct, "redshift", &calls).await;
    assert_eq!(types(&redshift), owned(&[("ra3.xlplus", "", "us-east-2")]));
    let opensearch = fetch(&backend, &acct, "opensearch", &calls).await;
    assert_eq!(
        types(&opensearch),
        owned(&[
            ("c6g.xlarge.search", "", "us-west-2"),
            ("r6g.large.search", "", "us-west-2"),
            ("m6g.2xlarge.search", "", "us-west-2"),
            ("m5.large.elasticsearch", "", "us-west-2"),
        ])
    );
    for rec in rds.iter().chain(&cache).chain(&redshift).chain(&opensearch) {
        assert_eq!(rec.upfront_cost.to_string(), "1412");
        assert_eq!(rec.estimated_monthly_savings.to_string(), "75.644285577", "ten decimals, read exactly");
        assert_eq!(rec.on_demand_monthly_cost.to_string(), "193.310952381");
        assert_eq!((rec.break_even_months, rec.recommended_count), (7.3042938468, 2.0));
        assert!(
            !rec.resource_type.split('.').collect::<Vec<_>>().windows(2).any(|w| w[0] == w[1]),
            "{}",
            rec.resource_type
        );
    }
}

#[tokio::test]
async fn savings_plans_are_priced_per_month_of_730_hours_in_the_currency_reported() {
    let mut fake = Fake::default();
    fake.pages.insert(key(SP, "COMPUTE_SP", ""), sp_page("COMPUTE_SP", sp_detail("", "", "1.0", "0", "2.0")));
    let mut euros = sp_detail("EU (Frankfurt)", "m5", "0.421", "1200", "0.9");
    euros["CurrencyCode"] = json!("EUR");
    fake.pages.insert(key(SP, "EC2_INSTANCE_SP", ""), sp_page("EC2_INSTANCE_SP", euros));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();

    let sp = fetch(&backend, &acct, "compute_savings_plans", &calls).await;
    assert_eq!(sp.len(), 1);
    let plan = &sp[0];
    // 2 USD an hour of on-demand spend is 1,460 USD a month of 730 hours;
    // 1 USD an hour committed is 730 USD a month.
    assert_eq!(plan.on_demand_monthly_cost, amount("1460"));
    assert_eq!(plan.recurring_monthly_cost, amount("730"));
    assert_eq!(plan.estimated_monthly_savings, amount("730.123456789"), "EstimatedMonthlySavingsAmount, exactly");
    assert_eq!((plan.recommended_count, plan.savings_percentage, plan.currency), (1.0, 50.0, Currency::USD));
    assert_eq!(
        (plan.commitment_type, plan.region.as_str(), plan.resource_type.as_str()),
        (CommitmentType::SavingsPlan, "global", "compute")
    );

    let ec2 = fetch(&backend, &acct, "ec2_instance_savings_plans", &calls).await;
    let plan = &ec2[0];
    assert_eq!(plan.currency.as_str(), "EUR", "the detail's CurrencyCode is recorded, not assumed");
    assert_eq!((plan.region.as_str(), plan.resource_type.as_str()), ("eu-central-1", "m5"));
    assert_eq!(plan.on_demand_monthly_cost, amount("657"), "0.9 × 730");
    // 0.421 × 730 = 307.33 committed a month, less the 1,200 upfront over
    // the 12 months of the term.
    assert_eq!(plan.recurring_monthly_cost, amount("207.33"));
    assert_eq!(plan.upfront_cost, amount("1200"));
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
async fn an_account_without_enough_usage_has_no_recommendations_and_no_failure() {
    let mut fake = Fake { no_data: vec![EC2.to_string(), "COMPUTE_SP".to_string()], ..Fake::default() };
    fake.pages
        .insert(key(RI, "Amazon Redshift", ""), ri_page(vec![ri_detail("123456789012", "ra3.xlplus", "5")], None));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();
    assert!(fetch(&backend, &acct, "ec2", &calls).await.is_empty());
    assert!(fetch(&backend, &acct, "compute_savings_plans", &calls).await.is_empty());
    assert_eq!(calls.get(), (2, 0), "one request each, neither a failure nor retried");
    assert_eq!(fetch(&backend, &acct, "redshift", &calls).await.len(), 1, "the other services still answer");
}

#[tokio::test]
async fn collector_credentials_that_cannot_be_had_refuse_the_account_and_say_so() {
    // The collector's own identity is a role that STS refuses to let it assume.
    let denied = "arn:aws:iam::111111111111:role/cudly-collector";
    let (addr, _state) = start(Fake { denied_roles: vec![denied.to_string()], ..Fake::default() }).await;
    let config = config(addr, 100.0, 10);
    let bootstrap = aws_sdk_costexplorer::config::Credentials::new("AKIDTEST", "test-secret", None, None, "test");
    let sts = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(bootstrap)
        .load()
        .await;
    let ambient = aws_config::sts::AssumeRoleProvider::builder(denied).configure(&sts).build().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(ambient)
        .load()
        .await;
    let backend = AwsBackend::with_sdk_config(config, sdk);
    let sweep = Sweep { term_months: 12, payment: PaymentOption::NoUpfront };
    let (calls, run) = (RequestCount::default(), RunScope::default());
    let account = account("123456789012", None);
    let query = Query { account: &account, service: "ec2", region: None, sweep, calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");
    assert!(err.message.contains("no usable AWS credentials"), "{err}");
    assert!(err.message.contains("the collector's own AWS identity needs ce:"), "says what to grant: {err}");
    assert!(!err.message.contains("test-secret"), "{err}");
}

#[tokio::test]
async fn a_refused_role_fails_only_its_account_and_a_malformed_answer_only_its_service() {
    let denied = "arn:aws:iam::222222222222:role/cudly-read";
    let mut fake = Fake { denied_roles: vec![denied.to_string()], ..Fake::default() };
    fake.pages.insert(key(RI, EC2, ""), ri_page(vec![ri_detail("333333333333", "c6i.large", "10")], None));
    // RDS answers with an amount that is not one.
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
    assert_eq!(
        (status.accounts_succeeded, status.accounts_partial, status.accounts_failed),
        (0, 1, 1),
        "one account refused, one partly collected: {status:?}"
    );
    assert_eq!(status.state, ProviderState::PartiallySucceeded, "something was collected");
    let ids: Vec<&str> = status.failed_accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids, ["222222222222", "333333333333"], "both accounts appear, in account order");
    let refused = &status.failed_accounts[0];
    assert_eq!(refused.state, Some(AccountState::Failed));
    assert_eq!(refused.units_total, 8, "8 services × 1 term × 1 payment option");
    assert_eq!(refused.units_failed, 8, "nothing of it was collected");
    assert!(refused.error.contains("AssumeRole denied") && refused.error.contains(denied), "{}", refused.error);
    assert!(!refused.error.contains("test-secret"));
    let partial = &status.failed_accounts[1];
    assert_eq!(
        (partial.state, partial.units_failed, partial.units_total),
        (Some(AccountState::PartiallySucceeded), 2, 8)
    );
    let failed: Vec<&str> = partial.failures.iter().map(|f| f.service.as_str()).collect();
    assert_eq!(failed, ["rds", "sagemaker_savings_plans"], "only the malformed services failed");
    assert!(partial.error.contains("UpfrontCost"), "{}", partial.error);
    assert!(
        status.error.contains("1 of 2 accounts failed") && status.error.contains("1 of 2 accounts partly collected")
    );
    assert!(collected.recommendations.iter().any(|r| r.account_id == "333333333333" && r.service == "ec2"));
    assert!(collected.complete_accounts.is_empty(), "neither account completed a full sweep");
    let assumed = &state.lock().unwrap().assumed;
    assert!(assumed.iter().any(|(arn, ext)| arn.ends_with("333333333333:role/cudly-read") && ext == "cudly-ext"));
}

#[tokio::test]
async fn a_refused_account_stops_spending_billed_calls_at_its_first_refusal() {
    // The default sweeps: 8 services × 2 terms × 3 payment options = 48
    // billed calls per account. Cost Explorer refuses one account's role.
    let refused_key = "ASIA777777777777".to_string();
    let fake = Fake { denied_keys: vec![refused_key.clone()], ..Fake::default() };
    let (addr, state) = start(fake).await;
    let defaults = AwsConfig {
        terms: vec![12, 36],
        payment_options: vec![PaymentOption::NoUpfront, PaymentOption::PartialUpfront, PaymentOption::AllUpfront],
        ..config(addr, 1000.0, 50)
    };
    let backends: Backends = vec![Arc::new(backend(defaults).await)];
    let role = |id: &str| AwsCredentials {
        role_arn: Some(format!("arn:aws:iam::{id}:role/cudly-read")),
        external_id: None,
        organization: false,
    };
    let accounts =
        vec![account("777777777777", Some(role("777777777777"))), account("888888888888", Some(role("888888888888")))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &EngineConfig::default(), &tx).await;

    let status = &collected.providers[0];
    let keys = state.lock().unwrap().keys_seen.clone();
    let spent_on_refused = keys.iter().filter(|k| **k == refused_key).count();
    let spent_on_other = keys.iter().filter(|k| *k == "ASIA888888888888").count();
    assert_eq!(spent_on_other, 48, "the other account is swept in full");
    assert!(
        (1..=8).contains(&spent_on_refused),
        "at most one call per service was in flight when the refusal came: {spent_on_refused} of 48"
    );
    assert_eq!(status.requests, 48 + spent_on_refused as u64, "every call made is counted");
    let refused = &status.failed_accounts[0];
    assert_eq!(refused.account_id, "777777777777");
    assert_eq!((refused.state, refused.units_failed, refused.units_total), (Some(AccountState::Failed), 48, 48));
    assert!(refused.error.contains("AccessDeniedException"), "{}", refused.error);
    assert!(refused.error.contains("remaining calls were not made"), "{}", refused.error);
    assert!(refused.failures.len() <= AccountFailures::MAX_LISTED);
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (1, 1));
    let complete: Vec<&str> = collected.complete_accounts.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(complete, ["888888888888"], "the refused account keeps its old rows");
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
    assert_eq!(collected.providers[0].failed_accounts, [], "{:?}", collected.providers[0]);
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
