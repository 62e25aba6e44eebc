//! The contract each server shows its callers: reflection lists exactly
//! the services it serves (and describes nothing else), and a call to any
//! other service is UNIMPLEMENTED with a message naming what is served.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cudly_proto::collector::v1::CollectRequest;
use cudly_proto::collector::v1::collector_service_client::CollectorServiceClient;
use cudly_proto::recommendations::v1 as pb;
use cudly_testkit::spawn::{Options, spawn_app};
use sqlx::PgPool;
use tonic::Code;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// The services reflection v1 lists on `addr`.
async fn listed_v1(addr: SocketAddr) -> BTreeSet<String> {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(addr).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    match answers.message().await.unwrap().unwrap().message_response.unwrap() {
        v1::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

/// The services reflection v1alpha (what grpcurl 1.8 asks) lists on `addr`.
async fn listed_v1alpha(addr: SocketAddr) -> BTreeSet<String> {
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel(addr).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    match answers.message().await.unwrap().unwrap().message_response.unwrap() {
        v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a service list: {other:?}"),
    }
}

/// Whether reflection v1 on `addr` describes `symbol` (NOT_FOUND: it does
/// not).
async fn describes(addr: SocketAddr, symbol: &str) -> bool {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(addr).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    match answers.message().await {
        Ok(answer) => matches!(
            answer.unwrap().message_response.unwrap(),
            v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_)
        ),
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("{status:?}"),
    }
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn each_server_lists_and_describes_only_the_services_it_serves(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let collector = app.collector.as_ref().unwrap().addr;
    let api_services = [
        "cudly.recommendations.v1.AccountsService",
        "cudly.recommendations.v1.NotificationsService",
        "cudly.recommendations.v1.RecommendationsService",
        "grpc.health.v1.Health",
    ];
    let mut expected = names(&api_services);
    expected.insert("grpc.reflection.v1.ServerReflection".into());
    assert_eq!(listed_v1(app.addr).await, expected);
    let mut expected = names(&api_services);
    expected.insert("grpc.reflection.v1alpha.ServerReflection".into());
    assert_eq!(listed_v1alpha(app.addr).await, expected);

    let expected =
        names(&["cudly.collector.v1.CollectorService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);
    assert_eq!(listed_v1(collector).await, expected);

    assert!(describes(app.addr, "cudly.recommendations.v1.RecommendationsService").await);
    assert!(describes(app.addr, "google.type.Money").await, "what a served message uses is described");
    assert!(!describes(app.addr, "cudly.collector.v1.CollectorService").await);
    assert!(describes(collector, "cudly.collector.v1.CollectorService").await);
    assert!(!describes(collector, "cudly.recommendations.v1.ListRecommendationsRequest").await);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_call_to_a_service_not_served_here_names_the_ones_that_are(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let collector = app.collector.as_ref().unwrap().addr;

    let mut wrong = CollectorServiceClient::new(channel(app.addr).await);
    let status = wrong.collect(CollectRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().starts_with("\"cudly.collector.v1.CollectorService\" is not served here")
            && status.message().contains("cudly.recommendations.v1.RecommendationsService"),
        "{}",
        status.message()
    );

    let mut wrong = pb::recommendations_service_client::RecommendationsServiceClient::new(channel(collector).await);
    let status = wrong.get_freshness(pb::GetFreshnessRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("this server serves cudly.collector.v1.CollectorService"),
        "{}",
        status.message()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_account_created_without_saying_enabled_is_enabled_and_false_disables_it(pool: PgPool) {
    let app = spawn_app(pool, Options { with_collector: false, ..Options::default() }).await;
    let mut accounts = pb::accounts_service_client::AccountsServiceClient::new(channel(app.addr).await);
    let account = |id: &str, enabled: Option<bool>| pb::CreateAccountRequest {
        account: Some(pb::Account {
            provider: pb::Provider::Aws as i32,
            external_id: id.into(),
            enabled,
            ..Default::default()
        }),
    };
    let omitted = accounts.create_account(account("111111111111", None)).await.unwrap().into_inner();
    assert_eq!(omitted.enabled, Some(true));
    let disabled = accounts.create_account(account("222222222222", Some(false))).await.unwrap().into_inner();
    assert_eq!(disabled.enabled, Some(false));
}
