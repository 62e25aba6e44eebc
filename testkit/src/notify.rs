//! Notices as the run-end transaction queues them, and a receiver on
//! 127.0.0.1 that checks each webhook's Standard Webhooks signature on its
//! own (its HMAC is computed here, not by the collector's code) and
//! records what arrived, for the deliverers' tests and benchmark.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cudly_core::notice::{NoticeItem, NoticePayload, NoticeTotal};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// The signing secret of `key` as a webhook channel's reference holds it.
pub fn signing_secret(key: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(key))
}

/// Whether `header` (`webhook-signature`: space-separated `v1,<base64>`)
/// signs `{id}.{timestamp}.{body}` with `key`.
pub fn signature_valid(key: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|candidate| candidate == expected)
}

/// One request the receiver answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// The path it was sent to.
    pub path: String,
    /// Its `webhook-id`, if any.
    pub webhook_id: Option<String>,
    /// Whether it carried a valid signature, with a timestamp within five
    /// minutes of the receiver's clock (as the specification asks).
    pub signed: bool,
    /// Its body, as JSON (`Null` if it was not).
    pub body: serde_json::Value,
    /// The status it was answered with.
    pub answered: u16,
    /// When it arrived.
    pub at: Instant,
}

struct State {
    key: Vec<u8>,
    answer: AtomicU16,
    requests: Mutex<Vec<Request>>,
    arrived: watch::Sender<usize>,
}

/// A webhook (and Slack) receiver on 127.0.0.1.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    /// Starts a receiver checking signatures against `key`; it answers 200
    /// `ok` until told otherwise.
    pub async fn start(key: &[u8]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            key: key.to_vec(),
            answer: AtomicU16::new(200),
            requests: Mutex::new(Vec::new()),
            arrived: watch::channel(0).0,
        });
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move { receive(&state, uri, headers, body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every request from now on with `status`.
    pub fn answer(&self, status: u16) {
        self.state.answer.store(status, Ordering::SeqCst);
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many times each `webhook-id` was answered with a success.
    pub fn delivered_per_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.state.requests.lock().unwrap().iter().filter(|r| (200..300).contains(&r.answered)) {
            *counts.entry(r.webhook_id.clone().unwrap_or_default()).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until `condition` holds for the requests received, at most
    /// `within`; panics naming `what` otherwise.
    pub async fn wait_for(&self, what: &str, within: Duration, condition: impl Fn(&[Request]) -> bool) {
        let mut arrived = self.state.arrived.subscribe();
        let waited = tokio::time::timeout(within, async {
            loop {
                if condition(&self.state.requests.lock().unwrap()) {
                    return;
                }
                arrived.changed().await.unwrap();
            }
        })
        .await;
        if waited.is_err() {
            panic!(
                "{what}: not within {within:?}; received {:#?}",
                self.requests().iter().map(|r| (&r.path, &r.webhook_id, r.answered)).collect::<Vec<_>>()
            );
        }
    }
}

fn receive(state: &State, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let webhook_id = header("webhook-id");
    let signed = match (&webhook_id, header("webhook-timestamp"), header("webhook-signature")) {
        (Some(id), Some(timestamp), Some(signature)) => {
            let fresh = timestamp.parse::<i64>().is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300);
            fresh && signature_valid(&state.key, id, &timestamp, &body, &signature)
        }
        _ => false,
    };
    let answered = state.answer.load(Ordering::SeqCst);
    state.requests.lock().unwrap().push(Request {
        path: uri.path().to_string(),
        webhook_id,
        signed,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        answered,
        at: Instant::now(),
    });
    state.arrived.send_modify(|n| *n += 1);
    let status = StatusCode::from_u16(answered).unwrap();
    (status, if status.is_success() { "ok" } else { "no_service" })
}

/// A run's notice naming `items` recommendations (USD, savings descending).
pub fn payload(items: usize) -> NoticePayload {
    let items: Vec<NoticeItem> = (0..items)
        .map(|i| NoticeItem {
            id: Uuid::new_v4(),
            provider: "aws".into(),
            account_id: "123456789012".into(),
            account_name: "Payments prod".into(),
            service: "ec2".into(),
            region: "us-east-1".into(),
            resource_type: format!("m5.{i}xlarge"),
            term_months: 12,
            payment_option: "no_upfront".into(),
            currency: "USD".into(),
            monthly_savings: format!("{}.00", 1000 - i),
            previous_monthly_savings: (i % 2 == 1).then(|| "500.00".into()),
            savings_percentage: 30.0,
        })
        .collect();
    let total: usize = (0..items.len()).map(|i| 1000 - i).sum();
    NoticePayload {
        kind: "recommendations.new_savings".into(),
        collection_id: Some(Uuid::new_v4()),
        created_at: chrono::Utc::now(),
        outcome: Some("succeeded".into()),
        totals: vec![NoticeTotal {
            currency: "USD".into(),
            count: items.len() as u32,
            monthly_savings: format!("{total}.00"),
        }],
        items,
        omitted: 0,
        console_url: Some("https://cudly.example.com/".into()),
    }
}

/// Registers a channel of `kind` with `settings`; its id.
pub async fn channel(pool: &PgPool, name: &str, kind: &str, settings: serde_json::Value) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO notification_channels (id, name, kind, settings) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(kind)
        .bind(settings)
        .execute(pool)
        .await
        .unwrap();
    id
}

/// Queues `payload` for `channels` as the run-end transaction does: the
/// notice, a delivery per channel and a notification, committed together.
/// The deliveries' ids, in channel order.
pub async fn queue(pool: &PgPool, payload: &NoticePayload, channels: &[Uuid]) -> Vec<Uuid> {
    let mut tx = pool.begin().await.unwrap();
    let notice = Uuid::new_v4();
    sqlx::query("INSERT INTO notices (id, collection_id, item_count, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(notice)
        .bind(payload.collection_id)
        .bind(payload.items.len() as i32)
        .bind(serde_json::to_value(payload).unwrap())
        .bind(payload.created_at)
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for channel in channels {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO notice_deliveries (id, notice_id, channel_id) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(notice)
            .bind(channel)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(cudly_core::schema::NOTICES_CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

/// A delivery's (status, attempts, last error).
pub async fn delivery(pool: &PgPool, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM notice_deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the delivery's status is `status`, at most `within`; its
/// (status, attempts, last error) then.
pub async fn wait_for_status(pool: &PgPool, id: Uuid, status: &str, within: Duration) -> (String, i32, Option<String>) {
    let deadline = Instant::now() + within;
    loop {
        let now = delivery(pool, id).await;
        if now.0 == status {
            return now;
        }
        assert!(Instant::now() < deadline, "delivery {id} not {status} within {within:?}: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Queues `n` notices of `payload` for `channel` in one transaction,
/// without notifications (a backlog, as after an outage).
pub async fn queue_backlog(pool: &PgPool, payload: &NoticePayload, channel: Uuid, n: usize) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "CREATE TEMPORARY TABLE backlog ON COMMIT DROP AS
         SELECT gen_random_uuid() AS notice_id, gen_random_uuid() AS delivery_id FROM generate_series(1, $1)",
    )
    .bind(n as i64)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO notices (id, item_count, payload) SELECT notice_id, $1, $2 FROM backlog")
        .bind(payload.items.len() as i32)
        .bind(serde_json::to_value(payload).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO notice_deliveries (id, notice_id, channel_id) SELECT delivery_id, notice_id, $1 FROM backlog",
    )
    .bind(channel)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
