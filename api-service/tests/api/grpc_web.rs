//! gRPC-web over HTTP/1.1 on the same port, with browser CORS.

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cudly_testkit::spawn::{Options, spawn_app};

pub(crate) async fn http1(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_browser_can_call_over_grpc_web_after_a_cors_preflight(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    let path = "/cudly.recommendations.v1.RecommendationsService/GetFreshness";

    let preflight = http1(
        app.addr,
        format!(
            "OPTIONS {path} HTTP/1.1\r\nHost: api\r\nOrigin: https://console.example\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization,content-type,x-grpc-web,x-user-agent\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(preflight.contains("access-control-allow-origin: *"), "{preflight}");
    let allowed = preflight.lines().find(|l| l.starts_with("access-control-allow-headers:")).unwrap_or_default();
    assert!(allowed.contains("authorization") && allowed.contains("x-grpc-web"), "{allowed}");
    assert!(preflight.contains("access-control-max-age: 86400"), "{preflight}");

    // An empty GetFreshnessRequest in one gRPC-web frame.
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: api\r\nOrigin: https://console.example\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[0, 0, 0, 0, 0]);
    let response = http1(app.addr, &request).await;
    let lower = response.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{response}");
    assert!(lower.contains("content-type: application/grpc-web+proto"), "{response}");
    let exposed = lower.lines().find(|l| l.starts_with("access-control-expose-headers:")).unwrap_or_default();
    assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"), "{exposed}");
    assert!(lower.contains("grpc-status:0"), "the trailer frame reports OK: {response}");
}

/// The `access-control-allow-headers` of a preflight asking to send
/// `headers`, or the whole response when the preflight failed.
async fn preflight_allowed_headers(addr: std::net::SocketAddr, headers: &str) -> Vec<String> {
    let path = "/cudly.recommendations.v1.RecommendationsService/GetFreshness";
    let preflight = http1(
        addr,
        format!(
            "OPTIONS {path} HTTP/1.1\r\nHost: api\r\nOrigin: https://console.example\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {headers}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    let allowed = preflight.lines().find_map(|l| l.strip_prefix("access-control-allow-headers:")).unwrap_or_default();
    allowed.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_page_with_trace_context_and_a_request_id_passes_the_preflight(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    // What a page with OpenTelemetry's fetch instrumentation and a request
    // id sends besides gRPC-web's own headers and its bearer token.
    let requested = ["traceparent", "tracestate", "x-request-id", "content-type", "x-grpc-web", "authorization"];
    let allowed = preflight_allowed_headers(app.addr, &requested.join(",")).await;
    for header in requested {
        assert!(allowed.iter().any(|a| a == header), "{header} is not allowed: {allowed:?}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn configured_cors_headers_replace_the_default_list(pool: PgPool) {
    let configured = ["content-type", "x-grpc-web", "X-Tenant"].map(String::from).to_vec();
    let opts = Options { with_collector: false, cors_allowed_headers: configured, ..Options::default() };
    let app = spawn_app(pool, opts).await;
    let allowed = preflight_allowed_headers(app.addr, "content-type,x-grpc-web,x-tenant,traceparent").await;
    assert!(allowed.iter().any(|a| a == "x-tenant"), "the configured header is allowed: {allowed:?}");
    for header in ["traceparent", "authorization", "x-request-id"] {
        assert!(!allowed.iter().any(|a| a == header), "{header} is left out once a list is configured: {allowed:?}");
    }
}
