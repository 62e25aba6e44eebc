//! Who may call what: every RPC against every kind of caller, over native
//! gRPC and over gRPC-web; watch streams that end when their token does.
//! (Where the verification keys come from: `keys.rs`.)

use std::collections::HashSet;
use std::time::Duration;

use cudly_api::auth::KeySource;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::recommendations::v1::notifications_service_client::NotificationsServiceClient;
use cudly_testkit::jwt::{self, KeyDir, SECRET, hs256, now, token};
use jsonwebtoken::{Algorithm, EncodingKey};
use prost::Message as _;
use sqlx::PgPool;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::grpc_web::http1;
use cudly_testkit::spawn::{Options, TestApp, spawn_app};

/// Every RPC of api-service.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rpc {
    Refresh,
    GetFreshness,
    Watch,
    List,
    Collections,
    CreateAccount,
    GetAccount,
    ListAccounts,
    UpdateAccount,
    DeleteAccount,
    CreateChannel,
    GetChannel,
    ListChannels,
    UpdateChannel,
    SendTestNotice,
    ListDeliveries,
    DeleteChannel,
}

/// The permission an RPC needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    View,
    Accounts,
    Notifications,
}

/// What the authorization layer decided about one call. A call it let in
/// may still fail for its own reasons (an account that does not exist):
/// that is `Allowed` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Unauthenticated,
    PermissionDenied,
}

impl Verdict {
    fn of(code: Code) -> Self {
        match code {
            Code::Unauthenticated => Verdict::Unauthenticated,
            Code::PermissionDenied => Verdict::PermissionDenied,
            _ => Verdict::Allowed,
        }
    }
}

/// The account the admin calls create, read, update and delete.
const ACCOUNT_ID: &str = "210987654321";

/// The channel the notifications admin calls create, read, update, test
/// and delete.
const CHANNEL: &str = "finops-hook";

fn channel() -> pb::Channel {
    pb::Channel {
        name: CHANNEL.into(),
        kind: Some(pb::channel::Kind::Webhook(pb::WebhookChannel {
            url: "http://127.0.0.1:9/hook".into(),
            signing_secret_ref: "env:CUDLY_CLOUD_SECRET_WEBHOOK".into(),
        })),
        ..Default::default()
    }
}

fn account() -> pb::Account {
    pb::Account {
        provider: pb::Provider::Aws as i32,
        external_id: ACCOUNT_ID.into(),
        display_name: "Payments prod".into(),
        enabled: Some(true),
        ..Default::default()
    }
}

impl Rpc {
    const ALL: [Rpc; 17] = [
        Rpc::GetFreshness,
        Rpc::Watch,
        Rpc::List,
        Rpc::Collections,
        Rpc::CreateAccount,
        Rpc::GetAccount,
        Rpc::ListAccounts,
        Rpc::UpdateAccount,
        Rpc::DeleteAccount,
        Rpc::CreateChannel,
        Rpc::GetChannel,
        Rpc::ListChannels,
        Rpc::UpdateChannel,
        Rpc::SendTestNotice,
        Rpc::ListDeliveries,
        Rpc::DeleteChannel,
        Rpc::Refresh,
    ];

