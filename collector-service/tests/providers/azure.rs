//! Azure backend tests against a fake ARM and Entra ID.
//!
//! The fake speaks the documented wire formats: the v2.0 token endpoint
//! (form-encoded client credentials, `invalid_client` refusals), the
//! Consumption API's reservation recommendations (2024-08-01, `legacy` and
//! `modern` kinds, `totalHours`, absolute nextLinks), with the reference's
//! own examples, and Advisor's recommendations (2023-01-01, string extended
//! properties).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cudly_collector::engine::{self, EngineConfig};
use cudly_collector::providers::azure::{AzureBackend, AzureConfig};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::{Backends, CloudBackend, ErrorKind, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{AzureCredentials, Credentials, SecretRef};
use cudly_core::domain::{
    Account, AccountState, CommitmentType, PaymentOption, Provider, ProviderState, Recommendation,
};
use cudly_core::money::{Amount, Currency};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{decode, form};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUB_A: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const SUB_B: &str = "5d3c8a9e-7f21-4b6e-9c0d-2a1e4f6b8c73";
const CLIENT_A: &str = "11111111-2222-4333-8444-555555555555";
const CLIENT_B: &str = "99999999-8888-4777-8666-555555555555";

/// A fake Entra ID and ARM on one port.
struct Fake {
    base: String,
    /// The secret each client id is registered with.
    secrets: HashMap<&'static str, String>,
    /// Client ids of token requests, in order.
    token_requests: Mutex<Vec<String>>,
    /// Decoded path and query of ARM requests, in order.
    arm_requests: Mutex<Vec<String>>,
    /// ARM answers 429 (Retry-After: 1) this many more times.
    throttle: AtomicUsize,
    /// Subscriptions the app may not read.
    forbidden: HashSet<&'static str>,
    /// ARM rejects the first token issued (revoked).
    revoke_first_token: bool,
    /// Reservation recommendations by resource type, page by page.
    pages: HashMap<&'static str, Vec<Vec<Value>>>,
    /// A body answered instead, by resource type.
    malformed: HashMap<&'static str, Value>,
    advisor: Vec<Value>,
}

impl Fake {
    fn new(base: String) -> Self {
        Fake {
            base,
            secrets: HashMap::new(),
            token_requests: Mutex::new(Vec::new()),
            arm_requests: Mutex::new(Vec::new()),
            throttle: AtomicUsize::new(0),
            forbidden: HashSet::new(),
            revoke_first_token: false,
            pages: sample_pages(),
            malformed: HashMap::new(),
            advisor: sample_advisor(),
        }
    }

    fn token_requests_of(&self, client: &str) -> usize {
        self.token_requests.lock().unwrap().iter().filter(|c| *c == client).count()
    }

    fn arm_requests(&self) -> Vec<String> {
        self.arm_requests.lock().unwrap().clone()
    }
}

async fn start(configure: impl FnOnce(&mut Fake)) -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut fake = Fake::new(format!("http://{}", listener.local_addr().unwrap()));
    configure(&mut fake);
    let fake = Arc::new(fake);
    let app = axum::Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    if method == Method::POST && path == format!("/{TENANT}/oauth2/v2.0/token") {
        return token(&fake, &String::from_utf8_lossy(&body));
    }
    let query = form(uri.query().unwrap_or(""));
    fake.arm_requests.lock().unwrap().push(format!("{path}?{}", decode(uri.query().unwrap_or(""))));
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if fake.revoke_first_token && bearer.ends_with("#1") {
        let message = "The access token expiry UTC time is earlier than current UTC time.";
        let error = json!({"error": {"code": "ExpiredAuthenticationToken", "message": message}});
        return json_response(StatusCode::UNAUTHORIZED, error);
    }
    if method != Method::GET || !bearer.starts_with("Bearer token-for-") {
        let error = json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}});
        return json_response(StatusCode::UNAUTHORIZED, error);
    }
    if fake.throttle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        let error = json!({"error": {"code": "TooManyRequests", "message": "Too many requests. Please retry."}});
        let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, error);
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
        return response;
    }
    let subscription = path.split('/').nth(2).unwrap_or("");
    if fake.forbidden.contains(subscription) {
        let message = format!(
            "The client '{CLIENT_A}' with object id 'x' does not have authorization to perform action \
             'Microsoft.Consumption/reservationRecommendations/read' over scope '/subscriptions/{subscription}'"
        );
        return json_response(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "AuthorizationFailed", "message": message}}),
        );
    }
    if path.ends_with("/providers/Microsoft.Consumption/reservationRecommendations") {
        assert_eq!(query.get("api-version").map(String::as_str), Some("2024-08-01"));
        let filter = query.get("$filter").cloned().unwrap_or_default();
        let resource_type = filter.split("properties/resourceType eq '").nth(1).and_then(|s| s.split('\'').next());
        let resource_type = resource_type.unwrap_or("VirtualMachines");
        if let Some(body) = fake.malformed.get(resource_type) {
            return json_response(StatusCode::OK, body.clone());
        }
        let pages = fake.pages.get(resource_type).cloned().unwrap_or_default();
        let index: usize = query.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let mut body = json!({"value": pages.get(index).cloned().unwrap_or_default()});
        if index + 1 < pages.len() {
            // Absolute, carrying the filter, like the documented nextLinks.
            body["nextLink"] = json!(format!(
                "{}{path}?api-version=2024-08-01&$filter={}&$skiptoken={}",
                fake.base,
                filter.replace(' ', "+"),
                index + 1
            ));
        }
        return json_response(StatusCode::OK, body);
    }
    if path.ends_with("/providers/Microsoft.Advisor/recommendations") {
        assert_eq!(query.get("api-version").map(String::as_str), Some("2023-01-01"));
        assert_eq!(query.get("$filter").map(String::as_str), Some("Category eq 'Cost'"));
        return json_response(StatusCode::OK, json!({"value": fake.advisor}));
    }
    json_response(StatusCode::NOT_FOUND, json!({"error": {"code": "NotFound", "message": path}}))
}

