//! Handing a run to collector-service: fire-and-forget, but we wait for the
//! acknowledgement (a short deadline), never for the collection.

use std::path::PathBuf;
use std::time::Duration;

use cudly_core::files::{read_file, read_token};
use cudly_core::telemetry::inject_trace_context;
use cudly_proto::collector::v1::CollectRequest;
use cudly_proto::collector::v1::collector_service_client::CollectorServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use cudly_core::lease::Collection;

/// How api-service proves itself to the collector.
#[derive(Clone, Debug, Default)]
pub struct CollectorCredentials {
    /// Bearer token file.
    pub token_file: Option<PathBuf>,
    /// CA of the collector's certificate (for `https://` URLs).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key files (mTLS).
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// A client of CollectorService with a deadline per delivery.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    client: CollectorServiceClient<Channel>,
    bearer: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Dispatcher {
    /// A dispatcher to the collector at `url` (e.g. `http://127.0.0.1:50052`,
    /// or `https://…` for TLS). Connects lazily: a collector that is down
    /// fails the delivery, not the start-up. Unreadable credential files
    /// fail here, naming the file.
    pub fn new(url: &str, timeout: Duration, credentials: &CollectorCredentials) -> anyhow::Result<Self> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| anyhow::anyhow!("collector URL {url:?}: {err}"))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        let wants_tls = credentials.ca_file.is_some() || credentials.client_identity.is_some();
        if url.starts_with("https://") || wants_tls {
            anyhow::ensure!(url.starts_with("https://"), "collector URL {url:?}: TLS credentials need an https:// URL");
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &credentials.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read_file(ca)?));
            }
            if let Some((cert, key)) = &credentials.client_identity {
                tls = tls.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let bearer = match &credentials.token_file {
            Some(file) => Some(bearer_value(&read_token(file)?)?),
            None => None,
        };
        Ok(Dispatcher { client: CollectorServiceClient::new(endpoint.connect_lazy()), bearer })
    }

    /// Delivers `run`; `Ok` once the collector acknowledged it. The current
    /// trace context travels along, so the run shows up in the same trace.
    pub async fn dispatch(&self, run: &Collection) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(CollectRequest {
            collection_id: run.collection_id.to_string(),
            generation: run.generation,
            trigger: run.trigger.to_proto(),
        });
        if let Some(bearer) = &self.bearer {
            request.metadata_mut().insert("authorization", bearer.clone());
        }
        inject_trace_context(request.metadata_mut());
        let response = self.client.clone().collect(request).await?;
        if response.get_ref().duplicate {
            tracing::info!(collection_id = %run.collection_id, "collector already had the run");
        }
        Ok(())
    }
}

fn bearer_value(token: &SecretString) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
    let mut value: MetadataValue<_> = format!("Bearer {}", token.expose_secret())
        .parse()
        .map_err(|_| anyhow::anyhow!("the collector token is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}
