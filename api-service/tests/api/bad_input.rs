//! Bad input gets a clear answer naming what is wrong, and the service keeps
//! serving: malformed, oversized and out-of-range requests, tampered and
//! foreign page tokens, and more watchers than a replica takes.

use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic::Code;

use crate::grpc_web::http1;
use cudly_testkit::spawn::{Options, TestApp, spawn_app};

/// Asserts `result` failed with `code` and a message starting with `field`.
fn expect<T: std::fmt::Debug>(what: &str, result: Result<T, tonic::Status>, code: Code, field: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(status.message().starts_with(field), "{what}: {:?} should start with {field:?}", status.message());
}

async fn still_serving(app: &TestApp) {
    app.list(pb::ListRecommendationsRequest::default()).await.expect("the service still answers");
}

#[sqlx::test(migrations = "../migrations")]
async fn every_bad_field_gets_invalid_argument_naming_it(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let run = app.refresh().await.unwrap().collection.unwrap();
    app.wait_for_end(&run.id).await;
    let page = app.list(pb::ListRecommendationsRequest { page_size: 2, ..Default::default() }).await.unwrap();
    let token = page.next_page_token;
    assert!(!token.is_empty());
    let collections_token = {
        // Two runs, one per page, to get a collections token.
        let again = app.refresh().await.unwrap().collection.unwrap();
        app.wait_for_end(&again.id).await;
        let req = pb::ListCollectionsRequest { page_size: 1, page_token: String::new() };
        app.client.clone().list_collections(req).await.unwrap().into_inner().next_page_token
    };
    assert!(!collections_token.is_empty());
    let mut tampered = token.clone().into_bytes();
    tampered[token.len() / 2] = if tampered[token.len() / 2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let cases: Vec<(&str, pb::ListRecommendationsRequest, &str)> = vec![
        ("unknown provider", pb::ListRecommendationsRequest { provider: 99, ..Default::default() }, "provider"),
        ("negative page size", pb::ListRecommendationsRequest { page_size: -5, ..Default::default() }, "page_size"),
        (
            "percentage over 100",
            pb::ListRecommendationsRequest { min_savings_percentage: 150.0, ..Default::default() },
            "min_savings_percentage",
        ),
        (
            "negative savings",
            pb::ListRecommendationsRequest { min_monthly_savings: Some(money("USD", -1, 0)), ..Default::default() },
            "min_monthly_savings",
        ),
        (
            "savings without a currency",
            pb::ListRecommendationsRequest { min_monthly_savings: Some(money("", 500, 0)), ..Default::default() },
            "min_monthly_savings",
        ),
        (
            "savings with nanos of another sign",
            pb::ListRecommendationsRequest { min_monthly_savings: Some(money("USD", 5, -1)), ..Default::default() },
            "min_monthly_savings",
        ),
        (
            "savings in no currency",
            pb::ListRecommendationsRequest { min_monthly_savings: Some(money("US$", 5, 0)), ..Default::default() },
            "min_monthly_savings.currency_code",
        ),
        (
            "control character",
            pb::ListRecommendationsRequest { service: "ec2\u{7}".into(), ..Default::default() },
            "service",
        ),
        ("long region", pb::ListRecommendationsRequest { region: "r".repeat(1000), ..Default::default() }, "region"),
        (
            "too many accounts",
            pb::ListRecommendationsRequest { account_ids: vec!["123456789012".into(); 1001], ..Default::default() },
            "account_ids",
        ),
        (
            "tampered token",
            pb::ListRecommendationsRequest { page_size: 2, page_token: tampered, ..Default::default() },
            "page_token",
        ),
        (
            "token of other filters",
            pb::ListRecommendationsRequest {
                provider: pb::Provider::Gcp as i32,
                page_token: token.clone(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            "token of another method",
            pb::ListRecommendationsRequest { page_token: collections_token.clone(), ..Default::default() },
            "page_token",
        ),
        (
            "garbage token",
            pb::ListRecommendationsRequest { page_token: "%%%not-a-token".into(), ..Default::default() },
            "page_token",
        ),
    ];
    for (what, req, field) in cases {
        expect(what, app.list(req).await, Code::InvalidArgument, field);
    }

    let mut client = app.client.clone();
    let recommendations_token = pb::ListCollectionsRequest { page_size: 0, page_token: token };
    expect(
        "a recommendations token",
        client.list_collections(recommendations_token).await,
        Code::InvalidArgument,
        "page_token",
    );
    let negative = pb::ListCollectionsRequest { page_size: -1, page_token: String::new() };
    expect("negative page size", client.list_collections(negative).await, Code::InvalidArgument, "page_size");
    for trigger in [99, pb::Trigger::ColdStart as i32, pb::Trigger::Stale as i32] {
        let req = pb::RefreshRecommendationsRequest { trigger };
        expect(
            "internal or unknown trigger",
            client.refresh_recommendations(req).await,
            Code::InvalidArgument,
            "trigger",
        );
    }
    let watch = client.watch_freshness(pb::WatchFreshnessRequest { since_version: -1 }).await.map(drop);
    expect("negative since_version", watch, Code::InvalidArgument, "since_version");
    still_serving(&app).await;
}

/// One gRPC-web call with a raw message body; returns (grpc-status, response).
async fn raw_call(app: &TestApp, method: &str, body: &[u8]) -> (String, String) {
    let mut request = format!(
        "POST /cudly.recommendations.v1.RecommendationsService/{method} HTTP/1.1\r\nHost: api\r\n\
         Content-Type: application/grpc-web+proto\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len() + 5
    )
    .into_bytes();
    request.push(0);
    request.extend_from_slice(&(body.len() as u32).to_be_bytes());
    request.extend_from_slice(body);
    let response = http1(app.addr, &request).await;
    let status = response
        .to_ascii_lowercase()
        .split("grpc-status:")
        .nth(1)
        .map(|s| s.trim_start().chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    (status, response)
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_and_oversized_messages_are_the_callers_fault(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    // Field 2 (service, a string) declared 100 bytes long with 3 present;
    // then a field number 0, which protobuf forbids.
    for body in [&[0x12, 100, b'e', b'c', b'2'][..], &[0x00, 0x01][..], &[0xff; 12][..]] {
        let (status, response) = raw_call(&app, "ListRecommendations", body).await;
        assert_eq!(status, "3", "a malformed message is INVALID_ARGUMENT: {response}");
        assert!(response.contains("failed%20to%20decode") || response.contains("failed to decode"), "{response}");
    }
    // Larger than the 64 KiB request limit.
    let oversized = pb::ListRecommendationsRequest { service: "x".repeat(100_000), ..Default::default() };
    let status = app.list(oversized).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());
    still_serving(&app).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replica_refuses_watchers_beyond_its_cap_and_takes_them_again_when_one_leaves(pool: PgPool) {
    let limits = cudly_api::app::Limits { max_watchers: 2, ..Options::default().limits };
    let app = spawn_app(pool, Options { limits, with_collector: false, ..Options::default() }).await;
    let watch = || {
        let mut client = app.client.clone();
        async move { client.watch_freshness(pb::WatchFreshnessRequest::default()).await }
    };
    let first = watch().await.unwrap();
    let _second = watch().await.unwrap();
    let status = watch().await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("2 WatchFreshness streams"), "{}", status.message());
    drop(first);
    // The server notices the closed stream on its next poll.
    let mut again = None;
    for _ in 0..100 {
        match watch().await {
            Ok(stream) => {
                again = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert!(again.is_some(), "a slot was freed when a watcher left");
}

#[sqlx::test(migrations = "../migrations")]
async fn calls_beyond_the_concurrency_cap_are_shed_at_once_not_queued(pool: PgPool) {
    // A "collector" that accepts connections and never answers: a refresh
    // then holds its slot until the dispatch deadline.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = blackhole.local_addr().unwrap();
    let (dispatching, dispatched) = tokio::sync::oneshot::channel();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        let mut dispatching = Some(dispatching);
        while let Ok((socket, _)) = blackhole.accept().await {
            sockets.push(socket);
            if let Some(tx) = dispatching.take() {
                let _ = tx.send(());
            }
        }
    });
    let limits = cudly_api::app::Limits { max_concurrent_requests: 1, ..Options::default().limits };
    let opts = Options { limits, with_collector: false, ..Options::default() };
    let app = cudly_testkit::spawn::spawn_api(pool, &opts, collector_addr, None).await;

    let slow = {
        let app_client = app.client.clone();
        tokio::spawn(async move {
            let mut client = app_client;
            client.refresh_recommendations(pb::RefreshRecommendationsRequest::default()).await
        })
    };
    // The refresh is dispatching (it holds the one slot) once the
    // "collector" has its connection.
    dispatched.await.unwrap();
    let status = app.client.clone().get_freshness(pb::GetFreshnessRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(!slow.is_finished(), "shed while the slot was taken, not queued until it was free");
    let refreshed = slow.await.unwrap().unwrap_err();
    assert_eq!(refreshed.code(), Code::Unavailable, "the dispatch deadline passed: {refreshed:?}");
    app.client.clone().get_freshness(pb::GetFreshnessRequest {}).await.expect("served again once the slot is free");
    held.abort();
}

fn money(currency: &str, units: i64, nanos: i32) -> cudly_proto::google::r#type::Money {
    cudly_proto::google::r#type::Money { currency_code: currency.into(), units, nanos }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_huge_value_is_never_echoed_back_whatever_field_it_is_in(pool: PgPool) {
    use cudly_proto::recommendations::v1::accounts_service_client::AccountsServiceClient;
    use pb::account::Credentials as C;
    let app = spawn_app(pool, Options::default()).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let accounts = AccountsServiceClient::new(channel);
    // Within the request size limit, far beyond anything a message should carry.
    let huge = "9".repeat(60_000);
    let (aws_id, sub, uuid) =
        ("123456789012", "9b1f6471-1bf0-4dda-aec3-cb9272f09590", "0b1f6471-1bf0-4dda-aec3-cb9272f09590");
    let role = "arn:aws:iam::123456789012:role/cudly";
    let account = |provider: pb::Provider, id: &str, credentials: Option<C>| pb::Account {
        provider: provider as i32,
        external_id: id.into(),
        credentials,
        ..Default::default()
    };
    let aws = |role_arn: &str, external_id: &str| {
        Some(C::Aws(pb::AwsCredentials {
            role_arn: role_arn.into(),
            external_id: external_id.into(),
            organization: false,
        }))
    };
    let azure = |tenant: &str, client: &str, secret: &str| {
        Some(C::Azure(pb::AzureCredentials {
            tenant_id: tenant.into(),
            client_id: client.into(),
            client_secret_ref: secret.into(),
        }))
    };
    let gcp = |key: &str, billing: &str| {
        Some(C::Gcp(pb::GcpCredentials { service_account_key_ref: key.into(), billing_account_id: billing.into() }))
    };
    let secret = "env:CUDLY_CLOUD_SECRET_X";
    let creates = [
        ("external_id", account(pb::Provider::Aws, &huge, None)),
        ("external_id", account(pb::Provider::Azure, &huge, None)),
        ("external_id", account(pb::Provider::Gcp, &huge, None)),
        ("aws.role_arn", account(pb::Provider::Aws, aws_id, aws(&huge, ""))),
        ("aws.external_id", account(pb::Provider::Aws, aws_id, aws(role, &huge))),
        ("azure.tenant_id", account(pb::Provider::Azure, sub, azure(&huge, uuid, secret))),
        ("azure.client_id", account(pb::Provider::Azure, sub, azure(uuid, &huge, secret))),
        ("azure.client_secret_ref", account(pb::Provider::Azure, sub, azure(uuid, uuid, &format!("env:{huge}")))),
        ("azure.client_secret_ref", account(pb::Provider::Azure, sub, azure(uuid, uuid, &format!("file:/{huge}")))),
        ("azure.client_secret_ref", account(pb::Provider::Azure, sub, azure(uuid, uuid, &huge))),
        ("gcp.service_account_key_ref", account(pb::Provider::Gcp, "my-project-1", gcp(&format!("file:/{huge}"), ""))),
        ("gcp.billing_account_id", account(pb::Provider::Gcp, "my-project-1", gcp("", &huge))),
    ];
    let mut answers = Vec::new();
    for (field, account) in creates {
        let answer = accounts.clone().create_account(pb::CreateAccountRequest { account: Some(account) }).await;
        answers.push((format!("CreateAccount {field}"), field, answer.map(|_| ())));
    }
    let key = |id: &str| (pb::Provider::Aws as i32, id.to_string());
    let (provider, external_id) = key(&huge);
    let get = accounts.clone().get_account(pb::GetAccountRequest { provider, external_id: external_id.clone() }).await;
    answers.push(("GetAccount".into(), "external_id", get.map(|_| ())));
    let delete = pb::DeleteAccountRequest { provider, external_id: external_id.clone() };
    let delete = accounts.clone().delete_account(delete).await;
    answers.push(("DeleteAccount".into(), "external_id", delete.map(|_| ())));
    let update = pb::UpdateAccountRequest { provider, external_id, ..Default::default() };
    answers.push(("UpdateAccount".into(), "external_id", accounts.clone().update_account(update).await.map(|_| ())));
    let notifications = pb::notifications_service_client::NotificationsServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap(),
    );
    let hook = |name: &str, url: &str, secret: &str| pb::Channel {
        name: name.into(),
        kind: Some(pb::channel::Kind::Webhook(pb::WebhookChannel {
            url: url.into(),
            signing_secret_ref: secret.into(),
        })),
        ..Default::default()
    };
    let mail = |f: &dyn Fn(&mut pb::EmailChannel)| {
        let mut e = pb::EmailChannel {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 0,
            username: "cudly".into(),
            password_ref: secret.into(),
            from: "cudly@example.com".into(),
            to: vec!["finops@example.com".into()],
        };
        f(&mut e);
        pb::Channel { name: "mail".into(), kind: Some(pb::channel::Kind::Email(e)), ..Default::default() }
    };
    let https = "https://hooks.example.com";
    let channels = [
        ("channel.name", hook(&huge, https, secret)),
        ("channel.webhook.url", hook("hook", &format!("https://{huge}/"), secret)),
        ("channel.webhook.url", hook("hook", &format!("http://{}/", &huge[..1000]), secret)),
        ("channel.webhook.signing_secret_ref", hook("hook", https, &format!("env:{huge}"))),
        ("channel.webhook.signing_secret_ref", hook("hook", https, &huge)),
        ("channel.email.smtp_host", mail(&|e| e.smtp_host = format!("{huge}:25"))),
        ("channel.email.username", mail(&|e| e.username = huge.clone())),
        ("channel.email.from", mail(&|e| e.from = format!("{huge}@example.com"))),
        ("channel.email.to[0]", mail(&|e| e.to = vec![format!("a@{huge} ")])),
    ];
    for (field, channel) in channels {
        let answer = notifications.clone().create_channel(pb::CreateChannelRequest { channel: Some(channel) }).await;
        answers.push((format!("CreateChannel {field}"), field, answer.map(|_| ())));
    }
    let get = notifications.clone().get_channel(pb::GetChannelRequest { name: huge.clone() }).await;
    answers.push(("GetChannel".into(), "name", get.map(|_| ())));
    let deliveries = pb::ListDeliveriesRequest { channel: huge.clone(), ..Default::default() };
    answers.push((
        "ListDeliveries".into(),
        "channel",
        notifications.clone().list_deliveries(deliveries).await.map(|_| ()),
    ));
    let lists = [
        ("account_ids", pb::ListRecommendationsRequest { account_ids: vec![huge.clone()], ..Default::default() }),
        ("service", pb::ListRecommendationsRequest { service: huge.clone(), ..Default::default() }),
        ("region", pb::ListRecommendationsRequest { region: huge.clone(), ..Default::default() }),
        ("page_token", pb::ListRecommendationsRequest { page_token: huge.clone(), ..Default::default() }),
        (
            "min_monthly_savings",
            pb::ListRecommendationsRequest { min_monthly_savings: Some(money(&huge, 1, 0)), ..Default::default() },
        ),
    ];
    for (field, request) in lists {
        answers.push((format!("ListRecommendations {field}"), field, app.list(request).await.map(|_| ())));
    }
    for (what, field, answer) in answers {
        let status = answer.expect_err(&what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        let message = status.message();
        assert!(message.starts_with(field), "{what}: {:?} should name {field}", &message[..message.len().min(200)]);
        assert!(message.len() < 300, "{what}: a {}-byte message: {:?}…", message.len(), &message[..200]);
    }
    still_serving(&app).await;
}