/// The v2.0 token endpoint: client credentials, form-encoded.
fn token(fake: &Fake, body: &str) -> Response {
    let form = form(body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let client = field("client_id");
    let issued = {
        let mut requests = fake.token_requests.lock().unwrap();
        requests.push(client.to_string());
        requests.len()
    };
    assert_eq!(field("grant_type"), "client_credentials");
    assert_eq!(field("scope"), "https://management.azure.com/.default");
    if fake.secrets.get(client).is_some_and(|secret| secret == field("client_secret")) {
        let grant = json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": format!("token-for-{client}#{issued}")
        });
        return json_response(StatusCode::OK, grant);
    }
    let refusal = json!({
        "error": "invalid_client",
        "error_description": format!(
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client \
             secret value, not the client secret ID, for a secret added to app '{client}'.\r\n\
             Trace ID: 0e5c2f1a-7b11-4c0b-9d7e-6c1f1e0a2b00\r\n\
             Correlation ID: 4f4a3c2d-1e0f-4a1b-8c7d-9e8f7a6b5c4d\r\n\
             Timestamp: 2024-05-01 10:00:00Z"
        ),
        "error_codes": [7000215],
        "timestamp": "2024-05-01 10:00:00Z",
        "trace_id": "0e5c2f1a-7b11-4c0b-9d7e-6c1f1e0a2b00",
        "correlation_id": "4f4a3c2d-1e0f-4a1b-8c7d-9e8f7a6b5c4d",
        "error_uri": "https://login.microsoftonline.com/error?code=7000215"
    });
    json_response(StatusCode::UNAUTHORIZED, refusal)
}

