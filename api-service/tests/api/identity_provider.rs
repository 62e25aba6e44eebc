//! Keys from the identity provider: a local provider (OpenID discovery and
//! a JWKS over HTTP) that rotates its keys, goes down and comes back, and a
//! second, workload issuer (a cluster's service-account issuer) whose
//! tokens carry no permissions claim.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use cudly_api::auth::{
    AuthSettings, Authenticator, FetchSettings, IssuerSettings, JwtSettings, KeyRefresh, KeySource, Permission,
    SubjectPermissions,
};
use cudly_testkit::jwt::{self, AUDIENCE, ISSUER, KeyDir, SECRET, hs256, now};
use cudly_testkit::spawn::{Options, spawn_app};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::PgPool;
use tonic::Code;

use crate::auth::{Rpc, call_grpc};
use crate::keys::ec_jwk;

/// What the local provider publishes, and what it saw.
#[derive(Default)]
struct Published {
    keys: Vec<serde_json::Value>,
    up: bool,
    jwks_fetches: usize,
    discovery_fetches: usize,
    last_authorization: Option<String>,
}

/// A local OpenID provider on 127.0.0.1: its issuer is its own URL.
struct Provider {
    url: String,
    state: Arc<Mutex<Published>>,
    keys: Vec<(String, rcgen::KeyPair)>,
}

