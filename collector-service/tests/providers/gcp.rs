//! The GCP backend against one fake server playing Google's OAuth2 token
//! endpoint, the metadata server, the Recommender API (v1) and Compute
//! Engine's `regions.list`, speaking their documented JSON. The service
//! account's key is a test-only RSA key under `fixtures/`; the fake checks
//! each grant's RS256 signature with its public half.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cudly_collector::engine::{EngineConfig, collect};
use cudly_collector::providers::calls::{CallLimits, RateLimiter, RetryPolicy};
use cudly_collector::providers::gcp::{GcpBackend, GcpConfig};
use cudly_collector::providers::{Backends, CloudBackend, Query, RequestCount, RunScope, Sweep};
use cudly_core::credentials::{Credentials, GcpCredentials, SecretRef};
use cudly_core::domain::{Account, AccountState, CommitmentType, PaymentOption, Provider, ProviderState};
use cudly_core::money::{Amount, Currency};
use serde_json::{Value, json};

use crate::support::form;

const PRIVATE_KEY: &str = include_str!("fixtures/gcp-sa-test-only.key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/gcp-sa-test-only.pub.pem");
const CLIENT_EMAIL: &str = "cudly-collector@cudly-test.iam.gserviceaccount.com";
const ACCESS_TOKEN: &str = "ya29.fake-access-token";
const USAGE: &str = "google.compute.commitment.UsageCommitmentRecommender";
const SPEND: &str = "google.cloudbilling.commitment.SpendBasedCommitmentRecommender";
const BILLING: &str = "01A2B3-C4D5E6-F7A8B9";

// ---- the fake ------------------------------------------------------------

/// What the fake serves and what it saw.
#[derive(Default)]
struct Fake {
    /// Its own base URL (the token endpoint's audience).
    base: Mutex<String>,
    /// Recommendations by parent (`projects/p/locations/r/recommenders/X`).
    lists: Mutex<HashMap<String, Vec<Value>>>,
    /// Region names by project.
    regions: Mutex<HashMap<String, Vec<String>>>,
    /// Items per page (0: everything on one page).
    page_size: AtomicUsize,
    /// Projects whose Recommender calls are refused (403).
    forbidden: Mutex<HashSet<String>>,
    /// Projects whose Recommender API is disabled (403 SERVICE_DISABLED).
    disabled: Mutex<HashSet<String>>,
    /// 429s still to answer, by parent.
    throttled: Mutex<HashMap<String, u32>>,
    /// A raw body to answer instead of the list, by parent.
    malformed: Mutex<HashMap<String, String>>,
    /// Grants at the token endpoint and the metadata server.
    key_grants: AtomicU32,
    metadata_grants: AtomicU32,
    /// Every API request: (path, query parameters).
    seen: Mutex<Vec<(String, HashMap<String, String>)>>,
}

impl Fake {
    fn set_list(&self, parent: String, recs: Vec<Value>) {
        self.lists.lock().unwrap().insert(parent, recs);
    }

    fn set_regions(&self, project: &str, regions: &[&str]) {
        self.regions.lock().unwrap().insert(project.into(), regions.iter().map(|r| r.to_string()).collect());
    }

    fn requests_to(&self, prefix: &str) -> Vec<(String, HashMap<String, String>)> {
        self.seen.lock().unwrap().iter().filter(|(path, _)| path.starts_with(prefix)).cloned().collect()
    }
}

fn compute_parent(project: &str, region: &str) -> String {
    format!("projects/{project}/locations/{region}/recommenders/{USAGE}")
}

fn billing_parent(location: &str) -> String {
    format!("billingAccounts/{BILLING}/locations/{location}/recommenders/{SPEND}")
}

