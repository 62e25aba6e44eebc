//! The fake: Google's OAuth2 token endpoint (checking each JWT-bearer
//! grant's signature, issuer, audience and scope), the metadata server,
//! the Recommender's `recommendations.list` and Compute's `regions.list`,
//! paged by `pageToken`, with refusals, a disabled API, throttling and
//! malformed bodies on demand.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{BILLING, CLIENT_EMAIL};
use crate::support::form;

const PUBLIC_KEY: &str = include_str!("../fixtures/gcp-sa-test-only.pub.pem");
const ACCESS_TOKEN: &str = "ya29.fake-access-token";
const USAGE: &str = "google.compute.commitment.UsageCommitmentRecommender";
const SPEND: &str = "google.cloudbilling.commitment.SpendBasedCommitmentRecommender";

/// What the fake serves and what it saw.
#[derive(Default)]
pub(super) struct Fake {
    /// Its own base URL (the token endpoint's audience).
    pub(super) base: Mutex<String>,
    /// Recommendations by parent (`projects/p/locations/r/recommenders/X`).
    pub(super) lists: Mutex<HashMap<String, Vec<Value>>>,
    /// Region names by project.
    pub(super) regions: Mutex<HashMap<String, Vec<String>>>,
    /// Items per page (0: everything on one page).
    pub(super) page_size: AtomicUsize,
    /// Projects whose Recommender calls are refused (403).
    pub(super) forbidden: Mutex<HashSet<String>>,
    /// Projects whose Recommender API is disabled (403 SERVICE_DISABLED).
    pub(super) disabled: Mutex<HashSet<String>>,
    /// 429s still to answer, by parent.
    pub(super) throttled: Mutex<HashMap<String, u32>>,
    /// A raw body to answer instead of the list, by parent.
    pub(super) malformed: Mutex<HashMap<String, String>>,
    /// Grants at the token endpoint and the metadata server.
    pub(super) key_grants: AtomicU32,
    pub(super) metadata_grants: AtomicU32,
    /// Every API request: (path, query parameters).
    pub(super) seen: Mutex<Vec<(String, HashMap<String, String>)>>,
}

impl Fake {
    pub(super) fn set_list(&self, parent: String, recs: Vec<Value>) {
        self.lists.lock().unwrap().insert(parent, recs);
    }

    pub(super) fn set_regions(&self, project: &str, regions: &[&str]) {
        self.regions.lock().unwrap().insert(project.into(), regions.iter().map(|r| r.to_string()).collect());
    }

    pub(super) fn requests_to(&self, prefix: &str) -> Vec<(String, HashMap<String, String>)> {
        self.seen.lock().unwrap().iter().filter(|(path, _)| path.starts_with(prefix)).cloned().collect()
    }
}

pub(super) fn compute_parent(project: &str, region: &str) -> String {
    format!("projects/{project}/locations/{region}/recommenders/{USAGE}")
}

pub(super) fn billing_parent(location: &str) -> String {
    format!("billingAccounts/{BILLING}/locations/{location}/recommenders/{SPEND}")
}

pub(super) async fn spawn(fake: Arc<Fake>) -> String {
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
