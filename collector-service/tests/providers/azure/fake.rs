//! A fake Entra ID and ARM on one port: tokens per client secret,
//! reservation recommendations page by page, Advisor's list, and 429s,
//! 403s and revoked tokens on demand.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answers::{sample_advisor, sample_pages};
use super::{CLIENT_A, TENANT};
use crate::support::{decode, form};

/// A fake Entra ID and ARM on one port.
pub(super) struct Fake {
    pub(super) base: String,
    /// The secret each client id is registered with.
    pub(super) secrets: HashMap<&'static str, String>,
    /// Client ids of token requests, in order.
    pub(super) token_requests: Mutex<Vec<String>>,
    /// Decoded path and query of ARM requests, in order.
    pub(super) arm_requests: Mutex<Vec<String>>,
    /// ARM answers 429 (Retry-After: 1) this many more times.
    pub(super) throttle: AtomicUsize,
    /// Subscriptions the app may not read.
    pub(super) forbidden: HashSet<&'static str>,
    /// ARM rejects the first token issued (revoked).
    pub(super) revoke_first_token: bool,
    /// Reservation recommendations by resource type, page by page.
    pub(super) pages: HashMap<&'static str, Vec<Vec<Value>>>,
    /// A body answered instead, by resource type.
    pub(super) malformed: HashMap<&'static str, Value>,
    pub(super) advisor: Vec<Value>,
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

    pub(super) fn token_requests_of(&self, client: &str) -> usize {
        self.token_requests.lock().unwrap().iter().filter(|c| *c == client).count()
    }

    pub(super) fn arm_requests(&self) -> Vec<String> {
        self.arm_requests.lock().unwrap().clone()
    }
}

pub(super) async fn start(configure: impl FnOnce(&mut Fake)) -> Arc<Fake> {
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