async fn spawn(fake: Arc<Fake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *fake.base.lock().unwrap() = base.clone();
    let app = Router::new().fallback(handle).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let params = form(uri.query().unwrap_or(""));
    if method == Method::POST && path == "/token" {
        return grant(&fake, &form(std::str::from_utf8(&body).unwrap_or("")));
    }
    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
        }
        fake.metadata_grants.fetch_add(1, Ordering::SeqCst);
        return token_json();
    }
    fake.seen.lock().unwrap().push((path.clone(), params.clone()));
    let bearer = format!("Bearer {ACCESS_TOKEN}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return google_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Request had invalid credentials.");
    }
    let page_size = fake.page_size.load(Ordering::SeqCst);
    if let Some(project) = path.strip_prefix("/compute/v1/projects/").and_then(|p| p.strip_suffix("/regions")) {
        let regions = fake.regions.lock().unwrap().get(project).cloned().unwrap_or_default();
        let items: Vec<Value> =
            regions.iter().map(|name| json!({"kind": "compute#region", "name": name, "status": "UP"})).collect();
        let (items, next) = page(items, &params, page_size);
        let mut answer =
            json!({"kind": "compute#regionList", "id": format!("projects/{project}/regions"), "items": items});
        if let Some(next) = next {
            answer["nextPageToken"] = json!(next);
        }
        return json_response(StatusCode::OK, answer);
    }
    let Some(parent) = path.strip_prefix("/v1/").and_then(|p| p.strip_suffix("/recommendations")) else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method");
    };
    if let Some(project) = parent.strip_prefix("projects/").and_then(|p| p.split('/').next())
        && fake.forbidden.lock().unwrap().contains(project)
    {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission 'recommender.commitmentUtilizationRecommendations.list' denied on project {project}"),
        );
    }
    if let Some(project) = parent.strip_prefix("projects/").and_then(|p| p.split('/').next())
        && fake.disabled.lock().unwrap().contains(project)
    {
        return service_disabled(project);
    }
    if let Some(left) = fake.throttled.lock().unwrap().get_mut(parent).filter(|left| **left > 0) {
        *left -= 1;
        let mut answer = google_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", "Quota exceeded.");
        answer.headers_mut().insert("retry-after", "1".parse().unwrap());
        return answer;
    }
    if let Some(raw) = fake.malformed.lock().unwrap().get(parent) {
        return ([("content-type", "application/json")], raw.clone()).into_response();
    }
    let recs = fake.lists.lock().unwrap().get(parent).cloned().unwrap_or_default();
    let (recs, next) = page(recs, &params, page_size);
    let mut answer = json!({"recommendations": recs});
    if let Some(next) = next {
        answer["nextPageToken"] = json!(next);
    }
    json_response(StatusCode::OK, answer)
}

/// The JWT-bearer grant: the assertion must be signed with the test key and
/// name the right issuer, audience and scope.
fn grant(fake: &Fake, form: &HashMap<String, String>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let audience = format!("{}/token", fake.base.lock().unwrap());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    let claims = match jsonwebtoken::decode::<HashMap<String, Value>>(assertion, &key, &validation) {
        Ok(data) if data.header.kid.as_deref() == Some("test-key-id") => data.claims,
        _ => return oauth_error("invalid_grant", "Invalid JWT Signature."),
    };
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if claims.get("scope") != Some(&json!("https://www.googleapis.com/auth/cloud-platform")) || lifetime > 3600 {
        return oauth_error("invalid_scope", "Invalid OAuth scope or lifetime.");
    }
    fake.key_grants.fetch_add(1, Ordering::SeqCst);
    token_json()
}

fn token_json() -> Response {
    json_response(StatusCode::OK, json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn oauth_error(code: &str, description: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({"error": code, "error_description": description}))
}

fn google_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code}});
    json_response(status, body)
}

/// Google's answer for an API not enabled on the caller's project: 403
/// PERMISSION_DENIED with an ErrorInfo of reason SERVICE_DISABLED.
fn service_disabled(project: &str) -> Response {
    let message = format!(
        "Recommender API has not been used in project {project} before or it is disabled. Enable it by visiting \
         https://console.developers.google.com/apis/api/recommender.googleapis.com/overview?project={project} then \
         retry."
    );
    let body = json!({"error": {
        "code": 403,
        "message": message,
        "status": "PERMISSION_DENIED",
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "SERVICE_DISABLED",
            "domain": "googleapis.com",
            "metadata": {"service": "recommender.googleapis.com", "consumer": format!("projects/{project}")}
        }]
    }});
    json_response(StatusCode::FORBIDDEN, body)
}

