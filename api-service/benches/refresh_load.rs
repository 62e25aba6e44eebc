//! Refresh under load: concurrent clients calling RefreshRecommendations
//! on loopback while a run is in flight (every call joins it), against
//! pgbench running the same statement on the same Postgres.
//!
//!   scripts/bench refresh_load [--clients 64] [--seconds 5] [--rate 1000]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use cudly_collector::providers::simulated::{SimulatedBackend, SimulatedConfig};
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Concurrent clients in the closed-loop phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests per second in the open-loop phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pool = support::fresh_database().await;
    let db_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&std::env::var("DATABASE_URL").unwrap())
        .await
        .unwrap();
    cudly_collector::accounts::seed_simulated_accounts(&pool, &"aws=1".parse().unwrap()).await.unwrap();

    // A collector whose run never ends during the benchmark.
    let sim = SimulatedConfig {
        latency: Duration::from_secs(600),
        jitter: Duration::ZERO,
        ..cudly_testkit::settings::simulated()
    };
    let backends = vec![Arc::new(SimulatedBackend::new(cudly_core::domain::Provider::Aws, sim)) as _];
    let collector_settings = cudly_testkit::settings::collector();
    let collector = cudly_collector::app::build(collector_settings, pool.clone(), backends).await.unwrap();
    let collector_addr = collector.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(collector.run(stop.clone().cancelled_owned()));
    let settings = cudly_testkit::settings::api(&format!("http://{collector_addr}"));
    let api = cudly_api::app::build(settings, db_pool).await.unwrap();
    let addr = api.local_addr();
    tokio::spawn(api.run(stop.clone().cancelled_owned()));

    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap());
    }
    let first = RecommendationsServiceClient::new(channels[0].clone())
        .refresh_recommendations(pb::RefreshRecommendationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.deduplicated, "the benchmark starts the run it then joins");
    let phase = Duration::from_secs(args.seconds);

    // Closed loop: as fast as the clients can go.
    let deadline = Instant::now() + phase;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let mut client = RecommendationsServiceClient::new(channels[i % channels.len()].clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = client.refresh_recommendations(pb::RefreshRecommendationsRequest::default()).await.unwrap();
                    assert!(r.get_ref().deduplicated);
                    took.push(t.elapsed());
                }
                took
            })
        })
        .collect();
    let mut closed = Vec::new();
    for t in tasks {
        closed.extend(t.await.unwrap());
    }
    let closed_rate = closed.len() as f64 / started.elapsed().as_secs_f64();
    closed.sort();

    // The same load on a call that never touches the database (health
    // Check): what the gRPC stack itself allows on this machine.
    let deadline = Instant::now() + phase;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channels[i % channels.len()].clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    client.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut health_calls = 0;
    for t in tasks {
        health_calls += t.await.unwrap();
    }
    let health_rate = health_calls as f64 / started.elapsed().as_secs_f64();

    // Open loop: a fixed rate, latency measured from each request's
    // scheduled start (no coordinated omission).
    let total = args.rate * args.seconds;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = t0 + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = RecommendationsServiceClient::new(channels[i as usize % channels.len()].clone());
        handles.push(tokio::spawn(async move {
            client.refresh_recommendations(pb::RefreshRecommendationsRequest::default()).await.unwrap();
            scheduled.elapsed()
        }));
    }
    let mut open = Vec::with_capacity(handles.len());
    for h in handles {
        open.push(h.await.unwrap());
    }
    open.sort();
    stop.cancel();

    let (pgbench_select, pgbench_update) =
        (pgbench(args.clients, args.seconds, SELECT), pgbench(args.clients, args.seconds, UPDATE));
    println!(
        "refresh under load (a run in flight: every call joins it), {} clients, {} s a phase",
        args.clients, args.seconds
    );
    println!(
        "  closed loop:  {:>8.0} req/s   p50 {:.2} ms   p99 {:.2} ms",
        closed_rate,
        support::ms(support::percentile(&closed, 50.0)),
        support::ms(support::percentile(&closed, 99.0))
    );
    println!("  pgbench, the statement a joining refresh runs:   {pgbench_select:>8.0} tps");
    println!("  pgbench, the conditional acquire UPDATE:         {pgbench_update:>8.0} tps");
    println!("  ratio refresh / pgbench (same statement): {:.2} (target >= 0.50)", closed_rate / pgbench_select);
    println!(
        "  gRPC floor, health Check under the same load: {health_rate:>8.0} req/s (refresh reaches {:.2} of it)",
        closed_rate / health_rate
    );
    // Client, server and Postgres share the cores: a refresh costs the
    // machine one pgbench statement plus one gRPC call, so this is the most
    // any implementation with one database round trip can reach here.
    let ceiling = 1.0 / (1.0 / pgbench_select + 1.0 / health_rate);
    println!(
        "  ceiling on these cores, one statement + one call: {ceiling:>8.0} req/s = {:.2} of pgbench (refresh reaches {:.2} of it)",
        ceiling / pgbench_select,
        closed_rate / ceiling
    );
    println!(
        "  open loop at {} req/s: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms (target p99 <= 10 ms, ratio {:.2})",
        args.rate,
        support::ms(support::percentile(&open, 50.0)),
        support::ms(support::percentile(&open, 99.0)),
        support::ms(*open.last().unwrap()),
        support::percentile(&open, 99.0).as_secs_f64() / 0.010
    );
}

/// What a refresh that joins a run sends (lease.rs, `held_lease`).
const SELECT: &str = "SELECT collection_id, generation, trigger, started_at, last_collected_at
  FROM collection_state WHERE id = 1 AND lease_expires_at > now();";

/// The acquire, as lease.rs sends it (it matches no row while a run holds
/// the lease).
const UPDATE: &str = "UPDATE collection_state SET generation = generation + 1, collection_id = gen_random_uuid(),
  trigger = 'user', started_at = now(), lease_expires_at = now() + make_interval(secs => 30)
  WHERE id = 1 AND (lease_expires_at IS NULL OR lease_expires_at <= now());";

/// Runs `sql` under pgbench (prepared statements) and returns its rate.
fn pgbench(clients: usize, seconds: u64, sql: &str) -> f64 {
    let bindir = std::env::var("CUDLY_PG_BINDIR").expect("CUDLY_PG_BINDIR: run through scripts/bench");
    let script = std::env::temp_dir().join(format!("cudly-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, sql).unwrap();
    let out = std::process::Command::new(format!("{bindir}/pgbench"))
        .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(std::env::var("DATABASE_URL").unwrap())
        .output()
        .expect("running pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok());
    tps.unwrap_or_else(|| panic!("pgbench said:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)))
}