/// A `legacy`-kind item (EA): plain amounts, SKU and location on the item.
fn legacy(sku: &str, location: &str, term: &str, quantity: f64, without: f64, with: f64) -> Value {
    json!({
        "id": format!("subscriptions/{SUB_A}/providers/Microsoft.Consumption/reservationRecommendations/{sku}-{term}"),
        "name": format!("{sku}-{term}"),
        "type": "Microsoft.Consumption/reservationRecommendations",
        "sku": sku,
        "location": location,
        "kind": "legacy",
        "properties": {
            "lookBackPeriod": "Last30Days",
            "meterId": "00000000-0000-0000-0000-000000000000",
            "term": term,
            "costWithNoReservedInstances": without,
            "recommendedQuantity": quantity,
            "totalCostWithReservedInstances": with,
            "netSavings": without - with,
            "firstUsageDate": "2024-03-06T00:00:00Z",
            "scope": "Single",
            "instanceFlexibilityRatio": 1,
            "instanceFlexibilityGroup": "DSv5 Series",
            "normalizedSize": sku,
            "recommendedQuantityNormalized": quantity,
            "skuProperties": [{"name": "Cores", "value": "2"}, {"name": "Ram", "value": "8"}],
            "subscriptionId": SUB_A
        }
    })
}

/// A `modern`-kind item (MCA): `{currency, value}` amounts, SKU and location
/// under properties.
fn modern(sku: &str, location: &str, term: &str, quantity: f64, without: f64, with: f64) -> Value {
    let usd = |value: f64| json!({"currency": "USD", "value": value});
    json!({
        "id": format!("/subscriptions/{SUB_A}/providers/Microsoft.Consumption/reservationRecommendations/{sku}-{term}"),
        "name": format!("{sku}-{term}"),
        "type": "Microsoft.Consumption/reservationRecommendations",
        "kind": "modern",
        "properties": {
            "costWithNoReservedInstances": usd(without),
            "firstUsageDate": "2024-03-06T00:00:00Z",
            "instanceFlexibilityGroup": "NA",
            "instanceFlexibilityRatio": 1,
            "location": location,
            "lookBackPeriod": 30,
            "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
            "netSavings": usd(without - with),
            "normalizedSize": sku,
            "recommendedQuantity": quantity,
            "recommendedQuantityNormalized": quantity,
            "resourceType": "virtualmachines",
            "scope": "Single",
            "skuName": sku,
            "skuProperties": null,
            "subscriptionId": SUB_A,
            "term": term,
            "totalCostWithReservedInstances": usd(with)
        }
    })
}

/// Look-back totals (30 days, 720 hours): e.g. 2,880 over 720 hours is
/// 2,920 a month of 730 hours.
fn sample_pages() -> HashMap<&'static str, Vec<Vec<Value>>> {
    let mut d4 = modern("Standard_D4s_v5", "eastus", "P1Y", 1.0, 700.0, 455.0);
    // 2024-08-01 says how many hours the costs cover.
    d4["properties"]["totalHours"] = json!(700);
    HashMap::from([
        (
            "VirtualMachines",
            vec![
                vec![
                    legacy("Standard_D2s_v5", "westeurope", "P1Y", 4.0, 2880.0, 2016.0),
                    modern("Standard_E8s_v5", "northeurope", "P3Y", 2.0, 7200.0, 3240.0),
                ],
                vec![d4],
                vec![legacy("Standard_D2s_v5", "westeurope", "P3Y", 4.0, 2880.0, 1440.0)],
            ],
        ),
        ("SQLDatabases", vec![vec![modern("SQLDB_GP_Compute_Gen5", "westus2", "P1Y", 8.0, 9600.0, 6240.0)]]),
        ("CosmosDB", vec![vec![modern("Cosmos_DB_100RU", "eastus", "P1Y", 10.0, 1200.0, 960.0)]]),
        ("RedisCache", vec![vec![legacy("Premium_P1", "westeurope", "P1Y", 2.0, 9000.0, 6300.0)]]),
    ])
}