/// Pages `items` by `pageToken` (an offset in disguise).
fn page(items: Vec<Value>, params: &HashMap<String, String>, size: usize) -> (Vec<Value>, Option<String>) {
    let start = params.get("pageToken").and_then(|t| t.strip_prefix("page-")).and_then(|n| n.parse().ok()).unwrap_or(0);
    let size = if size == 0 { items.len().max(1) } else { size };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    (items.get(start..end).map(<[Value]>::to_vec).unwrap_or_default(), next)
}

// ---- sample recommendations, as the Recommender writes them ---------------

/// A resource-based commitment recommendation (`UsageCommitmentRecommender`).
fn compute_rec(project: &str, region: &str, id: &str, plan: &str, kind: &str, vcpus: u32, cost: (&str, i64)) -> Value {
    let memory_mb = vcpus * 4096;
    let years = if plan == "TWELVE_MONTH" { 1 } else { 3 };
    json!({
        "name": format!("{}/recommendations/{id}", compute_parent(project, region)),
        "description": format!("Purchase a {years} year commitment for {vcpus} vCPUs in {region}"),
        "recommenderSubtype": "COMMIT_RESOURCES",
        "lastRefreshTime": "2026-03-01T06:00:00Z",
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": cost.0, "nanos": cost.1},
                "duration": "2592000s"
            }
        },
        "priority": "P2",
        "content": {
            "overview": {"algorithm": "OPTIMAL"},
            "operationGroups": [{"operations": [{
                "action": "add",
                "resourceType": "compute.googleapis.com/Commitment",
                "resource": format!("//compute.googleapis.com/projects/{project}/regions/{region}/commitments/{id}"),
                "path": "/",
                "value": {
                    "name": id,
                    "plan": plan,
                    "type": kind,
                    "region": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}"),
                    "resources": [
                        {"type": "VCPU", "amount": vcpus.to_string()},
                        {"type": "MEMORY", "amount": memory_mb.to_string()}
                    ]
                }
            }]}]
        },
        "stateInfo": {"state": "ACTIVE"},
        "etag": format!("\"{id}-etag\""),
        "associatedInsights": [{"insight": format!(
            "projects/{project}/locations/{region}/insightTypes/google.compute.commitment.UsageCommitmentInsight/insights/{id}"
        )}],
        "xorGroupId": format!("{id}-group")
    })
}

/// A spend-based commitment recommendation. Google documents no schema for
/// its content: this one names its service and region in the overview and
/// its term in the subtype, as the backend reads them.
fn spend_rec(id: &str, service: &str, subtype: &str, region: &str, units: &str) -> Value {
    json!({
        "name": format!("{}/recommendations/{id}", billing_parent(region)),
        "description": format!("Purchase a spend-based commitment for {service} in {region}"),
        "recommenderSubtype": subtype,
        "primaryImpact": {"category": "COST", "costProjection": {
            "cost": {"currencyCode": "USD", "units": units}, "duration": "2592000s"}},
        "content": {"overview": {"service": service, "region": region}},
        "stateInfo": {"state": "ACTIVE"},
        "etag": "\"e\""
    })
}

fn with_state(mut rec: Value, state: &str) -> Value {
    rec["stateInfo"]["state"] = json!(state);
    rec
}

// ---- the backend and its accounts ---------------------------------------

/// A service-account key file for the fake, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(base: &str, kind: &str) -> KeyFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("cudly-gcp-test-only-{}-{n}.json", std::process::id()));
        let key = json!({
            "type": kind,
            "project_id": "cudly-test",
            "private_key_id": "test-key-id",
            "private_key": PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{base}/token")
        });
        std::fs::write(&path, serde_json::to_vec(&key).unwrap()).unwrap();
        KeyFile(path)
    }

    fn secret(&self) -> SecretRef {
        SecretRef::File(self.0.clone())
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn project(id: &str, key: Option<&KeyFile>, billing: Option<&str>) -> Account {
    Account {
        provider: Provider::Gcp,
        external_id: id.into(),
        display_name: format!("Project {id}"),
        credentials: Some(Credentials::Gcp(GcpCredentials {
            service_account_key: key.map(KeyFile::secret),
            billing_account_id: billing.map(str::to_string),
        })),
    }
}

fn backend(base: &str, retry: RetryPolicy) -> GcpBackend {
    GcpBackend::new(GcpConfig {
        recommender_url: base.into(),
        compute_url: base.into(),
        metadata_url: base.into(),
        limits: CallLimits { limiter: RateLimiter::new(1000.0, 100), retry },
    })
    .unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }
}

