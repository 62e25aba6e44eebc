//! Notification channels over gRPC: create, get, list, update, delete, with
//! validation naming the field and never echoing a secret; test notices
//! queued as pending deliveries that wake the deliverers; deliveries paged
//! most recent first. (No collector runs here: nothing delivers, so what
//! is queued stays pending.)

use std::time::Duration;

use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::notifications_service_client::NotificationsServiceClient;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tonic::Code;
use tonic::transport::Channel;

use cudly_testkit::spawn::{Options, TestApp, spawn_app};

type Client = NotificationsServiceClient<Channel>;

async fn client(app: &TestApp) -> Client {
    let channel = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    NotificationsServiceClient::new(channel)
}

fn options() -> Options {
    Options { with_collector: false, seed: "", ..Options::default() }
}

const SIGNING_REF: &str = "env:CUDLY_CLOUD_SECRET_WEBHOOK_SIGNING";

fn webhook(name: &str, url: &str) -> pb::Channel {
    pb::Channel {
        name: name.into(),
        kind: Some(pb::channel::Kind::Webhook(pb::WebhookChannel {
            url: url.into(),
            signing_secret_ref: SIGNING_REF.into(),
        })),
        ..Default::default()
    }
}

fn email_settings() -> pb::EmailChannel {
    pb::EmailChannel {
        smtp_host: "smtp.example.com".into(),
        smtp_port: 0,
        username: "cudly".into(),
        password_ref: "file:/var/run/secrets/cudly/smtp-password".into(),
        from: "cudly@example.com".into(),
        to: vec!["finops@example.com".into(), "platform@example.com".into()],
    }
}

fn email(name: &str, settings: pb::EmailChannel) -> pb::Channel {
    pb::Channel { name: name.into(), kind: Some(pb::channel::Kind::Email(settings)), ..Default::default() }
}

async fn create(client: &mut Client, channel: pb::Channel) -> Result<pb::Channel, tonic::Status> {
    client.create_channel(pb::CreateChannelRequest { channel: Some(channel) }).await.map(|r| r.into_inner())
}

