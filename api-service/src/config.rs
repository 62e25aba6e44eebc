//! api-service configuration: flags, each with an environment variable and
//! a documented default, validated at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use cudly_core::config::{Command, CommonArgs, parse_ttl};
use cudly_core::metrics::{MetricsListen, parse_metrics_listen};

use crate::auth::{
    AuthSettings, FetchSettings, IssuerSettings, JwtSettings, KeyRefresh, KeySource, SubjectPermissions,
    parse_subject_permissions,
};
use crate::console::ConsoleArgs;

/// Answers RefreshRecommendations at once (the collection runs in
/// collector-service), streams freshness with WatchFreshness, and serves
/// recommendations with ListRecommendations. Native gRPC and gRPC-web on one
/// port, with health and server reflection.
#[derive(Debug, Parser)]
#[command(name = "api-service", version)]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Database and logging.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address the gRPC / gRPC-web server listens on (port 0 picks one).
    #[arg(long, env = "CUDLY_API_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// URL of collector-service.
    #[arg(long, env = "CUDLY_COLLECTOR_URL", default_value = "http://127.0.0.1:50052")]
    pub collector_url: String,

    /// How long a refresh waits for the collector's acknowledgement.
    #[arg(long, env = "CUDLY_DISPATCH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub dispatch_timeout: Duration,

    /// Lease time-to-live given to a new run (the collector renews it).
    #[arg(long, env = "CUDLY_LEASE_TTL", default_value = "30s", value_parser = parse_ttl)]
    pub lease_ttl: Duration,

    /// Data older than this is refreshed in the background when listed.
    #[arg(long, env = "CUDLY_STALE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,

    /// No automatic (cold-start or stale) refresh within this long after a
    /// run ended, so a failing cloud is not retried on every read.
    #[arg(long, env = "CUDLY_AUTO_REFRESH_BACKOFF", default_value = "60s", value_parser = humantime::parse_duration)]
    pub auto_refresh_backoff: Duration,

    /// WatchFreshness re-sends the current snapshot this often when nothing
    /// changed, so proxies and browsers keep idle streams open.
    #[arg(long, env = "CUDLY_WATCH_HEARTBEAT", default_value = "15s", value_parser = parse_heartbeat)]
    pub watch_heartbeat: Duration,

    /// Browser origins allowed to call over gRPC-web, comma-separated; `*`
    /// allows any (callers authenticate with headers, not cookies).
    #[arg(long, env = "CUDLY_CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "*")]
    pub cors_allowed_origins: Vec<String>,

    /// Request headers a browser page may send over gRPC-web,
    /// comma-separated (the CORS preflight's allow-list; a list given here
    /// replaces the default). The default covers gRPC-web clients
    /// (`content-type`, `x-grpc-web`, `x-user-agent`, `grpc-timeout`), bearer
    /// tokens (`authorization`), trace context from OpenTelemetry's browser
    /// instrumentation (`traceparent`, `tracestate`) and `x-request-id`.
    #[arg(
        long,
        env = "CUDLY_CORS_ALLOWED_HEADERS",
        value_delimiter = ',',
        default_value = "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,traceparent,tracestate,x-request-id"
    )]
    pub cors_allowed_headers: Vec<String>,

    /// How long shutdown waits for in-flight calls to finish.
    #[arg(long, env = "CUDLY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Caller authentication (JWT).
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Serve gRPC server reflection (open to every caller; it describes the
    /// API, no data).
    #[arg(long, env = "CUDLY_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub reflection: bool,

    /// PEM certificate chain for TLS on the listener (with
    /// --tls-key-file). Without it the listener speaks plaintext h2c, as
    /// behind an ingress that terminates TLS.
    #[arg(long, env = "CUDLY_API_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for --tls-cert-file.
    #[arg(long, env = "CUDLY_API_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// How api-service authenticates to collector-service.
    #[command(flatten)]
    pub collector_client: CollectorClientArgs,

    /// Request limits.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// The web console.
    #[command(flatten)]
    pub console: ConsoleArgs,

    /// Where Prometheus scrapes metrics (`GET /metrics`); `off` serves none.
    #[arg(long, env = "CUDLY_METRICS_LISTEN", default_value = "127.0.0.1:9090", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
}