    fn service(self) -> &'static str {
        match self.needs() {
            Needs::View => "RecommendationsService",
            Needs::Accounts => "AccountsService",
            Needs::Notifications => "NotificationsService",
        }
    }

    fn needs(self) -> Needs {
        match self {
            Rpc::CreateAccount | Rpc::GetAccount | Rpc::ListAccounts | Rpc::UpdateAccount | Rpc::DeleteAccount => {
                Needs::Accounts
            }
            Rpc::CreateChannel
            | Rpc::GetChannel
            | Rpc::ListChannels
            | Rpc::UpdateChannel
            | Rpc::SendTestNotice
            | Rpc::ListDeliveries
            | Rpc::DeleteChannel => Needs::Notifications,
            Rpc::Refresh | Rpc::GetFreshness | Rpc::Watch | Rpc::List | Rpc::Collections => Needs::View,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Rpc::CreateAccount => "CreateAccount",
            Rpc::GetAccount => "GetAccount",
            Rpc::ListAccounts => "ListAccounts",
            Rpc::UpdateAccount => "UpdateAccount",
            Rpc::DeleteAccount => "DeleteAccount",
            Rpc::CreateChannel => "CreateChannel",
            Rpc::GetChannel => "GetChannel",
            Rpc::ListChannels => "ListChannels",
            Rpc::UpdateChannel => "UpdateChannel",
            Rpc::SendTestNotice => "SendTestNotice",
            Rpc::ListDeliveries => "ListDeliveries",
            Rpc::DeleteChannel => "DeleteChannel",
            Rpc::Refresh => "RefreshRecommendations",
            Rpc::GetFreshness => "GetFreshness",
            Rpc::Watch => "WatchFreshness",
            Rpc::List => "ListRecommendations",
            Rpc::Collections => "ListCollections",
        }
    }

    /// The request message, encoded.
    fn body(self) -> Vec<u8> {
        let key = || (pb::Provider::Aws as i32, ACCOUNT_ID.to_string());
        match self {
            Rpc::Refresh => pb::RefreshRecommendationsRequest::default().encode_to_vec(),
            Rpc::GetFreshness => pb::GetFreshnessRequest::default().encode_to_vec(),
            Rpc::Watch => pb::WatchFreshnessRequest::default().encode_to_vec(),
            Rpc::List => pb::ListRecommendationsRequest::default().encode_to_vec(),
            Rpc::Collections => pb::ListCollectionsRequest::default().encode_to_vec(),
            Rpc::CreateAccount => pb::CreateAccountRequest { account: Some(account()) }.encode_to_vec(),
            Rpc::GetAccount => {
                let (provider, external_id) = key();
                pb::GetAccountRequest { provider, external_id }.encode_to_vec()
            }
            Rpc::ListAccounts => pb::ListAccountsRequest::default().encode_to_vec(),
            Rpc::UpdateAccount => {
                let (provider, external_id) = key();
                pb::UpdateAccountRequest { provider, external_id, enabled: Some(false), ..Default::default() }
                    .encode_to_vec()
            }
            Rpc::DeleteAccount => {
                let (provider, external_id) = key();
                pb::DeleteAccountRequest { provider, external_id }.encode_to_vec()
            }
            Rpc::CreateChannel => pb::CreateChannelRequest { channel: Some(channel()) }.encode_to_vec(),
            Rpc::GetChannel => pb::GetChannelRequest { name: CHANNEL.into() }.encode_to_vec(),
            Rpc::ListChannels => pb::ListChannelsRequest {}.encode_to_vec(),
            Rpc::UpdateChannel => {
                pb::UpdateChannelRequest { name: CHANNEL.into(), enabled: Some(false), kind: None }.encode_to_vec()
            }
            Rpc::SendTestNotice => pb::SendTestNoticeRequest { name: CHANNEL.into() }.encode_to_vec(),
            Rpc::ListDeliveries => pb::ListDeliveriesRequest::default().encode_to_vec(),
            Rpc::DeleteChannel => pb::DeleteChannelRequest { name: CHANNEL.into() }.encode_to_vec(),
        }
    }
}

