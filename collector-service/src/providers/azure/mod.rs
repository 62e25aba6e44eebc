//! Azure: reservation purchase recommendations from the Consumption API and
//! Azure Advisor's commitment-purchase recommendations, over the ARM REST API
//! with an Entra ID token per app registration (OAuth2 client credentials).
//!
//! Wire formats: Consumption `ReservationRecommendations_List` (api-version
//! 2024-08-01, `legacy` and `modern` kinds, with `totalHours`), Advisor
//! `Recommendations_List` (2023-01-01) and the Entra ID v2.0 token endpoint.
//! Every request (token, each page, each retry) goes through the shared
//! [`CallLimits`].
//!
//! - `tokens`: Entra ID tokens, one per app registration.
//! - `client`: ARM's paged lists, a run's listings.
//! - `errors`: ARM's and Entra ID's errors, without the secret.
//! - `mapping`, `advisor`: Consumption and Advisor answers mapped to our
//!   recommendations.
//! - `regions`: what is swept (no region list).

mod advisor;
mod client;
mod errors;
mod mapping;
mod regions;
mod tokens;

use anyhow::bail;
use cudly_core::credentials::{AzureCredentials, Credentials, SecretFileDirs};
use cudly_core::domain::{Account, Provider, Recommendation};
use cudly_core::money::Currency;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Url;

use super::calls::CallLimits;
use super::kit::http;
use super::kit::tokens::TokenCache;
use super::kit::urls::base_url;
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};
use advisor::map_advisor;
use mapping::{Reading, map_reservations};

/// 2024-08-01 is the first version whose recommendations say how many hours
/// their costs cover (`totalHours`).
const CONSUMPTION_API_VERSION: &str = "2024-08-01";
/// Advisor's `Recommendations_List`.
const ADVISOR_API_VERSION: &str = "2023-01-01";
/// The service of Advisor's commitment purchases.
const ADVISOR: &str = "advisor";
/// The services swept, in canonical order.
const SERVICES: &[&str] = &["virtual_machines", "sql_database", "cosmos_db", "redis_cache", ADVISOR];

/// How the Azure backend reaches Azure and what it asks for.
#[derive(Debug)]
pub struct AzureConfig {
    /// Azure Resource Manager, [`AzureConfig::DEFAULT_MANAGEMENT_URL`] unless
    /// testing.
    pub management_url: String,
    /// Entra ID, [`AzureConfig::DEFAULT_LOGIN_URL`] unless testing.
    pub login_url: String,
    /// Usage looked back on: 7, 30 or 60 days.
    pub lookback_days: u32,
    /// Reservation terms swept, in months: a non-empty subset of 12 and 36.
    pub terms: Vec<i32>,
    /// The currency of amounts Azure sends without one (`legacy`
    /// recommendations, Advisor without `savingsCurrency`): the billing
    /// currency of the enrollment or subscription.
    pub billing_currency: Currency,
    /// Rate limit and retries, shared by every subscription (one ARM bucket).
    pub limits: CallLimits,
    /// Where `file:` client-secret references may be read from.
    pub secret_files: SecretFileDirs,
}

impl AzureConfig {
    /// Azure Resource Manager in the public cloud.
    pub const DEFAULT_MANAGEMENT_URL: &str = "https://management.azure.com";
    /// Entra ID in the public cloud.
    pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
}

/// The live Azure backend.
pub struct AzureBackend {
    client: reqwest::Client,
    management: Url,
    login: Url,
    lookback: &'static str,
    lookback_days: u32,
    terms: Vec<i32>,
    billing_currency: Currency,
    limits: CallLimits,
    secret_files: SecretFileDirs,
    /// Entra ID tokens per app registration (tenant, client id).
    tokens: TokenCache,
}

impl AzureBackend {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: AzureConfig) -> anyhow::Result<Self> {
        let management = base_url("Azure", "management URL", &config.management_url)?;
        let login = base_url("Azure", "login URL", &config.login_url)?;
        let lookback = match config.lookback_days {
            7 => "Last7Days",
            30 => "Last30Days",
            60 => "Last60Days",
            days => bail!("Azure look-back period: {days} days is not one of 7, 30 or 60"),
        };
        let mut terms = config.terms.clone();
        terms.sort_unstable();
        terms.dedup();
        if terms.is_empty() || terms.iter().any(|t| !matches!(t, 12 | 36)) {
            bail!("Azure terms: {:?} is not a non-empty subset of 12 and 36 months", config.terms);
        }
        Ok(AzureBackend {
            client: http::client()?,
            management,
            login,
            lookback,
            lookback_days: config.lookback_days,
            terms,
            billing_currency: config.billing_currency,
            limits: config.limits,
            secret_files: config.secret_files,
            tokens: TokenCache::default(),
        })
    }

    async fn fetch_reservations(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
        resource_type: &'static str,
    ) -> Result<Vec<Recommendation>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let items = self.reservation_listing(query, creds, resource_type).await?;
        let reading = Reading { lookback_days: self.lookback_days, billing_currency: self.billing_currency };
        map_reservations(&items, query.sweep.term_months, query.service, query.account, &reading).map_err(|err| {
            BackendError::failed(format!(
                "Azure reservation recommendations ({resource_type}) for subscription {subscription}: malformed \
                 answer: {err}"
            ))
        })
    }

    async fn fetch_advisor(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
    ) -> Result<Vec<Recommendation>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let items = self.advisor_listing(query, creds).await?;
        map_advisor(&items, &self.terms, query.account, self.billing_currency).map_err(|err| {
            BackendError::failed(format!(
                "Azure Advisor cost recommendations for subscription {subscription}: malformed answer: {err}"
            ))
        })
    }
}