/// The items of the Consumption API reference's examples, as published:
/// the `legacy` ones of ReservationRecommendationsByBillingAccount (with the
/// `totalHours` that 2024-08-01 adds) and the `modern` ones of
/// ReservationRecommendationsByBillingProfile.
fn documented_items() -> Vec<Value> {
    let p1y = json!({
        "id": "billingAccount/123456/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
        "name": "00000000-0000-0000-0000-000000000000",
        "type": "Microsoft.Consumption/reservationRecommendations",
        "location": "westus", "sku": "Standard_DS1_v2", "kind": "legacy",
        "properties": {
            "meterId": "00000000-0000-0000-0000-000000000000", "term": "P1Y",
            "costWithNoReservedInstances": 12.0785105, "recommendedQuantity": 1,
            "totalCostWithReservedInstances": 11.4899644807748, "netSavings": 0.588546019225182,
            "firstUsageDate": "2019-07-07T00:00:00-07:00", "scope": "Shared", "lookBackPeriod": "Last7Days",
            "instanceFlexibilityRatio": 1, "instanceFlexibilityGroup": "DSv2 Series",
            "normalizedSize": "Standard_DS1_v2", "recommendedQuantityNormalized": 1,
            "skuProperties": [{"name": "Cores", "value": "1"}, {"name": "Ram", "value": "1"}]
        }
    });
    // The same item for three years, with the hours 2024-08-01 adds.
    let mut p3y = p1y.clone();
    p3y["properties"]["term"] = json!("P3Y");
    p3y["properties"]["totalHours"] = json!(701);
    p3y["properties"]["lastUsageDate"] = json!("2019-08-07T00:00:00-07:00");
    vec![
        p1y,
        p3y,
        json!({
            "id": "/providers/Microsoft.Billing/billingAccounts/123456/billingProfiles/6420/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "kind": "modern",
            "properties": {
                "costWithNoReservedInstances": {"currency": "USD", "value": 93208.8596802244},
                "firstUsageDate": "2022-08-22T00:00:00Z", "instanceFlexibilityGroup": "NA",
                "instanceFlexibilityRatio": 1, "location": "westus2", "lookBackPeriod": 60,
                "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
                "netSavings": {"currency": "USD", "value": 32553.85968022456},
                "normalizedSize": "SQLDB_BC_Compute_Gen5", "recommendedQuantity": 35,
                "recommendedQuantityNormalized": 35, "resourceType": "sqldatabases", "scope": "Single",
                "skuName": "SQLDB_BC_Compute_Gen5", "skuProperties": null,
                "subscriptionId": "c6aa8a01-a744-44a7-a4f1-caad17512f27", "term": "P1Y",
                "totalCostWithReservedInstances": {"currency": "USD", "value": 60654.99999999984}
            }
        }),
    ]
}

fn sample_advisor() -> Vec<Value> {
    let rec = |name: &str, ext: Value| {
        json!({
            "id": format!("/subscriptions/{SUB_A}/providers/Microsoft.Advisor/recommendations/{name}"),
            "name": name,
            "type": "Microsoft.Advisor/recommendations",
            "properties": {
                "category": "Cost",
                "impact": "High",
                "impactedField": "Microsoft.Subscriptions/subscriptions",
                "impactedValue": SUB_A,
                "lastUpdated": "2024-05-01T00:00:00Z",
                "shortDescription": {"problem": "Buy reserved capacity", "solution": "Buy reserved capacity"},
                "extendedProperties": ext
            }
        })
    };
    vec![
        rec(
            "app-service",
            json!({
                "reservedResourceType": "AppService", "sku": "P1v3", "displaySKU": "Premium v3 P1v3",
                "region": "westeurope", "qty": "4", "term": "P3Y", "lookbackPeriod": "30",
                "annualSavingsAmount": "1800", "savingsCurrency": "USD", "scope": "Single"
            }),
        ),
        rec(
            "vm",
            json!({
                "vmSize": "Standard_D2s_v5", "location": "westeurope", "targetResourceCount": "4", "term": "P3Y",
                "annualSavingsAmount": "4200", "savingsCurrency": "USD"
            }),
        ),
        rec("resize", json!({"currentSku": "Standard_D8s_v5", "targetSku": "Standard_D4s_v5", "savingsAmount": "120"})),
    ]
}

