//! The accounts registry: validated account records with their credentials
//! references, and AccountsService over them. Deleting an account removes
//! its recommendations (and those collected through it) and bumps the data
//! version in the same transaction, so no cached summary outlives them.

use chrono::{DateTime, Utc};
use cudly_core::credentials::{AwsCredentials, AzureCredentials, Credentials, GcpCredentials, SecretRef, validate};
use cudly_core::domain::{Provider, timestamp};
use cudly_core::schema::ACCOUNTS_LOCK;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::accounts_service_server::AccountsService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::page_token;
use crate::recommendations;

/// Longest display name.
const MAX_NAME_LEN: usize = 200;

/// An account as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
struct AccountRow {
    provider: String,
    external_id: String,
    display_name: String,
    enabled: bool,
    credentials: Option<sqlx::types::Json<Credentials>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AccountRow {
    fn into_proto(self) -> pb::Account {
        use pb::account::Credentials as C;
        let credentials = self.credentials.map(|c| match c.0 {
            Credentials::Aws(c) => C::Aws(aws_to_proto(c)),
            Credentials::Azure(c) => C::Azure(azure_to_proto(c)),
            Credentials::Gcp(c) => C::Gcp(gcp_to_proto(c)),
        });
        pb::Account {
            provider: Provider::parse(&self.provider).map(Provider::to_proto).unwrap_or_default(),
            external_id: self.external_id,
            display_name: self.display_name,
            enabled: self.enabled,
            credentials,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }
}

fn aws_to_proto(c: AwsCredentials) -> pb::AwsCredentials {
    pb::AwsCredentials {
        role_arn: c.role_arn.unwrap_or_default(),
        external_id: c.external_id.unwrap_or_default(),
        organization: c.organization,
    }
}

fn azure_to_proto(c: AzureCredentials) -> pb::AzureCredentials {
    pb::AzureCredentials {
        tenant_id: c.tenant_id,
        client_id: c.client_id,
        client_secret_ref: c.client_secret.to_string(),
    }
}

fn gcp_to_proto(c: GcpCredentials) -> pb::GcpCredentials {
    pb::GcpCredentials {
        service_account_key_ref: c.service_account_key.map(|r| r.to_string()).unwrap_or_default(),
        billing_account_id: c.billing_account_id.unwrap_or_default(),
    }
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// The provider of a request; unset or unknown is an error naming `field`.
fn parse_provider(value: i32) -> Result<Provider, Error> {
    match Provider::from_proto(value) {
        Some(p) => Ok(p),
        None if value == 0 => Err(invalid("provider: required (PROVIDER_AWS, PROVIDER_AZURE or PROVIDER_GCP)".into())),
        None => Err(invalid(format!("provider: unknown value {value}"))),
    }
}

/// Checks an external id has its provider's shape.
pub fn validate_external_id(provider: Provider, id: &str) -> Result<(), Error> {
    let checked = match provider {
        Provider::Aws => validate::aws_account_id(id),
        Provider::Azure => validate::azure_id("subscription id", id),
        Provider::Gcp => validate::gcp_project_id(id),
    };
    checked.map_err(|e| invalid(format!("external_id: {e}")))
}

fn validate_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(invalid("display_name: must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(invalid(format!("display_name: at most {MAX_NAME_LEN} characters, no control characters")));
    }
    Ok(())
}

fn secret_ref(field: &str, value: &str) -> Result<SecretRef, Error> {
    value.parse().map_err(|e| invalid(format!("{field}: {e}")))
}

/// Validates a credentials message for `provider`.
fn parse_credentials(provider: Provider, credentials: pb::account::Credentials) -> Result<Credentials, Error> {
    use pb::account::Credentials as C;
    match (provider, credentials) {
        (Provider::Aws, C::Aws(c)) => {
            let role_arn = (!c.role_arn.is_empty()).then_some(c.role_arn);
            if let Some(arn) = &role_arn {
                validate::role_arn(arn).map_err(|e| invalid(format!("aws.role_arn: {e}")))?;
            }
            let external_id = (!c.external_id.is_empty()).then_some(c.external_id);
            if let Some(id) = &external_id {
                if role_arn.is_none() {
                    return Err(invalid("aws.external_id: only used with aws.role_arn".into()));
                }
                validate::external_id(id).map_err(|e| invalid(format!("aws.external_id: {e}")))?;
            }
            Ok(Credentials::Aws(AwsCredentials { role_arn, external_id, organization: c.organization }))
        }
        (Provider::Azure, C::Azure(c)) => {
            validate::azure_id("tenant id", &c.tenant_id).map_err(|e| invalid(format!("azure.tenant_id: {e}")))?;
            validate::azure_id("client id", &c.client_id).map_err(|e| invalid(format!("azure.client_id: {e}")))?;
            let client_secret = secret_ref("azure.client_secret_ref", &c.client_secret_ref)?;
            Ok(Credentials::Azure(AzureCredentials {
                tenant_id: c.tenant_id.to_ascii_lowercase(),
                client_id: c.client_id.to_ascii_lowercase(),
                client_secret,
            }))
        }
        (Provider::Gcp, C::Gcp(c)) => {
            let service_account_key = match c.service_account_key_ref.as_str() {
                "" => None,
                r => Some(secret_ref("gcp.service_account_key_ref", r)?),
            };
            let billing_account_id = (!c.billing_account_id.is_empty()).then_some(c.billing_account_id);
            if let Some(id) = &billing_account_id {
                validate::gcp_billing_account_id(id).map_err(|e| invalid(format!("gcp.billing_account_id: {e}")))?;
            }
            Ok(Credentials::Gcp(GcpCredentials { service_account_key, billing_account_id }))
        }
        (provider, other) => {
            let given = match other {
                C::Aws(_) => "aws",
                C::Azure(_) => "azure",
                C::Gcp(_) => "gcp",
            };
            Err(invalid(format!("credentials: {given} credentials given for a {provider} account")))
        }
    }
}

/// A new account, validated.
#[derive(Debug, PartialEq)]
struct NewAccount {
    provider: Provider,
    external_id: String,
    display_name: String,
    enabled: bool,
    credentials: Option<Credentials>,
}

fn parse_new(account: Option<pb::Account>) -> Result<NewAccount, Error> {
    let account = account.ok_or_else(|| invalid("account: required".into()))?;
    let provider = parse_provider(account.provider)?;
    validate_external_id(provider, &account.external_id)?;
    let display_name = if account.display_name.is_empty() { account.external_id.clone() } else { account.display_name };
    validate_name(&display_name)?;
    let credentials = account.credentials.map(|c| parse_credentials(provider, c)).transpose()?;
    Ok(NewAccount { provider, external_id: account.external_id, display_name, enabled: account.enabled, credentials })
}

/// The stored columns, for `concat!` (queries must be static strings).
macro_rules! columns {
    () => {
        "provider, external_id, display_name, enabled, credentials, created_at, updated_at"
    };
}

/// Tells account-list tokens from every other kind.
const ACCOUNTS_TOKEN: &str = "accounts";

/// AccountsService over the database.
#[derive(Clone, Debug)]
pub struct AccountsApi {
    pool: PgPool,
}

impl AccountsApi {
    /// The service over `pool`.
    pub fn new(pool: PgPool) -> Self {
        AccountsApi { pool }
    }

    async fn fetch(&self, provider: Provider, external_id: &str) -> Result<AccountRow, Status> {
        let row: Option<AccountRow> =
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM accounts WHERE provider = $1 AND external_id = $2"))
                .bind(provider.as_str())
                .bind(external_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(Error::from)?;
        row.ok_or_else(|| Status::not_found(format!("no {provider} account {external_id:?}")))
    }
}

fn key(provider: i32, external_id: &str) -> Result<(Provider, String), Error> {
    let provider = parse_provider(provider)?;
    validate_external_id(provider, external_id)?;
    Ok((provider, external_id.to_string()))
}

#[tonic::async_trait]
impl AccountsService for AccountsApi {
    #[tracing::instrument(skip_all)]
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let new = parse_new(request.into_inner().account)?;
        let row: Option<AccountRow> = sqlx::query_as(concat!(
            "INSERT INTO accounts (provider, external_id, display_name, enabled, credentials)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (provider, external_id) DO NOTHING
             RETURNING ",
            columns!()
        ))
        .bind(new.provider.as_str())
        .bind(&new.external_id)
        .bind(&new.display_name)
        .bind(new.enabled)
        .bind(new.credentials.map(sqlx::types::Json))
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::from)?;
        let row = row.ok_or_else(|| {
            Status::already_exists(format!("{} account {:?} is already registered", new.provider, new.external_id))
        })?;
        tracing::info!(provider = %new.provider, account = %new.external_id, "account registered");
        Ok(Response::new(row.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::Account>, Status> {
        let req = request.into_inner();
        let (provider, external_id) = key(req.provider, &req.external_id)?;
        Ok(Response::new(self.fetch(provider, &external_id).await?.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let req = request.into_inner();
        let provider = match req.provider {
            0 => None,
            v => Some(parse_provider(v)?),
        };
        let page_size = recommendations::parse_page_size(req.page_size)?;
        let filters = page_token::fingerprint(&[ACCOUNTS_TOKEN, provider.map(Provider::as_str).unwrap_or("")]);
        let after = page_token::decode::<(String, String)>(&req.page_token, filters)?;
        let (after_provider, after_id) = after.unwrap_or_default();
        let mut rows: Vec<AccountRow> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM accounts
             WHERE ($1::text IS NULL OR provider = $1) AND (provider, external_id) > ($2, $3)
             ORDER BY provider, external_id LIMIT $4"
        ))
        .bind(provider.map(Provider::as_str))
        .bind(after_provider)
        .bind(after_id)
        .bind(page_size + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::from)?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            let last = rows.last().expect("a full page has a last row");
            page_token::encode(filters, &(last.provider.clone(), last.external_id.clone()))
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: rows.into_iter().map(AccountRow::into_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let req = request.into_inner();
        let (provider, external_id) = key(req.provider, &req.external_id)?;
        if let Some(name) = &req.display_name {
            validate_name(name)?;
        }
        let credentials = req.credentials.map(|c| {
            let c = match c {
                pb::update_account_request::Credentials::Aws(c) => pb::account::Credentials::Aws(c),
                pb::update_account_request::Credentials::Azure(c) => pb::account::Credentials::Azure(c),
                pb::update_account_request::Credentials::Gcp(c) => pb::account::Credentials::Gcp(c),
            };
            parse_credentials(provider, c)
        });
        let credentials = credentials.transpose()?;
        if credentials.is_some() && req.clear_credentials {
            return Err(invalid("clear_credentials: cannot be combined with new credentials".into()).into());
        }
        let row: Option<AccountRow> = sqlx::query_as(concat!(
            "UPDATE accounts SET
                 display_name = COALESCE($3, display_name),
                 enabled = COALESCE($4, enabled),
                 credentials = CASE WHEN $6 THEN NULL ELSE COALESCE($5, credentials) END,
                 updated_at = now()
             WHERE provider = $1 AND external_id = $2
             RETURNING ",
            columns!()
        ))
        .bind(provider.as_str())
        .bind(&external_id)
        .bind(req.display_name)
        .bind(req.enabled)
        .bind(credentials.map(sqlx::types::Json))
        .bind(req.clear_credentials)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::from)?;
        let row = row.ok_or_else(|| Status::not_found(format!("no {provider} account {external_id:?}")))?;
        tracing::info!(%provider, account = %external_id, "account updated");
        Ok(Response::new(row.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let req = request.into_inner();
        let (provider, external_id) = key(req.provider, &req.external_id)?;
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let removed = delete_account(&mut tx, provider, &external_id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Status::not_found(format!("no {provider} account {external_id:?}")))?;
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(%provider, account = %external_id, recommendations = removed, "account deleted");
        Ok(Response::new(pb::DeleteAccountResponse { recommendations_deleted: removed as i64 }))
    }
}

/// Deletes an account with its recommendations (its own, and those
/// collected through it: an organization's linked accounts, a GCP billing
/// account) in `tx`, serialized with any run writing its results: that run
/// then leaves this account's rows out, or wrote them before this deletes
/// them. `None` when there is no such account. Commit `tx` to make it so.
pub async fn delete_account(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    provider: Provider,
    external_id: &str,
) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ACCOUNTS_LOCK).execute(&mut **tx).await?;
    let deleted = sqlx::query("DELETE FROM accounts WHERE provider = $1 AND external_id = $2")
        .bind(provider.as_str())
        .bind(external_id)
        .execute(&mut **tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Ok(None);
    }
    let removed =
        sqlx::query("DELETE FROM recommendations WHERE provider = $1 AND (account_id = $2 OR source_account_id = $2)")
            .bind(provider.as_str())
            .bind(external_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if removed > 0 {
        // Cached summaries are keyed by the data version.
        sqlx::query("UPDATE collection_state SET data_version = data_version + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some(removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(provider: Provider, id: &str, credentials: Option<pb::account::Credentials>) -> Option<pb::Account> {
        Some(pb::Account { provider: provider.to_proto(), external_id: id.into(), credentials, ..Default::default() })
    }

    fn field_of(result: Result<NewAccount, Error>) -> String {
        result.unwrap_err().to_string().split(':').next().unwrap().to_string()
    }

    #[test]
    fn accounts_are_validated_field_by_field() {
        use pb::account::Credentials as C;
        let ok = parse_new(account(Provider::Aws, "123456789012", None)).unwrap();
        assert_eq!(ok.display_name, "123456789012", "the name defaults to the id");
        assert_eq!(field_of(parse_new(None)), "account");
        assert_eq!(field_of(parse_new(account(Provider::Aws, "1234", None))), "external_id");
        assert_eq!(field_of(parse_new(Some(pb::Account { provider: 7, ..Default::default() }))), "provider");
        assert_eq!(field_of(parse_new(account(Provider::Azure, "not-a-uuid", None))), "external_id");
        assert_eq!(field_of(parse_new(account(Provider::Gcp, "Bad_Project", None))), "external_id");
        let aws = |role: &str, ext: &str| {
            Some(C::Aws(pb::AwsCredentials { role_arn: role.into(), external_id: ext.into(), organization: false }))
        };
        let id = "123456789012";
        assert_eq!(field_of(parse_new(account(Provider::Aws, id, aws("arn:aws:iam::1:role/x", "")))), "aws.role_arn");
        assert_eq!(field_of(parse_new(account(Provider::Aws, id, aws("", "ext-1")))), "aws.external_id");
        assert!(parse_new(account(Provider::Aws, id, aws("arn:aws:iam::123456789012:role/cudly", "ext-1"))).is_ok());
        let azure = |secret: &str| {
            Some(C::Azure(pb::AzureCredentials {
                tenant_id: "0b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
                client_id: "5f1c1c3e-98a4-4f3e-9e1e-3a1b2c3d4e5f".into(),
                client_secret_ref: secret.into(),
            }))
        };
        let sub = "9b1f6471-1bf0-4dda-aec3-cb9272f09590";
        let err = parse_new(account(Provider::Azure, sub, azure("the-secret-itself"))).unwrap_err().to_string();
        assert!(err.starts_with("azure.client_secret_ref") && err.contains("never the secret"), "{err}");
        assert!(parse_new(account(Provider::Azure, sub, azure("env:CUDLY_CLOUD_SECRET_AZURE_PROD"))).is_ok());
        assert_eq!(
            field_of(parse_new(account(Provider::Gcp, "my-project-1", azure("env:CUDLY_CLOUD_SECRET_X")))),
            "credentials"
        );
        let gcp = Some(C::Gcp(pb::GcpCredentials {
            service_account_key_ref: "file:/var/run/secrets/gcp/key.json".into(),
            billing_account_id: "nope".into(),
        }));
        assert_eq!(field_of(parse_new(account(Provider::Gcp, "my-project-1", gcp))), "gcp.billing_account_id");
    }
}
