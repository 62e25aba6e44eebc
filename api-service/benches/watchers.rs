//! Watcher fan-out: 10,000 WatchFreshness streams on one api-service
//! process: memory per stream, time from a state change to the last
//! watcher receiving it, and database queries per change, against what the
//! same clients polling GetFreshness every 5 s would cost.
//!
//!   scripts/bench watchers [--streams 10000] [--changes 10]

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Concurrent streams.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// State changes measured.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one watcher last received: the version, and when (ns since start).
struct Received {
    version: AtomicI64,
    at_ns: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pool = support::fresh_database().await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&pool).await.unwrap();

    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The binary cargo built for this bench, wherever its target directory is.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_api-service"));
    let mut api = tokio::process::Command::new(binary)
        .env("DATABASE_URL", std::env::var("DATABASE_URL").unwrap())
        .env("CUDLY_API_LISTEN", addr.to_string())
        .env("CUDLY_WATCH_HEARTBEAT", "60s")
        .env("CUDLY_AUTH_DISABLED", "true")
        .env("CUDLY_MAX_WATCHERS", (args.streams + 100).to_string())
        // The streams open in one burst; shedding it is not what is measured.
        .env("CUDLY_MAX_CONCURRENT_REQUESTS", (args.streams + 100).to_string())
        .env("CUDLY_METRICS_LISTEN", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} (scripts/bench builds it): {e}", binary.display()));
    let pid = api.id().unwrap();
    wait_serving(addr).await;
    let base_rss = rss_kib(pid);

    let epoch = Instant::now();
    let received: Arc<Vec<Received>> = Arc::new(
        (0..args.streams).map(|_| Received { version: AtomicI64::new(0), at_ns: AtomicU64::new(0) }).collect(),
    );
    let connections = args.streams.div_ceil(args.per_connection);
    for c in 0..connections {
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        for i in c * args.per_connection..((c + 1) * args.per_connection).min(args.streams) {
            let (received, mut client) = (received.clone(), RecommendationsServiceClient::new(channel.clone()));
            tokio::spawn(async move {
                let mut stream =
                    client.watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
                while let Ok(Some(f)) = stream.message().await {
                    received[i].at_ns.store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    received[i].version.store(f.version, Ordering::Release);
                }
            });
        }
    }
    let current: i64 = sqlx::query_scalar("SELECT version FROM collection_state").fetch_one(&pool).await.unwrap();
    wait_for(&received, current, Duration::from_secs(60)).await.expect("every stream got its first snapshot");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(pid);
    let per_stream = (rss.saturating_sub(base_rss)) as f64 * 1024.0 / args.streams as f64;

    sqlx::query("SELECT pg_stat_statements_reset()").execute(&pool).await.unwrap();
    let (server_cpu_before, client_cpu_before) = (cpu_time(pid), cpu_time(std::process::id()));
    let mut last_receiver = Vec::new();
    let mut all = Vec::new();
    for change in 0..args.changes {
        let started_ns = epoch.elapsed().as_nanos() as u64;
        let version: i64 =
            sqlx::query_scalar("UPDATE collection_state SET last_collection_error = $1 RETURNING version")
                .bind(format!("benchmark change {change}"))
                .fetch_one(&pool)
                .await
                .unwrap();
        wait_for(&received, version, Duration::from_secs(30)).await.expect("every stream got the change");
        let mut took: Vec<Duration> = received
            .iter()
            .map(|r| Duration::from_nanos(r.at_ns.load(Ordering::Relaxed).saturating_sub(started_ns)))
            .collect();
        took.sort();
        last_receiver.push(*took.last().unwrap());
        all.extend(took);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let server_cpu = (cpu_time(pid) - server_cpu_before) / args.changes as u32;
    let client_cpu = (cpu_time(std::process::id()) - client_cpu_before) / args.changes as u32;
    let state_reads: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
         WHERE query LIKE '%FROM collection_state WHERE id = 1%' AND query LIKE '%coalesce(lease_expires_at%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let all_api: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
         WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'UPDATE collection_state SET last_collection_error%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    api.kill().await.unwrap();

    last_receiver.sort();
    all.sort();
    let seconds = args.changes as f64 * 0.5 + last_receiver.iter().map(Duration::as_secs_f64).sum::<f64>();
    let polling_per_change = args.streams as f64 / 5.0 * (seconds / args.changes as f64);
    println!("watchers: {} streams over {connections} connections on one api-service process", args.streams);
    println!(
        "  memory: RSS {base_rss} KiB idle, {rss} KiB with the streams: {per_stream:.0} B per stream (target <= 8192 B, ratio {:.2})",
        per_stream / 8192.0
    );
    println!(
        "  change to last receiver over {} changes: p50 {:.1} ms   p99 {:.1} ms (target p99 <= 100 ms, ratio {:.2}); all receivers p99 {:.1} ms",
        args.changes,
        support::ms(support::percentile(&last_receiver, 50.0)),
        support::ms(support::percentile(&last_receiver, 99.0)),
        support::percentile(&last_receiver, 99.0).as_secs_f64() / 0.1,
        support::ms(support::percentile(&all, 99.0))
    );
    println!(
        "  CPU per change: api-service {:.1} ms, the 10,000 receiving clients {:.1} ms; on 2 cores the last receiver waits at least {:.1} ms",
        support::ms(server_cpu),
        support::ms(client_cpu),
        support::ms((server_cpu + client_cpu) / 2)
    );
    println!(
        "  database: {:.2} state reads per change ({state_reads} over {} changes; {all_api} statements from the service in all)",
        state_reads as f64 / args.changes as f64,
        args.changes
    );
    println!(
        "  polling instead: {} clients every 5 s = {:.0} queries/s, {:.0} per change at this pace (ratio {:.0}x)",
        args.streams,
        args.streams as f64 / 5.0,
        polling_per_change,
        polling_per_change / (state_reads as f64 / args.changes as f64).max(1.0)
    );
}

/// Waits until every watcher has `version` or newer.
async fn wait_for(received: &[Received], version: i64, within: Duration) -> Option<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if received.iter().all(|r| r.version.load(Ordering::Acquire) >= version) {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

async fn wait_serving(addr: std::net::SocketAddr) {
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest::default();
            if let Ok(r) = health.check(request).await
                && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("api-service did not become SERVING");
}

/// User plus system CPU time a process has used (Linux clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Resident set size of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}