impl Provider {
    async fn start(up: bool) -> Provider {
        let state = Arc::new(Mutex::new(Published { up, ..Published::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = url.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move |State(state): State<Arc<Mutex<Published>>>| async move {
                    let mut state = state.lock().unwrap();
                    state.discovery_fetches += 1;
                    if !state.up {
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let document = serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys"),
                        "id_token_signing_alg_values_supported": ["ES256"]});
                    Ok(document.to_string())
                }),
            )
            .route(
                "/keys",
                get(|State(state): State<Arc<Mutex<Published>>>, headers: HeaderMap| async move {
                    let mut state = state.lock().unwrap();
                    state.jwks_fetches += 1;
                    state.last_authorization = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                    if !state.up {
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                    Ok(serde_json::json!({"keys": state.keys}).to_string())
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Provider { url, state, keys: Vec::new() }
    }

    /// A new key pair under `kid` (not yet published).
    fn new_key(&mut self, kid: &str) {
        self.keys.push((kid.to_string(), rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()));
    }

    /// Publishes exactly these keys (a rotation retires the others).
    fn publish(&self, kids: &[&str]) {
        let keys = self.keys.iter().filter(|(kid, _)| kids.contains(&kid.as_str()));
        self.state.lock().unwrap().keys = keys.map(|(kid, pair)| ec_jwk(pair, kid)).collect();
    }

    fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }

    fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    /// Requests for the discovery document or the keys.
    fn requests(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.jwks_fetches + state.discovery_fetches
    }

    /// A token this provider would issue, signed with `kid`'s key.
    fn token(&self, kid: &str, claims: serde_json::Value) -> String {
        let (_, pair) = self.keys.iter().find(|(k, _)| k == kid).expect("a key made by new_key");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_string());
        let mut all = serde_json::json!({"iss": self.url, "aud": AUDIENCE, "sub": "someone", "exp": now() + 600,
            "permissions": ["recommendations:view"]});
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        jsonwebtoken::encode(&header, &all, &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap())
            .unwrap()
    }
}

/// Trusting `issuers`, refetching at most every `min_refetch` (and
/// periodically only once an hour, so that only tokens cause fetches).
fn trusting(issuers: Vec<IssuerSettings>, min_refetch: Duration) -> AuthSettings {
    let AuthSettings::Jwt(jwt) = jwt::issuers(issuers) else { unreachable!() };
    let key_refresh = KeyRefresh { every: Duration::from_secs(3600), min_refetch, timeout: Duration::from_secs(2) };
    AuthSettings::Jwt(JwtSettings { key_refresh, ..jwt })
}

fn discovered(provider: &Provider) -> IssuerSettings {
    IssuerSettings {
        issuer: provider.url.clone(),
        audience: AUDIENCE.into(),
        keys: KeySource::Fetched(FetchSettings::default()),
        subject_permissions: SubjectPermissions::default(),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn keys_are_discovered_refetched_when_rotated_and_kept_while_the_provider_is_down(pool: PgPool) {
    let mut provider = Provider::start(true).await;
    for kid in ["k1", "k2", "k3"] {
        provider.new_key(kid);
    }
    provider.publish(&["k1"]);
    let min_refetch = Duration::from_millis(500);
    let opts = Options { auth: trusting(vec![discovered(&provider)], min_refetch), ..Options::default() };
    let app = spawn_app(pool, opts).await;
    assert_eq!(provider.jwks_fetches(), 1, "fetched once at start-up, through discovery");
    assert_eq!(call_grpc(&app, Rpc::List, Some(&provider.token("k1", serde_json::json!({})))).await, Code::Ok);

    // The provider rotates: k2 in, k1 retired. The first k2 token makes the
    // service fetch again; k1 tokens are refused from then on.
    provider.publish(&["k2"]);
    assert_eq!(call_grpc(&app, Rpc::List, Some(&provider.token("k2", serde_json::json!({})))).await, Code::Ok);
    assert_eq!(provider.jwks_fetches(), 2);
    let retired = provider.token("k1", serde_json::json!({}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&retired)).await, Code::Unauthenticated);

    // Made-up key ids cannot make the service hammer the provider: at most
    // one fetch per min_refetch, however many such tokens arrive.
    let fetches = provider.jwks_fetches();
    let started = std::time::Instant::now();
    for i in 0..30 {
        let forged = provider.token("k3", serde_json::json!({"jti": i}));
        assert_eq!(call_grpc(&app, Rpc::List, Some(&forged)).await, Code::Unauthenticated);
    }
    let windows = started.elapsed().as_millis() / min_refetch.as_millis() + 1;
    let more = provider.jwks_fetches() - fetches;
    assert!(more as u128 <= windows, "{more} fetches for 30 unknown-kid tokens in {windows} refetch windows");

    // The provider goes down: k2 tokens still verify with the keys in hand;
    // a key published meanwhile cannot be learned.
    provider.set_up(false);
    provider.publish(&["k2", "k3"]);
    tokio::time::sleep(min_refetch).await;
    let k3 = provider.token("k3", serde_json::json!({}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&k3)).await, Code::Unauthenticated);
    assert_eq!(call_grpc(&app, Rpc::List, Some(&provider.token("k2", serde_json::json!({})))).await, Code::Ok);

    // Back up: the new key is learned at the next unknown-kid token.
    provider.set_up(true);
    tokio::time::sleep(min_refetch).await;
    assert_eq!(call_grpc(&app, Rpc::List, Some(&k3)).await, Code::Ok);
}

#[sqlx::test(migrations = "../migrations")]
async fn without_keys_yet_tokens_get_unavailable_until_the_provider_answers(pool: PgPool) {
    let mut provider = Provider::start(false).await;
    provider.new_key("k1");
    provider.publish(&["k1"]);
    let min_refetch = Duration::from_millis(300);
    let opts = Options { auth: trusting(vec![discovered(&provider)], min_refetch), ..Options::default() };
    let app = spawn_app(pool, opts).await;
    let token = provider.token("k1", serde_json::json!({}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&token)).await, Code::Unavailable);
    provider.set_up(true);
    tokio::time::sleep(min_refetch).await;
    assert_eq!(call_grpc(&app, Rpc::List, Some(&token)).await, Code::Ok);
}

#[tokio::test]
async fn a_failing_provider_is_said_in_the_metrics_and_recovery_too() {
    let mut provider = Provider::start(true).await;
    provider.new_key("k1");
    provider.publish(&["k1"]);
    let mut registry = prometheus_client::registry::Registry::with_prefix("cudly");
    let metrics = cudly_api::metrics::ApiMetrics::register(&mut registry);
    let AuthSettings::Jwt(settings) = trusting(vec![discovered(&provider)], Duration::from_millis(100)) else {
        unreachable!()
    };
    let settings = JwtSettings {
        key_refresh: KeyRefresh { every: Duration::from_millis(100), ..settings.key_refresh },
        ..settings
    };
    let authenticator = Authenticator::load(&settings, &metrics.keys).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    authenticator.keep_keys_fresh(&stop);
    let stale = |registry: &prometheus_client::registry::Registry| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        let line = format!("cudly_api_jwt_keys_stale{{issuer=\"{}\"}}", provider.url);
        text.lines().find_map(|l| l.strip_prefix(&line)).map(|v| v.trim().to_string())
    };
    assert_eq!(stale(&registry).as_deref(), Some("0"));
    provider.set_up(false);
    let before = provider.requests();
    wait_until(|| provider.requests() > before + 1).await;
    assert_eq!(stale(&registry).as_deref(), Some("1"), "a failed periodic fetch is visible");
    let token = provider.token("k1", serde_json::json!({}));
    assert!(authenticator.verify(Some(&format!("Bearer {token}"))).await.is_ok(), "the last good keys verify");
    provider.set_up(true);
    wait_until(|| stale(&registry).as_deref() == Some("0")).await;
    stop.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn workload_tokens_from_a_second_issuer_get_the_permissions_mapped_to_their_subject(pool: PgPool) {
    let mut cluster = Provider::start(true).await;
    cluster.new_key("cluster-1");
    cluster.publish(&["cluster-1"]);
    let files = KeyDir::new();
    let fetch_token = files.write("token", "the-api-service-own-token\n");
    let people = IssuerSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys: KeySource::Hs256SecretFile(files.write("hs256", SECRET)),
        subject_permissions: SubjectPermissions::default(),
    };
    let scheduler = "system:serviceaccount:cudly:scheduler";
    let workload = IssuerSettings {
        issuer: cluster.url.clone(),
        audience: "cudly".into(),
        keys: KeySource::Fetched(FetchSettings {
            jwks_url: Some(format!("{}/keys", cluster.url)),
            ca_file: None,
            token_file: Some(fetch_token),
        }),
        subject_permissions: SubjectPermissions(vec![(scheduler.into(), vec![Permission::ViewRecommendations])]),
    };
    let opts = Options { auth: trusting(vec![people, workload], Duration::from_secs(1)), ..Options::default() };
    let app = spawn_app(pool, opts).await;
    assert_eq!(
        cluster.state.lock().unwrap().last_authorization.as_deref(),
        Some("Bearer the-api-service-own-token"),
        "the keys are fetched with the configured token"
    );

