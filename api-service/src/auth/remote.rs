//! Keys fetched from the identity provider: from a JWKS URL, or from the
//! `jwks_uri` of the issuer's OpenID Connect discovery document
//! (`{issuer}/.well-known/openid-configuration`, OpenID Connect Discovery
//! 1.0 §4). The keys are cached and refetched periodically and when a token
//! names a key id the cache does not know (a rotation), at most once per
//! `min_refetch`; while the provider is down the last good keys go on
//! verifying, which the log and `cudly_api_jwt_keys_stale` say.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cudly_core::files::{read_file, read_token};
use cudly_core::quote::{at_most, quoted};
use cudly_core::telemetry::ErrorChain;
use cudly_core::url::checked_url;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use super::keys::KeySet;
use super::{FetchSettings, KeyRefresh};
use crate::metrics::KeyMetrics;

/// Largest discovery or JWKS document read (real ones are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The fetched keys of one issuer.
pub(super) struct FetchedKeys {
    issuer: String,
    /// The JWKS URL, or `None` to discover it from the issuer each time.
    jwks_url: Option<Uri>,
    token_file: Option<PathBuf>,
    refresh: KeyRefresh,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    current: RwLock<Option<Loaded>>,
    /// When the last fetch on behalf of a token was made; held while it runs,
    /// so concurrent tokens with a new `kid` cause one fetch.
    on_demand: tokio::sync::Mutex<Option<Instant>>,
    /// Whether the last fetch failed.
    failing: AtomicBool,
    metrics: KeyMetrics,
}

#[derive(Clone)]
struct Loaded {
    keys: Arc<KeySet>,
    at: Instant,
}

impl FetchedKeys {
    /// Prepares fetching (an unreadable CA file fails here, naming it) and
    /// fetches once. A provider that does not answer yet is not fatal:
    /// tokens get UNAVAILABLE until the keys arrive.
    pub(super) async fn start(
        issuer: &str,
        settings: &FetchSettings,
        refresh: KeyRefresh,
        metrics: KeyMetrics,
    ) -> anyhow::Result<Arc<Self>> {
        let jwks_url = match &settings.jwks_url {
            Some(url) => Some(checked_url(url).map_err(|err| anyhow::anyhow!("CUDLY_JWT_JWKS_URL: {err}"))?),
            None => {
                checked_url(&discovery_url(issuer))
                    .map_err(|err| anyhow::anyhow!("the issuer for discovery: {err}"))?;
                None
            }
        };
        let keys = Arc::new(FetchedKeys {
            issuer: issuer.to_string(),
            jwks_url,
            token_file: settings.token_file.clone(),
            refresh,
            client: client(settings.ca_file.as_deref())?,
            current: RwLock::new(None),
            on_demand: tokio::sync::Mutex::new(None),
            failing: AtomicBool::new(false),
            metrics,
        });
        keys.load("start-up").await;
        Ok(keys)
    }

    /// The keys in hand, if any were ever fetched.
    pub(super) fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|l| l.keys.clone())
    }

    /// Fetches again for a token whose key is not in hand, unless that was
    /// done less than `min_refetch` ago (so tokens with made-up key ids cannot
    /// make this service hammer the provider); returns the keys in hand
    /// afterwards.
    pub(super) async fn refetch(&self) -> Option<Arc<KeySet>> {
        let mut last = self.on_demand.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refresh.min_refetch) {
            return self.current();
        }
        *last = Some(Instant::now());
        self.load("a token names an unknown key id").await;
        self.current()
    }

    /// Refetches every `every`, or every `min_refetch` while fetching fails,
    /// until `stop`.
    pub(super) async fn keep_fresh(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = if self.failing.load(Ordering::Relaxed) { self.refresh.min_refetch } else { self.refresh.every };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            self.load("periodic refresh").await;
        }
    }

    /// One fetch; on success the keys replace those in hand, on failure
    /// the keys in hand stay.
    async fn load(&self, why: &'static str) {
        let issuer = self.issuer.as_str();
        match tokio::time::timeout(self.refresh.timeout, self.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}", humantime::format_duration(self.refresh.timeout))))
        {
            Ok(keys) => {
                let kids = keys.kids();
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                let changed = current.as_ref().is_none_or(|l| l.keys.kids() != kids);
                *current = Some(Loaded { keys: Arc::new(keys), at: Instant::now() });
                drop(current);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(issuer, ?kids, "signing keys fetched again; the identity provider answers");
                } else if changed {
                    tracing::info!(issuer, ?kids, why, "signing keys fetched");
                }
                self.metrics.fetched(issuer, true);
            }
            Err(err) => {
                self.failing.store(true, Ordering::Relaxed);
                self.metrics.fetched(issuer, false);
                let held = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
                match held {
                    Some(held) => tracing::warn!(
                        issuer, why, error = %err, keys = held.keys.len(),
                        fetched_ago = %humantime::format_duration(Duration::from_secs(held.at.elapsed().as_secs())),
                        "could not fetch the signing keys; verifying with the last good keys"
                    ),
                    None => tracing::error!(
                        issuer, why, error = %err,
                        "could not fetch the signing keys; tokens are refused with UNAVAILABLE until they arrive"
                    ),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        let document = self.get(&url).await?;
        KeySet::from_jwks(&document).map_err(|err| format!("{url}: {err}"))
    }

    /// The `jwks_uri` of the issuer's discovery document, whose `issuer`
    /// must be the configured one (OpenID Connect Discovery 1.0 §4.3).
    async fn discover(&self) -> Result<Uri, String> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = checked_url(&discovery_url(&self.issuer))?;
        let document: Discovery = serde_json::from_str(&self.get(&url).await?)
            .map_err(|err| format!("{url}: not a discovery document with `issuer` and `jwks_uri`: {err}"))?;
        if document.issuer != self.issuer {
            return Err(format!(
                "{url}: the document is for issuer {}, not {}",
                quoted(&document.issuer),
                quoted(&self.issuer)
            ));
        }
        checked_url(&document.jwks_uri).map_err(|err| format!("{url}: jwks_uri: {err}"))
    }

    async fn get(&self, url: &Uri) -> Result<String, String> {
        let mut request = http::Request::get(url.clone()).header(http::header::ACCEPT, "application/json");
        if let Some(path) = &self.token_file {
            // Read at every fetch: the kubelet rotates projected tokens.
            let token = read_token(path).map_err(|err| err.to_string())?;
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
        }
        let request = request.body(Empty::new()).map_err(|err| format!("{url}: {err}"))?;
        let response = self.client.request(request).await.map_err(|err| format!("{url}: {}", ErrorChain(&err)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|err| format!("{url}: reading the answer: {err}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}: {}", at_most(text.trim(), 200)));
        }
        Ok(text.into_owned())
    }
}

/// Where an issuer publishes its discovery document.
fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// An HTTP client trusting the public web PKI (the roots of the Mozilla
/// program, built in, as the image has no system store) plus `ca_file`, for
/// providers behind a private CA such as a cluster's API server.
fn client(ca_file: Option<&Path>) -> anyhow::Result<Client<HttpsConnector<HttpConnector>, Empty<Bytes>>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = read_file(path)?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|err| anyhow::anyhow!("{}: not a PEM certificate: {err}", path.display()))?;
            roots.add(cert).map_err(|err| anyhow::anyhow!("{}: a certificate is not usable: {err}", path.display()))?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "{}: no PEM certificate in the file", path.display());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_is_under_the_issuer() {
        assert_eq!(
            discovery_url("https://idp.example.com/realms/a/"),
            "https://idp.example.com/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example.com"),
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }
}