/// Caller authentication flags.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// Turn caller authentication off: every caller may do everything. For
    /// local runs only; the service logs a warning at start-up.
    #[arg(long, env = "CUDLY_AUTH_DISABLED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auth_disabled: bool,

    /// File holding the HS256 shared secret (at least 32 bytes).
    #[arg(long, env = "CUDLY_JWT_HS256_SECRET_FILE", group = "jwt_keys")]
    pub jwt_hs256_secret_file: Option<PathBuf>,

    /// PEM public key verifying RS256 (RSA) or ES256 (P-256) tokens.
    #[arg(long, env = "CUDLY_JWT_PUBLIC_KEY_FILE", group = "jwt_keys")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS file of RSA/EC verification keys, matched by `kid`.
    #[arg(long, env = "CUDLY_JWT_JWKS_FILE", group = "jwt_keys")]
    pub jwt_jwks_file: Option<PathBuf>,

    /// URL of the identity provider's JWKS (https), fetched and kept fresh.
    /// Without any key setting, the keys are discovered from
    /// CUDLY_JWT_ISSUER's `/.well-known/openid-configuration`.
    #[arg(long, env = "CUDLY_JWT_JWKS_URL", group = "jwt_keys")]
    pub jwt_jwks_url: Option<String>,

    /// PEM CA trusted, besides the public roots, when fetching the issuer's
    /// keys.
    #[arg(long, env = "CUDLY_JWT_CA_FILE")]
    pub jwt_ca_file: Option<PathBuf>,

    /// Required `iss` claim (and, without a key setting, where the keys are
    /// discovered).
    #[arg(long, env = "CUDLY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim.
    #[arg(long, env = "CUDLY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Permissions of subjects whose tokens carry no permissions claim:
    /// `subject=permission permission;subject=permission`.
    #[arg(long, env = "CUDLY_JWT_SUBJECT_PERMISSIONS", value_parser = parse_subject_permissions)]
    pub jwt_subject_permissions: Option<SubjectPermissions>,

    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "CUDLY_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,

    /// Claim listing the caller's permissions (`recommendations:view`,
    /// `accounts:admin`, `notifications:admin`): an array of strings or a
    /// space-separated string.
    #[arg(long, env = "CUDLY_JWT_PERMISSIONS_CLAIM", default_value = "permissions")]
    pub jwt_permissions_claim: String,

    /// A second trusted issuer, for workloads: a Kubernetes cluster's
    /// service-account issuer, whose projected tokens (audience-bound,
    /// rotated by the kubelet) then authenticate jobs such as the scheduled
    /// refresh. Its keys are fetched.
    #[arg(long, env = "CUDLY_WORKLOAD_JWT_ISSUER", requires = "workload_jwt_audience")]
    pub workload_jwt_issuer: Option<String>,

    /// Required `aud` of workload tokens (the projected token's audience).
    #[arg(long, env = "CUDLY_WORKLOAD_JWT_AUDIENCE", requires = "workload_jwt_issuer")]
    pub workload_jwt_audience: Option<String>,

    /// URL of the workload issuer's JWKS; without it, discovered from the
    /// issuer. In a cluster: `https://kubernetes.default.svc/openid/v1/jwks`.
    #[arg(long, env = "CUDLY_WORKLOAD_JWT_JWKS_URL", requires = "workload_jwt_issuer")]
    pub workload_jwt_jwks_url: Option<String>,

    /// PEM CA trusted when fetching the workload issuer's keys (in a pod:
    /// `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`).
    #[arg(long, env = "CUDLY_WORKLOAD_JWT_CA_FILE", requires = "workload_jwt_issuer")]
    pub workload_jwt_ca_file: Option<PathBuf>,

    /// File with a bearer token sent when fetching the workload issuer's
    /// keys, read at each fetch (in a pod: the ServiceAccount token, as the
    /// API server serves its keys to authenticated callers).
    #[arg(long, env = "CUDLY_WORKLOAD_JWT_FETCH_TOKEN_FILE", requires = "workload_jwt_issuer")]
    pub workload_jwt_fetch_token_file: Option<PathBuf>,

    /// Permissions of workload subjects, e.g.
    /// `system:serviceaccount:cudly:scheduler=recommendations:view`.
    #[arg(long, env = "CUDLY_WORKLOAD_SUBJECT_PERMISSIONS", value_parser = parse_subject_permissions, requires = "workload_jwt_issuer")]
    pub workload_subject_permissions: Option<SubjectPermissions>,

    /// How often fetched keys are refetched.
    #[arg(long, env = "CUDLY_JWT_KEYS_REFRESH", default_value = "10m", value_parser = humantime::parse_duration)]
    pub jwt_keys_refresh: Duration,

    /// Fetched keys are refetched for a token naming an unknown key id at
    /// most once per this long, and retried this often while fetching fails.
    #[arg(long, env = "CUDLY_JWT_KEYS_MIN_REFETCH", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_keys_min_refetch: Duration,

    /// Deadline of one key fetch.
    #[arg(long, env = "CUDLY_JWT_KEYS_FETCH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub jwt_keys_fetch_timeout: Duration,
}