    // A projected ServiceAccount token as the kubelet writes it: audience
    // bound, the subject naming the ServiceAccount, no permissions claim.
    let provider_token = |sub: &str, aud: &str| {
        let (_, pair) = cluster.keys.iter().find(|(k, _)| k == "cluster-1").unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("cluster-1".into());
        let claims = serde_json::json!({"iss": cluster.url, "aud": [aud], "sub": sub, "exp": now() + 600,
            "nbf": now() - 1, "kubernetes.io": {"namespace": "cudly", "serviceaccount": {"name": "scheduler"}}});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap())
            .unwrap()
    };
    let scheduler_token = provider_token(scheduler, "cudly");
    assert_eq!(call_grpc(&app, Rpc::Refresh, Some(&scheduler_token)).await, Code::Ok);
    assert_eq!(call_grpc(&app, Rpc::List, Some(&scheduler_token)).await, Code::Ok);
    assert_eq!(call_grpc(&app, Rpc::ListAccounts, Some(&scheduler_token)).await, Code::PermissionDenied);
    let stranger = provider_token("system:serviceaccount:default:other", "cudly");
    assert_eq!(call_grpc(&app, Rpc::List, Some(&stranger)).await, Code::PermissionDenied);
    let wrong_audience = provider_token(scheduler, "https://kubernetes.default.svc");
    assert_eq!(call_grpc(&app, Rpc::List, Some(&wrong_audience)).await, Code::Unauthenticated);
    // People still sign in through their issuer; a token claiming one
    // issuer's name with the other's key is refused.
    assert_eq!(call_grpc(&app, Rpc::List, Some(&hs256(serde_json::json!({})))).await, Code::Ok);
    let crossed = hs256(serde_json::json!({"iss": cluster.url, "aud": "cudly", "sub": scheduler}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&crossed)).await, Code::Unauthenticated);
    // The mapping is for tokens without a permissions claim: a claim that
    // grants nothing is not topped up.
    let claimed = cluster.token("cluster-1", serde_json::json!({"sub": scheduler, "aud": "cudly", "permissions": []}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&claimed)).await, Code::PermissionDenied);
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not reached within 5 s");
}