/// A client secret in a file (no process environment is touched).
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(value: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cudly-azure-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{value}\n")).unwrap();
        SecretFile(path)
    }

    fn reference(&self) -> SecretRef {
        SecretRef::File(self.0.clone())
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn account(subscription: &str, name: &str, client: &str, secret: &SecretFile) -> Account {
    Account {
        provider: Provider::Azure,
        external_id: subscription.into(),
        display_name: name.into(),
        credentials: Some(Credentials::Azure(AzureCredentials {
            tenant_id: TENANT.into(),
            client_id: client.into(),
            client_secret: secret.reference(),
        })),
    }
}

fn backend(fake: &Fake, terms: Vec<i32>) -> AzureBackend {
    AzureBackend::new(AzureConfig {
        management_url: fake.base.clone(),
        login_url: fake.base.clone(),
        lookback_days: 30,
        terms,
        billing_currency: Currency::USD,
        limits: CallLimits {
            limiter: RateLimiter::new(1000.0, 100),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
                attempt_timeout: Duration::from_secs(5),
            },
        },
    })
    .unwrap()
}

fn monthly(term_months: i32) -> Sweep {
    Sweep { term_months, payment: PaymentOption::Monthly }
}

/// One sweep of `run` (its listings are shared by the run's sweeps).
async fn fetch_in(
    run: &RunScope,
    backend: &AzureBackend,
    account: &Account,
    service: &'static str,
    term: i32,
    calls: &RequestCount,
) -> Vec<Recommendation> {
    let query = Query { account, service, region: None, sweep: monthly(term), calls, run };
    backend.fetch(query).await.unwrap()
}

/// One sweep of a run of its own.
async fn fetch(
    backend: &AzureBackend,
    account: &Account,
    service: &'static str,
    term: i32,
    calls: &RequestCount,
) -> Vec<Recommendation> {
    fetch_in(&RunScope::default(), backend, account, service, term, calls).await
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

#[tokio::test]
async fn reservation_recommendations_are_collected_across_every_page_and_mapped_to_monthly_figures() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();

    let one_year = fetch_in(&run, &backend, &account, "virtual_machines", 12, &calls).await;
    // A token, then three pages: the nextLinks were followed to the end.
    assert_eq!(calls.get(), (4, 0));
    let three_years = fetch_in(&run, &backend, &account, "virtual_machines", 36, &calls).await;
    assert_eq!(calls.get(), (4, 0), "the run's 3-year sweep reuses the listing, which holds every term");

    let key = |r: &Recommendation| (r.resource_type.clone(), r.region.clone());
    let mut keys: Vec<_> = one_year.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [("Standard_D2s_v5".into(), "westeurope".into()), ("Standard_D4s_v5".into(), "eastus".into())],
        "page 1 and page 2 both count"
    );
    let mut keys: Vec<_> = three_years.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [("Standard_D2s_v5".into(), "westeurope".into()), ("Standard_E8s_v5".into(), "northeurope".into())],
        "page 1 and page 3 both count"
    );

    let d2 = one_year.iter().find(|r| r.resource_type == "Standard_D2s_v5").unwrap();
    assert_eq!(
        (d2.provider, d2.account_id.as_str(), d2.account_name.as_str()),
        (Provider::Azure, SUB_A, "Payments prod")
    );
    assert_eq!((d2.service.as_str(), d2.platform.as_str()), ("virtual_machines", ""));
    assert_eq!(
        (d2.commitment_type, d2.term_months, d2.payment_option),
        (CommitmentType::ReservedInstance, 12, PaymentOption::Monthly)
    );
    assert_eq!((d2.recommended_count, d2.currency), (4.0, Currency::USD));
    // 2,880 on demand and 2,016 reserved over the 30-day look-back (720
    // hours): per month of 730 hours.
    assert_eq!(d2.on_demand_monthly_cost, amount("2920"), "{d2:?}");
    assert_eq!(d2.recurring_monthly_cost, amount("2044"), "{d2:?}");
    assert_eq!(d2.estimated_monthly_savings, amount("876"), "{d2:?}");
    assert!((d2.savings_percentage - 30.0).abs() < 1e-9, "{d2:?}");
    assert_eq!((d2.upfront_cost, d2.break_even_months), (Amount::ZERO, 0.0));
    let e8 = three_years.iter().find(|r| r.resource_type == "Standard_E8s_v5").unwrap();
    // 7,200 and 3,240 over 720 hours, from the `modern` kind's amounts.
    assert_eq!((e8.on_demand_monthly_cost, e8.estimated_monthly_savings), (amount("7300"), amount("4015")), "{e8:?}");
    assert_eq!((e8.term_months, e8.recommended_count), (36, 2.0));
    // The item that says its costs cover 700 hours.
    let d4 = one_year.iter().find(|r| r.resource_type == "Standard_D4s_v5").unwrap();
    assert_eq!((d4.on_demand_monthly_cost, d4.recurring_monthly_cost), (amount("730"), amount("474.5")));

    let requests = fake.arm_requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[0].contains(
            "api-version=2024-08-01&$filter=properties/scope eq 'Single' AND properties/resourceType eq \
             'VirtualMachines' AND properties/lookBackPeriod eq 'Last30Days'"
        ),
        "{requests:?}"
    );
    assert!(requests[1].ends_with("$skiptoken=1") && requests[2].ends_with("$skiptoken=2"), "{requests:?}");

    // A new run lists afresh, even a second later: it reports only what it
    // fetched itself.
    fetch(&backend, &account, "virtual_machines", 12, &calls).await;
    assert_eq!(fake.arm_requests().len(), 6);
}

