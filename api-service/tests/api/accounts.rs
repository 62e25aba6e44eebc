//! The accounts registry over gRPC: create, get, list, update, delete, with
//! validation, and deletion taking the account's recommendations with it.

use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::accounts_service_client::AccountsServiceClient;
use sqlx::PgPool;
use tonic::Code;
use tonic::transport::Channel;

use cudly_testkit::spawn::{Options, spawn_app};

fn aws(id: &str, name: &str, role: &str) -> pb::Account {
    pb::Account {
        provider: pb::Provider::Aws as i32,
        external_id: id.into(),
        display_name: name.into(),
        enabled: Some(true),
        credentials: Some(pb::account::Credentials::Aws(pb::AwsCredentials {
            role_arn: role.into(),
            external_id: if role.is_empty() { String::new() } else { "cudly-ext-1".into() },
            organization: false,
        })),
        ..Default::default()
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn accounts_are_created_listed_updated_and_deleted_with_their_recommendations(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let channel = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
    let mut accounts = AccountsServiceClient::new(channel);

    // Create, with a role to assume; a second create of the same id is refused.
    let role = "arn:aws:iam::210987654321:role/cudly-read-cost-explorer";
    let created = accounts
        .create_account(pb::CreateAccountRequest { account: Some(aws("210987654321", "Payments prod", role)) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.display_name, "Payments prod");
    assert!(created.created_at.is_some());
    let again = accounts
        .create_account(pb::CreateAccountRequest { account: Some(aws("210987654321", "x", "")) })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    // Bad fields are named.
    for (account, field) in [
        (aws("2109876543", "short id", ""), "external_id"),
        (aws("210987654322", "bad role", "arn:aws:iam::1:role/x"), "aws.role_arn"),
        (aws("210987654322", "bell\u{7}", ""), "display_name"),
        (
            pb::Account {
                provider: pb::Provider::Azure as i32,
                external_id: "9b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
                credentials: Some(pb::account::Credentials::Azure(pb::AzureCredentials {
                    tenant_id: "0b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
                    client_id: "5f1c1c3e-98a4-4f3e-9e1e-3a1b2c3d4e5f".into(),
                    client_secret_ref: "p4ssw0rd!".into(),
                })),
                ..Default::default()
            },
            "azure.client_secret_ref",
        ),
    ] {
        let status = accounts.create_account(pb::CreateAccountRequest { account: Some(account) }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
    }
    let secret_echo = accounts
        .create_account(pb::CreateAccountRequest {
            account: Some(pb::Account {
                provider: pb::Provider::Gcp as i32,
                external_id: "my-project-1".into(),
                credentials: Some(pb::account::Credentials::Gcp(pb::GcpCredentials {
                    service_account_key_ref: "-----BEGIN PRIVATE KEY-----".into(),
                    billing_account_id: String::new(),
                })),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert!(!secret_echo.message().contains("BEGIN PRIVATE KEY"), "a refused secret is not echoed back");

    // A file reference names one file, never a directory or the kernel's
    // views of the collector (its environment holds its database URL).
    for (reference, field) in [
        ("file:/proc/self/environ", "gcp.service_account_key_ref"),
        ("file:/sys/class/net/eth0/address", "gcp.service_account_key_ref"),
        ("file:/dev/stdin", "gcp.service_account_key_ref"),
        ("file:/", "gcp.service_account_key_ref"),
        ("file:/var/run/secrets/cudly/clouds/", "gcp.service_account_key_ref"),
        ("file:keys/gcp.json", "gcp.service_account_key_ref"),
        ("file:/var/run/secrets/cudly/clouds/../collector/token", "gcp.service_account_key_ref"),
    ] {
        let account = pb::Account {
            provider: pb::Provider::Gcp as i32,
            external_id: "my-project-1".into(),
            credentials: Some(pb::account::Credentials::Gcp(pb::GcpCredentials {
                service_account_key_ref: reference.into(),
                billing_account_id: String::new(),
            })),
            ..Default::default()
        };
        let status = accounts.create_account(pb::CreateAccountRequest { account: Some(account) }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{reference}: {status:?}");
        assert!(status.message().starts_with(field), "{reference}: {}", status.message());
    }

    // Listed with the three seeded simulated AWS accounts, in id order, in pages.
    let first = accounts
        .list_accounts(pb::ListAccountsRequest {
            provider: pb::Provider::Aws as i32,
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.accounts.len(), 3);
    let rest = accounts
        .list_accounts(pb::ListAccountsRequest {
            provider: pb::Provider::Aws as i32,
            page_size: 3,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.accounts.len(), 1);
    assert_eq!(rest.accounts[0].external_id, "210987654321");
    assert!(rest.next_page_token.is_empty());
    let foreign = accounts
        .list_accounts(pb::ListAccountsRequest { provider: 0, page_size: 3, page_token: first.next_page_token })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument, "a token is bound to its provider filter");

    // Update: rename, disable, switch to ambient credentials.
    let updated = accounts
        .update_account(pb::UpdateAccountRequest {
            provider: pb::Provider::Aws as i32,
            external_id: "210987654321".into(),
            display_name: Some("Payments (prod)".into()),
            enabled: Some(false),
            credentials: None,
            clear_credentials: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.display_name.as_str(), updated.enabled), ("Payments (prod)", Some(false)));
    assert!(updated.credentials.is_none());
    let missing = accounts
        .get_account(pb::GetAccountRequest { provider: pb::Provider::Aws as i32, external_id: "999999999999".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Delete a collected account: its recommendations go, and the summary
    // (cached per data version) no longer counts them.
    let run = app.refresh().await.unwrap().collection.unwrap();
    app.wait_for_end(&run.id).await;
    let before = app.list(pb::ListRecommendationsRequest::default()).await.unwrap().summary.unwrap().count;
    let victim = first.accounts[0].external_id.clone();
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM recommendations WHERE account_id = $1")
        .bind(&victim)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(own > 0);
    let deleted = accounts
        .delete_account(pb::DeleteAccountRequest { provider: pb::Provider::Aws as i32, external_id: victim.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.recommendations_deleted, own);
    let after = app.list(pb::ListRecommendationsRequest::default()).await.unwrap().summary.unwrap().count;
    assert_eq!(after, before - own);
    let gone = accounts
        .get_account(pb::GetAccountRequest { provider: pb::Provider::Aws as i32, external_id: victim })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

/// A run's results with one row for each of `accounts`, collected by itself.
fn results_for(accounts: &[&str]) -> cudly_collector::engine::Collected {
    let rows: Vec<(&str, &str, &str)> = accounts.iter().map(|id| (*id, *id, "m5.large")).collect();
    cudly_testkit::fixtures::collected(&rows, accounts)
}

#[sqlx::test(migrations = "../migrations")]
async fn an_account_deleted_while_a_run_writes_its_results_is_never_written_back(pool: PgPool) {
    use cudly_core::domain::{Provider, Trigger};
    use cudly_core::lease::{Acquired, acquire_lease};
    let (doomed, staying) = ("210987654321", "310987654321");
    sqlx::query(
        "INSERT INTO accounts (provider, external_id, display_name) VALUES ('aws', $1, 'Doomed'), ('aws', $2, 'Stays')",
    )
    .bind(doomed)
    .bind(staying)
    .execute(&pool)
    .await
    .unwrap();
    let Acquired::Started(run) = acquire_lease(&pool, Trigger::User, std::time::Duration::from_secs(30)).await.unwrap()
    else {
        panic!("the lease was free");
    };
    let lease = run.lease();

    // DeleteAccount is under way (its transaction holds the accounts lock)
    // when the run writes its results, which include the doomed account's.
    let mut deletion = pool.begin().await.unwrap();
    let removed = cudly_api::accounts::delete_account(&mut deletion, Provider::Aws, doomed).await.unwrap();
    assert_eq!(removed, Some(0));
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            cudly_collector::persist::finish_run(
                &pool,
                &lease,
                results_for(&[doomed, staying]),
                &cudly_testkit::settings::notice_rules(),
            )
            .await
        })
    };
    // The run's write waits for the deletion.
    let mut waited = false;
    for _ in 0..500 {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                .fetch_one(&pool)
                .await
                .unwrap();
        if waiting > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waited, "the results' write waited for the deletion's lock");
    deletion.commit().await.unwrap();
    let finished = writer.await.unwrap().unwrap();
    assert_eq!(finished.written, 1, "only the account that still exists");
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT account_id FROM recommendations").fetch_all(&pool).await.unwrap();
    assert_eq!(owners, [staying], "the deleted account's rows did not come back");
}
