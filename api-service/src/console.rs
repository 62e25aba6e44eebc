//! The web console (`web/`, built) served on the API's own port, so the page
//! and the gRPC-web calls share one origin and need no CORS.
//!
//! Only GET and HEAD requests reach the console; gRPC and gRPC-web are POST
//! (and CORS preflights OPTIONS), so they pass on to the services as
//! before. Static files are public: they never meet the auth layer. The
//! page learns how to sign in from `/config.json`, written from these
//! settings.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cudly_core::quote::quoted;
use cudly_core::url::checked_url;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tower::{Layer, Service, ServiceExt};
use tower_http::services::{ServeDir, ServeFile};

/// The web console's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Serve the web console from this directory (the output of
    /// `npm run build` in web/: index.html and assets/) on the API's own
    /// port. Unset or `off`: no console, the port serves gRPC and gRPC-web
    /// only.
    #[arg(long, env = "CUDLY_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,

    /// OpenID Connect client id the console signs people in with
    /// (authorization code with PKCE; redirect URI `<console origin>/auth/callback`).
    /// Unset while authentication is on: the console sends no token of its
    /// own and expects an authenticating proxy in front to add one.
    #[arg(long, env = "CUDLY_CONSOLE_OIDC_CLIENT_ID", requires = "console_dir")]
    pub console_oidc_client_id: Option<String>,

    /// The identity provider the console signs in with (default: --jwt-issuer).
    #[arg(long, env = "CUDLY_CONSOLE_OIDC_ISSUER", requires = "console_oidc_client_id")]
    pub console_oidc_issuer: Option<String>,

    /// Scopes the console asks for, space-separated.
    #[arg(long, env = "CUDLY_CONSOLE_OIDC_SCOPES", default_value = "openid profile")]
    pub console_oidc_scopes: String,

    /// Resource indicator (RFC 8707) the console names on its authorize and
    /// token requests, for providers that issue JWT access tokens per
    /// resource; usually the same value as --jwt-audience. Unset: none sent.
    #[arg(long, env = "CUDLY_CONSOLE_OIDC_RESOURCE", requires = "console_oidc_client_id")]
    pub console_oidc_resource: Option<String>,
}

/// How the page signs in, as `/config.json` tells it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "auth", rename_all = "lowercase")]
pub enum PageAuth {
    /// Authentication is off (`CUDLY_AUTH_DISABLED`): no sign-in.
    None,
    /// Authentication is on and the page has no client of its own: a proxy
    /// in front signs people in and adds `authorization`.
    Proxy,
    /// The page signs in with OpenID Connect itself.
    Oidc {
        /// The client it signs in as.
        oidc: OidcClient,
    },
}

/// The console's OpenID Connect client.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcClient {
    /// The provider's issuer URL (discovery lives below it).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// RFC 8707 resource indicator, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Where the console is and how it signs in.
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    /// The built console.
    pub dir: PathBuf,
    /// What `/config.json` says.
    pub auth: PageAuth,
}

impl ConsoleArgs {
    /// The console's settings (`None` without --console-dir), given whether
    /// callers authenticate and the people's issuer. An OIDC client without
    /// an issuer, or with one that is not https, is an error naming its flag.
    pub fn settings(&self, auth_disabled: bool, jwt_issuer: Option<&str>) -> anyhow::Result<Option<ConsoleSettings>> {
        let Some(dir) = self.console_dir.clone().filter(|dir| dir.as_os_str() != "off") else { return Ok(None) };
        let auth = match (&self.console_oidc_client_id, auth_disabled) {
            (_, true) => PageAuth::None,
            (None, false) => PageAuth::Proxy,
            (Some(client_id), false) => {
                let issuer = self.console_oidc_issuer.as_deref().or(jwt_issuer).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--console-oidc-client-id needs an issuer: set --console-oidc-issuer \
                         (CUDLY_CONSOLE_OIDC_ISSUER) or --jwt-issuer (CUDLY_JWT_ISSUER)"
                    )
                })?;
                checked_url(issuer)
                    .map_err(|why| anyhow::anyhow!("--console-oidc-issuer (CUDLY_CONSOLE_OIDC_ISSUER): {why}"))?;
                anyhow::ensure!(
                    !client_id.trim().is_empty() && client_id.len() <= 256,
                    "--console-oidc-client-id (CUDLY_CONSOLE_OIDC_CLIENT_ID): {} is not a client id",
                    quoted(client_id)
                );
                PageAuth::Oidc {
                    oidc: OidcClient {
                        issuer: issuer.to_string(),
                        client_id: client_id.trim().to_string(),
                        scopes: self.console_oidc_scopes.clone(),
                        resource: self.console_oidc_resource.clone(),
                    },
                }
            }
        };
        Ok(Some(ConsoleSettings { dir, auth }))
    }
}

