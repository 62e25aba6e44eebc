//! Where api-service's verification keys come from (an HS256 secret, a PEM
//! public key, a JWKS matched by `kid`), the leeway for clock skew, and
//! serving TLS and reflection as configured.

use std::time::Duration;

use cudly_api::auth::{AuthSettings, JwtSettings, KeySource};
use cudly_testkit::jwt::{self, AUDIENCE, ISSUER, KeyDir, SECRET, hs256, now, token};
use cudly_testkit::spawn::{Options, spawn_app};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sqlx::PgPool;
use tonic::Code;

use crate::auth::{Rpc, call_grpc, call_grpc_web, with_token};

#[sqlx::test(migrations = "../migrations")]
async fn es256_tokens_verify_against_a_pem_public_key_and_hs256_forgeries_do_not(pool: PgPool) {
    let keys = KeyDir::new();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = keys.write("public.pem", pair.public_key_pem());
    let app =
        spawn_app(pool, Options { auth: jwt::settings(KeySource::PublicKeyPemFile(public)), ..Options::default() })
            .await;

    let signer = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let good = token(&signer, Algorithm::ES256, serde_json::json!({}));
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&good)).await, Code::Ok);
    // The classic confusion: an HS256 token "signed" with the public key.
    let confused =
        token(&EncodingKey::from_secret(pair.public_key_pem().as_bytes()), Algorithm::HS256, serde_json::json!({}));
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&confused)).await, Code::Unauthenticated);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_leeway_forgives_clock_skew_up_to_its_length_and_no_further(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("hs256", SECRET);
    let AuthSettings::Jwt(jwt) = jwt::settings(KeySource::Hs256SecretFile(secret)) else { unreachable!() };
    let leeway = Duration::from_secs(30);
    let opts =
        Options { auth: AuthSettings::Jwt(JwtSettings { leeway, ..jwt }), with_collector: false, ..Options::default() };
    let app = spawn_app(pool, opts).await;
    let cases = [
        ("expired 10 s ago", serde_json::json!({"exp": now() - 10}), Code::Ok),
        ("expired 60 s ago", serde_json::json!({"exp": now() - 60}), Code::Unauthenticated),
        ("valid from 10 s on", serde_json::json!({"nbf": now() + 10}), Code::Ok),
        ("valid from 60 s on", serde_json::json!({"nbf": now() + 60}), Code::Unauthenticated),
    ];
    for (what, claims, expected) in cases {
        let token = hs256(claims);
        assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&token)).await, expected, "{what} with a 30 s leeway");
        assert_eq!(call_grpc_web(&app, Rpc::GetFreshness, Some(&token)).await, expected, "{what} over gRPC-web");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn reflection_can_be_switched_off(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("hs256", SECRET);
    let opts = Options {
        auth: jwt::settings(KeySource::Hs256SecretFile(secret)),
        reflection: false,
        with_collector: false,
        ..Options::default()
    };
    let app = spawn_app(pool, opts).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    // With a token or without one (as grpcurl first calls): not served,
    // rather than "missing credentials".
    let viewer = hs256(serde_json::json!({}));
    for bearer in [Some(viewer.as_str()), None] {
        let outbound = with_token(tokio_stream::once(request.clone()), bearer);
        let status = match reflection.server_reflection_info(outbound).await {
            Ok(response) => response.into_inner().message().await.unwrap_err(),
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::Unimplemented, "token: {}: {status:?}", bearer.is_some());
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn rs256_tokens_verify_against_an_rsa_public_key(pool: PgPool) {
    // A key pair made for this test only (fixtures/).
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures");
    let public = fixtures.join("rs256-test-only.pub.pem");
    let app =
        spawn_app(pool, Options { auth: jwt::settings(KeySource::PublicKeyPemFile(public)), ..Options::default() })
            .await;
    let private = std::fs::read(fixtures.join("rs256-test-only.key")).unwrap();
    let signer = EncodingKey::from_rsa_pem(&private).unwrap();
    assert_eq!(
        call_grpc(&app, Rpc::List, Some(&token(&signer, Algorithm::RS256, serde_json::json!({})))).await,
        Code::Ok
    );
    let expired = token(&signer, Algorithm::RS256, serde_json::json!({"exp": now() - 60}));
    assert_eq!(call_grpc(&app, Rpc::List, Some(&expired)).await, Code::Unauthenticated);
}

/// The JWK of a P-256 key pair, as providers publish it.
pub(crate) fn ec_jwk(pair: &rcgen::KeyPair, kid: &str) -> serde_json::Value {
    use base64::Engine as _;
    let point = pair.public_key_raw(); // 0x04 || x || y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

#[sqlx::test(migrations = "../migrations")]
async fn jwks_keys_are_matched_by_kid(pool: PgPool) {
    let (old, new) = (
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
    );
    let keys = KeyDir::new();
    let jwks = keys.write(
        "jwks.json",
        serde_json::json!({"keys": [ec_jwk(&old, "2026-old"), ec_jwk(&new, "2026-new")]}).to_string(),
    );
    let app = spawn_app(pool, Options { auth: jwt::settings(KeySource::JwksFile(jwks)), ..Options::default() }).await;
    let signed = |pair: &rcgen::KeyPair, kid: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_string());
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "permissions": ["recommendations:view"]});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap())
            .unwrap()
    };
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&signed(&new, "2026-new"))).await, Code::Ok);
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&signed(&old, "2026-old"))).await, Code::Ok);
    // The right key id, the wrong key.
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&signed(&old, "2026-new"))).await, Code::Unauthenticated);
    // A key nobody published.
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    assert_eq!(call_grpc(&app, Rpc::GetFreshness, Some(&signed(&stranger, "2026-new"))).await, Code::Unauthenticated);
}

#[sqlx::test(migrations = "../migrations")]
async fn api_service_can_serve_tls_itself(pool: PgPool) {
    let pki = cudly_testkit::pki::Pki::new("cudly test CA");
    let (cert, key) = pki.issue("localhost");
    let files = KeyDir::new();
    let collector_url = format!("http://{}", cudly_testkit::spawn::unused_addr());
    let settings = cudly_api::app::Settings {
        tls: Some((files.write("tls.pem", cert), files.write("tls.key", key))),
        ..cudly_testkit::settings::api(&collector_url)
    };
    let app = cudly_api::app::build(settings, pool).await.unwrap();
    let port = app.local_addr().port();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run(stop.clone().cancelled_owned()));

    let tls =
        tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pki.ca.pem()));
    let channel = tonic::transport::Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert!(health.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok(), "health over TLS");
    // Plaintext gets no gRPC answer from a TLS port.
    if let Ok(channel) =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await
    {
        let mut plain = tonic_health::pb::health_client::HealthClient::new(channel);
        assert!(plain.check(tonic_health::pb::HealthCheckRequest::default()).await.is_err());
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}
