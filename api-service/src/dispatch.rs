//! Handing a run to collector-service: fire-and-forget, but we wait for the
//! acknowledgement (a short deadline), never for the collection.

use std::time::Duration;

use cudly_proto::collector::v1::CollectRequest;
use cudly_proto::collector::v1::collector_service_client::CollectorServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::lease::RunInfo;

/// A client of CollectorService with a deadline per delivery.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    client: CollectorServiceClient<Channel>,
}

impl Dispatcher {
    /// A dispatcher to the collector at `url` (e.g. `http://127.0.0.1:50052`).
    /// Connects lazily: a collector that is down fails the delivery, not the
    /// start-up.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| anyhow::anyhow!("collector URL {url:?}: {err}"))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        Ok(Dispatcher { client: CollectorServiceClient::new(endpoint.connect_lazy()) })
    }

    /// Delivers `run`; `Ok` once the collector acknowledged it.
    pub async fn dispatch(&self, run: &RunInfo) -> Result<(), tonic::Status> {
        let request = CollectRequest {
            collection_id: run.collection_id.to_string(),
            generation: run.generation,
            trigger: run.trigger.as_str().to_string(),
        };
        let response = self.client.clone().collect(request).await?;
        if response.get_ref().duplicate {
            tracing::info!(run_id = %run.collection_id, "collector already had the run");
        }
        Ok(())
    }
}