fn query<'a>(
    run: &'a RunScope,
    account: &'a Account,
    service: &'static str,
    region: Option<&'a str>,
    term_months: i32,
    calls: &'a RequestCount,
) -> Query<'a> {
    Query { account, service, region, sweep: Sweep { term_months, payment: PaymentOption::Monthly }, calls, run }
}

/// One sweep of `run` (its lists are shared by the run's sweeps).
async fn fetch(
    run: &RunScope,
    backend: &GcpBackend,
    account: &Account,
    service: &'static str,
    region: Option<&str>,
    term_months: i32,
    calls: &RequestCount,
) -> Result<Vec<cudly_core::domain::Recommendation>, String> {
    backend.fetch(query(run, account, service, region, term_months, calls)).await.map_err(|e| e.to_string())
}

fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

/// The 12-month compute sweep of project `p` in region `r`, whose list the
/// fake serves as `recs`.
async fn one_sweep(fake: &Arc<Fake>, p: &str, r: &str, recs: Vec<Value>) -> Vec<cudly_core::domain::Recommendation> {
    fake.set_list(compute_parent(p, r), recs);
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);
    fetch(&RunScope::default(), &backend, &account, "compute", Some(r), 12, &RequestCount::new()).await.unwrap()
}

// ---- the tests ------------------------------------------------------------

#[tokio::test]
async fn every_page_of_regions_and_recommendations_is_collected_and_mapped() {
    let fake = Arc::new(Fake::default());
    fake.page_size.store(3, Ordering::SeqCst);
    let regions = ["us-central1", "us-east1", "us-west1", "europe-west1", "europe-west4", "asia-east1", "asia-south1"];
    fake.set_regions("alpha-project", &regions);
    let p = "alpha-project";
    let r = "us-central1";
    fake.set_list(
        compute_parent(p, r),
        vec![
            compute_rec(p, r, "n2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 16, ("-300", -500_000_000)),
            compute_rec(p, r, "e2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_E2", 4, ("-20", 0)),
            compute_rec(p, r, "n2-3y", "THIRTY_SIX_MONTH", "GENERAL_PURPOSE_N2", 16, ("-450", -250_000_000)),
            compute_rec(p, r, "c3-3y", "THIRTY_SIX_MONTH", "COMPUTE_OPTIMIZED_C3", 8, ("-200", 0)),
            compute_rec(p, r, "n1-1y", "TWELVE_MONTH", "GENERAL_PURPOSE", 2, ("-10", 0)),
            compute_rec(p, r, "t2d-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_T2D", 32, ("-500", 0)),
            // The last page.
            compute_rec(p, r, "n2d-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2D", 6, ("-60", 0)),
        ],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    let listed = backend.regions(&account, &calls).await.unwrap().unwrap();
    let mut sorted = regions.map(str::to_string).to_vec();
    sorted.sort();
    assert_eq!(listed, sorted, "all three pages of regions, sorted");
    assert_eq!(calls.get(), (4, 0), "one token grant and three region pages");

    let calls = RequestCount::new();
    let run = RunScope::default();
    let one_year = fetch(&run, &backend, &account, "compute", Some(r), 12, &calls).await.unwrap();
    let three_years = fetch(&run, &backend, &account, "compute", Some(r), 36, &calls).await.unwrap();
    assert_eq!(calls.get(), (3, 0), "three pages, fetched once for both terms of the run");

    let types = |recs: &[cudly_core::domain::Recommendation]| {
        let mut t: Vec<String> = recs.iter().map(|r| r.resource_type.clone()).collect();
        t.sort();
        t
    };
    assert_eq!(
        types(&one_year),
        ["general_purpose", "general_purpose_e2", "general_purpose_n2", "general_purpose_n2d", "general_purpose_t2d"]
    );
    assert_eq!(types(&three_years), ["compute_optimized_c3", "general_purpose_n2"]);

    let n2 = one_year.iter().find(|r| r.resource_type == "general_purpose_n2").unwrap();
    assert_eq!(
        (n2.provider, n2.account_id.as_str(), n2.account_name.as_str()),
        (Provider::Gcp, p, "Project alpha-project")
    );
    assert_eq!((n2.service.as_str(), n2.region.as_str(), n2.platform.as_str()), ("compute", r, ""));
    assert_eq!(
        (n2.commitment_type, n2.term_months, n2.payment_option),
        (CommitmentType::CommittedUseDiscount, 12, PaymentOption::Monthly)
    );
    assert_eq!((n2.recommended_count, n2.currency), (16.0, Currency::USD), "counted in vCPUs");
    // -300.50 USD over 30 days is 300.50 × 730 h / 720 h in an average month.
    assert_eq!(n2.estimated_monthly_savings, amount("304.673611111"));
    // The nominal 1-year discount (37 %) splits it into on-demand and commitment cost.
    assert_eq!(
        (n2.on_demand_monthly_cost, n2.recurring_monthly_cost, n2.savings_percentage),
        (amount("823.442192192"), amount("518.768581081"), 37.0)
    );
    assert_eq!((n2.upfront_cost, n2.break_even_months), (Amount::ZERO, 0.0));
    let n2_3y = three_years.iter().find(|r| r.resource_type == "general_purpose_n2").unwrap();
    assert_eq!(
        (n2_3y.term_months, n2_3y.estimated_monthly_savings, n2_3y.savings_percentage),
        (36, amount("456.503472222"), 55.0)
    );
    assert!(one_year.iter().chain(&three_years).all(|r| r.has_finite_figures()));

    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 1, "one token for every call");
    for (path, params) in fake.requests_to("/v1/") {
        assert_eq!(params.get("filter").map(String::as_str), Some("stateInfo.state = ACTIVE"), "{path}");
    }
}

#[tokio::test]
async fn only_active_recommendations_are_kept() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-east1");
    // This fake ignores the filter: the backend must drop the others itself.
    let active = compute_rec(p, r, "active", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-80", 0));
    let others = ["CLAIMED", "SUCCEEDED", "FAILED", "DISMISSED"].map(|state| {
        with_state(compute_rec(p, r, state, "TWELVE_MONTH", &format!("GENERAL_PURPOSE_{state}"), 8, ("-90", 0)), state)
    });
    let recs = one_sweep(&fake, p, r, [vec![active], others.to_vec()].concat()).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].resource_type, "general_purpose_n2");
    let asked = fake.requests_to("/v1/");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1.get("filter").map(String::as_str), Some("stateInfo.state = ACTIVE"));
}

