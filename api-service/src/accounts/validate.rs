//! Checking AccountsService requests field by field: every refusal is
//! INVALID_ARGUMENT with a message that starts with the field's name.

use cudly_core::credentials::{AwsCredentials, AzureCredentials, Credentials, GcpCredentials, SecretRef, validate};
use cudly_core::domain::Provider;
use cudly_proto::recommendations::v1 as pb;

use crate::error::Error;

/// Longest display name.
const MAX_NAME_LEN: usize = 200;

pub(super) fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// The provider of a request; unset or unknown is an error naming `field`.
pub(super) fn parse_provider(value: i32) -> Result<Provider, Error> {
    match Provider::from_proto(value) {
        Some(p) => Ok(p),
        None if value == 0 => Err(invalid("provider: required (PROVIDER_AWS, PROVIDER_AZURE or PROVIDER_GCP)".into())),
        None => Err(invalid(format!("provider: unknown value {value}"))),
    }
}

/// Checks an external id has its provider's shape.
fn validate_external_id(provider: Provider, id: &str) -> Result<(), Error> {
    let checked = match provider {
        Provider::Aws => validate::aws_account_id(id),
        Provider::Azure => validate::azure_id("subscription id", id),
        Provider::Gcp => validate::gcp_project_id(id),
    };
    checked.map_err(|e| invalid(format!("external_id: {e}")))
}

pub(super) fn validate_name(name: &str) -> Result<(), Error> {
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
pub(super) fn parse_credentials(
    provider: Provider,
    credentials: pb::account::Credentials,
) -> Result<Credentials, Error> {
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
pub(super) struct NewAccount {
    pub(super) provider: Provider,
    pub(super) external_id: String,
    pub(super) display_name: String,
    pub(super) enabled: bool,
    pub(super) credentials: Option<Credentials>,
}

pub(super) fn parse_new(account: Option<pb::Account>) -> Result<NewAccount, Error> {
    let account = account.ok_or_else(|| invalid("account: required".into()))?;
    let provider = parse_provider(account.provider)?;
    validate_external_id(provider, &account.external_id)?;
    let display_name = if account.display_name.is_empty() { account.external_id.clone() } else { account.display_name };
    validate_name(&display_name)?;
    let credentials = account.credentials.map(|c| parse_credentials(provider, c)).transpose()?;
    Ok(NewAccount {
        provider,
        external_id: account.external_id,
        display_name,
        enabled: account.enabled.unwrap_or(true),
        credentials,
    })
}

/// The key of an existing account: its provider and external id, checked.
pub(super) fn key(provider: i32, external_id: &str) -> Result<(Provider, String), Error> {
    let provider = parse_provider(provider)?;
    validate_external_id(provider, external_id)?;
    Ok((provider, external_id.to_string()))
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