impl AuthArgs {
    /// The settings these flags describe; an incomplete JWT setup is an
    /// error naming what is missing.
    pub fn settings(&self) -> anyhow::Result<AuthSettings> {
        if self.auth_disabled {
            return Ok(AuthSettings::Disabled);
        }
        let mut issuers = Vec::new();
        if let Some(issuer) = self.people_issuer()? {
            issuers.push(issuer);
        }
        if let (Some(issuer), Some(audience)) = (&self.workload_jwt_issuer, &self.workload_jwt_audience) {
            anyhow::ensure!(
                issuers.iter().all(|i| &i.issuer != issuer),
                "CUDLY_WORKLOAD_JWT_ISSUER must differ from CUDLY_JWT_ISSUER"
            );
            issuers.push(IssuerSettings {
                issuer: issuer.clone(),
                audience: audience.clone(),
                keys: KeySource::Fetched(FetchSettings {
                    jwks_url: self.workload_jwt_jwks_url.clone(),
                    ca_file: self.workload_jwt_ca_file.clone(),
                    token_file: self.workload_jwt_fetch_token_file.clone(),
                }),
                subject_permissions: self.workload_subject_permissions.clone().unwrap_or_default(),
            });
        }
        anyhow::ensure!(
            !issuers.is_empty(),
            "authentication needs a verification key: set CUDLY_JWT_ISSUER (keys discovered from it) or with it \
             CUDLY_JWT_JWKS_URL, CUDLY_JWT_JWKS_FILE, CUDLY_JWT_PUBLIC_KEY_FILE or CUDLY_JWT_HS256_SECRET_FILE; \
             or CUDLY_WORKLOAD_JWT_ISSUER (or CUDLY_AUTH_DISABLED=true for a local run)"
        );
        Ok(AuthSettings::Jwt(JwtSettings {
            issuers,
            leeway: self.jwt_leeway,
            permissions_claim: self.jwt_permissions_claim.clone(),
            key_refresh: KeyRefresh {
                every: self.jwt_keys_refresh,
                min_refetch: self.jwt_keys_min_refetch,
                timeout: self.jwt_keys_fetch_timeout,
            },
        }))
    }

