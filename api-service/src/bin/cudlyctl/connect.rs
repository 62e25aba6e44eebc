//! Reaching api-service: the URL, TLS, and the bearer token sent with every
//! call.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use cudly_core::quote::quoted;
use cudly_proto::recommendations::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::recommendations::v1::notifications_service_client::NotificationsServiceClient;
use cudly_proto::recommendations::v1::recommendations_service_client::RecommendationsServiceClient;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::exit::Unreachable;

/// Where api-service is and who the caller is.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Connection {
    /// api-service URL (`https://` for a TLS listener).
    #[arg(long, env = "CUDLY_API_URL", default_value = "http://127.0.0.1:50051", global = true)]
    api: String,

    /// Bearer token (JWT) sent with every call.
    #[arg(long, env = "CUDLY_TOKEN", hide_env_values = true, global = true, conflicts_with = "token_file")]
    token: Option<String>,

    /// File holding the bearer token, read at every invocation (e.g. a
    /// Kubernetes projected ServiceAccount token, which the kubelet
    /// rotates). A trailing newline is ignored.
    #[arg(long, env = "CUDLY_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,

    /// PEM CA that signed api-service's certificate (https URLs).
    #[arg(long, env = "CUDLY_API_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A RecommendationsService client that sends the token.
pub(crate) type Recommendations = RecommendationsServiceClient<InterceptedService<Channel, Bearer>>;

/// An AccountsService client that sends the token.
pub(crate) type Accounts = AccountsServiceClient<InterceptedService<Channel, Bearer>>;

/// A NotificationsService client that sends the token.
pub(crate) type Notifications = NotificationsServiceClient<InterceptedService<Channel, Bearer>>;

impl Connection {
    /// A connected channel; a server that cannot be reached is
    /// [`Unreachable`].
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        let mut endpoint = Channel::from_shared(self.api.clone())
            .map_err(|_| anyhow::anyhow!("--api {} is not a URL", quoted(&self.api)))?
            .connect_timeout(Duration::from_secs(5));
        if self.api.starts_with("https://") {
            cudly_core::server::install_crypto_provider();
            let mut tls = tonic::transport::ClientTlsConfig::new();
            if let Some(ca) = &self.ca_file {
                let pem = cudly_core::files::read_file(ca)?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        endpoint.connect().await.map_err(|err| {
            anyhow::Error::new(err).context(Unreachable(format!("cannot reach api-service at {}", quoted(&self.api))))
        })
    }

    /// A RecommendationsService client.
    pub(crate) async fn recommendations(&self) -> anyhow::Result<Recommendations> {
        let bearer = self.bearer()?;
        Ok(RecommendationsServiceClient::with_interceptor(self.channel().await?, bearer))
    }

    /// An AccountsService client.
    pub(crate) async fn accounts(&self) -> anyhow::Result<Accounts> {
        let bearer = self.bearer()?;
        Ok(AccountsServiceClient::with_interceptor(self.channel().await?, bearer))
    }

    /// A NotificationsService client.
    pub(crate) async fn notifications(&self) -> anyhow::Result<Notifications> {
        let bearer = self.bearer()?;
        Ok(NotificationsServiceClient::with_interceptor(self.channel().await?, bearer))
    }

    /// The `authorization` value, from `--token` or, read now, from
    /// `--token-file`.
    fn bearer(&self) -> anyhow::Result<Bearer> {
        let (token, source) = match (&self.token, &self.token_file) {
            (Some(token), _) => (SecretString::from(token.trim().to_string()), "--token".to_string()),
            (None, Some(path)) => (cudly_core::files::read_token(path)?, path.display().to_string()),
            (None, None) => return Ok(Bearer(None)),
        };
        let value = format!("Bearer {}", token.expose_secret())
            .parse()
            .with_context(|| format!("{source}: the token is not a valid header value"))?;
        Ok(Bearer(Some(value)))
    }
}