pub(crate) fn with_token<T>(message: T, bearer: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = bearer {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The code one call gets over native gRPC (a stream: its first message).
pub(crate) async fn call_grpc(app: &TestApp, rpc: Rpc, bearer: Option<&str>) -> Code {
    let mut client = app.client.clone();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap();
    let channel = channel.connect().await.unwrap();
    let mut accounts = AccountsServiceClient::new(channel.clone());
    let mut notifications = NotificationsServiceClient::new(channel);
    let result = match rpc {
        Rpc::Refresh => client
            .refresh_recommendations(with_token(pb::RefreshRecommendationsRequest::default(), bearer))
            .await
            .map(drop),
        Rpc::GetFreshness => client.get_freshness(with_token(pb::GetFreshnessRequest {}, bearer)).await.map(drop),
        Rpc::Watch => match client.watch_freshness(with_token(pb::WatchFreshnessRequest::default(), bearer)).await {
            Ok(stream) => stream.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
        Rpc::List => {
            client.list_recommendations(with_token(pb::ListRecommendationsRequest::default(), bearer)).await.map(drop)
        }
        Rpc::Collections => {
            client.list_collections(with_token(pb::ListCollectionsRequest::default(), bearer)).await.map(drop)
        }
        Rpc::CreateAccount => {
            let req = pb::CreateAccountRequest::decode(rpc.body().as_slice()).unwrap();
            accounts.create_account(with_token(req, bearer)).await.map(drop)
        }
        Rpc::GetAccount => {
            let req = pb::GetAccountRequest::decode(rpc.body().as_slice()).unwrap();
            accounts.get_account(with_token(req, bearer)).await.map(drop)
        }
        Rpc::ListAccounts => {
            accounts.list_accounts(with_token(pb::ListAccountsRequest::default(), bearer)).await.map(drop)
        }
        Rpc::UpdateAccount => {
            let req = pb::UpdateAccountRequest::decode(rpc.body().as_slice()).unwrap();
            accounts.update_account(with_token(req, bearer)).await.map(drop)
        }
        Rpc::DeleteAccount => {
            let req = pb::DeleteAccountRequest::decode(rpc.body().as_slice()).unwrap();
            accounts.delete_account(with_token(req, bearer)).await.map(drop)
        }
        Rpc::CreateChannel => {
            let req = pb::CreateChannelRequest::decode(rpc.body().as_slice()).unwrap();
            notifications.create_channel(with_token(req, bearer)).await.map(drop)
        }
        Rpc::GetChannel => {
            let req = pb::GetChannelRequest::decode(rpc.body().as_slice()).unwrap();
            notifications.get_channel(with_token(req, bearer)).await.map(drop)
        }
        Rpc::ListChannels => {
            notifications.list_channels(with_token(pb::ListChannelsRequest {}, bearer)).await.map(drop)
        }
        Rpc::UpdateChannel => {
            let req = pb::UpdateChannelRequest::decode(rpc.body().as_slice()).unwrap();
            notifications.update_channel(with_token(req, bearer)).await.map(drop)
        }
        Rpc::SendTestNotice => {
            let req = pb::SendTestNoticeRequest::decode(rpc.body().as_slice()).unwrap();
            notifications.send_test_notice(with_token(req, bearer)).await.map(drop)
        }
        Rpc::ListDeliveries => {
            notifications.list_deliveries(with_token(pb::ListDeliveriesRequest::default(), bearer)).await.map(drop)
        }
        Rpc::DeleteChannel => {
            let req = pb::DeleteChannelRequest::decode(rpc.body().as_slice()).unwrap();
            notifications.delete_channel(with_token(req, bearer)).await.map(drop)
        }
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The code one call gets over gRPC-web (HTTP/1.1, as a browser sends it).
/// A WatchFreshness call counts as let in only once its first message (a
/// `Freshness` snapshot) has arrived.
pub(crate) async fn call_grpc_web(app: &TestApp, rpc: Rpc, bearer: Option<&str>) -> Code {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = rpc.body();
    let authorization = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let mut request = format!(
        "POST /cudly.recommendations.v1.{}/{} HTTP/1.1\r\nHost: api\r\n\
         Origin: https://console.example\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         {authorization}Content-Length: {}\r\nConnection: close\r\n\r\n",
        rpc.service(),
        rpc.method(),
        body.len() + 5
    )
    .into_bytes();
    request.push(0);
    request.extend_from_slice(&(body.len() as u32).to_be_bytes());
    request.extend_from_slice(&body);
    if !matches!(rpc, Rpc::Watch) {
        let response = http1(app.addr, &request).await;
        return grpc_web_status(&response).unwrap_or_else(|| panic!("{}: no grpc-status in {response}", rpc.method()));
    }
    // A stream stays open: read until its first message or its status.
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(&request).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            if n == 0 {
                return grpc_web_status(&String::from_utf8_lossy(&received)).expect("a status before the end");
            }
            received.extend_from_slice(&chunk[..n]);
            if let Some(message) = first_grpc_web_message(&received) {
                pb::Freshness::decode(message.as_slice()).expect("the first message is a Freshness snapshot");
                return Code::Ok;
            }
            if let Some(code) = grpc_web_status(&String::from_utf8_lossy(&received)) {
                return code;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the stream answered within 10 s")
}

/// The `grpc-status` of a gRPC-web response (in its headers or its trailer
/// frame), once it has arrived.
fn grpc_web_status(response: &str) -> Option<Code> {
    let lower = response.to_ascii_lowercase();
    let rest = lower.split("grpc-status:").nth(1)?;
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Code::from_i32)
}

/// The first data frame of a chunked gRPC-web response, once whole.
fn first_grpc_web_message(response: &[u8]) -> Option<Vec<u8>> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    // De-chunk what has arrived of the body.
    let mut body = Vec::new();
    let mut at = head_end;
    while let Some(line_end) = response[at..].windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&response[at..at + line_end]).ok()?.trim(), 16).ok()?;
        let start = at + line_end + 2;
        if size == 0 || response.len() < start + size {
            break;
        }
        body.extend_from_slice(&response[start..start + size]);
        at = start + size + 2;
        if at > response.len() {
            break;
        }
    }
    let (flag, len) = (*body.first()?, u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize);
    (flag == 0 && body.len() >= 5 + len).then(|| body[5..5 + len].to_vec())
}

#[sqlx::test(migrations = "../migrations")]
async fn every_rpc_answers_each_kind_of_caller_as_its_permissions_say(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("hs256", format!("{SECRET}\n"));
    let opts = Options { auth: jwt::settings(KeySource::Hs256SecretFile(secret)), ..Options::default() };
    let app = spawn_app(pool, opts).await;

    let forged = token(
        &EncodingKey::from_secret(b"another-secret-that-is-long-enough-too!!"),
        Algorithm::HS256,
        serde_json::json!({}),
    );
    // (who, token, verdict on the recommendation RPCs, on AccountsService,
    // on NotificationsService)
    use Verdict::{Allowed, PermissionDenied, Unauthenticated};
    let unauthenticated = (Unauthenticated, Unauthenticated, Unauthenticated);
    type Verdicts = (Verdict, Verdict, Verdict);
    let callers: Vec<(&str, Option<String>, Verdicts)> = vec![
        ("no token", None, unauthenticated),
        ("expired", Some(hs256(serde_json::json!({"exp": now() - 60}))), unauthenticated),
        ("wrong signature", Some(forged), unauthenticated),
        ("wrong audience", Some(hs256(serde_json::json!({"aud": "someone-else"}))), unauthenticated),
        ("wrong issuer", Some(hs256(serde_json::json!({"iss": "https://evil.test/"}))), unauthenticated),
        ("not yet valid", Some(hs256(serde_json::json!({"nbf": now() + 600}))), unauthenticated),
        ("garbage", Some("not.a.jwt".to_string()), unauthenticated),
        (
            "admin",
            Some(hs256(serde_json::json!({"permissions": ["accounts:admin"]}))),
            (PermissionDenied, Allowed, PermissionDenied),
        ),
        ("viewer", Some(hs256(serde_json::json!({}))), (Allowed, PermissionDenied, PermissionDenied)),
        (
            "viewer and admin, space-separated",
            Some(hs256(serde_json::json!({"permissions": "accounts:admin recommendations:view"}))),
            (Allowed, Allowed, PermissionDenied),
        ),
        (
            "notifications admin",
            Some(hs256(serde_json::json!({"permissions": ["notifications:admin"]}))),
            (PermissionDenied, PermissionDenied, Allowed),
        ),
    ];
    let mut mismatches = Vec::new();
    let mut admin_calls = Vec::new();
    for (who, bearer, (view_expected, accounts_expected, notifications_expected)) in &callers {
        for rpc in Rpc::ALL {
            let expected = match rpc.needs() {
                Needs::View => view_expected,
                Needs::Accounts => accounts_expected,
                Needs::Notifications => notifications_expected,
            };
            for (transport, code) in [
                ("grpc", call_grpc(&app, rpc, bearer.as_deref()).await),
                ("grpc-web", call_grpc_web(&app, rpc, bearer.as_deref()).await),
            ] {
                let got = Verdict::of(code);
                if rpc.needs() != Needs::View && got == Allowed {
                    admin_calls.push((rpc.method(), code));
                }
                if got != *expected {
                    mismatches
                        .push(format!("{who} × {} over {transport}: {got:?}, expected {expected:?}", rpc.method()));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The admin calls let in did their work (a repeated create finds the
    // account, a get or update after a delete does not).
    let codes: HashSet<(&str, Code)> = admin_calls.into_iter().collect();
    for expected in [
        ("CreateAccount", Code::Ok),
        ("DeleteAccount", Code::Ok),
        ("ListAccounts", Code::Ok),
        ("CreateChannel", Code::Ok),
        ("CreateChannel", Code::AlreadyExists),
        ("SendTestNotice", Code::Ok),
        ("ListDeliveries", Code::Ok),
        ("DeleteChannel", Code::Ok),
        ("DeleteChannel", Code::NotFound),
    ] {
        assert!(codes.contains(&expected), "{expected:?} never happened: {codes:?}");
    }

    // The messages say what to do, and nothing about the signature.
    let status = app.client.clone().get_freshness(with_token(pb::GetFreshnessRequest {}, None)).await.unwrap_err();
    assert!(status.message().contains("Bearer"), "{}", status.message());
    let admin = hs256(serde_json::json!({"permissions": ["accounts:admin"]}));
    let status =
        app.client.clone().get_freshness(with_token(pb::GetFreshnessRequest {}, Some(&admin))).await.unwrap_err();
    assert_eq!(status.message(), "missing permission recommendations:view");
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let status = NotificationsServiceClient::new(channel)
        .list_channels(with_token(pb::ListChannelsRequest {}, Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.message(), "missing permission notifications:admin");
    let forged = format!("{}x", hs256(serde_json::json!({})));
    let status =
        app.client.clone().get_freshness(with_token(pb::GetFreshnessRequest {}, Some(&forged))).await.unwrap_err();
    assert_eq!(status.message(), "invalid token");

    // Health stays open; reflection is open while it is on.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert!(health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_watch_stream_ends_unauthenticated_when_its_token_expires(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("hs256", SECRET);
    let opts = Options { auth: jwt::settings(KeySource::Hs256SecretFile(secret)), ..Options::default() };
    let app = spawn_app(pool, opts).await;
    let short = hs256(serde_json::json!({"exp": now() + 2}));
    let mut stream = app
        .client
        .clone()
        .watch_freshness(with_token(pb::WatchFreshnessRequest::default(), Some(&short)))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some(), "the snapshot comes first");
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("the stream ended");
    let status = ended.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{}", status.message());
}