#[tokio::test]
async fn spend_based_recommendations_are_found_in_every_location_split_by_service_and_billed_to_the_account() {
    let fake = Arc::new(Fake::default());
    fake.set_regions("alpha-project", &["europe-west1", "us-central1"]);
    fake.set_list(
        billing_parent("global"),
        vec![spend_rec("sql-global", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "global", "-720")],
    );
    fake.set_list(
        billing_parent("us-central1"),
        vec![
            spend_rec("sql-1y", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "us-central1", "-73"),
            spend_rec("sql-3y", "Cloud SQL", "SPEND_BASED_THREE_YEAR", "us-central1", "-144"),
            spend_rec("spanner-1y", "Spanner", "SPEND_BASED_ONE_YEAR", "us-central1", "-500"),
            with_state(spend_rec("sql-old", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "us-central1", "-9"), "DISMISSED"),
        ],
    );
    fake.set_list(
        billing_parent("europe-west1"),
        vec![spend_rec("redis-1y", "Memorystore for Redis", "SPEND_BASED_ONE_YEAR", "europe-west1", "-36")],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let listed = vec!["europe-west1".to_string(), "us-central1".to_string()];
    let backend = backend(&base, quick_retries());
    assert_eq!(backend.service_regions("compute", &listed), Some(listed.clone()));
    let everywhere = Some(vec!["global".to_string(), "europe-west1".to_string(), "us-central1".to_string()]);
    assert_eq!(backend.service_regions("cloud_sql", &listed), everywhere);
    assert_eq!(backend.service_regions("memorystore", &listed), everywhere);

    // A whole run of the account through the engine: global and every
    // region, under the region cap and the rate limit, every request counted.
    let backends: Backends = vec![Arc::new(backend)];
    let accounts = [project("alpha-project", Some(&key), Some(BILLING))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    let gcp = &collected.providers[0];
    assert_eq!(gcp.failed_accounts, [], "{gcp:?}");
    let asked: HashSet<String> = fake.requests_to("/v1/billingAccounts/").into_iter().map(|(path, _)| path).collect();
    let expected: HashSet<String> =
        ["global", "europe-west1", "us-central1"].map(|l| format!("/v1/{}/recommendations", billing_parent(l))).into();
    assert_eq!(asked, expected, "the spend-based recommender in global and every region");
    // A grant, the region list, 2 compute lists, 3 billing lists (shared by
    // both services and terms within the run).
    assert_eq!(gcp.requests, 7, "every request counted");

    let spend: Vec<&cudly_core::domain::Recommendation> =
        collected.recommendations.iter().filter(|r| r.service != "compute").collect();
    let found: Vec<(&str, &str, i32)> =
        spend.iter().map(|r| (r.service.as_str(), r.region.as_str(), r.term_months)).collect();
    assert_eq!(
        found,
        [
            ("cloud_sql", "global", 12),
            ("cloud_sql", "us-central1", 12),
            ("cloud_sql", "us-central1", 36),
            ("memorystore", "europe-west1", 12)
        ],
        "in merge order: service, location, term"
    );
    let sql = spend.iter().find(|r| r.region == "us-central1" && r.term_months == 12).unwrap();
    assert_eq!(
        (sql.account_id.as_str(), sql.account_name.as_str()),
        (BILLING, "GCP billing account 01A2B3-C4D5E6-F7A8B9")
    );
    assert_eq!((sql.resource_type.as_str(), sql.recommended_count), ("cloud_sql_spend_commitment", 1.0));
    assert_eq!(
        (sql.estimated_monthly_savings, sql.savings_percentage, sql.on_demand_monthly_cost),
        (amount("74.013888889"), 25.0, amount("296.055555556"))
    );
    let sql_3y = spend.iter().find(|r| r.term_months == 36).unwrap();
    assert_eq!((sql_3y.savings_percentage, sql_3y.estimated_monthly_savings), (52.0, amount("146")));
    assert!(collected.sources.iter().all(|s| s == "alpha-project"), "collected through the project");

    // A project without a billing account has no spend-based recommendations.
    let backend = self::backend(&base, quick_retries());
    let calls = RequestCount::new();
    let unbilled = project("beta-project", Some(&key), None);
    let run = RunScope::default();
    assert!(fetch(&run, &backend, &unbilled, "cloud_sql", Some("global"), 12, &calls).await.unwrap().is_empty());
    assert_eq!(calls.get(), (0, 0));
}

#[tokio::test]
async fn amounts_are_recorded_in_the_billing_accounts_currency() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "europe-west4");
    let mut euros = compute_rec(p, r, "n2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-720", 0));
    euros["primaryImpact"]["costProjection"]["cost"]["currencyCode"] = json!("EUR");
    let recs = one_sweep(&fake, p, r, vec![euros]).await;
    assert_eq!((recs[0].currency.as_str(), recs[0].estimated_monthly_savings), ("EUR", amount("730")));
}

