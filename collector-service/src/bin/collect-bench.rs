//! collect-bench: how close a run comes to the critical path its caps allow.
//!
//! Runs the real engine over a simulated fleet (default 3 providers × 50
//! accounts, 100 ms per call) and prints the wall time, the ideal critical
//! path (what the caps allow if every call took exactly its latency and
//! nothing else cost anything), and their ratio; then the same with every
//! cap set to 1. With DATABASE_URL set it also times a whole run: lease,
//! heartbeat, progress writes and the finish transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use cudly_collector::accounts::{SeedSpec, seed_simulated_accounts, simulated_account};
use cudly_collector::collection::{CollectionContext, CollectionEnd, run_collection};
use cudly_collector::engine::{self, EngineConfig};
use cudly_collector::metrics::CollectorMetrics;
use cudly_collector::providers::simulated::{SimulatedBackend, SimulatedConfig};
use cudly_collector::providers::{Backends, CloudBackend};
use cudly_core::domain::{Account, Provider, Trigger};
use cudly_core::lease::{Acquired, Lease, acquire_lease};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Measures collection wall time against the ideal critical path.
#[derive(Debug, Parser)]
#[command(name = "collect-bench")]
struct Args {
    /// Accounts per provider.
    #[arg(long, default_value_t = 50)]
    accounts: u32,
    /// Seeds the simulated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Latency of one simulated call.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Each call's latency is uniform in latency ± jitter.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Accounts of one provider at once.
    #[arg(long, default_value_t = 20)]
    account_parallelism: usize,
    /// Regions of one (account, service) at once.
    #[arg(long, default_value_t = 10)]
    region_parallelism: usize,
    /// Skip the run with every cap at 1 (it takes minutes).
    #[arg(long)]
    skip_serial: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = SimulatedConfig { seed: args.seed, latency: args.latency, jitter: args.jitter, failure_rate: 0.0 };
    let accounts: Vec<Account> =
        Provider::ALL.iter().flat_map(|&p| (1..=args.accounts).map(move |n| simulated_account(p, n))).collect();
    println!(
        "fleet: {} providers × {} accounts, {:?} per call (± {:?})",
        Provider::ALL.len(),
        args.accounts,
        args.latency,
        args.jitter
    );

    let caps =
        EngineConfig { max_account_parallelism: args.account_parallelism, region_parallelism: args.region_parallelism };
    measure_engine("capped", &sim, &accounts, &caps).await;
    if !args.skip_serial {
        let serial = EngineConfig { max_account_parallelism: 1, region_parallelism: 1 };
        measure_engine("serial", &sim, &accounts, &serial).await;
    }
    if std::env::var_os("DATABASE_URL").is_some() {
        measure_full_run(&args, &sim, &caps).await?;
    } else {
        println!("(set DATABASE_URL, or run scripts/bench-collect, to also time a whole run with persistence)");
    }
    Ok(())
}

fn backends(sim: &SimulatedConfig) -> Backends {
    Provider::ALL.iter().map(|&p| Arc::new(SimulatedBackend::new(p, sim.clone())) as Arc<dyn CloudBackend>).collect()
}

async fn measure_engine(label: &str, sim: &SimulatedConfig, accounts: &[Account], caps: &EngineConfig) {
    let ideal = ideal_critical_path(sim, accounts, caps).await;
    let backends = backends(sim);
    let (progress, _) = tokio::sync::watch::channel(Vec::new());
    let started = Instant::now();
    let collected = engine::collect(&backends, accounts, caps, &progress).await;
    let wall = started.elapsed();
    println!(
        "{label:>7} (accounts {}, regions {}): wall {:>8.3} s  ideal {:>8.3} s  ratio {:.3}  ({} recommendations)",
        caps.max_account_parallelism,
        caps.region_parallelism,
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        wall.as_secs_f64() / ideal.as_secs_f64(),
        collected.recommendations.len()
    );
}

/// The critical path the caps allow: per provider, waves of accounts (the
/// account cap), each as long as its slowest service; a service is waves of
/// regions (the region cap) times its sequential sweeps; GCP first lists
/// regions. Providers run side by side, so the run takes the longest.
async fn ideal_critical_path(sim: &SimulatedConfig, accounts: &[Account], caps: &EngineConfig) -> Duration {
    let instant = SimulatedConfig { latency: Duration::ZERO, jitter: Duration::ZERO, ..sim.clone() };
    let mut longest = Duration::ZERO;
    for backend in backends(&instant) {
        let mine: Vec<&Account> = accounts.iter().filter(|a| a.provider == backend.provider()).collect();
        let Some(first) = mine.first() else { continue };
        let regions = backend.regions(first, &Default::default()).await.expect("the simulated region list");
        let region_waves = regions.as_ref().map_or(1, |r| r.len().div_ceil(caps.region_parallelism)) as u32;
        let listing = if regions.is_some() { sim.latency } else { Duration::ZERO };
        let slowest_service = backend
            .services()
            .iter()
            .map(|&s| sim.latency * region_waves * backend.sweeps(s).len() as u32)
            .max()
            .unwrap_or_default();
        let account_waves = mine.len().div_ceil(caps.max_account_parallelism) as u32;
        longest = longest.max((listing + slowest_service) * account_waves);
    }
    longest
}

async fn measure_full_run(args: &Args, sim: &SimulatedConfig, caps: &EngineConfig) -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(5).connect(&url).await?;
    cudly_core::db::migrate(&pool).await?;
    sqlx::query!("DELETE FROM accounts").execute(&pool).await?;
    let spec = SeedSpec(Provider::ALL.iter().map(|&p| (p, args.accounts)).collect());
    seed_simulated_accounts(&pool, &spec).await?;
    let ctx = Arc::new(CollectionContext {
        pool: pool.clone(),
        backends: backends(sim),
        engine: caps.clone(),
        lease_ttl: Duration::from_secs(30),
        progress_interval: Duration::from_millis(500),
        metrics: CollectorMetrics::register(&mut Registry::default()),
        // The collector's own defaults (and CUDLY_NOTIFY_* / CUDLY_CONSOLE_URL).
        notices: <cudly_collector::config::Config as clap::Parser>::try_parse_from(["collector-service"])?
            .notice_rules(),
    });
    let Acquired::Started(run) = acquire_lease(&pool, Trigger::User, Duration::from_secs(30)).await? else {
        anyhow::bail!("a run already holds the lease");
    };
    let (collection_id, generation) = (run.collection_id, run.generation);
    let lease = Lease { collection_id, generation, trigger: Trigger::User };
    let started = Instant::now();
    let end = run_collection(ctx, lease, CancellationToken::new(), opentelemetry::Context::new()).await;
    let wall = started.elapsed();
    let CollectionEnd::Finished(finished) = end else { anyhow::bail!("the run did not finish: {end:?}") };
    println!(
        "full run with persistence: wall {:.3} s ({} recommendations written, outcome {})",
        wall.as_secs_f64(),
        finished.written,
        finished.outcome
    );
    Ok(())
}