/// The console's files and config, ready to serve.
#[derive(Clone)]
pub struct Console {
    /// Hashed assets: a missing one is a 404.
    assets: ServeDir,
    /// Everything else: a path that is no file is a page of the console
    /// (`/runs`, `/auth/callback`), answered with index.html.
    pages: ServeDir<ServeFile>,
    config: Bytes,
    security: Arc<HeaderValue>,
}

impl Console {
    /// Checks that the directory holds a built console (index.html).
    pub fn load(settings: &ConsoleSettings) -> anyhow::Result<Console> {
        let index = settings.dir.join("index.html");
        anyhow::ensure!(
            index.is_file(),
            "--console-dir (CUDLY_CONSOLE_DIR): {} holds no index.html; build the console first \
             (cd web && npm ci && npm run build) and point the flag at web/dist",
            quoted(&settings.dir.display().to_string())
        );
        let serve = |dir: &Path| ServeDir::new(dir).precompressed_br().precompressed_gzip();
        Ok(Console {
            assets: serve(&settings.dir),
            pages: serve(&settings.dir).fallback(ServeFile::new(index)),
            config: Bytes::from(serde_json::to_vec(&settings.auth)?),
            security: Arc::new(content_security_policy(&settings.auth)?),
        })
    }

    async fn serve<B: Send + 'static>(self, request: Request<B>) -> Response<tonic::body::Body> {
        let path = request.uri().path().to_owned();
        let (mut response, immutable) = if path == "/config.json" {
            let mut response = Response::new(tonic::body::Body::new(Full::new(self.config.clone())));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            (response, false)
        } else if path.starts_with("/assets/") || has_extension(&path) {
            let response = self.assets.oneshot(request).await.unwrap_or_else(|never| match never {});
            let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
            (response.map(tonic::body::Body::new), found && path.starts_with("/assets/"))
        } else {
            let response = self.pages.oneshot(request).await.unwrap_or_else(|never| match never {});
            (response.map(tonic::body::Body::new), false)
        };
        let headers = response.headers_mut();
        let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(CONTENT_SECURITY_POLICY, (*self.security).clone());
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // The sign-in callback's URL carries the authorization code.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        response
    }
}

/// Whether the last segment of `path` names a file (`/favicon.ico`):
/// such a path is a file or a 404, never the page.
fn has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|last| last.contains('.'))
}

/// Scripts and styles from the console's origin only; calls to it and to
/// the identity provider (its token endpoint may live on another https
/// host, named only in its discovery document); no framing.
fn content_security_policy(auth: &PageAuth) -> anyhow::Result<HeaderValue> {
    let provider = match auth {
        PageAuth::Oidc { oidc } => {
            let uri = checked_url(&oidc.issuer).map_err(|why| anyhow::anyhow!(why))?;
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            format!(" {}://{authority} https:", uri.scheme_str().unwrap_or("https"))
        }
        PageAuth::None | PageAuth::Proxy => String::new(),
    };
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'{provider}; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    Ok(HeaderValue::from_str(&policy)?)
}

