//! Notice delivery: (1) the time from a notice's commit to its arrival at
//! a local webhook receiver, over notices committed one at a time with a
//! small gap; (2) a backlog of pending deliveries drained by two
//! deliverers on the same database: the count at the receiver (no
//! duplicate, no loss), the elapsed time and the rate.
//!
//!   scripts/bench notify [--notices 500] [--gap 20ms] [--backlog 10000]

use std::time::{Duration, Instant};

use clap::Parser;
use cudly_collector::metrics::CollectorMetrics;
use cudly_collector::notify::{Deliverer, DeliverySettings};
use cudly_core::credentials::SecretFileDirs;
use cudly_testkit::notify::{Receiver, channel, payload, queue, queue_backlog, signing_secret};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Notices committed one at a time for the latency figure.
    #[arg(long, default_value_t = 500)]
    notices: usize,
    /// Gap between two of them.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    gap: Duration,
    /// Pending deliveries drained by two deliverers.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

const KEY: &[u8] = b"a signing key of thirty-two byte";

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run the benchmark through scripts/bench notify");
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(30).connect(&url).await.unwrap();
    cudly_core::db::migrate(&pool).await.unwrap();
    sqlx::query("TRUNCATE notice_deliveries, notices, notification_channels").execute(&pool).await.unwrap();
    let dir = std::env::temp_dir().join(format!("cudly-bench-notify-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hook.key"), signing_secret(KEY)).unwrap();
    let settings = DeliverySettings {
        secret_files: SecretFileDirs::new([dir.clone()]).unwrap(),
        ..cudly_testkit::settings::collector().notify
    };
    println!(
        "two deliverers, {} sends at once each (the default), a webhook receiver on 127.0.0.1 checking every signature",
        settings.concurrency
    );

    let receiver = Receiver::start(KEY).await;
    let hook = channel(
        &pool,
        "bench",
        "webhook",
        serde_json::json!({"url": receiver.url("/hook"), "signing_secret_ref": format!("file:{}", dir.join("hook.key").display())}),
    )
    .await;

    latency(&pool, &settings, &receiver, hook, &args).await;
    let first_part = receiver.requests().len();
    drain(&pool, &settings, &receiver, hook, args.backlog, first_part).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two deliverers on `pool`; cancel the token to stop them.
fn deliverers(pool: &PgPool, settings: &DeliverySettings) -> (CancellationToken, Vec<tokio::task::JoinHandle<()>>) {
    let stop = CancellationToken::new();
    let tasks = (0..2)
        .map(|_| {
            let metrics = CollectorMetrics::register(&mut Registry::default());
            let deliverer = Deliverer::new(pool.clone(), settings.clone(), metrics).unwrap();
            tokio::spawn(deliverer.run(stop.clone()))
        })
        .collect();
    (stop, tasks)
}

async fn latency(pool: &PgPool, settings: &DeliverySettings, receiver: &Receiver, hook: uuid::Uuid, args: &Args) {
    let (stop, tasks) = deliverers(pool, settings);
    let notice = payload(10);
    let mut committed = Vec::with_capacity(args.notices);
    for _ in 0..args.notices {
        // Taken before the transaction starts: the figure is an upper
        // bound of commit -> arrival (it includes the inserts and the
        // commit itself, about a millisecond).
        let at = Instant::now();
        let [id] = queue(pool, &notice, &[hook]).await[..] else { unreachable!() };
        committed.push((id.to_string(), at));
        tokio::time::sleep(args.gap).await;
    }
    let n = args.notices;
    receiver.wait_for("every notice", Duration::from_secs(60), |r| r.len() >= n).await;
    let arrived: std::collections::HashMap<String, Instant> =
        receiver.requests().into_iter().map(|r| (r.webhook_id.unwrap(), r.at)).collect();
    let mut ms: Vec<f64> =
        committed.iter().map(|(id, at)| arrived[id].duration_since(*at).as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "commit -> receiver over {n} notices ({:?} apart): p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms (target p99 <= 1000 ms, ratio {:.4})",
        args.gap,
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1],
        pct(0.99) / 1000.0
    );
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn drain(
    pool: &PgPool,
    settings: &DeliverySettings,
    receiver: &Receiver,
    hook: uuid::Uuid,
    backlog: usize,
    before: usize,
) {
    queue_backlog(pool, &payload(10), hook, backlog).await;
    let started = Instant::now();
    let (stop, tasks) = deliverers(pool, settings);
    receiver.wait_for("the backlog", Duration::from_secs(600), |r| r.len() >= before + backlog).await;
    let delivered_in_db = loop {
        let (pending, delivered): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'delivered')
             FROM notice_deliveries",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if pending == 0 {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let per_id = receiver.delivered_per_id();
    let duplicates = per_id.values().filter(|&&n| n > 1).count();
    let requests = receiver.requests().len() - before;
    let unsigned = receiver.requests().iter().filter(|r| !r.signed).count();
    println!(
        "backlog of {backlog} drained by two deliverers: {requests} requests, {} distinct ids at the receiver \
         (both parts), {duplicates} duplicates, {unsigned} unsigned, {delivered_in_db} delivered in the database; \
         {:.2} s, {:.0} deliveries/s",
        per_id.len(),
        elapsed.as_secs_f64(),
        backlog as f64 / elapsed.as_secs_f64()
    );
}
