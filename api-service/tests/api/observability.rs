//! Observability across the fire-and-forget hop: one trace from the refresh
//! to the background run's providers, accounts and services; and the
//! Prometheus endpoints of both services.

use std::time::Duration;

use cudly_core::lease::{Acquired, acquire_lease};
use cudly_proto::recommendations::v1 as pb;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sqlx::PgPool;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::grpc_web::http1;
use cudly_testkit::spawn::{Options, spawn_app};

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "expected one {name:?} span, got {}", found.len());
    found[0]
}

// `#[sqlx::test]` runs on a current-thread runtime, so the subscriber set
// for this thread sees every span of both services.
#[sqlx::test(migrations = "../migrations")]
async fn the_background_run_is_traced_as_a_child_of_the_refresh_that_started_it(pool: PgPool) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app(pool, Options { seed: "aws=2,gcp=1", ..Options::default() }).await;
    let run = app.refresh().await.unwrap().collection.unwrap();
    app.wait_for_end(&run.id).await;
    // The run's span closes just after its result is committed.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().unwrap();
        if !named(&spans, "collection").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refresh = one(&spans, "refresh_recommendations");
    let collect = one(&spans, "collect");
    let collection = one(&spans, "collection");
    let trace = refresh.span_context.trace_id();
    assert_eq!(refresh.parent_span_id, SpanId::INVALID, "the refresh starts the trace");
    assert_eq!(collect.span_context.trace_id(), trace, "the delivery joined the refresh's trace");
    assert_eq!(collect.parent_span_id, refresh.span_context.span_id());
    assert_eq!(collection.span_context.trace_id(), trace);
    assert_eq!(collection.parent_span_id, collect.span_context.span_id(), "the run is a child of its delivery");

    let providers = named(&spans, "provider");
    assert_eq!(providers.len(), 3, "aws, azure and gcp");
    for p in &providers {
        assert_eq!(p.parent_span_id, collection.span_context.span_id());
    }
    let provider_ids: Vec<SpanId> = providers.iter().map(|p| p.span_context.span_id()).collect();
    let accounts = named(&spans, "account");
    assert_eq!(accounts.len(), 3, "two AWS accounts and one GCP project");
    assert!(accounts.iter().all(|a| provider_ids.contains(&a.parent_span_id) && a.span_context.trace_id() == trace));
    let account_ids: Vec<SpanId> = accounts.iter().map(|a| a.span_context.span_id()).collect();
    let services = named(&spans, "service");
    assert!(!services.is_empty());
    assert!(services.iter().all(|s| account_ids.contains(&s.parent_span_id) && s.span_context.trace_id() == trace));
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = http1(addr, b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the sample line starting with `series` (labels included).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[sqlx::test(migrations = "../migrations")]
async fn both_services_serve_prometheus_metrics_of_what_happened(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options { metrics: true, ..Options::default() }).await;
    // A run whose collector died: its lease has expired, so the refresh
    // takes it over.
    let Acquired::Started(_) =
        acquire_lease(&pool, cudly_core::domain::Trigger::User, Duration::from_secs(30)).await.unwrap()
    else {
        panic!("the lease was free");
    };
    // Its lease expires (moved in the database rather than waited out).
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let run = app.refresh().await.unwrap().collection.unwrap();
    app.wait_for_end(&run.id).await;
    let _watch = app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap();

    let collector_addr = app.collector.as_ref().unwrap().metrics_addr.unwrap();
    let mut collector = String::new();
    for _ in 0..100 {
        collector = scrape(collector_addr).await;
        if sample(&collector, r#"cudly_collector_runs_total{trigger="user",outcome="succeeded"}"#).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(collector.contains("application/openmetrics-text"), "{collector}");
    assert_eq!(sample(&collector, r#"cudly_collector_runs_total{trigger="user",outcome="succeeded"}"#), Some(1.0));
    assert_eq!(
        sample(&collector, r#"cudly_collector_run_duration_seconds_count{trigger="user",outcome="succeeded"}"#),
        Some(1.0)
    );
    // 3 AWS accounts × 3 services (simulated) × 6 term/payment sweeps.
    let aws_calls = sample(&collector, r#"cudly_collector_provider_requests_total{provider="aws"}"#).unwrap();
    assert!(aws_calls >= 9.0, "{aws_calls}");
    assert_eq!(sample(&collector, r#"cudly_collector_provider_request_errors_total{provider="aws"}"#), Some(0.0));
    assert_eq!(
        sample(
            &collector,
            r#"cudly_rpc_duration_seconds_count{method="/cudly.collector.v1.CollectorService/Collect",code="0"}"#
        ),
        Some(1.0)
    );

    let api = scrape(app.metrics_addr.unwrap()).await;
    assert_eq!(sample(&api, r#"cudly_api_refreshes_total{trigger="user",result="started"}"#), Some(1.0));
    assert_eq!(sample(&api, "cudly_api_lease_takeovers_total"), Some(1.0));
    assert_eq!(sample(&api, "cudly_api_watchers"), Some(1.0));
    let refreshes = r#"cudly_rpc_duration_seconds_count{method="/cudly.recommendations.v1.RecommendationsService/RefreshRecommendations",code="0"}"#;
    assert_eq!(sample(&api, refreshes), Some(1.0));
    // Calls to methods nobody serves do not grow the label set.
    for i in 0..3 {
        let request = format!(
            "POST /made.up.Service/Method{i} HTTP/1.1\r\nHost: api\r\nContent-Type: application/grpc-web+proto\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\n\0\0\0\0\0"
        );
        http1(app.addr, request.as_bytes()).await;
    }
    let api = scrape(app.metrics_addr.unwrap()).await;
    assert!(!api.contains("made.up"), "{api}");
    assert_eq!(sample(&api, r#"cudly_rpc_duration_seconds_count{method="other",code="12"}"#), Some(3.0));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failed_dispatch_is_logged_with_the_trigger_by_name_and_each_cause_once(pool: PgPool) {
    let captured = cudly_testkit::logs::Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // No collector listens: the delivery's connection is refused.
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    let err = app.refresh().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);

    let logs = captured.text();
    let line = logs.lines().find(|l| l.contains("dispatch failed")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("refresh_recommendations{trigger=user}"), "the trigger by name: {line}");
    assert!(line.contains("tcp connect error"), "{line}");
    assert!(line.contains("refused"), "the cause is said: {line}");
    assert!(!line.contains("tcp connect error: tcp connect error"), "each cause once: {line}");
    let freshness = app.freshness().await;
    assert!(!freshness.last_collection_error.contains("tcp connect error: tcp connect error"), "{freshness:?}");
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    use tokio::io::AsyncBufReadExt as _;
    // The database is down (nothing listens on its port): the service still
    // starts, and says so in a few lines.
    let database_url = format!("postgres://cudly@{}/cudly", cudly_testkit::spawn::unused_addr());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-service"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env("CUDLY_AUTH_DISABLED", "true")
        .env("CUDLY_API_LISTEN", "127.0.0.1:0")
        .env("CUDLY_METRICS_LISTEN", "off")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.contains("NOT_SERVING")) {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await;
        seen.push(line.expect("the not-ready line within 20 s").unwrap().expect("api-service exited"));
    }
    child.kill().await.unwrap();
    let logs = seen.join("\n");
    assert!(logs.contains("api-service listening"), "{logs}");
    assert!(!logs.contains("\x1b["), "no ANSI escape codes in a pipe: {logs:?}");
}