#[tokio::test]
async fn a_new_run_asks_again_and_reports_a_disabled_api_instead_of_old_data() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-central1");
    fake.set_regions(p, &[r]);
    fake.set_list(
        compute_parent(p, r),
        vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project(p, Some(&key), None)];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let first = collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    assert_eq!(first.outcome().0, cudly_core::domain::Outcome::Succeeded);
    assert_eq!(first.recommendations.len(), 1);

    // A second later the project's Recommender API is disabled.
    fake.disabled.lock().unwrap().insert(p.to_string());
    let second = collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    assert_eq!(second.outcome().0, cudly_core::domain::Outcome::Failed, "nothing was fetched in this run");
    assert!(second.recommendations.is_empty(), "the first run's list is not reported again");
    let refused = &second.providers[0].failed_accounts[0];
    assert_eq!(refused.state, Some(AccountState::Failed));
    assert!(
        refused.error.contains("SERVICE_DISABLED") || refused.error.contains("has not been used"),
        "{}",
        refused.error
    );
    assert!(second.complete_accounts.is_empty(), "the account keeps its rows");
    assert_eq!(fake.requests_to(&format!("/v1/projects/{p}/")).len(), 2, "each run asked the Recommender itself");
}

#[tokio::test]
async fn throttling_is_retried_after_the_retry_after_and_every_attempt_counts() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-west1");
    fake.set_list(
        compute_parent(p, r),
        vec![compute_rec(p, r, "a", "TWELVE_MONTH", "GENERAL_PURPOSE_E2", 4, ("-40", 0))],
    );
    fake.throttled.lock().unwrap().insert(compute_parent(p, r), 2);
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    let started = Instant::now();
    let recs = fetch(&RunScope::default(), &backend, &account, "compute", Some(r), 12, &calls).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(calls.get(), (4, 2), "a token grant, two 429s and the answer");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After: 1 was honoured twice: {:?}", started.elapsed());
    assert_eq!(fake.requests_to("/v1/").len(), 3);
}

