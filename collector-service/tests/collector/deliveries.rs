//! Delivering notices: deliverers on the test's database, notices queued as
//! the run-end transaction queues them, and a receiver on 127.0.0.1 that
//! checks every signature itself and counts deliveries by `webhook-id`.

use std::path::PathBuf;
use std::time::Duration;

use cudly_collector::metrics::CollectorMetrics;
use cudly_collector::notify::{Deliverer, DeliverySettings};
use cudly_core::credentials::SecretFileDirs;
use cudly_testkit::notify::{Receiver, channel, delivery, payload, queue, signing_secret, wait_for_status};
use prometheus_client::registry::Registry;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const KEY: &[u8] = b"a signing key of thirty-two byte";
const WITHIN: Duration = Duration::from_secs(15);

/// A directory of secret files, removed when dropped.
struct Secrets(PathBuf);

impl Secrets {
    fn new() -> Secrets {
        let dir = std::env::temp_dir().join(format!("cudly-notify-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Secrets(dir)
    }

    /// Writes `value` into the file `name`; its reference.
    fn file(&self, name: &str, value: &str) -> String {
        std::fs::write(self.0.join(name), format!("{value}\n")).unwrap();
        format!("file:{}", self.0.join(name).display())
    }

    fn dirs(&self) -> SecretFileDirs {
        SecretFileDirs::new([self.0.clone()]).unwrap()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The collector's delivery defaults, made fast.
fn settings(secrets: &Secrets) -> DeliverySettings {
    DeliverySettings {
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        timeout: Duration::from_secs(2),
        secret_files: secrets.dirs(),
        ..cudly_testkit::settings::collector().notify
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
    registry: Registry,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

fn start(pool: &PgPool, settings: DeliverySettings) -> Running {
    let mut registry = Registry::with_prefix("cudly");
    let metrics = CollectorMetrics::register(&mut registry);
    let deliverer = Deliverer::new(pool.clone(), settings, metrics).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(deliverer.run(stop.clone()));
    Running { stop, task, registry }
}

async fn webhook(pool: &PgPool, secrets: &Secrets, receiver: &Receiver, name: &str) -> uuid::Uuid {
    let secret = secrets.file(&format!("{name}.key"), &signing_secret(KEY));
    channel(pool, name, "webhook", json!({"url": receiver.url("/hook"), "signing_secret_ref": secret})).await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_notice_reaches_a_webhook_once_signed_with_its_delivery_id_as_the_idempotency_key(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let hook = webhook(&pool, &secrets, &receiver, "ops").await;
    let deliverer = start(&pool, settings(&secrets));
    let notice = payload(3);
    let [id] = queue(&pool, &notice, &[hook]).await[..] else { unreachable!() };

    let (status, attempts, last_error) = wait_for_status(&pool, id, "delivered", WITHIN).await;
    assert_eq!((status.as_str(), attempts, last_error), ("delivered", 1, None));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert!(request.signed, "the receiver verified the signature");
    assert_eq!(request.webhook_id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(request.body["type"], "recommendations.new_savings");
    let timestamp = chrono::DateTime::parse_from_rfc3339(request.body["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(timestamp.timestamp_millis(), notice.created_at.timestamp_millis());
    let data: cudly_core::notice::NoticePayload = serde_json::from_value(request.body["data"].clone()).unwrap();
    assert_eq!(data.items, notice.items);
    assert_eq!(data.totals, notice.totals);
    let delivered_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT delivered_at FROM notice_deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(delivered_at.is_some());
    deliverer.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_receiver_down_for_a_while_gets_the_notice_exactly_once_when_it_is_back(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    receiver.answer(503);
    let hook = webhook(&pool, &secrets, &receiver, "ops").await;
    let deliverer = start(&pool, settings(&secrets));
    let [id] = queue(&pool, &payload(1), &[hook]).await[..] else { unreachable!() };

    receiver.wait_for("five refused attempts", WITHIN, |r| r.len() >= 5).await;
    let (status, attempts, last_error) = delivery(&pool, id).await;
    assert_eq!(status, "pending");
    assert!(attempts >= 5, "every attempt is counted: {attempts}");
    assert!(last_error.as_deref().is_some_and(|e| e.starts_with("HTTP 503")), "{last_error:?}");
    // Backoff: the wait before the 5th attempt (200-400 ms) is longer than
    // the one before the 2nd (25-50 ms, plus the time a claim takes).
    let at: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(at[4] - at[3] > at[1] - at[0], "waits grow: {:?} then {:?}", at[1] - at[0], at[4] - at[3]);

    receiver.answer(200);
    let (_, attempts, last_error) = wait_for_status(&pool, id, "delivered", WITHIN).await;
    assert_eq!(last_error, None);
    let requests = receiver.requests();
    assert_eq!(requests.len(), attempts as usize, "one request per attempt counted");
    assert!(requests.iter().all(|r| r.signed && r.webhook_id == Some(id.to_string())), "the same id on every attempt");
    assert_eq!(receiver.delivered_per_id().get(&id.to_string()), Some(&1), "delivered exactly once");
    deliverer.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_notice_committed_while_no_deliverer_ran_and_a_claim_whose_sender_died_are_both_delivered(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let hook = webhook(&pool, &secrets, &receiver, "ops").await;
    // The collector died right after the run's commit: the notification
    // went to no one.
    let [committed] = queue(&pool, &payload(1), &[hook]).await[..] else { unreachable!() };
    // Another was claimed by a deliverer that died mid-send: attempts 1,
    // its claim run out.
    let [claimed] = queue(&pool, &payload(2), &[hook]).await[..] else { unreachable!() };
    sqlx::query(
        "UPDATE notice_deliveries SET attempts = 1, next_attempt_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(claimed)
    .execute(&pool)
    .await
    .unwrap();

    let deliverer = start(&pool, settings(&secrets));
    let (_, attempts, _) = wait_for_status(&pool, committed, "delivered", WITHIN).await;
    assert_eq!(attempts, 1);
    let (_, attempts, _) = wait_for_status(&pool, claimed, "delivered", WITHIN).await;
    assert_eq!(attempts, 2, "the dead sender's attempt counts");
    let delivered = receiver.delivered_per_id();
    assert_eq!((delivered.get(&committed.to_string()), delivered.get(&claimed.to_string())), (Some(&1), Some(&1)));
    deliverer.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn two_deliverers_on_one_database_deliver_each_of_200_notices_exactly_once(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let (a, b) = (webhook(&pool, &secrets, &receiver, "a").await, webhook(&pool, &secrets, &receiver, "b").await);
    let (first, second) = (start(&pool, settings(&secrets)), start(&pool, settings(&secrets)));
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(queue(&pool, &payload(1), &[a, b]).await);
    }
    receiver.wait_for("200 deliveries", Duration::from_secs(60), |r| r.len() >= 200).await;
    for id in &ids {
        wait_for_status(&pool, *id, "delivered", WITHIN).await;
    }
    let delivered = receiver.delivered_per_id();
    assert_eq!(delivered.len(), 200, "each delivery arrived");
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} of 200 arrived more than once, e.g. {:?}", twice.len(), twice.first());
    assert_eq!(receiver.requests().len(), 200, "no request beyond one per delivery");
    assert!(receiver.requests().iter().all(|r| r.signed));
    let attempts: i64 =
        sqlx::query_scalar("SELECT sum(attempts) FROM notice_deliveries").fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 200);
    let made = |running: &Running| {
        let text = running.metrics();
        text.lines()
            .find(|l| l.starts_with("cudly_collector_notice_delivery_attempts_total{channel_kind=\"webhook\"}"))
            .map_or(0, |l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
    };
    assert_eq!(made(&first) + made(&second), 200, "the two shared the work, each delivery once");
    first.stop().await;
    second.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_notice_fails_at_once_and_one_never_accepted_fails_when_its_retry_period_ends(pool: PgPool) {
    let (secrets, refusing) = (Secrets::new(), Receiver::start(KEY).await);
    refusing.answer(400);
    let refused_hook = webhook(&pool, &secrets, &refusing, "refusing").await;
    let down = Receiver::start(KEY).await;
    down.answer(503);
    let down_hook = webhook(&pool, &secrets, &down, "down").await;
    let unresolvable = channel(
        &pool,
        "unresolvable",
        "webhook",
        json!({"url": down.url("/x"), "signing_secret_ref": "env:CUDLY_CLOUD_SECRET_SURELY_UNSET_FOR_TEST"}),
    )
    .await;
    let settings = DeliverySettings { retry_for: Duration::from_millis(600), ..settings(&secrets) };
    let deliverer = start(&pool, settings);
    let [refused] = queue(&pool, &payload(1), &[refused_hook]).await[..] else { unreachable!() };
    let [expired] = queue(&pool, &payload(1), &[down_hook]).await[..] else { unreachable!() };
    let [no_secret] = queue(&pool, &payload(1), &[unresolvable]).await[..] else { unreachable!() };

    let (_, attempts, last_error) = wait_for_status(&pool, refused, "failed", WITHIN).await;
    assert_eq!(attempts, 1, "a 4xx is not retried");
    assert_eq!(last_error.as_deref(), Some("HTTP 400: no_service"), "with the receiver's words");
    let (_, attempts, last_error) = wait_for_status(&pool, expired, "failed", WITHIN).await;
    assert!(attempts >= 3, "retried until the period ended: {attempts}");
    assert_eq!(last_error.as_deref(), Some("HTTP 503: no_service"));
    let (_, attempts, last_error) = wait_for_status(&pool, no_secret, "failed", WITHIN).await;
    assert_eq!(attempts, 1);
    let last_error = last_error.unwrap();
    assert!(
        last_error.contains("CUDLY_CLOUD_SECRET_SURELY_UNSET_FOR_TEST is not set"),
        "names the reference: {last_error}"
    );
    assert_eq!(
        down.requests().len(),
        attempts_of(&pool, expired).await,
        "nothing reached it for the unresolvable channel"
    );

    // Failed is final: a delivery queued after them is sent, and the
    // failed ones are not tried again meanwhile.
    refusing.answer(200);
    let [later] = queue(&pool, &payload(1), &[refused_hook]).await[..] else { unreachable!() };
    wait_for_status(&pool, later, "delivered", WITHIN).await;
    assert_eq!(refusing.requests().len(), 2, "the refused one once, the later one once");
    assert_eq!(delivery(&pool, refused).await.1, 1);
    deliverer.stop().await;
}

async fn attempts_of(pool: &PgPool, id: uuid::Uuid) -> usize {
    delivery(pool, id).await.1 as usize
}

#[sqlx::test(migrations = "../migrations")]
async fn no_secret_reaches_a_log_line_or_a_delivery_record(pool: PgPool) {
    // The test's runtime has one thread: every task it spawns logs here.
    let captured = cudly_testkit::logs::Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let closed = cudly_testkit::spawn::unused_addr();
    let slack_token = "T0SECRET/B0SECRET/XyZsEcReTtOkEn";
    let cases = [
        // Slack answers 404: the URL (its secret) stays out of the error.
        (
            "slack-gone",
            "slack",
            json!({"webhook_url_ref": secrets.file("gone.url", &receiver.url(&format!("/services/{slack_token}")))}),
        ),
        // Nothing listens: reqwest's error would name the URL.
        (
            "slack-closed",
            "slack",
            json!({"webhook_url_ref": secrets.file("closed.url", &format!("http://{closed}/services/{slack_token}"))}),
        ),
        // Not a Standard Webhooks secret: refused without quoting it.
        (
            "webhook-bad-secret",
            "webhook",
            json!({"url": receiver.url("/hook"), "signing_secret_ref": secrets.file("bad.key", "SeCrEtVaLuE-not-whsec")}),
        ),
        // Answers 404 with a body; the signing secret is never shown.
        (
            "webhook-gone",
            "webhook",
            json!({"url": receiver.url("/hook"), "signing_secret_ref": secrets.file("good.key", &signing_secret(KEY))}),
        ),
    ];
    receiver.answer(404);
    let mut ids = Vec::new();
    for (name, kind, settings) in cases {
        let channel = channel(&pool, name, kind, settings).await;
        ids.extend(queue(&pool, &payload(2), &[channel]).await);
    }
    let settings = DeliverySettings { retry_for: Duration::from_millis(300), ..settings(&secrets) };
    let deliverer = start(&pool, settings);
    let mut errors = Vec::new();
    for id in &ids {
        errors.push(wait_for_status(&pool, *id, "failed", WITHIN).await.2.unwrap());
    }
    deliverer.stop().await;

    let logs = captured.text();
    assert!(logs.contains("notice delivery failed"), "attempts are logged: {logs}");
    assert!(errors[0].starts_with("HTTP 404"), "{}", errors[0]);
    assert!(errors[2].contains("whsec_"), "{}", errors[2]);
    let whsec = signing_secret(KEY);
    let encoded_key = whsec.trim_start_matches("whsec_");
    for (what, text) in errors.iter().map(|e| ("last_error", e.as_str())).chain([("logs", logs.as_str())]) {
        for secret in [slack_token, "services/T0SECRET", "SeCrEtVaLuE", encoded_key] {
            assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
        }
    }
    // No URL in an error at all (hyper's debug lines name the host and
    // port it connects to, which are not the secret part of a Slack URL).
    for error in &errors {
        assert!(!error.contains(&closed.to_string()) && !error.contains("http://"), "{error}");
        assert!(error.chars().count() <= 500, "{error}");
    }
    assert!(errors[1].contains("onnect"), "the cause is said: {}", errors[1]);
}

#[sqlx::test(migrations = "../migrations")]
async fn slack_gets_blocks_with_the_totals_the_top_items_and_the_console_link(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let url = secrets.file("slack.url", &receiver.url("/services/T0/B0/xyz"));
    let slack = channel(&pool, "team", "slack", json!({"webhook_url_ref": url})).await;
    let deliverer = start(&pool, settings(&secrets));
    let mut test_notice = payload(0);
    test_notice.kind = "test".into();
    let ids = [queue(&pool, &payload(12), &[slack]).await[0], queue(&pool, &test_notice, &[slack]).await[0]];
    for id in ids {
        wait_for_status(&pool, id, "delivered", WITHIN).await;
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.path == "/services/T0/B0/xyz"));
    let message =
        requests.iter().find(|r| r.body["text"] != "test notice from cudly").expect("the run's notice").body.clone();
    assert!(message["text"].as_str().unwrap().contains("12 recommendations"), "{message}");
    let blocks = message["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["header", "section", "section", "context"], "{message}");
    let totals = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(totals.contains("*12* in USD") && totals.contains("11934.00 USD"), "{totals}");
    let items = blocks[2]["text"]["text"].as_str().unwrap();
    assert_eq!(items.lines().count(), 11, "ten items, then the rest counted: {items}");
    assert!(items.lines().next().unwrap().contains("m5.0xlarge") && items.ends_with("…and 2 more"), "{items}");
    assert!(blocks[3]["elements"][0]["text"].as_str().unwrap().contains("https://cudly.example.com/"));
    let test = requests.iter().find(|r| r.body["text"] == "test notice from cudly").expect("the test notice");
    assert_eq!(test.body["blocks"][0]["text"]["text"], "test notice from cudly");
    deliverer.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_delivery_metrics_count_attempts_outcomes_and_the_oldest_waiting_notice(pool: PgPool) {
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    receiver.answer(503);
    let hook = webhook(&pool, &secrets, &receiver, "ops").await;
    // A notice an hour old, still pending, for the gauge.
    let [old] = queue(&pool, &payload(1), &[hook]).await[..] else { unreachable!() };
    sqlx::query("UPDATE notice_deliveries SET created_at = now() - interval '1 hour' WHERE id = $1")
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    let deliverer = start(&pool, settings(&secrets));
    receiver.wait_for("two refused attempts", WITHIN, |r| r.len() >= 2).await;
    let text = deliverer.metrics();
    let gauge = text
        .lines()
        .find_map(|l| l.strip_prefix("cudly_collector_notice_oldest_undelivered_seconds "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(gauge.parse::<f64>().unwrap() >= 3600.0, "{gauge}");
    assert!(
        text.contains("cudly_collector_notice_deliveries_total{channel_kind=\"webhook\",outcome=\"retry\"}"),
        "{text}"
    );
    receiver.answer(200);
    wait_for_status(&pool, old, "delivered", WITHIN).await;
    let text = deliverer.metrics();
    assert!(
        text.contains("cudly_collector_notice_deliveries_total{channel_kind=\"webhook\",outcome=\"delivered\"} 1\n"),
        "{text}"
    );
    let attempts = receiver.requests().len();
    assert!(
        text.contains(&format!(
            "cudly_collector_notice_delivery_attempts_total{{channel_kind=\"webhook\"}} {attempts}\n"
        )),
        "{attempts} attempts: {text}"
    );
    deliverer.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_serving_collector_delivers_what_was_queued_before_it_started_and_one_told_not_to_claims_nothing(
    pool: PgPool,
) {
    use cudly_collector::app::{Settings, build};
    let (secrets, receiver) = (Secrets::new(), Receiver::start(KEY).await);
    let hook = webhook(&pool, &secrets, &receiver, "ops").await;
    let serve = |deliver_notices: bool| {
        let settings = Settings { deliver_notices, notify: settings(&secrets), ..cudly_testkit::settings::collector() };
        let pool = pool.clone();
        async move {
            let app = build(settings, pool, Vec::new()).await.unwrap();
            let stop = CancellationToken::new();
            (stop.clone(), tokio::spawn(app.run(stop.cancelled_owned())))
        }
    };
    let (stop_quiet, quiet) = serve(false).await;
    let [first] = queue(&pool, &payload(1), &[hook]).await[..] else { unreachable!() };
    // Nothing to wait on for something that must not happen: a deliverer
    // would have claimed it at once, and at its polls.
    tokio::time::sleep(settings(&secrets).poll_interval * 3).await;
    assert_eq!(delivery(&pool, first).await, ("pending".to_string(), 0, None), "--notify-deliver=false claims nothing");
    let (stop, serving) = serve(true).await;
    let [second] = queue(&pool, &payload(1), &[hook]).await[..] else { unreachable!() };
    for id in [first, second] {
        let (_, attempts, _) = wait_for_status(&pool, id, "delivered", WITHIN).await;
        assert_eq!(attempts, 1);
    }
    assert_eq!(receiver.requests().len(), 2, "each once, though two collectors served");
    let shut_down = |stop: CancellationToken, task: JoinHandle<anyhow::Result<()>>| async move {
        stop.cancel();
        task.await.unwrap().unwrap();
    };
    shut_down(stop, serving).await;
    shut_down(stop_quiet, quiet).await;
}
