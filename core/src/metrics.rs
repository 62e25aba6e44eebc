//! Prometheus metrics both services serve: the scrape endpoint on its own
//! port and the latency of every gRPC call. Each service registers its own
//! families beside these (`cudly_api::metrics`, `cudly_collector::metrics`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::IntoResponse as _;
use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// Where metrics are served: an address, or nowhere (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

/// Parses `--metrics-listen`: `off` or a socket address.
pub fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    match s.trim() {
        "off" | "" => Ok(MetricsListen(None)),
        addr => addr
            .parse()
            .map(|a| MetricsListen(Some(a)))
            .map_err(|_| format!("{s:?} is not an address like 0.0.0.0:9090 (or `off`)")),
    }
}

/// Buckets for latencies in seconds: 0.5 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A service's scrape endpoint: its registry, with the RPC latency family
/// added, served on its own port until the endpoint is dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    rpc: RpcMetricsLayer,
    addr: Option<SocketAddr>,
    stop: CancellationToken,
}

impl MetricsEndpoint {
    /// Adds the RPC latency family to `registry` and serves it on `listen`
    /// (port 0 picks one; `None` serves nothing).
    pub async fn start(listen: Option<SocketAddr>, mut registry: Registry) -> anyhow::Result<Self> {
        let rpc = RpcMetricsLayer::register(&mut registry);
        let stop = CancellationToken::new();
        let addr = serve(listen, registry, stop.clone()).await?;
        Ok(MetricsEndpoint { rpc, addr, stop })
    }

    /// The address metrics are served on, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The layer that records every call's latency into this endpoint.
    pub fn rpc_layer(&self) -> RpcMetricsLayer {
        self.rpc.clone()
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `GET /metrics` (OpenMetrics text, which Prometheus scrapes) on
/// `addr` until `shutdown`. Returns the bound address (port 0 picks one);
/// no address serves nothing.
async fn serve(
    addr: Option<SocketAddr>,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = addr else { return Ok(None) };
    let registry = Arc::new(registry);
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|err| anyhow::anyhow!("binding metrics on {addr}: {err}"))?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        [(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                        body,
                    )
                        .into_response(),
                    Err(err) => {
                        tracing::error!(error = %err, "encoding metrics failed");
                        http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }),
    );
    tracing::info!(addr = %local, "metrics served at /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(err) = served {
            tracing::error!(error = %err, "metrics server failed");
        }
    });
    Ok(Some(local))
}

/// Labels of an RPC's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `/package.Service/Method`.
    pub method: String,
    /// The gRPC status code when the response starts (`0` for a call that
    /// answers or starts streaming normally).
    pub code: String,
}

/// Records how long each gRPC call takes until its response starts.
/// Methods outside the served descriptors are labelled `other`, so that
/// callers cannot grow the label set.
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    latency: Family<RpcLabels, Histogram>,
    known: Arc<HashSet<String>>,
}

impl RpcMetricsLayer {
    /// Registers `rpc_duration_seconds` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let mut known = HashSet::new();
        for set in [cudly_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
            let set = prost_types::FileDescriptorSet::decode(set).expect("the compiled-in descriptor sets decode");
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                    }
                }
            }
        }
        let latency = Family::<RpcLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "rpc_duration_seconds",
            "Time from a gRPC call's arrival until its response starts, by method and status code",
            latency.clone(),
        );
        RpcMetricsLayer { latency, known: Arc::new(known) }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService { inner, layer: self.clone() }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
    layer: RpcMetricsLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.layer.known.contains(path) {
            path.to_string()
        } else if path.starts_with("/grpc.reflection.") {
            "reflection".to_string()
        } else {
            "other".to_string()
        };
        let latency = self.layer.latency.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // A call that fails before its body carries the status in its
            // headers (trailers-only); anything else is OK so far.
            let code = match &response {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string(),
                Err(_) => "transport".to_string(),
            };
            latency.get_or_create(&RpcLabels { method, code }).observe(started.elapsed().as_secs_f64());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_listen_parses_off_and_addresses() {
        assert_eq!(parse_metrics_listen("off").unwrap(), MetricsListen(None));
        assert_eq!(
            parse_metrics_listen("127.0.0.1:9090").unwrap(),
            MetricsListen(Some("127.0.0.1:9090".parse().unwrap()))
        );
        assert!(parse_metrics_listen("localhost").unwrap_err().contains("not an address"));
    }
}