impl CloudBackend for AzureBackend {
    fn provider(&self) -> Provider {
        Provider::Azure
    }

    fn services(&self) -> &'static [&'static str] {
        SERVICES
    }

    fn sweeps(&self, service: &'static str) -> Vec<Sweep> {
        regions::sweeps(&self.terms, service)
    }

    fn regions<'a>(
        &'a self,
        _account: &'a Account,
        _calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
        // Subscription scope covers every region in one call.
        futures_util::future::ready(Ok(None)).boxed()
    }

    fn service_regions(&self, _service: &'static str, _listed: &[String]) -> Option<Vec<String>> {
        None
    }

    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>> {
        async move {
            let creds = azure_credentials(query.account)?;
            match reserved_resource_type(query.service) {
                Some(resource_type) => self.fetch_reservations(&query, creds, resource_type).await,
                None if query.service == ADVISOR => self.fetch_advisor(&query, creds).await,
                None => Err(BackendError::failed(format!("{:?} is not an Azure service", query.service))),
            }
        }
        .boxed()
    }
}

fn azure_credentials(account: &Account) -> Result<&AzureCredentials, BackendError> {
    match &account.credentials {
        Some(Credentials::Azure(creds)) => Ok(creds),
        _ => Err(BackendError::refused(format!(
            "no Azure credentials registered for subscription {}: set tenant, client id and client secret reference \
             with UpdateAccount",
            account.external_id
        ))),
    }
}

/// The Consumption API's `properties/resourceType` of a reservation service.
fn reserved_resource_type(service: &str) -> Option<&'static str> {
    match service {
        "virtual_machines" => Some("VirtualMachines"),
        "sql_database" => Some("SQLDatabases"),
        "cosmos_db" => Some("CosmosDB"),
        "redis_cache" => Some("RedisCache"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::{Account, Provider};
    use cudly_core::money::{Amount, Currency};

    use super::{AzureBackend, AzureConfig};
    use crate::providers::{CloudBackend, ErrorKind, Query, RequestCount};

    pub(super) fn account() -> Account {
        Account {
            provider: Provider::Azure,
            external_id: "c6aa8a01-a744-44a7-a4f1-caad17512f27".into(),
            display_name: "Payments prod".into(),
            credentials: None,
        }
    }

    pub(super) fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    pub(super) fn config(management_url: &str) -> AzureConfig {
        AzureConfig {
            management_url: management_url.into(),
            login_url: AzureConfig::DEFAULT_LOGIN_URL.into(),
            lookback_days: 30,
            terms: vec![36, 12],
            billing_currency: Currency::USD,
            limits: crate::providers::calls::tests::limits(10.0, 1, 5),
            secret_files: cudly_core::credentials::SecretFileDirs::new([std::env::temp_dir()]).unwrap(),
        }
    }

    #[test]
    fn the_configuration_is_checked_at_start() {
        assert!(AzureBackend::new(config(AzureConfig::DEFAULT_MANAGEMENT_URL)).is_ok());
        let err = |c: AzureConfig| AzureBackend::new(c).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err(AzureConfig { lookback_days: 14, ..config("https://management.azure.com") }).contains("14 days"));
        assert!(err(AzureConfig { terms: vec![24], ..config("https://management.azure.com") }).contains("[24]"));
        assert!(err(AzureConfig { terms: vec![], ..config("https://management.azure.com") }).contains("terms"));
        assert!(err(config("management.azure.com")).contains("management URL"));
        assert!(err(config("ftp://management.azure.com")).contains("http(s)"));
    }

    #[tokio::test]
    async fn an_account_without_azure_credentials_fails_with_what_to_do() {
        let backend = AzureBackend::new(config("https://management.azure.com")).unwrap();
        let calls = RequestCount::new();
        let account = account();
        let query = Query {
            account: &account,
            service: "virtual_machines",
            region: None,
            sweep: backend.sweeps("virtual_machines")[0],
            calls: &calls,
            run: &crate::providers::RunScope::default(),
        };
        let err = backend.fetch(query).await.unwrap_err();
        assert!(
            err.message.contains("no Azure credentials registered for subscription c6aa8a01")
                && err.message.contains("UpdateAccount")
                && err.kind == ErrorKind::Refused,
            "{err}"
        );
        assert_eq!(calls.get(), (0, 0), "nothing was asked of Azure");
        assert_eq!(backend.regions(&account, &calls).await.unwrap(), None);
    }
}
