//! AccountsService: `cudlyctl accounts create|get|list|update|delete`.
//! Credentials are references (a role, ids, `env:`/`file:` where a secret
//! is), never secret values; the flags mirror the request's fields.

use clap::{ArgGroup, Args, Subcommand};
use cudly_core::credentials::SecretRef;
use cudly_core::domain::Provider;
use cudly_core::quote::at_most;
use cudly_proto::recommendations::v1 as pb;

use crate::connect::Accounts;
use crate::output::{self, Format, time};
use crate::paging::{self, Pages};
use crate::recommendations::{provider_name, provider_parser};

/// The accounts subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCmd {
    /// Register an account (ALREADY_EXISTS, exit status 7, when it is).
    Create {
        #[command(flatten)]
        key: Key,
        /// What people call it (the external id when omitted).
        #[arg(long)]
        display_name: Option<String>,
        /// Whether runs collect it (true when omitted).
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
    /// Print one account.
    Get {
        #[command(flatten)]
        key: Key,
    },
    /// List accounts, by provider then external id.
    List {
        /// Only this cloud's.
        #[arg(long, value_parser = provider_parser())]
        provider: Option<Provider>,
        /// Accounts to print, fetched in as many pages as that takes.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        pages: Pages,
    },
    /// Change what is given, keep the rest.
    Update {
        #[command(flatten)]
        key: Key,
        /// A new display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Enable or disable collecting it.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        #[command(flatten)]
        credentials: CredentialArgs,
        /// Go back to the provider's default credentials.
        #[arg(long, conflicts_with_all = ["aws", "azure", "gcp"])]
        clear_credentials: bool,
    },
    /// Remove an account and its recommendations (and those collected
    /// through it).
    Delete {
        #[command(flatten)]
        key: Key,
    },
}

/// Which account.
#[derive(Debug, Args)]
pub(crate) struct Key {
    /// The account's cloud.
    #[arg(long, value_parser = provider_parser())]
    provider: Provider,
    /// AWS account id, Azure subscription id or GCP project id.
    #[arg(long)]
    external_id: String,
}

/// How the collector reaches the account: the flags of one provider at
/// most; none keeps (create: uses) the provider's default.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(ArgGroup::new("aws").multiple(true).conflicts_with_all(["azure", "gcp"])))]
#[command(group(ArgGroup::new("azure").multiple(true).conflicts_with("gcp")))]
#[command(group(ArgGroup::new("gcp").multiple(true)))]
pub(crate) struct CredentialArgs {
    /// AWS: role to assume in the account (arn:aws:iam::123456789012:role/NAME).
    #[arg(long, group = "aws", value_name = "ARN")]
    aws_role_arn: Option<String>,
    /// AWS: the external id the role's trust policy requires.
    #[arg(long, group = "aws", value_name = "ID")]
    aws_external_id: Option<String>,
    /// AWS: an organization's management account, collected with its
    /// linked accounts.
    #[arg(long, group = "aws")]
    aws_organization: bool,
    /// Azure: directory (tenant) id.
    #[arg(long, group = "azure", value_name = "UUID")]
    azure_tenant_id: Option<String>,
    /// Azure: application (client) id.
    #[arg(long, group = "azure", value_name = "UUID")]
    azure_client_id: Option<String>,
    /// Azure: where the client secret is, env:CUDLY_CLOUD_SECRET_<NAME> or
    /// file:/absolute/path (never the secret itself).
    #[arg(long, group = "azure", value_name = "REF")]
    azure_client_secret_ref: Option<String>,
    /// GCP: where the service-account key is, env:CUDLY_CLOUD_SECRET_<NAME>
    /// or file:/absolute/path (the metadata server when omitted).
    #[arg(long, group = "gcp", value_name = "REF")]
    gcp_service_account_key_ref: Option<String>,
    /// GCP: billing account for spend-based commitments
    /// (XXXXXX-XXXXXX-XXXXXX).
    #[arg(long, group = "gcp", value_name = "ID")]
    gcp_billing_account_id: Option<String>,
}

impl AccountsCmd {
    /// Checks what clap cannot, before anything is sent: a secret
    /// reference that is not one is a usage error, and is never echoed (clap
    /// would quote a value it refuses): it may be the secret itself.
    pub(crate) fn check(&self) {
        if let AccountsCmd::Create { credentials, .. } | AccountsCmd::Update { credentials, .. } = self {
            for (flag, value) in [
                ("--azure-client-secret-ref", &credentials.azure_client_secret_ref),
                ("--gcp-service-account-key-ref", &credentials.gcp_service_account_key_ref),
            ] {
                if let Some(Err(err)) = value.as_deref().map(str::parse::<SecretRef>) {
                    crate::usage_error(format!("{flag}: {err}"));
                }
            }
        }
    }
}

