//! What both gRPC servers share: reflection, listeners, readiness and
//! signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use prost_types::FileDescriptorSet;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::db::{self, Schema};

/// Server reflection v1 and v1alpha (grpcurl 1.8 speaks only v1alpha) that
/// lists `served` (full service names), health and reflection itself, and
/// describes only the files those services need: a client of one server
/// does not discover the other's services.
pub fn reflection(
    served: &[&str],
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let files = descriptors_of(served)?;
    let builder = |reflection: &str| {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(files.clone())
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH)
            .with_service_name(reflection);
        for name in served {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    Ok((
        builder("grpc.reflection.v1.ServerReflection").build_v1()?,
        builder("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?,
    ))
}

/// `routes`, answering a call to any other service with UNIMPLEMENTED that
/// names the services this server does serve (tonic's own fallback answers
/// with an empty message).
pub fn naming_what_is_served(routes: Routes, served: &[&str]) -> Routes {
    let served: Arc<str> = served.iter().copied().chain([HEALTH]).collect::<Vec<_>>().join(", ").into();
    let fallback = move |uri: http::Uri| {
        let served = served.clone();
        async move {
            let service = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default();
            let status = Status::unimplemented(format!(
                "{} is not served here; this server serves {served}",
                crate::quote::quoted(service)
            ));
            let (parts, ()) = status.into_http::<()>().into_parts();
            http::Response::from_parts(parts, tonic::body::Body::empty())
        }
    };
    Routes::from(routes.into_axum_router().fallback(fallback))
}

/// The health service's full name.
const HEALTH: &str = "grpc.health.v1.Health";

/// The files of the cudly protos that define `services`, with every file
/// they import.
fn descriptors_of(services: &[&str]) -> anyhow::Result<FileDescriptorSet> {
    let all = FileDescriptorSet::decode(cudly_proto::FILE_DESCRIPTOR_SET)?;
    let mut wanted: Vec<String> = Vec::new();
    for name in services {
        let file = all
            .file
            .iter()
            .find(|f| f.service.iter().any(|s| format!("{}.{}", f.package(), s.name()) == *name))
            .ok_or_else(|| anyhow::anyhow!("no compiled-in proto defines {name}"))?;
        wanted.push(file.name().to_string());
    }
    let mut i = 0;
    while i < wanted.len() {
        if let Some(file) = all.file.iter().find(|f| f.name() == wanted[i]) {
            for dependency in &file.dependency {
                if !wanted.contains(dependency) {
                    wanted.push(dependency.clone());
                }
            }
        }
        i += 1;
    }
    Ok(FileDescriptorSet { file: all.file.into_iter().filter(|f| wanted.iter().any(|w| w == f.name())).collect() })
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

/// Why a server is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotReady {
    /// The database does not answer.
    Unreachable,
    /// The database answers, but its schema is not the one this build needs.
    Schema(Schema),
    /// The service's own check (`ready()`) does not hold yet.
    Service,
}

/// Keeps health in step with the database until `stop`: SERVING while it
/// answers with the schema this build was made for (every embedded
/// migration applied) and `ready()` holds, NOT_SERVING otherwise, checking
/// every few seconds (more often while not ready, to come back quickly).
/// Each reason for not being ready is logged once, when it starts.
pub async fn track_readiness<S: NamedService>(
    health: HealthReporter,
    pool: PgPool,
    ready: impl Fn() -> bool + Send,
    stop: CancellationToken,
) {
    let mut serving = None;
    let mut reason = None;
    let mut newer_logged = false;
    loop {
        let schema = tokio::time::timeout(Duration::from_secs(2), db::schema(&pool)).await;
        let now = match schema {
            Ok(Ok(schema)) if schema.is_usable() => {
                if let (Schema::Newer { applied }, false) = (schema, newer_logged) {
                    tracing::warn!(
                        schema_version = applied,
                        built_for = db::expected_schema_version(),
                        "the database schema is newer than this build (a newer release migrated it); serving, \
                         as migrations must keep the previous release working"
                    );
                    newer_logged = true;
                }
                if ready() { None } else { Some(NotReady::Service) }
            }
            Ok(Ok(schema)) => Some(NotReady::Schema(schema)),
            Ok(Err(_)) | Err(_) => Some(NotReady::Unreachable),
        };
        if reason != now {
            log_not_ready(now);
            reason = now;
        }
        let is_serving = now.is_none();
        if serving != Some(is_serving) {
            if is_serving {
                tracing::info!(schema_version = db::expected_schema_version(), "database ready; serving");
            }
            let status = if is_serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            report::<S>(&health, status).await;
            serving = Some(is_serving);
        }
        let pause = if is_serving { Duration::from_secs(5) } else { Duration::from_millis(500) };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Says, once, why the server reports NOT_SERVING.
fn log_not_ready(reason: Option<NotReady>) {
    let expected = db::expected_schema_version();
    match reason {
        None => {}
        Some(NotReady::Unreachable) => tracing::warn!("database unreachable; reporting NOT_SERVING"),
        Some(NotReady::Schema(Schema::Behind { applied })) => tracing::warn!(
            schema_version = applied,
            expected_version = expected,
            "waiting for migrations: the database schema is not at version {expected}, which this build needs; \
             run `api-service migrate` (the migration Job); reporting NOT_SERVING until then"
        ),
        Some(NotReady::Schema(Schema::Failed { version })) => tracing::error!(
            failed_version = version,
            expected_version = expected,
            "migration {version} failed half-way; repair the database and run `api-service migrate`; \
             reporting NOT_SERVING until then"
        ),
        Some(NotReady::Schema(schema)) => tracing::warn!(?schema, "schema not usable; reporting NOT_SERVING"),
        Some(NotReady::Service) => tracing::warn!("database ready, service not yet; reporting NOT_SERVING"),
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