/// Puts the console in front of the gRPC services.
#[derive(Clone)]
pub struct ConsoleLayer(Option<Console>);

impl ConsoleLayer {
    /// Serves `console` in front of the services; `None` adds nothing.
    pub fn new(console: Option<Console>) -> Self {
        ConsoleLayer(console)
    }
}

impl<S> Layer<S> for ConsoleLayer {
    type Service = WithConsole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithConsole { inner, console: self.0.clone() }
    }
}

/// The services, with GET and HEAD requests answered by the console.
#[derive(Clone)]
pub struct WithConsole<S> {
    inner: S,
    console: Option<Console>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for WithConsole<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    /// Always ready: readiness is asked of the services in `call`, only
    /// for the requests they get (a concurrency slot is not held for a
    /// static file).
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let is_page = matches!(*request.method(), Method::GET | Method::HEAD);
        match &self.console {
            Some(console) if is_page => {
                let console = console.clone();
                Box::pin(async move { Ok(console.serve(request).await) })
            }
            _ => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.oneshot(request))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        console: ConsoleArgs,
    }

    fn settings(args: &[&str], auth_disabled: bool, issuer: Option<&str>) -> anyhow::Result<Option<ConsoleSettings>> {
        let flags = Flags::try_parse_from(std::iter::once("api-service").chain(args.iter().copied()))?;
        flags.console.settings(auth_disabled, issuer)
    }

    #[test]
    fn the_page_is_told_how_to_sign_in() {
        assert!(settings(&[], false, None).unwrap().is_none());
        assert!(settings(&["--console-dir", "off"], false, None).unwrap().is_none(), "no console");
        let off = settings(&["--console-dir", "d", "--console-oidc-client-id", "c"], true, None).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&off.auth).unwrap(), r#"{"auth":"none"}"#);
        let proxy = settings(&["--console-dir", "d"], false, Some("https://idp.example")).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&proxy.auth).unwrap(), r#"{"auth":"proxy"}"#);
        let oidc = settings(
            &["--console-dir", "d", "--console-oidc-client-id", "console", "--console-oidc-resource", "https://cudly"],
            false,
            Some("https://idp.example"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            serde_json::to_string(&oidc.auth).unwrap(),
            r#"{"auth":"oidc","oidc":{"issuer":"https://idp.example","clientId":"console","scopes":"openid profile","resource":"https://cudly"}}"#
        );
    }

    #[test]
    fn a_bad_client_setup_is_refused_naming_its_flag() {
        let no_issuer = settings(&["--console-dir", "d", "--console-oidc-client-id", "c"], false, None);
        assert!(no_issuer.unwrap_err().to_string().contains("--console-oidc-issuer"));
        let http = settings(
            &["--console-dir", "d", "--console-oidc-client-id", "c", "--console-oidc-issuer", "http://idp.example"],
            false,
            None,
        );
        let err = http.unwrap_err().to_string();
        assert!(err.contains("CUDLY_CONSOLE_OIDC_ISSUER") && err.contains("https"), "{err}");
        let long = "c".repeat(10_000);
        let err = settings(&["--console-dir", "d", "--console-oidc-client-id", &long], false, Some("https://i"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CUDLY_CONSOLE_OIDC_CLIENT_ID") && err.len() < 300, "{err}");
        assert!(settings(&["--console-oidc-client-id", "c"], false, None).is_err(), "needs --console-dir");
    }

    #[test]
    fn a_directory_without_a_built_console_is_refused() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let err = Console::load(&ConsoleSettings { dir, auth: PageAuth::None }).err().unwrap().to_string();
        assert!(err.contains("CUDLY_CONSOLE_DIR") && err.contains("npm run build"), "{err}");
    }

    #[test]
    fn only_a_last_segment_with_a_dot_names_a_file() {
        assert!(has_extension("/favicon.ico") && has_extension("/assets/index-3f2a.js"));
        assert!(!has_extension("/") && !has_extension("/runs") && !has_extension("/v1.2/runs"));
    }
}