#[tokio::test]
async fn a_refused_project_fails_alone_with_what_to_enable_and_grant() {
    let fake = Arc::new(Fake::default());
    for p in ["alpha-project", "beta-project"] {
        fake.set_regions(p, &["europe-west1", "us-central1"]);
        for r in ["europe-west1", "us-central1"] {
            fake.set_list(
                compute_parent(p, r),
                vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
            );
        }
    }
    fake.forbidden.lock().unwrap().insert("beta-project".into());
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project("alpha-project", Some(&key), None), project("beta-project", Some(&key), None)];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let collected = collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    let gcp = &collected.providers[0];
    assert_eq!((gcp.state, gcp.accounts_succeeded, gcp.accounts_failed), (ProviderState::PartiallySucceeded, 1, 1));
    assert_eq!(collected.complete_accounts, [(Provider::Gcp, "alpha-project".to_string())]);
    assert_eq!(collected.recommendations.len(), 2, "alpha's two regions");
    assert!(collected.recommendations.iter().all(|r| r.account_id == "alpha-project"));
    let beta = &gcp.failed_accounts[0];
    assert_eq!((beta.account_id.as_str(), beta.state), ("beta-project", Some(AccountState::Failed)));
    // compute in two regions × two terms; without a billing account the
    // spend-based services (global and both regions) answer nothing.
    assert_eq!((beta.units_failed, beta.units_total), (16, 16), "the refusal ended the sweep");
    assert!(!beta.failures.is_empty() && beta.failures.len() <= 2, "only the calls in flight were made");
    for failure in &beta.failures {
        assert_eq!((failure.account_id.as_str(), failure.service.as_str()), ("beta-project", "compute"));
        for needle in ["project beta-project", "HTTP 403", "Recommender API", "roles/recommender.computeViewer"] {
            assert!(failure.error.contains(needle), "{needle:?} missing from {:?}", failure.error);
        }
    }
    assert!(gcp.error.contains("1 of 2 accounts failed"), "{}", gcp.error);
    let asked = fake.requests_to("/v1/projects/beta-project/").len();
    assert!((1..=2).contains(&asked), "{asked}: a refusal is never retried, and it stops the account's other calls");
}