#[tokio::test]
async fn the_reference_examples_are_read_as_look_back_totals_per_month_of_730_hours() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.pages.insert("VirtualMachines", vec![documented_items()]);
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let one_year = fetch_in(&run, &backend, &account, "virtual_machines", 12, &calls).await;
    let three_years = fetch_in(&run, &backend, &account, "virtual_machines", 36, &calls).await;

    // One Standard_DS1_v2 over the 7-day look-back (168 hours): 12.0785105
    // is about $0.072 an hour, pay-as-you-go; 52.48 a month, not 1.01 (a
    // term total over 12 months) and not 12.08.
    let ds1 = one_year.iter().find(|r| r.resource_type == "Standard_DS1_v2").unwrap();
    assert_eq!(ds1.on_demand_monthly_cost, amount("52.484003958"));
    assert_eq!(ds1.recurring_monthly_cost, amount("49.926631376"));
    assert_eq!(ds1.estimated_monthly_savings, amount("2.557372583"));
    assert_eq!((ds1.region.as_str(), ds1.recommended_count, ds1.currency), ("westus", 1.0, Currency::USD));
    // The same figures covering the 701 hours its totalHours names.
    let ds1_p3y = &three_years[0];
    assert_eq!((ds1_p3y.term_months, ds1_p3y.on_demand_monthly_cost), (36, amount("12.578192104")));
    assert_eq!(ds1_p3y.estimated_monthly_savings, amount("0.612893857"));
    // The modern item: 60 days, 1,440 hours.
    let sql = one_year.iter().find(|r| r.resource_type == "SQLDB_BC_Compute_Gen5").unwrap();
    assert_eq!(sql.on_demand_monthly_cost, amount("47251.713587891"));
    assert_eq!(sql.recurring_monthly_cost, amount("30748.715277778"));
    assert_eq!(sql.estimated_monthly_savings, amount("16502.998310114"));
    assert_eq!((sql.region.as_str(), sql.recommended_count, sql.term_months), ("westus2", 35.0, 12));
    assert!(one_year.iter().chain(&three_years).all(|r| r.payment_option == PaymentOption::Monthly));
}

#[tokio::test]
async fn throttling_with_retry_after_is_retried_and_every_attempt_is_counted() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.throttle.store(2, Ordering::SeqCst);
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let recs = fetch(&backend, &account, "sql_database", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].resource_type, "SQLDB_GP_Compute_Gen5");
    // A token, two 429s, then the page.
    assert_eq!(calls.get(), (4, 2));
    assert_eq!(fake.arm_requests().len(), 3);
}

