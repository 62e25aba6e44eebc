//! The web console on the API's own port: public files with the right
//! types and cache headers, the page's sign-in settings, and the gRPC
//! services behind it exactly as before.

use cudly_api::auth::KeySource;
use cudly_api::console::{ConsoleSettings, OidcClient, PageAuth};
use cudly_testkit::jwt::{self, KeyDir, SECRET};
use cudly_testkit::spawn::{Options, spawn_app};
use sqlx::PgPool;

use crate::grpc_web::http1;

const INDEX: &str = "<!doctype html><title>CUDly</title><script type=module src=/assets/index-4f2a9c.js></script>";
const SCRIPT: &str = "console.log('cudly');";

/// A built console: index.html, one hashed script, a favicon.
fn built_console(dir: &KeyDir) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.0.join("dist/assets")).unwrap();
    dir.write("dist/index.html", INDEX);
    dir.write("dist/assets/index-4f2a9c.js", SCRIPT);
    dir.write("dist/favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    dir.write("secret.txt", "outside the console");
    dir.0.join("dist")
}

async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    let response =
        http1(addr, format!("{method} {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[sqlx::test(migrations = "../migrations")]
async fn the_console_is_public_while_every_call_still_needs_a_token(pool: PgPool) {
    let keys = KeyDir::new();
    let secret = keys.write("hs256", format!("{SECRET}\n"));
    let oidc = OidcClient {
        issuer: "https://idp.example".into(),
        client_id: "cudly-console".into(),
        scopes: "openid profile".into(),
        resource: None,
    };
    let console = ConsoleSettings { dir: built_console(&keys), auth: PageAuth::Oidc { oidc } };
    let opts = Options {
        auth: jwt::settings(KeySource::Hs256SecretFile(secret)),
        console: Some(console),
        with_collector: false,
        ..Options::default()
    };
    let app = spawn_app(pool, opts).await;

    // Pages: the console's own routes answer index.html, never cached.
    for path in ["/", "/runs", "/accounts", "/auth/callback?code=x&state=y", "/?provider=aws&min_savings=10"] {
        let (head, body) = get(app.addr, "GET", path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
        assert!(head.contains("cache-control: no-cache"), "{path}: {head}");
        assert!(head.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{path}: {head}");
        assert!(head.contains("connect-src 'self' https://idp.example https:;"), "{path}: {head}");
        assert!(head.contains("referrer-policy: no-referrer") && head.contains("x-content-type-options: nosniff"));
        assert_eq!(body, INDEX, "{path}");
    }
    // Hashed assets: their type, cached for good; HEAD without a body.
    let (head, body) = get(app.addr, "GET", "/assets/index-4f2a9c.js").await;
    assert!(head.starts_with("http/1.1 200") && head.contains("content-type: text/javascript"), "{head}");
    assert!(head.contains("cache-control: public, max-age=31536000, immutable"), "{head}");
    assert_eq!(body, SCRIPT);
    let (head, body) = get(app.addr, "HEAD", "/assets/index-4f2a9c.js").await;
    assert!(head.starts_with("http/1.1 200") && head.contains(&format!("content-length: {}", SCRIPT.len())), "{head}");
    assert_eq!(body, "");
    let (head, _) = get(app.addr, "GET", "/favicon.svg").await;
    assert!(head.contains("content-type: image/svg+xml") && head.contains("cache-control: no-cache"), "{head}");
    // A missing file is a 404, not the page; nothing outside the directory.
    for path in
        ["/assets/gone-123.js", "/missing.png", "/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"]
    {
        let (head, body) = get(app.addr, "GET", path).await;
        assert!(head.starts_with("http/1.1 404") || head.starts_with("http/1.1 400"), "{path}: {head}");
        assert!(!head.contains("max-age=31536000"), "{path}: a miss is never cached for good: {head}");
        assert!(!body.contains("outside the console") && !body.contains("<title>"), "{path}: {body}");
    }
    // How the page signs in.
    let (head, body) = get(app.addr, "GET", "/config.json").await;
    assert!(head.contains("content-type: application/json") && head.contains("cache-control: no-cache"), "{head}");
    assert_eq!(
        body,
        r#"{"auth":"oidc","oidc":{"issuer":"https://idp.example","clientId":"cudly-console","scopes":"openid profile"}}"#
    );

    // The calls behind the console still need a token, over gRPC and gRPC-web.
    let mut client = app.client.clone();
    let refused = client.get_freshness(cudly_proto::recommendations::v1::GetFreshnessRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let path = "/cudly.recommendations.v1.RecommendationsService/GetFreshness";
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[0, 0, 0, 0, 0]);
    let response = http1(app.addr, &request).await.to_ascii_lowercase();
    assert!(response.contains("grpc-status: 16") || response.contains("grpc-status:16"), "{response}");
    let token = jwt::hs256(serde_json::json!({}));
    let mut call = tonic::Request::new(cudly_proto::recommendations::v1::GetFreshnessRequest {});
    call.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.get_freshness(call).await.expect("a viewer's token is let in");
}

#[sqlx::test(migrations = "../migrations")]
async fn without_a_console_the_port_serves_no_page(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    let (head, body) = get(app.addr, "GET", "/").await;
    assert!(!head.contains("text/html") && !body.contains("<title>"), "{head}");
    assert!(!head.contains("content-security-policy"), "{head}");
}