#[tokio::test]
async fn a_malformed_answer_fails_only_its_service() {
    let fake = Arc::new(Fake::default());
    let p = "alpha-project";
    fake.set_regions(p, &["asia-east1", "europe-west1", "us-central1"]);
    fake.set_list(
        compute_parent(p, "us-central1"),
        vec![compute_rec(p, "us-central1", "ok", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
    );
    let mut bad_units = compute_rec(p, "europe-west1", "bad", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0));
    bad_units["primaryImpact"]["costProjection"]["cost"]["units"] = json!("lots");
    fake.set_list(compute_parent(p, "europe-west1"), vec![bad_units]);
    fake.malformed.lock().unwrap().insert(compute_parent(p, "asia-east1"), "<html>oops</html>".into());
    fake.malformed.lock().unwrap().insert(billing_parent("global"), r#"{"recommendations": {"not": "a list"}}"#.into());
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backends: Backends = vec![Arc::new(backend(&base, quick_retries()))];
    let accounts = [project(p, Some(&key), Some(BILLING))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());

    let collected = collect(&backends, &accounts, &EngineConfig::default(), &tx).await;
    assert_eq!(collected.recommendations.len(), 1, "us-central1 still collected");
    assert_eq!(collected.recommendations[0].region, "us-central1");
    let account = &collected.providers[0].failed_accounts[0];
    assert_eq!(account.state, Some(AccountState::PartiallySucceeded));
    // compute: 3 regions × 2 terms; each spend-based service: global and 3
    // regions × 2 terms. Failed: compute in asia-east1 and europe-west1, and
    // both spend-based services in global.
    assert_eq!((account.units_failed, account.units_total), (8, 22));
    let listed: Vec<(&str, &str)> = account.failures.iter().map(|f| (f.service.as_str(), f.region.as_str())).collect();
    assert_eq!(
        listed,
        [
            ("compute", "asia-east1"),
            ("compute", "asia-east1"),
            ("compute", "europe-west1"),
            ("compute", "europe-west1"),
            ("cloud_sql", "global")
        ],
        "the first five, in merge order"
    );
    let error_of = |service: &str, region: &str| {
        account.failures.iter().find(|f| f.service == service && f.region == region).unwrap().error.clone()
    };
    assert!(
        error_of("compute", "europe-west1").contains("recommendation projects/alpha-project"),
        "names the recommendation"
    );
    assert!(error_of("compute", "europe-west1").contains("\"lots\" is not an integer"));
    assert!(error_of("compute", "asia-east1").contains("malformed answer"));
    assert!(error_of("cloud_sql", "global").contains("malformed answer"));
}

#[tokio::test]
async fn many_concurrent_calls_share_one_token() {
    let fake = Arc::new(Fake::default());
    let p = "alpha-project";
    let regions = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"];
    for r in regions {
        fake.set_list(
            compute_parent(p, r),
            vec![compute_rec(p, r, "x", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-100", 0))],
        );
    }
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    // Each fetch in a run of its own: no list is shared, the token is.
    let runs: Vec<RunScope> = (0..regions.len() * 2).map(|_| RunScope::default()).collect();
    let all = futures_util::future::join_all(
        regions
            .iter()
            .flat_map(|r| [12, 36].map(move |term| (r, term)))
            .zip(&runs)
            .map(|((r, term), run)| fetch(run, &backend, &account, "compute", Some(r), term, &calls)),
    )
    .await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 1, "no stampede on the token endpoint, across runs");
    assert_eq!(calls.get(), (17, 0), "one grant and, in sixteen runs, one list each");
}

#[tokio::test]
async fn without_a_key_the_metadata_server_gives_the_token() {
    let fake = Arc::new(Fake::default());
    fake.set_regions("gamma-project", &["us-central1"]);
    let base = spawn(fake.clone()).await;
    let backend = backend(&base, quick_retries());
    let ambient = Account { credentials: None, ..project("gamma-project", None, None) };

    let calls = RequestCount::new();
    assert_eq!(backend.regions(&ambient, &calls).await.unwrap(), Some(vec!["us-central1".to_string()]));
    let no_key = project("gamma-project", None, None);
    let run = RunScope::default();
    assert!(fetch(&run, &backend, &no_key, "compute", Some("us-central1"), 12, &calls).await.unwrap().is_empty());
    assert_eq!(fake.metadata_grants.load(Ordering::SeqCst), 1);
    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unusable_key_is_named_and_its_content_never_shown() {
    let fake = Arc::new(Fake::default());
    let base = spawn(fake.clone()).await;
    let user_key = KeyFile::new(&base, "authorized_user");
    let backend = backend(&base, quick_retries());

    let calls = RequestCount::new();
    let err = backend.regions(&project("delta-project", Some(&user_key), None), &calls).await.unwrap_err().to_string();
    assert!(err.contains("GCP token for project delta-project"), "{err}");
    assert!(err.contains("only service_account keys are supported"), "{err}");
    assert!(err.contains(&user_key.0.display().to_string()), "names the key's reference: {err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert_eq!(calls.get(), (0, 0), "nothing sent");

    let missing = KeyFile(std::env::temp_dir().join("cudly-gcp-test-only-missing.json"));
    let err = backend.regions(&project("delta-project", Some(&missing), None), &calls).await.unwrap_err().to_string();
    assert!(err.contains("reading") && err.contains("not found"), "{err}");
}