impl CredentialArgs {
    /// The credentials the flags give, if any.
    fn into_proto(self) -> Option<pb::account::Credentials> {
        use pb::account::Credentials as C;
        if self.aws_role_arn.is_some() || self.aws_external_id.is_some() || self.aws_organization {
            return Some(C::Aws(pb::AwsCredentials {
                role_arn: self.aws_role_arn.unwrap_or_default(),
                external_id: self.aws_external_id.unwrap_or_default(),
                organization: self.aws_organization,
            }));
        }
        if self.azure_tenant_id.is_some() || self.azure_client_id.is_some() || self.azure_client_secret_ref.is_some() {
            return Some(C::Azure(pb::AzureCredentials {
                tenant_id: self.azure_tenant_id.unwrap_or_default(),
                client_id: self.azure_client_id.unwrap_or_default(),
                client_secret_ref: self.azure_client_secret_ref.unwrap_or_default(),
            }));
        }
        if self.gcp_service_account_key_ref.is_some() || self.gcp_billing_account_id.is_some() {
            return Some(C::Gcp(pb::GcpCredentials {
                service_account_key_ref: self.gcp_service_account_key_ref.unwrap_or_default(),
                billing_account_id: self.gcp_billing_account_id.unwrap_or_default(),
            }));
        }
        None
    }
}

/// Runs an accounts subcommand.
pub(crate) async fn run(client: &mut Accounts, cmd: AccountsCmd, out: Format) -> anyhow::Result<()> {
    match cmd {
        AccountsCmd::Create { key, display_name, enabled, credentials } => {
            let account = pb::Account {
                provider: key.provider.to_proto(),
                external_id: key.external_id,
                display_name: display_name.unwrap_or_default(),
                enabled,
                credentials: credentials.into_proto(),
                created_at: None,
                updated_at: None,
            };
            let account = client.create_account(pb::CreateAccountRequest { account: Some(account) }).await?;
            print_one(&account.into_inner(), out)
        }
        AccountsCmd::Get { key } => {
            let request = pb::GetAccountRequest { provider: key.provider.to_proto(), external_id: key.external_id };
            print_one(&client.get_account(request).await?.into_inner(), out)
        }
        AccountsCmd::List { provider, limit, pages } => {
            let provider = provider.map_or(0, Provider::to_proto);
            let mut header = true;
            let more = pages
                .fetch(
                    limit,
                    async |page_size, page_token| {
                        let request = pb::ListAccountsRequest { provider, page_size, page_token };
                        client.list_accounts(request).await.map(|r| r.into_inner())
                    },
                    |page| match out {
                        Format::Json => output::json(&page),
                        Format::Table => print_table(&page.accounts, std::mem::take(&mut header)),
                    },
                )
                .await?;
            paging::tell_more(more, out);
            Ok(())
        }
        AccountsCmd::Update { key, display_name, enabled, credentials, clear_credentials } => {
            use pb::account::Credentials as A;
            use pb::update_account_request::Credentials as U;
            let credentials = credentials.into_proto().map(|c| match c {
                A::Aws(c) => U::Aws(c),
                A::Azure(c) => U::Azure(c),
                A::Gcp(c) => U::Gcp(c),
            });
            let request = pb::UpdateAccountRequest {
                provider: key.provider.to_proto(),
                external_id: key.external_id,
                display_name,
                enabled,
                credentials,
                clear_credentials,
            };
            print_one(&client.update_account(request).await?.into_inner(), out)
        }
        AccountsCmd::Delete { key } => {
            let request =
                pb::DeleteAccountRequest { provider: key.provider.to_proto(), external_id: key.external_id.clone() };
            let response = client.delete_account(request).await?.into_inner();
            match out {
                Format::Json => output::json(&response),
                Format::Table => output::line(&format!(
                    "deleted {} account {} and {} recommendations",
                    key.provider, key.external_id, response.recommendations_deleted
                )),
            }
        }
    }
}

fn print_one(account: &pb::Account, out: Format) -> anyhow::Result<()> {
    match out {
        Format::Json => output::json(account),
        Format::Table => print_table(std::slice::from_ref(account), true),
    }
}

fn print_table(accounts: &[pb::Account], header: bool) -> anyhow::Result<()> {
    if header {
        output::line(&format!(
            "{:<5} {:<36} {:<30} {:<7} {:<23} credentials",
            "cloud", "external id", "display name", "enabled", "updated"
        ))?;
    }
    for a in accounts {
        output::line(&format!(
            "{:<5} {:<36} {:<30} {:<7} {:<23} {}",
            provider_name(a.provider),
            at_most(&a.external_id, 36),
            at_most(&a.display_name, 30),
            if a.enabled.unwrap_or(true) { "yes" } else { "no" },
            time(a.updated_at.as_ref()),
            describe_credentials(a.credentials.as_ref()),
        ))?;
    }
    Ok(())
}

/// The credentials reference in a few words (references only: the API never
/// holds a secret value).
fn describe_credentials(credentials: Option<&pb::account::Credentials>) -> String {
    use pb::account::Credentials as C;
    let mut parts = Vec::new();
    match credentials {
        None => parts.push("provider default".to_string()),
        Some(C::Aws(c)) => {
            parts.push(if c.role_arn.is_empty() { "ambient".into() } else { format!("role {}", c.role_arn) });
            if !c.external_id.is_empty() {
                parts.push(format!("external id {}", c.external_id));
            }
            if c.organization {
                parts.push("organization".into());
            }
        }
        Some(C::Azure(c)) => {
            parts.push(format!("tenant {} client {} secret {}", c.tenant_id, c.client_id, c.client_secret_ref));
        }
        Some(C::Gcp(c)) => {
            parts.push(if c.service_account_key_ref.is_empty() {
                "metadata server".into()
            } else {
                format!("key {}", c.service_account_key_ref)
            });
            if !c.billing_account_id.is_empty() {
                parts.push(format!("billing {}", c.billing_account_id));
            }
        }
    }
    at_most(&parts.join(", "), 200)
}
