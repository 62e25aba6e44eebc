//! The fault scenarios.

use std::time::{Duration, Instant};

use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::procs::{Proc, client, free_addr, health, refresh, wait_serving};
use crate::watchers;

/// The URL of the test's own database, for the child processes.
fn db_url(pool: &PgPool) -> String {
    let name = pool.connect_options().get_database().expect("a test database").to_string();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (run through scripts/with-postgres)");
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{name}")
}

/// (generation, outcome) of every run, oldest first.
async fn history(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT generation, outcome FROM collection_runs ORDER BY generation").fetch_all(pool).await.unwrap()
}

async fn rows_of_generation(pool: &PgPool, generation: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE generation = $1")
        .bind(generation)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls GetFreshness (bounded) until the run `id` has ended.
async fn wait_run_end(api: &crate::procs::Client, id: &str, within: Duration) -> pb::Collection {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(f) = api.clone().get_freshness(pb::GetFreshnessRequest {}).await {
            let run = f.into_inner().collection.unwrap_or_default();
            if run.id == id && run.outcome != pb::Outcome::Running as i32 {
                return run;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end within {within:?}");
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn a_collector_killed_mid_run_frees_the_lease_within_the_ttl(pool: PgPool) {
    let db = db_url(&pool);
    let (c_addr, a_addr) = (free_addr(), free_addr());
    let slow = [("CUDLY_LEASE_TTL", "2s"), ("CUDLY_SIM_LATENCY", "500ms")];
    let mut collector = Proc::collector("collector", &db, c_addr, &slow);
    let api_proc = Proc::api("api", &db, a_addr, c_addr, &[("CUDLY_LEASE_TTL", "2s")]);
    wait_serving(&collector, Duration::from_secs(10)).await;
    wait_serving(&api_proc, Duration::from_secs(10)).await;
    let api = client(a_addr).await;

    let first = refresh(&api).await.unwrap().collection.unwrap();
    let mut stream = api.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
    // Killed once the run is collecting (its first progress arrived).
    loop {
        let f = stream.message().await.unwrap().unwrap();
        if f.collection.as_ref().is_some_and(|c| c.id == first.id && !c.providers.is_empty()) {
            break;
        }
    }
    collector.signal("KILL");
    let killed = Instant::now();
    collector.wait_exit(Duration::from_secs(5)).await;
    // Nobody renews its lease now: it is free (and the run abandoned) within
    // the TTL, whatever else is running.
    let freed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let f = stream.message().await.unwrap().unwrap();
            let run = f.collection.unwrap_or_default();
            if run.id == first.id && run.outcome == pb::Outcome::Abandoned as i32 {
                return killed.elapsed();
            }
        }
    })
    .await
    .expect("the dead run's lease was never freed");
    assert!(freed <= Duration::from_secs(3), "the lease was free {freed:?} after the kill (TTL 2 s + 1 s allowed)");
    let collector = Proc::collector("collector-2", &db, c_addr, &slow);
    wait_serving(&collector, Duration::from_secs(10)).await;
    let second = refresh(&api).await.unwrap();
    assert!(!second.deduplicated, "the next refresh starts a new run at once");
    let second = second.collection.unwrap();
    assert_eq!(second.generation, first.generation + 1);
    assert_eq!(history(&pool).await[0], (first.generation, "abandoned".to_string()));
    let end = wait_run_end(&api, &second.id, Duration::from_secs(20)).await;
    assert_eq!(end.outcome, pb::Outcome::Succeeded as i32, "{}", collector.log_tail());
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn a_paused_collector_writes_nothing_once_its_lease_was_taken_over(pool: PgPool) {
    let db = db_url(&pool);
    let (ca, cb, aa, ab) = (free_addr(), free_addr(), free_addr(), free_addr());
    let env = [("CUDLY_LEASE_TTL", "1500ms"), ("CUDLY_SIM_LATENCY", "300ms")];
    let paused = Proc::collector("collector-a", &db, ca, &env);
    let other = Proc::collector("collector-b", &db, cb, &env);
    let api_a = Proc::api("api-a", &db, aa, ca, &[("CUDLY_LEASE_TTL", "1500ms")]);
    let api_b = Proc::api("api-b", &db, ab, cb, &[("CUDLY_LEASE_TTL", "1500ms")]);
    for p in [&paused, &other, &api_a, &api_b] {
        wait_serving(p, Duration::from_secs(10)).await;
    }
    let (via_a, via_b) = (client(aa).await, client(ab).await);

    let old = refresh(&via_a).await.unwrap().collection.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    paused.signal("STOP");
    // Past its lease: taken over through the other replica pair.
    let new = loop {
        let r = refresh(&via_b).await.unwrap();
        if !r.deduplicated {
            break r.collection.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let end = wait_run_end(&via_b, &new.id, Duration::from_secs(20)).await;
    assert_eq!(end.outcome, pb::Outcome::Succeeded as i32);
    let written = rows_of_generation(&pool, new.generation).await;
    assert!(written > 0);

    paused.signal("CONT");
    // Within a heartbeat (TTL/3) it notices and stops; its run's end is the
    // line it logs then (allowed two TTLs).
    let deadline = Instant::now() + Duration::from_secs(3);
    while !paused.log().contains("lease lost, run stopped without writing") {
        assert!(Instant::now() < deadline, "the resumed collector never stopped its run\n{}", paused.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows_of_generation(&pool, old.generation).await, 0, "the paused run wrote nothing");
    assert_eq!(rows_of_generation(&pool, new.generation).await, written, "the newer run's results stand");
    let runs = history(&pool).await;
    assert_eq!(runs[0], (old.generation, "abandoned".to_string()));
    assert_eq!(runs[1], (new.generation, "succeeded".to_string()));
    let f = via_a.clone().get_freshness(pb::GetFreshnessRequest {}).await.unwrap().into_inner();
    assert_eq!(f.collection.unwrap().id, new.id);
    assert_eq!(health(ca).await, Some(ServingStatus::Serving), "the collector itself keeps serving");
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn postgres_restarted_during_a_run_with_a_thousand_watchers(pool: PgPool) {
    let (Ok(bindir), Ok(dir), Ok(user)) =
        (std::env::var("CUDLY_PG_BINDIR"), std::env::var("CUDLY_PG_DIR"), std::env::var("CUDLY_PG_USER"))
    else {
        panic!("CUDLY_PG_BINDIR, CUDLY_PG_DIR and CUDLY_PG_USER come from scripts/with-postgres; run scripts/test");
    };
    let db = db_url(&pool);
    let (c_addr, a_addr) = (free_addr(), free_addr());
    let env = [("CUDLY_LEASE_TTL", "5s"), ("CUDLY_SIM_LATENCY", "400ms")];
    let collector = Proc::collector("collector", &db, c_addr, &env);
    let api_proc = Proc::api("api", &db, a_addr, c_addr, &[("CUDLY_LEASE_TTL", "5s"), ("CUDLY_WATCH_HEARTBEAT", "1s")]);
    wait_serving(&collector, Duration::from_secs(10)).await;
    wait_serving(&api_proc, Duration::from_secs(10)).await;
    let api = client(a_addr).await;
    let watchers = watchers::start(vec![a_addr], 1_000, 10).await;
    assert_eq!(watchers::wait_all(&watchers, Duration::from_secs(10), |_| true).await, 0, "every watcher connected");

    let run = refresh(&api).await.unwrap().collection.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pg_ctl = format!("{bindir}/pg_ctl");
    let mut cmd = if user == whoami() {
        tokio::process::Command::new(&pg_ctl)
    } else {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", &user, "--", &pg_ctl]);
        c
    };
    // The server inherits pg_ctl's output: send it to the log file, or
    // reading pg_ctl's output would wait for the server to exit.
    let log = format!("{dir}/postgres.log");
    let restarted = cmd
        .args(["-D", &format!("{dir}/data"), "-l", &log, "-m", "fast", "-w", "-t", "30", "restart"])
        // From the cluster's directory: the server user may not be allowed
        // into this process's working directory.
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(restarted.success(), "pg_ctl restart failed; see {log}");

    // The run either finishes or is abandoned (its lease expires); then a
    // refresh recovers. Either way every watcher ends on a finished run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let final_id = loop {
        assert!(Instant::now() < deadline, "no run finished after the restart\n{}", collector.log_tail());
        if let Ok(f) = api.clone().get_freshness(pb::GetFreshnessRequest {}).await {
            let f = f.into_inner();
            let current = f.collection.clone().unwrap_or_default();
            if current.outcome == pb::Outcome::Succeeded as i32 {
                break current.id;
            }
            if !f.collecting {
                let _ = refresh(&api).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pending = watchers::wait_all(&watchers, Duration::from_secs(20), |f| {
        f.collection.as_ref().is_some_and(|c| c.id == final_id && c.outcome == pb::Outcome::Succeeded as i32)
    })
    .await;
    assert_eq!(pending, 0, "{pending} of 1000 watchers never saw the final state\n{}", api_proc.log_tail());
    let runs = history(&pool).await;
    assert!(runs.iter().all(|(_, o)| o == "succeeded" || o == "abandoned"), "{runs:?}");
    if final_id != run.id {
        assert_eq!(runs[0].1, "abandoned", "the interrupted run is recorded as such");
    }
}

fn whoami() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn watchers_see_the_next_change_after_the_listen_connection_is_killed(pool: PgPool) {
    let db = db_url(&pool);
    let (c_addr, a_addr) = (free_addr(), free_addr());
    let collector = Proc::collector("collector", &db, c_addr, &[("CUDLY_SIM_LATENCY", "50ms")]);
    let api_proc = Proc::api("api", &db, a_addr, c_addr, &[]);
    wait_serving(&collector, Duration::from_secs(10)).await;
    wait_serving(&api_proc, Duration::from_secs(10)).await;
    let api = client(a_addr).await;
    let watchers = watchers::start(vec![a_addr], 20, 2).await;
    watchers::wait_all(&watchers, Duration::from_secs(10), |_| true).await;

    let killed: i64 = sqlx::query_scalar(
        // The hub's LISTEN (the collector's deliverers listen on another
        // channel).
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' || $1 || '%'",
    )
    .bind(cudly_core::schema::STATE_CHANNEL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    let run = refresh(&api).await.unwrap().collection.unwrap();
    let pending = watchers::wait_all(&watchers, Duration::from_secs(15), |f| {
        f.collection.as_ref().is_some_and(|c| c.id == run.id && c.outcome == pb::Outcome::Succeeded as i32)
    })
    .await;
    assert_eq!(pending, 0, "{}", api_proc.log_tail());
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn services_started_without_their_database_wait_not_serving_then_serve(pool: PgPool) {
    // The database is reached through a port that refuses connections until
    // the test starts forwarding it to the real server.
    let real = db_url(&pool);
    let (host_port, name) = real.rsplit_once('/').unwrap();
    let real_addr: std::net::SocketAddr = host_port.rsplit_once('@').unwrap().1.parse().unwrap();
    let proxy_addr = free_addr();
    let db = format!("postgres://postgres@{proxy_addr}/{name}");
    let (c_addr, a_addr) = (free_addr(), free_addr());
    let collector = Proc::collector("collector", &db, c_addr, &[]);
    let api_proc = Proc::api("api", &db, a_addr, c_addr, &[]);

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(health(c_addr).await, Some(ServingStatus::NotServing), "{}", collector.log_tail());
    assert_eq!(health(a_addr).await, Some(ServingStatus::NotServing), "{}", api_proc.log_tail());
    let err = refresh(&client(a_addr).await).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let listener = tokio::net::TcpListener::bind(proxy_addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(real_addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let up = Instant::now();
    wait_serving(&collector, Duration::from_secs(10)).await;
    wait_serving(&api_proc, Duration::from_secs(10)).await;
    assert!(up.elapsed() < Duration::from_secs(5), "serving {:?} after the database came up", up.elapsed());
    let api = client(a_addr).await;
    let run = refresh(&api).await.unwrap().collection.unwrap();
    let end = wait_run_end(&api, &run.id, Duration::from_secs(20)).await;
    assert_eq!(end.outcome, pb::Outcome::Succeeded as i32, "the seeded accounts were collected");
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn draining_one_of_two_api_replicas_moves_its_watchers_to_the_other(pool: PgPool) {
    let db = db_url(&pool);
    let (c_addr, a1, a2) = (free_addr(), free_addr(), free_addr());
    let collector = Proc::collector("collector", &db, c_addr, &[("CUDLY_SIM_LATENCY", "300ms")]);
    let mut draining = Proc::api("api-1", &db, a1, c_addr, &[]);
    let staying = Proc::api("api-2", &db, a2, c_addr, &[]);
    for p in [&collector, &draining, &staying] {
        wait_serving(p, Duration::from_secs(10)).await;
    }
    let watchers = watchers::start(vec![a1, a2], 50, 2).await;
    watchers::wait_all(&watchers, Duration::from_secs(10), |_| true).await;

    let run = refresh(&client(a2).await).await.unwrap().collection.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    draining.signal("TERM");
    assert_eq!(draining.wait_exit(Duration::from_secs(15)).await, Some(0), "a clean drain");

    let pending = watchers::wait_all(&watchers, Duration::from_secs(20), |f| {
        f.collection.as_ref().is_some_and(|c| c.id == run.id && c.outcome == pb::Outcome::Succeeded as i32)
    })
    .await;
    assert_eq!(pending, 0, "every watcher reached the final state on the other replica");
    for w in &watchers {
        let seen = w.borrow();
        assert_eq!(seen.unavailable, 1, "each stream of the drained replica ended with UNAVAILABLE once");
        assert!(seen.versions.windows(2).all(|v| v[0] <= v[1]), "no version went back: {:?}", seen.versions);
    }
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "fault test: restarts Postgres; scripts/test runs these one at a time"]
async fn random_triggers_and_collector_kills_never_overlap_runs(pool: PgPool) {
    // Every write to the results, with the database's time, as it is made:
    // a stale write stays on record even if a later run overwrites the row.
    for statement in [
        "CREATE TABLE write_audit (generation bigint NOT NULL, at timestamptz NOT NULL)",
        "CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO write_audit VALUES (NEW.generation, clock_timestamp()); RETURN NEW; END $$",
        "CREATE TRIGGER audit_write AFTER INSERT OR UPDATE ON recommendations
         FOR EACH ROW EXECUTE FUNCTION audit_write()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let db = db_url(&pool);
    let (c_addr, a_addr) = (free_addr(), free_addr());
    let env = [("CUDLY_LEASE_TTL", "1s"), ("CUDLY_SIM_LATENCY", "40ms"), ("CUDLY_SIM_JITTER", "35ms")];
    let api_env = [("CUDLY_LEASE_TTL", "1s"), ("CUDLY_AUTO_REFRESH_BACKOFF", "0s")];
    let mut collector = Proc::collector("collector-0", &db, c_addr, &env);
    let api_proc = Proc::api("api", &db, a_addr, c_addr, &api_env);
    wait_serving(&collector, Duration::from_secs(10)).await;
    wait_serving(&api_proc, Duration::from_secs(10)).await;
    let api = client(a_addr).await;

    let rounds: u64 = std::env::var("CUDLY_FAULT_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("CUDLY_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    println!("rounds {rounds}, seed {seed} (CUDLY_FAULT_ROUNDS, CUDLY_FAULT_SEED)");
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut kills = 0;
    for round in 0..rounds {
        match next(9) {
            0..=3 => {
                let calls = (0..5).map(|_| refresh(&api));
                let _ = futures_util::future::join_all(calls).await;
            }
            4 => {
                let req = pb::RefreshRecommendationsRequest { trigger: pb::Trigger::Schedule as i32 };
                let _ = api.clone().refresh_recommendations(req).await;
            }
            5 => {
                // Pretend the data is stale (or was never collected) so the
                // read itself triggers.
                let sql = if next(2) == 0 {
                    "UPDATE collection_state SET last_collected_at = NULL, finished_at = now() - interval '1 hour'"
                } else {
                    "UPDATE collection_state SET last_collected_at = now() - interval '2 days', finished_at = now() - interval '1 hour'"
                };
                sqlx::query(sql).execute(&pool).await.unwrap();
                let _ = api.clone().list_recommendations(pb::ListRecommendationsRequest::default()).await;
            }
            6 => {
                collector.signal("KILL");
                collector.wait_exit(Duration::from_secs(5)).await;
                kills += 1;
                collector = Proc::collector(&format!("collector-{round}"), &db, c_addr, &env);
                wait_serving(&collector, Duration::from_secs(10)).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(next(300))).await,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the last run end or its lease expire.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    type Run = (i64, String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>);
    let runs: Vec<Run> =
        sqlx::query_as("SELECT generation, outcome, started_at, finished_at FROM collection_runs ORDER BY generation")
            .fetch_all(&pool)
            .await
            .unwrap();
    println!("{} runs, {kills} collector kills", runs.len());
    assert!(runs.len() >= 5, "the rounds started runs: {runs:?}");
    for pair in runs.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let prev_end = prev.3.unwrap_or_else(|| panic!("run {} never ended before {} started", prev.0, next.0));
        assert!(next.2 >= prev_end, "runs {} and {} held the lease at once", prev.0, next.0);
    }
    assert!(runs.iter().filter(|r| r.1 == "running").count() <= 1);
    // Every write that was committed came from a run that finished (an
    // abandoned, cancelled or failed run wrote nothing), made while it held
    // the lease: after it started and before any later run started (its
    // writes are timed by clock_timestamp() inside its finishing
    // transaction; the next run can only start after that commits).
    let writes: i64 = sqlx::query_scalar("SELECT count(*) FROM write_audit").fetch_one(&pool).await.unwrap();
    assert!(writes > 0, "the rounds wrote results");
    let stale: Vec<(i64, String)> = sqlx::query_as(
        "SELECT w.generation, coalesce(c.outcome, 'no run') FROM write_audit w
         LEFT JOIN collection_runs c ON c.generation = w.generation
         WHERE c.outcome IS NULL OR c.outcome NOT IN ('succeeded', 'partially_succeeded')
            OR w.at < c.started_at
            OR EXISTS (SELECT 1 FROM collection_runs n WHERE n.generation > w.generation AND n.started_at <= w.at)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        stale.is_empty(),
        "{} writes outside their run's lease, first: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}