#[tokio::test]
async fn a_refused_client_secret_fails_only_its_account_and_says_which_app_without_the_secret() {
    let good = SecretFile::new("client-secret-a");
    let stale = SecretFile::new("an-expired-secret-b");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.secrets.insert(CLIENT_B, "the-current-secret-b".into());
    })
    .await;
    let backends: Backends = vec![Arc::new(backend(&fake, vec![12, 36]))];
    let accounts =
        vec![account(SUB_A, "Payments prod", CLIENT_A, &good), account(SUB_B, "Analytics", CLIENT_B, &stale)];
    let (progress, _watch) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &EngineConfig::default(), &progress).await;

    let status = &collected.providers[0];
    assert_eq!((status.accounts_succeeded, status.accounts_failed), (1, 1), "{status:#?}");
    assert_eq!(status.state, ProviderState::PartiallySucceeded);
    let refused = &status.failed_accounts[0];
    assert_eq!((refused.account_id.as_str(), refused.state), (SUB_B, Some(AccountState::Failed)));
    assert_eq!((refused.units_failed, refused.units_total), (9, 9), "4 services × 2 terms, and Advisor");
    assert!(!collected.recommendations.is_empty());
    assert!(collected.recommendations.iter().all(|r| r.account_id == SUB_A));
    let services: HashSet<&str> = collected.recommendations.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, HashSet::from(["virtual_machines", "sql_database", "cosmos_db", "redis_cache", "advisor"]));
    assert_eq!(collected.complete_accounts, vec![(Provider::Azure, SUB_A.to_string())]);

    assert!(!refused.failures.is_empty());
    assert!(refused.error.contains("Entra ID refused client"), "{}", refused.error);
    for failure in &refused.failures {
        assert_eq!(failure.account_id, SUB_B);
        let error = &failure.error;
        assert!(error.contains(&format!("Azure token for subscription {SUB_B}: ")), "{error}");
        assert!(error.contains(&format!("Entra ID refused client {CLIENT_B} in tenant {TENANT}")), "{error}");
        assert!(error.contains("AADSTS7000215") && error.contains(&stale.reference().to_string()), "{error}");
        assert!(!error.contains("an-expired-secret-b") && !error.contains("Trace ID"), "{error}");
    }
    assert!(status.error.contains(CLIENT_B), "{}", status.error);
    // Its five services and nine sweeps asked Entra ID once, not nine times.
    assert_eq!(fake.token_requests_of(CLIENT_B), 1);
    assert_eq!(fake.token_requests_of(CLIENT_A), 1);
}

#[tokio::test]
async fn a_malformed_payload_fails_only_its_service_and_names_it() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.malformed.insert("CosmosDB", json!({"value": "oops"}));
        let mut redis = legacy("Premium_P1", "westeurope", "P1Y", 2.0, 9000.0, 6300.0);
        redis["properties"]["netSavings"] = json!({"amount": 2700, "unit": "USD"});
        f.malformed.insert("RedisCache", json!({"value": [redis]}));
    })
    .await;
    let backends: Backends = vec![Arc::new(backend(&fake, vec![12, 36]))];
    let accounts = vec![account(SUB_A, "Payments prod", CLIENT_A, &secret)];
    let (progress, _watch) = tokio::sync::watch::channel(Vec::new());
    let collected = engine::collect(&backends, &accounts, &EngineConfig::default(), &progress).await;

    let status = &collected.providers[0];
    assert_eq!((status.accounts_partial, status.accounts_failed), (1, 0), "the other services were collected");
    let account_failures = &status.failed_accounts[0];
    // CosmosDB's listing for both terms, Redis's P1Y item (its P3Y sweep
    // finds no item of its term, and succeeds).
    assert_eq!((account_failures.units_failed, account_failures.units_total), (3, 9));
    let failed: HashMap<&str, &str> =
        account_failures.failures.iter().map(|f| (f.service.as_str(), f.error.as_str())).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    let cosmos = failed["cosmos_db"];
    assert!(
        cosmos.contains("reservation recommendations (CosmosDB)") && cosmos.contains("`value` is a string"),
        "{cosmos}"
    );
    let redis = failed["redis_cache"];
    assert!(redis.contains("(RedisCache)") && redis.contains("netSavings.value is missing"), "{redis}");
    let services: HashSet<&str> = collected.recommendations.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, HashSet::from(["virtual_machines", "sql_database", "advisor"]));
    // Advisor keeps the App Service purchase; its VM reservation duplicates
    // virtual_machines and the resize is no purchase.
    let advisor: Vec<&Recommendation> = collected.recommendations.iter().filter(|r| r.service == "advisor").collect();
    assert_eq!(advisor.len(), 1);
    assert_eq!((advisor[0].resource_type.as_str(), advisor[0].platform.as_str()), ("P1v3", "AppService"));
    assert_eq!((advisor[0].estimated_monthly_savings, advisor[0].term_months), (amount("150"), 36));
    // A malformed answer is not retried, nor asked again by the run's
    // other term: one request.
    let requests = fake.arm_requests();
    assert_eq!(requests.iter().filter(|r| r.contains("'CosmosDB'")).count(), 1, "{requests:#?}");
}