    /// The issuer people sign in with (CUDLY_JWT_*), if configured.
    fn people_issuer(&self) -> anyhow::Result<Option<IssuerSettings>> {
        let keys =
            match (&self.jwt_hs256_secret_file, &self.jwt_public_key_file, &self.jwt_jwks_file, &self.jwt_jwks_url) {
                (Some(f), ..) => Some(KeySource::Hs256SecretFile(f.clone())),
                (_, Some(f), ..) => Some(KeySource::PublicKeyPemFile(f.clone())),
                (_, _, Some(f), _) => Some(KeySource::JwksFile(f.clone())),
                (.., Some(url)) => Some(KeySource::Fetched(FetchSettings {
                    jwks_url: Some(url.clone()),
                    ca_file: self.jwt_ca_file.clone(),
                    token_file: None,
                })),
                (None, None, None, None) => None,
            };
        let Some(issuer) = self.jwt_issuer.clone() else {
            anyhow::ensure!(keys.is_none(), "CUDLY_JWT_ISSUER is required with a verification key");
            return Ok(None);
        };
        let keys = keys.unwrap_or_else(|| {
            KeySource::Fetched(FetchSettings { jwks_url: None, ca_file: self.jwt_ca_file.clone(), token_file: None })
        });
        let audience = self.jwt_audience.clone().ok_or_else(|| anyhow::anyhow!("CUDLY_JWT_AUDIENCE is required"))?;
        Ok(Some(IssuerSettings {
            issuer,
            audience,
            keys,
            subject_permissions: self.jwt_subject_permissions.clone().unwrap_or_default(),
        }))
    }
}

/// How api-service authenticates to collector-service: a shared bearer
/// token, mTLS (an `https://` collector URL), or both.
#[derive(Debug, clap::Args)]
pub struct CollectorClientArgs {
    /// File holding the token sent to the collector as a bearer token.
    #[arg(long, env = "CUDLY_COLLECTOR_TOKEN_FILE")]
    pub collector_token_file: Option<PathBuf>,

    /// PEM CA that signed the collector's certificate (https URLs).
    #[arg(long, env = "CUDLY_COLLECTOR_CA_FILE")]
    pub collector_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to the collector (mTLS).
    #[arg(long, env = "CUDLY_COLLECTOR_CLIENT_CERT_FILE", requires = "collector_client_key_file")]
    pub collector_client_cert_file: Option<PathBuf>,

    /// PEM private key of --collector-client-cert-file.
    #[arg(long, env = "CUDLY_COLLECTOR_CLIENT_KEY_FILE", requires = "collector_client_cert_file")]
    pub collector_client_key_file: Option<PathBuf>,
}

/// Request limits.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// WatchFreshness streams one replica serves at once; more get
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "CUDLY_MAX_WATCHERS", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_watchers: u32,

    /// Calls in progress at once (a stream counts until its response
    /// starts); beyond it calls are shed with RESOURCE_EXHAUSTED rather than
    /// queued.
    #[arg(long, env = "CUDLY_MAX_CONCURRENT_REQUESTS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,

    /// Deadline of a call (until its response starts; streams then run on).
    #[arg(long, env = "CUDLY_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "CUDLY_MAX_REQUEST_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_request_bytes: u32,

    /// HTTP/2 keepalive ping interval (dead peers are dropped after 20 s
    /// without an answer).
    #[arg(long, env = "CUDLY_HTTP2_KEEPALIVE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http2_keepalive: Duration,
}

