//! AccountsService: the accounts registry, validated account records with
//! their credentials references. Requests are checked in `validate`, stored
//! through `store`; deleting an account removes its recommendations (and
//! those collected through it) and bumps the data version in the same
//! transaction, so no cached summary outlives them.

mod store;
mod validate;

use cudly_core::credentials::{AwsCredentials, AzureCredentials, Credentials, GcpCredentials};
use cudly_core::domain::{Provider, timestamp};
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::accounts_service_server::AccountsService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

pub use self::store::delete_account;
use self::store::{AccountRow, Changes};
use self::validate::{invalid, key, parse_credentials, parse_new, parse_provider, validate_name};
use crate::{page_token, recommendations};

/// Tells account-list tokens from every other kind.
const ACCOUNTS_TOKEN: &str = "accounts";

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
            enabled: Some(self.enabled),
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
}

#[tonic::async_trait]
impl AccountsService for AccountsApi {
    #[tracing::instrument(skip_all)]
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let new = parse_new(request.into_inner().account)?;
        let (provider, external_id) = (new.provider, new.external_id.clone());
        let row = store::insert(&self.pool, new).await?;
        tracing::info!(%provider, account = %external_id, "account registered");
        Ok(Response::new(row.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::Account>, Status> {
        let req = request.into_inner();
        let (provider, external_id) = key(req.provider, &req.external_id)?;
        Ok(Response::new(store::fetch(&self.pool, provider, &external_id).await?.into_proto()))
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
        let mut rows = store::list(&self.pool, provider, after.unwrap_or_default(), page_size + 1).await?;
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
        let changes = Changes {
            display_name: req.display_name,
            enabled: req.enabled,
            credentials,
            clear_credentials: req.clear_credentials,
        };
        let row = store::update(&self.pool, provider, &external_id, changes).await?;
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
        let removed = store::remove(&self.pool, provider, &external_id).await?;
        tracing::info!(%provider, account = %external_id, recommendations = removed, "account deleted");
        Ok(Response::new(pb::DeleteAccountResponse { recommendations_deleted: removed as i64 }))
    }
}