#[tokio::test]
async fn one_token_serves_every_fetch_of_an_app_even_when_they_start_together() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let accounts = [account(SUB_A, "Payments prod", CLIENT_A, &secret), account(SUB_B, "Analytics", CLIENT_A, &secret)];
    let calls = RequestCount::new();
    let run = RunScope::default();
    let services = ["virtual_machines", "sql_database", "cosmos_db", "redis_cache", "advisor"];
    let fetches = accounts.iter().flat_map(|a| services.iter().map(move |s| (a, *s)));
    let results = join_all(fetches.map(|(account, service)| {
        let query = Query { account, service, region: None, sweep: monthly(36), calls: &calls, run: &run };
        backend.fetch(query)
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for account in &accounts {
        fetch(&backend, account, "virtual_machines", 12, &calls).await;
    }
    assert_eq!(fake.token_requests_of(CLIENT_A), 1, "ten concurrent fetches and two more asked once");
}

#[tokio::test]
async fn a_subscription_the_app_may_not_read_fails_at_once_with_the_role_to_grant() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.forbidden.insert(SUB_B);
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_B, "Analytics", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let query =
        Query { account: &account, service: "advisor", region: None, sweep: monthly(12), calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "a 403 refuses the account's other calls too");
    let err = err.to_string();
    assert!(err.contains(&format!("Azure Advisor cost recommendations for subscription {SUB_B}: HTTP 403")), "{err}");
    assert!(err.contains("AuthorizationFailed") && err.contains("Reader"), "{err}");
    assert_eq!(calls.get(), (2, 1), "a token and one refused request: no retries");
}

#[tokio::test]
async fn a_refused_app_is_asked_once_for_all_its_subscriptions_and_a_new_secret_is_tried_at_once() {
    let secret = SecretFile::new("an-expired-secret-b");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_B, "the-current-secret-b".into());
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let analytics = account(SUB_B, "Analytics", CLIENT_B, &secret);
    let reporting = account(SUB_A, "Reporting", CLIENT_B, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    for account in [&analytics, &reporting] {
        let query = Query { account, service: "cosmos_db", region: None, sweep: monthly(12), calls: &calls, run: &run };
        let err = backend.fetch(query).await.unwrap_err().to_string();
        // Each failure names its own subscription, though one answer is reused.
        let expected =
            format!("Azure token for subscription {}: Entra ID refused client {CLIENT_B}", account.external_id);
        assert!(err.starts_with(&expected), "{err}");
    }
    assert_eq!(fake.token_requests_of(CLIENT_B), 1);
    assert_eq!(calls.get(), (1, 1));

    // The operator rotates the secret behind the same reference.
    std::fs::write(&secret.0, "the-current-secret-b").unwrap();
    let recs = fetch(&backend, &reporting, "cosmos_db", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(fake.token_requests_of(CLIENT_B), 2);
}

#[tokio::test]
async fn a_token_arm_rejects_is_replaced_by_the_next_fetch() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.revoke_first_token = true;
    })
    .await;
    let backend = backend(&fake, vec![12]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let query =
        Query { account: &account, service: "redis_cache", region: None, sweep: monthly(12), calls: &calls, run: &run };
    let err = backend.fetch(query).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 401") && err.contains("ExpiredAuthenticationToken"), "{err}");
    let recs = fetch(&backend, &account, "redis_cache", 12, &calls).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(fake.token_requests_of(CLIENT_A), 2, "the rejected token was not kept");
}
