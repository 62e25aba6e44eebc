//! What both gRPC servers share: reflection, listeners, readiness and
//! signals.

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Server reflection v1 and v1alpha (grpcurl 1.8 speaks only v1alpha) over
/// the cudly protos and the health service.
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cudly_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Makes ring the process's TLS crypto provider (idempotent). Two
/// providers are compiled in (tonic's TLS uses ring, the AWS SDK's client
/// aws-lc), and rustls then needs to be told which one TLS built from
/// defaults uses; without this, the first TLS listener or client panics.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Binds `addr` (port 0 picks a free port) with TCP_NODELAY on accepted
/// sockets: without it a streamed message can wait ~40 ms for Nagle.
pub fn bind(addr: SocketAddr) -> anyhow::Result<(TcpIncoming, SocketAddr)> {
    let incoming =
        TcpIncoming::bind(addr).map_err(|err| anyhow::anyhow!("binding {addr}: {err}"))?.with_nodelay(Some(true));
    let local = incoming.local_addr()?;
    Ok((incoming, local))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

/// The health service name that answers SERVING for as long as the process
/// serves at all, whatever the database does: what a liveness probe asks
/// (readiness asks about the server as a whole, which follows the database).
pub const LIVENESS: &str = "liveness";

/// Reports `status` for service `S` and for the server as a whole (the
/// empty service name that Kubernetes probes ask about by default).
pub async fn report<S: NamedService>(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status(S::NAME, status).await;
    health.set_service_status("", status).await;
}

/// Keeps health in step with the database until `stop`: SERVING while it
/// answers (and `ready()` holds), NOT_SERVING while it does not, checking
/// every few seconds (more often while down, to come back quickly).
pub async fn track_readiness<S: NamedService>(
    health: HealthReporter,
    pool: PgPool,
    ready: impl Fn() -> bool + Send,
    stop: CancellationToken,
) {
    let mut serving = None;
    loop {
        let check = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&pool));
        let reachable = matches!(check.await, Ok(Ok(_)));
        let now = reachable && ready();
        if serving != Some(now) {
            if now {
                tracing::info!("database reachable; serving");
            } else {
                tracing::warn!(database_reachable = reachable, "not ready; reporting NOT_SERVING");
            }
            let status = if now { ServingStatus::Serving } else { ServingStatus::NotServing };
            report::<S>(&health, status).await;
            serving = Some(now);
        }
        let pause = if now { Duration::from_secs(5) } else { Duration::from_millis(500) };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Answers a request over the server's size limit with RESOURCE_EXHAUSTED,
/// the code gRPC gives a message larger than the receiver allows. tonic
/// refuses such a request with OUT_OF_RANGE before any handler runs, in a
/// trailers-only response (so the headers carry the status); no handler of
/// these services answers OUT_OF_RANGE, so the code alone tells it apart,
/// whatever tonic's message says. (A request that does not decode is
/// refused with INVALID_ARGUMENT by the servers' codec,
/// `cudly_proto::codec::RequestCodec`.)
pub fn oversized_as_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    if response.headers().get("grpc-status").is_some_and(|code| code == "11") {
        response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
