//! Only internal callers reach the collector: mTLS with a configured CA, or a
//! shared bearer token. api-service's client speaks both.

use std::path::PathBuf;

use cudly_api::dispatch::CollectorCredentials;
use cudly_collector::auth::{InternalAuth, ServerTls};
use cudly_proto::collector::v1::CollectRequest;
use cudly_proto::collector::v1::collector_service_client::CollectorServiceClient;
use secrecy::SecretString;
use sqlx::PgPool;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use cudly_testkit::jwt::KeyDir;
use cudly_testkit::pki::Pki;
use cudly_testkit::spawn::{Options, spawn_app};

fn collect_request() -> CollectRequest {
    CollectRequest {
        collection_id: uuid::Uuid::new_v4().to_string(),
        generation: 1,
        trigger: cudly_proto::recommendations::v1::Trigger::User as i32,
    }
}

/// A direct Collect call to the collector with this TLS client config; the
/// delivery itself is not for a held lease, so an authenticated caller gets
/// FAILED_PRECONDITION and an unauthenticated one UNAUTHENTICATED.
async fn collect_over_tls(port: u16, tls: ClientTlsConfig) -> Result<Code, String> {
    let endpoint = Channel::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls).unwrap();
    let channel = endpoint.connect().await.map_err(|err| format!("{err:?}"))?;
    let result = CollectorServiceClient::new(channel).collect(collect_request()).await;
    Ok(result.map(|_| Code::Ok).unwrap_or_else(|status| status.code()))
}

#[sqlx::test(migrations = "../migrations")]
async fn mtls_lets_in_certificates_of_the_configured_ca_only(pool: PgPool) {
    let (pki, rogue) = (Pki::new("cudly internal CA"), Pki::new("someone else's CA"));
    let keys = KeyDir::new();
    let (server_cert, server_key) = pki.issue("localhost");
    let (client_cert, client_key) = pki.issue("api-service");
    let (rogue_cert, rogue_key) = rogue.issue("api-service");
    let ca_file = keys.write("ca.pem", pki.ca.pem());
    let (cert_file, key_file): (PathBuf, PathBuf) =
        (keys.write("client.pem", &client_cert), keys.write("client.key", &client_key));
    let tls =
        ServerTls::load(&keys.write("server.pem", &server_cert), &keys.write("server.key", &server_key), &ca_file)
            .unwrap();

    let opts = Options {
        collector_auth: InternalAuth { tls: Some(tls), ..Default::default() },
        collector_credentials: CollectorCredentials {
            ca_file: Some(ca_file.clone()),
            client_identity: Some((cert_file, key_file)),
            ..Default::default()
        },
        collector_scheme: "https",
        ..Options::default()
    };
    let app = spawn_app(pool, opts).await;
    let port = app.collector.as_ref().unwrap().addr.port();

    // api-service's client presents its certificate: the run starts and ends.
    let run = app.refresh().await.expect("dispatch over mTLS").collection.unwrap();
    app.wait_for_end(&run.id).await;

    let trust = || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.ca.pem()));
    let right = trust().identity(Identity::from_pem(&client_cert, &client_key));
    assert_eq!(collect_over_tls(port, right).await.unwrap(), Code::FailedPrecondition, "let in, lease checked");
    assert_eq!(collect_over_tls(port, trust()).await.unwrap(), Code::Unauthenticated, "no client certificate");
    let wrong = trust().identity(Identity::from_pem(&rogue_cert, &rogue_key));
    match collect_over_tls(port, wrong).await {
        // The handshake is refused outright (a TLS alert), or the call fails.
        Err(_) | Ok(Code::Unavailable | Code::Unknown | Code::Unauthenticated) => {}
        Ok(code) => panic!("a certificate from another CA got {code:?}"),
    }
    // Plaintext does not reach the service at all.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await;
    if let Ok(channel) = plain {
        let status = CollectorServiceClient::new(channel).collect(collect_request()).await.unwrap_err();
        assert_ne!(status.code(), Code::FailedPrecondition, "{status:?}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_shared_token_is_required_and_a_wrong_one_fails_the_refresh_cleanly(pool: PgPool) {
    let keys = KeyDir::new();
    let token_file = keys.write("token", "the-shared-collector-token\n");
    let opts = Options {
        collector_auth: InternalAuth {
            token: Some(SecretString::from("the-shared-collector-token")),
            ..Default::default()
        },
        collector_credentials: CollectorCredentials { token_file: Some(token_file), ..Default::default() },
        ..Options::default()
    };
    let app = spawn_app(pool.clone(), opts.clone()).await;
    let run = app.refresh().await.expect("dispatch with the token").collection.unwrap();
    app.wait_for_end(&run.id).await;

    let addr = app.collector.as_ref().unwrap().addr;
    let mut direct = CollectorServiceClient::connect(format!("http://{addr}")).await.unwrap();
    let status = direct.collect(collect_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(collect_request());
    wrong.metadata_mut().insert("authorization", "Bearer the-shared-collector-tokeN".parse().unwrap());
    let status = direct.collect(wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("the-shared"), "{}", status.message());

    // An api-service with the wrong token: the refresh fails with
    // UNAVAILABLE and the lease is free again for the next one.
    let bad_file = keys.write("bad", "not-the-token");
    let bad = Options {
        collector_credentials: CollectorCredentials { token_file: Some(bad_file), ..Default::default() },
        ..opts
    };
    let api = cudly_testkit::spawn::spawn_api(pool, &bad, addr, None).await;
    let status = api.refresh().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let freshness = api.freshness().await;
    assert!(!freshness.collecting, "the lease was released: {freshness:?}");
}