fn parse_heartbeat(s: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if every < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(every)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn help_and_defaults_parse() {
        Config::command().debug_assert();
        let config = Config::try_parse_from(["api-service"]).unwrap();
        assert_eq!(config.dispatch_timeout, Duration::from_secs(2));
        assert_eq!(config.watch_heartbeat, Duration::from_secs(15));
        assert_eq!(config.cors_allowed_origins, ["*"]);
        for header in ["authorization", "content-type", "x-grpc-web", "traceparent", "tracestate", "x-request-id"] {
            assert!(config.cors_allowed_headers.iter().any(|h| h == header), "{header} is not allowed by default");
        }
    }

    #[test]
    fn a_bad_duration_names_the_flag() {
        let err = Config::try_parse_from(["api-service", "--stale-after", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--stale-after"), "{err}");
        for (flag, value) in [("--lease-ttl", "0s"), ("--watch-heartbeat", "0s"), ("--db-max-connections", "1")] {
            let err = Config::try_parse_from(["api-service", flag, value]).unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn authentication_is_on_unless_disabled_and_must_be_complete() {
        let parse = |args: &[&str]| Config::try_parse_from([&["api-service"], args].concat()).unwrap();
        let err = parse(&[]).auth.settings().unwrap_err().to_string();
        assert!(err.contains("CUDLY_JWT_ISSUER") && err.contains("CUDLY_AUTH_DISABLED"), "{err}");
        assert!(matches!(parse(&["--auth-disabled"]).auth.settings().unwrap(), AuthSettings::Disabled));
        let err = parse(&["--jwt-hs256-secret-file", "s"]).auth.settings().unwrap_err().to_string();
        assert!(err.contains("CUDLY_JWT_ISSUER"), "{err}");
        let issuers = |args: &[&str]| match parse(args).auth.settings().unwrap() {
            AuthSettings::Jwt(jwt) => jwt.issuers,
            AuthSettings::Disabled => panic!("disabled"),
        };
        let full = issuers(&["--jwt-jwks-file", "k", "--jwt-issuer", "i", "--jwt-audience", "a"]);
        assert!(matches!(full[..], [IssuerSettings { keys: KeySource::JwksFile(_), .. }]));
        let two_keys = Config::try_parse_from(["api-service", "--jwt-hs256-secret-file", "s", "--jwt-jwks-file", "k"]);
        assert!(two_keys.unwrap_err().to_string().contains("cannot be used with"));
        // An issuer alone: its keys are discovered.
        let discovered = issuers(&["--jwt-issuer", "https://idp.example.com/", "--jwt-audience", "a"]);
        assert!(matches!(
            &discovered[..],
            [IssuerSettings { keys: KeySource::Fetched(FetchSettings { jwks_url: None, .. }), .. }]
        ));
        let by_url =
            issuers(&["--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-jwks-url", "https://idp.example.com/keys"]);
        assert!(matches!(
            &by_url[..],
            [IssuerSettings { keys: KeySource::Fetched(FetchSettings { jwks_url: Some(_), .. }), .. }]
        ));
    }

    #[test]
    fn a_workload_issuer_is_trusted_beside_people_or_alone_with_its_subjects() {
        let workload = [
            "--workload-jwt-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--workload-jwt-audience",
            "cudly",
            "--workload-subject-permissions",
            "system:serviceaccount:cudly:scheduler=recommendations:view",
        ];
        let parse = |args: &[&str]| Config::try_parse_from([&["api-service"], args].concat());
        let AuthSettings::Jwt(alone) = parse(&workload).unwrap().auth.settings().unwrap() else { panic!() };
        assert_eq!(alone.issuers.len(), 1);
        assert_eq!(
            alone.issuers[0].subject_permissions.0,
            [("system:serviceaccount:cudly:scheduler".to_string(), vec![crate::auth::Permission::ViewRecommendations])]
        );
        let people = ["--jwt-issuer", "https://idp.example.com/", "--jwt-audience", "cudly-api"];
        let AuthSettings::Jwt(both) = parse(&[&people[..], &workload[..]].concat()).unwrap().auth.settings().unwrap()
        else {
            panic!()
        };
        assert_eq!(both.issuers.len(), 2);
        let err = parse(&["--workload-jwt-issuer", "x"]).unwrap_err().to_string();
        assert!(err.contains("--workload-jwt-audience"), "{err}");
        let err = parse(&["--jwt-subject-permissions", "a=recommendations:edit"]).unwrap_err().to_string();
        assert!(err.contains("is not a permission"), "{err}");
        let same =
            ["--jwt-issuer", "x", "--jwt-audience", "a", "--workload-jwt-issuer", "x", "--workload-jwt-audience", "b"];
        let err = parse(&same).unwrap().auth.settings().unwrap_err().to_string();
        assert!(err.contains("must differ"), "{err}");
    }
}
