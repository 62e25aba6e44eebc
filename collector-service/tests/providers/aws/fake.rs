//! A fake Cost Explorer and STS on one port: answers by (operation,
//! service or plan type, page token), refusals and throttling on demand,
//! and a record of every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::form;

/// What the fake answers, and what it saw.
#[derive(Default)]
pub(super) struct Fake {
    /// Per (operation, service or plan type, page token): the answer.
    pub(super) pages: HashMap<(String, String, String), Value>,
    /// Bodies that are not JSON objects the SDK can read.
    pub(super) raw: HashMap<(String, String), String>,
    /// Roles that may not be assumed.
    pub(super) denied_roles: Vec<String>,
    /// Access keys (one per assumed role's account) Cost Explorer refuses
    /// with AccessDeniedException.
    pub(super) denied_keys: Vec<String>,
    /// The access key of every Cost Explorer request, in order.
    pub(super) keys_seen: Vec<String>,
    /// Throttle this many calls before answering.
    pub(super) throttle: u32,
    /// Services or plan types answered with `DataUnavailableException`
    /// (too little usage for recommendations).
    pub(super) no_data: Vec<String>,
    /// Every Cost Explorer request: (when, operation, body).
    pub(super) seen: Vec<(Instant, String, Value)>,
    pub(super) assumed: Vec<(String, String)>,
}

pub(super) type Shared = Arc<Mutex<Fake>>;

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

pub(super) async fn start(fake: Fake) -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(fake));
    let app = axum::Router::new().route("/", axum::routing::post(handle)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

pub(super) const RI: &str = "GetReservationPurchaseRecommendation";
pub(super) const SP: &str = "GetSavingsPlansPurchaseRecommendation";
pub(super) const EC2: &str = "Amazon Elastic Compute Cloud - Compute";

pub(super) fn key(op: &str, subject: &str, token: &str) -> (String, String, String) {
    (op.to_string(), subject.to_string(), token.to_string())
}