#[sqlx::test(migrations = "../migrations")]
async fn channels_are_created_read_listed_updated_and_deleted(pool: PgPool) {
    let app = spawn_app(pool.clone(), options()).await;
    let mut client = client(&app).await;

    let hook = create(&mut client, webhook("finops-hook", "https://hooks.example.com/cudly")).await.unwrap();
    assert_eq!(hook.enabled, Some(true), "enabled unless said otherwise");
    assert!(hook.created_at.is_some() && hook.updated_at.is_some());
    let again = create(&mut client, webhook("finops-hook", "https://other.example.com")).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains("finops-hook"), "{}", again.message());

    let mut mail = email("finops-mail", email_settings());
    mail.enabled = Some(false);
    let mail = create(&mut client, mail).await.unwrap();
    assert_eq!(mail.enabled, Some(false));
    let Some(pb::channel::Kind::Email(settings)) = &mail.kind else { panic!("{mail:?}") };
    assert_eq!(settings.smtp_port, 587, "0 is the submission port");
    let chat = pb::Channel {
        name: "alerts".into(),
        kind: Some(pb::channel::Kind::Slack(pb::SlackChannel {
            webhook_url_ref: "env:CUDLY_CLOUD_SECRET_SLACK_URL".into(),
        })),
        ..Default::default()
    };
    create(&mut client, chat).await.unwrap();

    // Stored exactly as the deliverers read them.
    let stored: (String, serde_json::Value) =
        sqlx::query_as("SELECT kind, settings FROM notification_channels WHERE name = 'finops-mail'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored.0, "email");
    assert_eq!(
        stored.1,
        serde_json::json!({
            "smtp_host": "smtp.example.com", "smtp_port": 587, "username": "cudly",
            "password_ref": "file:/var/run/secrets/cudly/smtp-password", "from": "cudly@example.com",
            "to": ["finops@example.com", "platform@example.com"],
        })
    );

    let got = client.get_channel(pb::GetChannelRequest { name: "finops-hook".into() }).await.unwrap().into_inner();
    assert_eq!(got, hook);
    let missing = client.get_channel(pb::GetChannelRequest { name: "nobody".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let listed = client.list_channels(pb::ListChannelsRequest {}).await.unwrap().into_inner().channels;
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alerts", "finops-hook", "finops-mail"], "by name");

    // Enabling keeps the settings; new settings of another kind replace
    // the old ones whole.
    let update = |enabled, kind| pb::UpdateChannelRequest { name: "finops-mail".into(), enabled, kind };
    let enabled = client.update_channel(update(Some(true), None)).await.unwrap().into_inner();
    assert_eq!(enabled.enabled, Some(true));
    assert_eq!(enabled.kind, mail.kind, "what is not given stays");
    let new_hook = pb::WebhookChannel { url: "http://127.0.0.1:9/hook".into(), signing_secret_ref: SIGNING_REF.into() };
    let rekinded = client
        .update_channel(update(None, Some(pb::update_channel_request::Kind::Webhook(new_hook.clone()))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rekinded.kind, Some(pb::channel::Kind::Webhook(new_hook)));
    assert_eq!(rekinded.enabled, Some(true));
    let stored: (String, serde_json::Value) =
        sqlx::query_as("SELECT kind, settings FROM notification_channels WHERE name = 'finops-mail'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored.0, "webhook");
    assert_eq!(stored.1, serde_json::json!({"url": "http://127.0.0.1:9/hook", "signing_secret_ref": SIGNING_REF}));
    let bad = client
        .update_channel(update(
            None,
            Some(pb::update_channel_request::Kind::Email(pb::EmailChannel { to: vec![], ..email_settings() })),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("email.to:"), "{}", bad.message());
    let missing = client
        .update_channel(pb::UpdateChannelRequest { name: "nobody".into(), enabled: Some(true), kind: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Deleting takes its deliveries (and their test notices) with it.
    for _ in 0..2 {
        client.send_test_notice(pb::SendTestNoticeRequest { name: "finops-mail".into() }).await.unwrap();
    }
    client.send_test_notice(pb::SendTestNoticeRequest { name: "alerts".into() }).await.unwrap();
    let deleted =
        client.delete_channel(pb::DeleteChannelRequest { name: "finops-mail".into() }).await.unwrap().into_inner();
    assert_eq!(deleted.deleted_deliveries, 2);
    let notices: i64 = sqlx::query_scalar("SELECT count(*) FROM notices").fetch_one(&pool).await.unwrap();
    assert_eq!(notices, 1, "the other channel's test notice stays");
    let again = client.delete_channel(pb::DeleteChannelRequest { name: "finops-mail".into() }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let listed = client.list_channels(pb::ListChannelsRequest {}).await.unwrap().into_inner().channels;
    assert_eq!(listed.len(), 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_channel_input_is_invalid_argument_naming_the_field_and_never_echoing_a_secret(pool: PgPool) {
    let app = spawn_app(pool.clone(), options()).await;
    let mut client = client(&app).await;

    let with_email = |f: &dyn Fn(&mut pb::EmailChannel)| {
        let mut settings = email_settings();
        f(&mut settings);
        email("mail", settings)
    };
    let hook_with_secret = |secret: &str| pb::Channel {
        name: "hook".into(),
        kind: Some(pb::channel::Kind::Webhook(pb::WebhookChannel {
            url: "https://hooks.example.com".into(),
            signing_secret_ref: secret.into(),
        })),
        ..Default::default()
    };
    let slack_with = |url_ref: &str| pb::Channel {
        name: "chat".into(),
        kind: Some(pb::channel::Kind::Slack(pb::SlackChannel { webhook_url_ref: url_ref.into() })),
        ..Default::default()
    };
    let slack_url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
    let signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let password = "correct-horse-battery-staple";
    let many: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
    let cases: Vec<(pb::Channel, &str, Option<&str>)> = vec![
        (webhook("Bad Name", "https://hooks.example.com"), "channel.name", None),
        (pb::Channel { name: "no-kind".into(), ..Default::default() }, "channel.kind", None),
        (webhook("hook", "hooks example"), "channel.webhook.url", None),
        (webhook("hook", "ftp://hooks.example.com/x"), "channel.webhook.url", None),
        (webhook("hook", "http://hooks.example.com/x"), "channel.webhook.url", None),
        (webhook("hook", "https://ops:hunter22@hooks.example.com/x"), "channel.webhook.url", Some("hunter22")),
        (hook_with_secret(signing_secret), "channel.webhook.signing_secret_ref", Some(signing_secret)),
        (slack_with(slack_url), "channel.slack.webhook_url_ref", Some("hooks.slack.com")),
        (slack_with("env:DATABASE_URL"), "channel.slack.webhook_url_ref", None),
        (with_email(&|e| e.smtp_host = "smtp://smtp.example.com".into()), "channel.email.smtp_host", None),
        (with_email(&|e| e.smtp_port = 70_000), "channel.email.smtp_port", None),
        (with_email(&|e| e.username = String::new()), "channel.email.username", None),
        (with_email(&|e| e.password_ref = password.into()), "channel.email.password_ref", Some(password)),
        (with_email(&|e| e.from = "cudly at example.com".into()), "channel.email.from", None),
        (with_email(&|e| e.to.push("x@example.com\r\nBcc: everyone@example.com".into())), "channel.email.to[2]", None),
        (with_email(&|e| e.to = vec![]), "channel.email.to", None),
        (with_email(&|e| e.to = many.clone()), "channel.email.to", None),
    ];
    for (channel, field, secret) in cases {
        let status = create(&mut client, channel).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(&format!("{field}: ")), "{field}: {}", status.message());
        assert!(status.message().len() < 400, "bounded: {}", status.message());
        if let Some(secret) = secret {
            assert!(!status.message().contains(secret), "{field} echoed a secret: {}", status.message());
        }
    }
    let status = create(&mut client, with_email(&|e| e.to = many.clone())).await.unwrap_err();
    assert!(status.message().contains("at most 50 recipients"), "{}", status.message());
    let status = create(&mut client, webhook("hook", "http://hooks.example.com/x")).await.unwrap_err();
    assert!(status.message().contains("must use https"), "{}", status.message());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_channels").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 0, "nothing refused was stored");

    // Names of existing channels are checked too.
    let status = client.get_channel(pb::GetChannelRequest { name: "Nope!".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("name: "), "{}", status.message());
    let status =
        client.list_deliveries(pb::ListDeliveriesRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert!(status.message().starts_with("page_size: "), "{}", status.message());

    // At most 100 channels: the 101st is refused until one goes.
    for i in 0..100 {
        create(&mut client, webhook(&format!("hook-{i}"), "https://hooks.example.com")).await.unwrap();
    }
    let status = create(&mut client, webhook("hook-100", "https://hooks.example.com")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("at most 100"), "{}", status.message());
    client.delete_channel(pb::DeleteChannelRequest { name: "hook-0".into() }).await.unwrap();
    create(&mut client, webhook("hook-100", "https://hooks.example.com")).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_test_notice_is_a_pending_delivery_announced_on_the_notices_channel(pool: PgPool) {
    let app = spawn_app(pool.clone(), options()).await;
    let mut client = client(&app).await;
    let mut disabled = webhook("finops-hook", "https://hooks.example.com/cudly");
    disabled.enabled = Some(false);
    create(&mut client, disabled).await.unwrap();
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(cudly_core::schema::NOTICES_CHANNEL).await.unwrap();

    // A disabled channel gets its test notice too.
    let delivery =
        client.send_test_notice(pb::SendTestNoticeRequest { name: "finops-hook".into() }).await.unwrap().into_inner();
    assert_eq!(delivery.channel, "finops-hook");
    assert_eq!(delivery.status(), pb::DeliveryStatus::Pending);
    assert!(delivery.test);
    assert_eq!(delivery.collection_id, "");
    assert_eq!((delivery.attempts, delivery.item_count), (0, 0));
    assert!(delivery.created_at.is_some() && delivery.next_attempt_at.is_some() && delivery.delivered_at.is_none());
    let id: uuid::Uuid = delivery.id.parse().unwrap();
    assert_eq!(id.get_version(), Some(uuid::Version::Random));

    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    assert_eq!(notification.payload(), delivery.id, "the delivery's id wakes the deliverers");

    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT n.payload FROM notices n JOIN notice_deliveries d ON d.notice_id = n.id WHERE d.id = $1 AND n.test",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let payload: cudly_core::notice::NoticePayload = serde_json::from_value(payload).unwrap();
    assert_eq!(payload.kind, "test");
    assert_eq!((payload.collection_id, payload.items.len(), payload.omitted), (None, 0, 0));

    let listed = client.list_deliveries(pb::ListDeliveriesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.deliveries, std::slice::from_ref(&delivery));
    assert_eq!(listed.next_page_token, "");

    // What the deliverers record shows: attempts, the last error, the end.
    sqlx::query(
        "UPDATE notice_deliveries SET status = 'failed', attempts = 7, last_error = 'HTTP 503 from the receiver'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let listed = client.list_deliveries(pb::ListDeliveriesRequest::default()).await.unwrap().into_inner();
    let failed = &listed.deliveries[0];
    assert_eq!(failed.status(), pb::DeliveryStatus::Failed);
    assert_eq!((failed.attempts, failed.last_error.as_str()), (7, "HTTP 503 from the receiver"));
    assert!(failed.next_attempt_at.is_none(), "only a pending delivery has a next attempt");

    let missing = client.send_test_notice(pb::SendTestNoticeRequest { name: "nobody".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[sqlx::test(migrations = "../migrations")]
async fn deliveries_are_paged_most_recent_first_with_tokens_bound_to_the_filter(pool: PgPool) {
    let app = spawn_app(pool.clone(), options()).await;
    let mut client = client(&app).await;
    create(&mut client, webhook("a-hook", "https://a.example.com")).await.unwrap();
    create(&mut client, webhook("b-hook", "https://b.example.com")).await.unwrap();
    let mut queued = Vec::new();
    for i in 0..7 {
        let name = if i % 2 == 0 { "a-hook" } else { "b-hook" };
        let d = client.send_test_notice(pb::SendTestNoticeRequest { name: name.into() }).await.unwrap().into_inner();
        queued.push(d);
    }
    // Two deliveries at the same instant: the id breaks the tie.
    sqlx::query("UPDATE notice_deliveries SET created_at = (SELECT max(created_at) FROM notice_deliveries)")
        .execute(&pool)
        .await
        .unwrap();

    let page = |channel: &str, page_size, page_token: String| pb::ListDeliveriesRequest {
        channel: channel.into(),
        page_size,
        page_token,
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let response = client.list_deliveries(page("", 3, token)).await.unwrap().into_inner();
        assert!(response.deliveries.len() <= 3);
        seen.extend(response.deliveries);
        pages += 1;
        token = response.next_page_token;
        if token.is_empty() || pages > 10 {
            break;
        }
    }
    assert_eq!(pages, 3, "7 deliveries in pages of 3");
    let keys: Vec<(i64, i32, String)> = seen
        .iter()
        .map(|d| {
            let t = d.created_at.unwrap();
            (t.seconds, t.nanos, d.id.clone())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "most recent first, then by id");
    let mut ids: Vec<&str> = seen.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every delivery once");

    // One channel's; its token refuses another filter.
    let first = client.list_deliveries(page("b-hook", 2, String::new())).await.unwrap().into_inner();
    assert!(first.deliveries.iter().all(|d| d.channel == "b-hook"));
    let rest = client.list_deliveries(page("b-hook", 2, first.next_page_token.clone())).await.unwrap().into_inner();
    assert_eq!(first.deliveries.len() + rest.deliveries.len(), 3);
    assert_eq!(rest.next_page_token, "");
    let other = client.list_deliveries(page("a-hook", 2, first.next_page_token)).await.unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(other.message().contains("other filters"), "{}", other.message());
    let garbage = client.list_deliveries(page("", 2, "garbage".into())).await.unwrap_err();
    assert!(garbage.message().starts_with("page_token: "), "{}", garbage.message());
    let unknown = client.list_deliveries(page("c-hook", 2, String::new())).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // The default page is 50, the largest 500.
    let all = client.list_deliveries(page("", 0, String::new())).await.unwrap().into_inner();
    assert_eq!(all.deliveries.len(), 7);
    sqlx::query(
        "WITH n AS (
             INSERT INTO notices (id, test, item_count, payload)
             SELECT gen_random_uuid(), true, 0, '{}' FROM generate_series(1, 500) RETURNING id
         )
         INSERT INTO notice_deliveries (id, notice_id, channel_id)
         SELECT gen_random_uuid(), n.id, c.id FROM n, notification_channels c WHERE c.name = 'a-hook'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let default = client.list_deliveries(page("", 0, String::new())).await.unwrap().into_inner();
    assert_eq!(default.deliveries.len(), 50);
    assert!(!default.next_page_token.is_empty());
    let capped = client.list_deliveries(page("", 100_000, String::new())).await.unwrap().into_inner();
    assert_eq!(capped.deliveries.len(), 500);
    let last = client.list_deliveries(page("", 500, capped.next_page_token)).await.unwrap().into_inner();
    assert_eq!((last.deliveries.len(), last.next_page_token.as_str()), (7, ""));
}

/// The whole path, as people meet it: a webhook channel created over the
/// API, a run of the real pair, and the notice at the receiver, signed; a
/// second run with the same data announces nothing.
#[sqlx::test(migrations = "../migrations")]
async fn a_run_announces_its_savings_once_at_the_webhook_and_the_same_data_again_announces_nothing(pool: PgPool) {
    use cudly_testkit::notify::{Receiver, signing_secret};
    let key = b"an end-to-end webhook signing key";
    let receiver = Receiver::start(key).await;
    let secrets = cudly_testkit::jwt::KeyDir::new();
    let secret_file = secrets.write("hook-secret", signing_secret(key));
    let dirs = cudly_core::credentials::SecretFileDirs::new([secrets.0.clone()]).unwrap();
    let app = spawn_app(pool.clone(), Options { secret_files: Some(dirs), ..Options::default() }).await;
    let channel = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut notifications = NotificationsServiceClient::new(channel);
    let webhook = pb::WebhookChannel {
        url: receiver.url("/cudly"),
        signing_secret_ref: format!("file:{}", secret_file.display()),
    };
    let hook = pb::Channel {
        name: "finops-hook".into(),
        kind: Some(pb::channel::Kind::Webhook(webhook)),
        ..Default::default()
    };
    notifications.create_channel(pb::CreateChannelRequest { channel: Some(hook) }).await.unwrap();

    let first = app.collect().await;
    receiver.wait_for("the run's notice", Duration::from_secs(20), |r| !r.is_empty()).await;
    let second = app.collect().await;
    assert_ne!(first.version, second.version, "two runs ended");
    // The second run's decision was committed with its end: no notice.
    let notices: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notices WHERE NOT test").fetch_one(&pool).await.unwrap();
    assert_eq!(notices, 1, "the same data announces nothing the second time");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let notice = &requests[0];
    assert!(notice.signed, "signed as Standard Webhooks says");
    assert_eq!(notice.body["type"], "recommendations.new_savings");
    let data = &notice.body["data"];
    let listed = app.list(pb::ListRecommendationsRequest::default()).await.unwrap();
    assert_eq!(data["collection_id"], first.collection.as_ref().unwrap().id.as_str());
    let announced: u64 = data["totals"].as_array().unwrap().iter().map(|t| t["count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(announced, listed.summary.unwrap().count as u64, "every recommendation of the first run is new");
    let largest = &listed.recommendations[0];
    assert_eq!(data["items"][0]["id"], largest.id.as_str(), "items are the largest first");
}
