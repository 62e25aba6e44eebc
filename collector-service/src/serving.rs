//! What both gRPC servers share: reflection, listeners and signals.

use std::net::SocketAddr;

use tonic::transport::server::TcpIncoming;

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

/// Reports NOT_SERVING for service `S` and for the server as a whole (the
/// empty service name that Kubernetes probes ask about by default).
pub async fn report_not_serving<S: tonic::server::NamedService>(health: &tonic_health::server::HealthReporter) {
    health.set_not_serving::<S>().await;
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
}
