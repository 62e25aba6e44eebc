//! Azure: reservation purchase recommendations from the Consumption API and
//! Azure Advisor's commitment-purchase recommendations, over the ARM REST API
//! with an Entra ID token per app registration (OAuth2 client credentials).
//!
//! Wire formats: Consumption `ReservationRecommendations_List` (api-version
//! 2024-08-01, `legacy` and `modern` kinds, with `totalHours`), Advisor
//! `Recommendations_List` (2023-01-01) and the Entra ID v2.0 token endpoint.
//! Every request (token, each page, each retry) goes through the shared
//! [`CallLimits`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use cudly_core::credentials::{AzureCredentials, Credentials};
use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::calls::{CallError, CallLimits};
use super::kit::cache::Cache;
use super::kit::http;
use super::kit::pager::{self, Page};
use super::kit::tokens::{Bearer, Credentials as ReadCredentials, Grant, TokenCache};
use super::kit::urls::{base_url, endpoint};
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};

mod mapping;
mod tokens;

use mapping::*;
use tokens::*;

/// 2024-08-01 is the first version whose recommendations say how many hours
/// their costs cover (`totalHours`).
const CONSUMPTION_API_VERSION: &str = "2024-08-01";
const ADVISOR_API_VERSION: &str = "2023-01-01";
/// The token audience: Azure Resource Manager (public cloud).
const ARM_SCOPE: &str = "https://management.azure.com/.default";
const ADVISOR: &str = "advisor";
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
    /// Entra ID tokens per app registration (tenant, client id).
    tokens: TokenCache,
}

/// A run's reservation listings by (subscription, resource type): the
/// documented filter has no term, so one listing serves every term's sweep
/// of the run, and the next run lists afresh.
#[derive(Default)]
struct RunListings(Cache<Arc<Vec<Value>>>);

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
            tokens: TokenCache::default(),
        })
    }

    /// An access token for ARM, from the cache while it is fresh (a
    /// refused secret is remembered until it changes).
    async fn token(
        &self,
        creds: &AzureCredentials,
        subscription: &str,
        calls: &RequestCount,
    ) -> Result<Bearer, BackendError> {
        let what = format!("Azure token for subscription {subscription}");
        let read = || {
            let secret = creds.client_secret.read().map_err(|err| {
                BackendError::refused(format!(
                    "cannot read the client secret of client {}: {err}; fix it or set another reference with \
                     UpdateAccount",
                    creds.client_id
                ))
            })?;
            Ok(ReadCredentials { value: secret.clone(), fingerprint: secret })
        };
        let what = what.as_str();
        let request = |secret: SecretString| async move {
            self.limits.call_unnamed(calls, what, || self.request_token(creds, &secret)).await
        };
        self.tokens.bearer(&format!("{}/{}", creds.tenant_id, creds.client_id), what, read, request).await
    }

    /// One client-credentials request to Entra ID.
    async fn request_token(&self, creds: &AzureCredentials, secret: &SecretString) -> Result<Grant, CallError> {
        let url = endpoint(&self.login, &[&creds.tenant_id, "oauth2", "v2.0", "token"], &[]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("scope", ARM_SCOPE),
        ];
        let response = self.client.post(url).form(&form).send().await.map_err(http::send_error)?;
        let status = response.status();
        if status.is_success() {
            let body = response.text().await.map_err(http::send_error)?;
            return parse_grant(&body).map_err(|err| CallError::Permanent(format!("Entra ID answered {err}")));
        }
        if matches!(status.as_u16(), 400 | 401) {
            let body = response.text().await.map_err(http::send_error)?;
            return Err(CallError::Refused(refusal_message(creds, status.as_u16(), &body, secret)));
        }
        let hint = format!("check the app registration {}", creds.client_id);
        Err(http::failure(response, &hint, |body| redact(body, secret)).await)
    }

    /// Every item of a paged ARM list, following nextLink to the end (a
    /// token first, from the cache while it is fresh).
    async fn list_all(
        &self,
        first: Url,
        what: &str,
        query: &Query<'_>,
        creds: &AzureCredentials,
    ) -> Result<Vec<Value>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let bearer = self.token(creds, subscription, query.calls).await?;
        let hint = format!(
            "grant the app (client {}) the Reader and Cost Management Reader roles on subscription {subscription}",
            creds.client_id
        );
        let (bearer, hint, first) = (&bearer, hint.as_str(), &first);
        let list = format!("Azure {what} for subscription {subscription}");
        pager::all_items(&list, |number, next: Option<Url>| async move {
            let what = match number {
                1 => format!("Azure {what} for subscription {subscription}"),
                n => format!("Azure {what}, page {n}, for subscription {subscription}"),
            };
            let url = next.unwrap_or_else(|| first.clone());
            self.limits.call(query.calls, &what, || self.get_page(&url, bearer, hint)).await
        })
        .await
    }

    /// One page of an ARM list.
    async fn get_page(&self, url: &Url, bearer: &Bearer, hint: &str) -> Result<Page<Value, Url>, CallError> {
        // The Consumption API documents 204 for a scope with nothing to say.
        let Some(body) = http::get(&self.client, url, bearer, &self.tokens, hint, arm_error_text).await? else {
            return Ok(Page::last(Vec::new()));
        };
        self.parse_page(&String::from_utf8_lossy(&body))
            .map_err(|err| CallError::Permanent(format!("malformed answer: {err}")))
    }

    fn parse_page(&self, body: &str) -> Result<Page<Value, Url>, String> {
        let doc: Value = serde_json::from_str(body).map_err(|err| format!("not JSON ({err})"))?;
        let Value::Object(mut doc) = doc else { return Err(format!("the answer is {}, not an object", kind(&doc))) };
        let items = match doc.remove("value") {
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("`value` is {}, not a list", kind(&other))),
            None => return Err("`value` is missing".into()),
        };
        let next = match doc.remove("nextLink") {
            Some(Value::String(link)) if !link.is_empty() => Some(self.next_link(&link)?),
            None | Some(Value::Null) | Some(Value::String(_)) => None,
            Some(other) => return Err(format!("`nextLink` is {}, not a URL", kind(&other))),
        };
        Ok(Page { items, next })
    }

    /// The bearer token goes to the configured management host only.
    fn next_link(&self, link: &str) -> Result<Url, String> {
        let url = Url::parse(link).map_err(|err| format!("`nextLink` is not a URL ({err})"))?;
        let origin =
            |u: &Url| (u.scheme().to_string(), u.host_str().map(str::to_ascii_lowercase), u.port_or_known_default());
        if origin(&url) != origin(&self.management) {
            return Err(format!(
                "refusing to follow `nextLink` to {}://{}: only {} is sent the token",
                url.scheme(),
                url.host_str().unwrap_or(""),
                self.management.as_str().trim_end_matches('/')
            ));
        }
        Ok(url)
    }

    fn arm_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        endpoint(&self.management, segments, query)
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

    /// The subscription's reservation recommendations of a resource type,
    /// every term at once, listed once per run.
    async fn reservation_listing(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
        resource_type: &'static str,
    ) -> Result<Arc<Vec<Value>>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let filter = format!(
            "properties/scope eq 'Single' AND properties/resourceType eq '{resource_type}' AND \
             properties/lookBackPeriod eq '{}'",
            self.lookback
        );
        let url = self.arm_url(
            &["subscriptions", subscription, "providers", "Microsoft.Consumption", "reservationRecommendations"],
            &[("api-version", CONSUMPTION_API_VERSION), ("$filter", &filter)],
        );
        let what = format!("reservation recommendations ({resource_type})");
        let listings = query.run.get::<RunListings>();
        let key = format!("{subscription}|{resource_type}");
        listings
            .0
            .get_or_fetch(&key, || async {
                let items = self.list_all(url, &what, query, creds).await?;
                // Kept for the rest of the run (the scope ends with it).
                Ok((Arc::new(items), Instant::now() + Duration::from_secs(86_400)))
            })
            .await
    }

    async fn fetch_advisor(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
    ) -> Result<Vec<Recommendation>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let url = self.arm_url(
            &["subscriptions", subscription, "providers", "Microsoft.Advisor", "recommendations"],
            &[("api-version", ADVISOR_API_VERSION), ("$filter", "Category eq 'Cost'")],
        );
        let items = self.list_all(url, "Advisor cost recommendations", query, creds).await?;
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
        // Azure reservations cost the same paid upfront or monthly, and the
        // recommendations carry no billing plan: one sweep per term, labelled
        // Monthly (no upfront cost, the whole price spread over the term).
        if service != ADVISOR {
            return self
                .terms
                .iter()
                .map(|&term_months| Sweep { term_months, payment: PaymentOption::Monthly })
                .collect();
        }
        // Advisor answers once for every term; its savings are for
        // three-year reservations where sold, so the sweep is labelled so
        // (each recommendation keeps the term Advisor gives).
        let term_months = if self.terms.contains(&36) { 36 } else { 12 };
        vec![Sweep { term_months, payment: PaymentOption::Monthly }]
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

/// ARM errors are `{"error": {"code", "message"}}`: keep the readable part.
fn arm_error_text(body: &str) -> String {
    let doc: Option<Value> = serde_json::from_str(body).ok();
    let error = doc.as_ref().and_then(|d| d.get("error"));
    let part = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    match (part("code"), part("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::ErrorKind;
    use crate::providers::calls::{RateLimiter, RetryPolicy};
    use cudly_core::credentials::SecretRef;

    fn account() -> Account {
        Account {
            provider: Provider::Azure,
            external_id: "c6aa8a01-a744-44a7-a4f1-caad17512f27".into(),
            display_name: "Payments prod".into(),
            credentials: None,
        }
    }

    fn config(management_url: &str) -> AzureConfig {
        AzureConfig {
            management_url: management_url.into(),
            login_url: AzureConfig::DEFAULT_LOGIN_URL.into(),
            lookback_days: 30,
            terms: vec![36, 12],
            billing_currency: Currency::USD,
            limits: CallLimits { limiter: RateLimiter::new(10.0, 1), retry: RetryPolicy::default() },
        }
    }

    fn reading() -> Reading {
        Reading { lookback_days: 30, billing_currency: Currency::USD }
    }

    fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    /// The `legacy` item of the Consumption API reference's example
    /// (ReservationRecommendationsByBillingAccount, 2023-05-01): one
    /// Standard_DS1_v2 over a 7-day look-back.
    fn documented_legacy() -> Value {
        json!({
            "id": "billingAccount/123456/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "location": "westus",
            "sku": "Standard_DS1_v2",
            "kind": "legacy",
            "properties": {
                "meterId": "00000000-0000-0000-0000-000000000000",
                "term": "P1Y",
                "costWithNoReservedInstances": 12.0785105,
                "recommendedQuantity": 1,
                "totalCostWithReservedInstances": 11.4899644807748,
                "netSavings": 0.588546019225182,
                "firstUsageDate": "2019-07-07T00:00:00-07:00",
                "scope": "Shared",
                "lookBackPeriod": "Last7Days",
                "instanceFlexibilityRatio": 1,
                "instanceFlexibilityGroup": "DSv2 Series",
                "normalizedSize": "Standard_DS1_v2",
                "recommendedQuantityNormalized": 1,
                "skuProperties": [{"name": "Cores", "value": "1"}, {"name": "Ram", "value": "1"}]
            }
        })
    }

    /// An item of the documented `modern` example (billing profile): the same
    /// SKU, quantity and region for both terms, look-back 60 days.
    fn modern(term: &str, without: f64, with: f64, savings: f64) -> Value {
        json!({
            "id": "/providers/Microsoft.Billing/billingAccounts/123456/billingProfiles/6420/providers/\
                   Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "kind": "modern",
            "properties": {
                "costWithNoReservedInstances": {"currency": "USD", "value": without},
                "firstUsageDate": "2022-08-22T00:00:00Z",
                "instanceFlexibilityGroup": "NA",
                "instanceFlexibilityRatio": 1,
                "location": "westus2",
                "lookBackPeriod": 60,
                "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
                "netSavings": {"currency": "USD", "value": savings},
                "normalizedSize": "SQLDB_BC_Compute_Gen5",
                "recommendedQuantity": 35,
                "recommendedQuantityNormalized": 35,
                "resourceType": "sqldatabases",
                "scope": "Single",
                "skuName": "SQLDB_BC_Compute_Gen5",
                "skuProperties": null,
                "subscriptionId": "c6aa8a01-a744-44a7-a4f1-caad17512f27",
                "term": term,
                "totalCostWithReservedInstances": {"currency": "USD", "value": with}
            }
        })
    }

    #[test]
    fn look_back_totals_become_amounts_per_month_of_730_hours() {
        // 12.0785105 over 168 hours (Last7Days) is 52.484003958 a month:
        // one DS1_v2's pay-as-you-go price, about $0.072 an hour.
        let recs = map_reservations(&[documented_legacy()], 12, "virtual_machines", &account(), &reading()).unwrap();
        let ds1 = &recs[0];
        assert_eq!(ds1.on_demand_monthly_cost, amount("52.484003958"));
        assert_eq!(ds1.recurring_monthly_cost, amount("49.926631376"));
        assert_eq!(ds1.estimated_monthly_savings, amount("2.557372583"));
        assert_eq!((ds1.region.as_str(), ds1.resource_type.as_str()), ("westus", "Standard_DS1_v2"));
        assert_eq!((ds1.recommended_count, ds1.term_months, ds1.currency), (1.0, 12, Currency::USD));
        assert!((ds1.savings_percentage - 4.8726).abs() < 1e-3, "{}", ds1.savings_percentage);
        assert_eq!((ds1.upfront_cost, ds1.break_even_months), (Amount::ZERO, 0.0), "paid monthly");
        assert_eq!(ds1.payment_option, PaymentOption::Monthly);

        // 2024-08-01 says how many hours the costs cover: 701 here.
        let mut with_hours = documented_legacy();
        with_hours["properties"]["totalHours"] = json!(701);
        with_hours["properties"]["lastUsageDate"] = json!("2019-08-07T00:00:00-07:00");
        let recs = map_reservations(&[with_hours], 12, "virtual_machines", &account(), &reading()).unwrap();
        assert_eq!(recs[0].on_demand_monthly_cost, amount("12.578192104"), "12.0785105 × 730 / 701");

        // The modern kind: a look-back of 60 days is 1,440 hours.
        let items = [
            modern("P3Y", 279881.9457795231, 126115.06849314792, 153766.87728637524),
            modern("P1Y", 93208.8596802244, 60654.99999999984, 32553.85968022456),
        ];
        let one = map_reservations(&items, 12, "sql_database", &account(), &reading()).unwrap();
        let three = map_reservations(&items, 36, "sql_database", &account(), &reading()).unwrap();
        assert_eq!((one.len(), three.len()), (1, 1), "each sweep keeps its own term");
        assert_eq!(one[0].on_demand_monthly_cost, amount("47251.713587891"));
        assert_eq!(one[0].recurring_monthly_cost, amount("30748.715277778"));
        assert_eq!(one[0].estimated_monthly_savings, amount("16502.998310114"));
        assert_eq!(three[0].estimated_monthly_savings, amount("77951.264179898"));
        assert_eq!((one[0].recommended_count, one[0].region.as_str()), (35.0, "westus2"));
        assert!(one.iter().chain(&three).all(Recommendation::has_finite_figures));
    }

    #[test]
    fn the_look_back_comes_from_the_item_before_the_request() {
        let props = |v: Value| v.as_object().unwrap().clone();
        let r = reading();
        assert_eq!(lookback_hours(&props(json!({"totalHours": 701, "lookBackPeriod": "Last7Days"})), &r), Ok(701));
        assert_eq!(lookback_hours(&props(json!({"lookBackPeriod": "Last60Days"})), &r), Ok(1440));
        assert_eq!(lookback_hours(&props(json!({"lookBackPeriod": 7})), &r), Ok(168));
        assert_eq!(lookback_hours(&props(json!({})), &r), Ok(720), "the requested 30 days");
        assert!(lookback_hours(&props(json!({"totalHours": 0})), &r).is_err());
        assert!(lookback_hours(&props(json!({"totalHours": "701"})), &r).is_err());
        assert!(lookback_hours(&props(json!({"lookBackPeriod": "LastWeek"})), &r).unwrap_err().contains("LastWeek"));
    }

    #[test]
    fn currencies_are_recorded_as_reported_and_must_agree_within_an_item() {
        let mut euros = modern("P1Y", 1440.0, 720.0, 720.0);
        for field in ["costWithNoReservedInstances", "totalCostWithReservedInstances", "netSavings"] {
            euros["properties"][field]["currency"] = json!("EUR");
        }
        let recs = map_reservations(&[euros.clone()], 12, "sql_database", &account(), &reading()).unwrap();
        assert_eq!((recs[0].currency.as_str(), recs[0].on_demand_monthly_cost), ("EUR", amount("730")));
        euros["properties"]["netSavings"]["currency"] = json!("USD");
        let err = map_reservations(&[euros], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("different currencies (EUR, EUR, USD)"), "{err}");
        // The legacy kind has no currency: the configured billing currency.
        let chf = Reading { lookback_days: 30, billing_currency: Currency::parse("CHF").unwrap() };
        let recs = map_reservations(&[documented_legacy()], 12, "virtual_machines", &account(), &chf).unwrap();
        assert_eq!(recs[0].currency.as_str(), "CHF");
    }

    #[test]
    fn no_on_demand_cost_gives_zero_percent_rather_than_nan() {
        let m = monthly(168, Amount::ZERO, Amount::ZERO, amount("4.634521202630137")).unwrap();
        assert_eq!(m.savings_percentage, 0.0);
        assert_eq!(m.savings, amount("20.138098084"));
    }

    #[test]
    fn malformed_items_are_errors_naming_the_field_never_panics() {
        let mut wrong_currency = modern("P1Y", 10.0, 5.0, 5.0);
        wrong_currency["properties"]["netSavings"]["currency"] = json!("dollars");
        let err = map_reservations(&[wrong_currency], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("netSavings.currency"), "{err}");
        let mut object_amount = modern("P1Y", 10.0, 5.0, 5.0);
        object_amount["properties"]["costWithNoReservedInstances"] = json!({"amount": 3});
        let err = map_reservations(&[object_amount], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("recommendation 0: costWithNoReservedInstances.value is missing"), "{err}");
        let mut no_term = modern("P1Y", 10.0, 5.0, 5.0);
        no_term["properties"].as_object_mut().unwrap().remove("term");
        let err = map_reservations(&[no_term], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("term is missing"));
        let err = map_reservations(&[json!("oops")], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("is a string, not an object"), "{err}");
        let mut text_quantity = modern("P1Y", 10.0, 5.0, 5.0);
        text_quantity["properties"]["recommendedQuantity"] = json!("lots");
        let err = map_reservations(&[text_quantity], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("recommendedQuantity is a string"), "{err}");
        let mut huge = modern("P1Y", 10.0, 5.0, 5.0);
        huge["properties"]["netSavings"]["value"] = json!(1e300);
        let err = map_reservations(&[huge], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("netSavings") && err.len() < 200, "{err}");
    }

    fn advisor(ext: Value) -> Value {
        json!({
            "id": "/subscriptions/c6aa8a01-a744-44a7-a4f1-caad17512f27/providers/Microsoft.Advisor/recommendations/r",
            "name": "r",
            "type": "Microsoft.Advisor/recommendations",
            "properties": {
                "category": "Cost",
                "impact": "High",
                "impactedField": "Microsoft.Subscriptions/subscriptions",
                "impactedValue": "c6aa8a01-a744-44a7-a4f1-caad17512f27",
                "lastUpdated": "2024-05-01T00:00:00Z",
                "shortDescription": {"problem": "Buy reserved capacity", "solution": "Buy reserved capacity"},
                "extendedProperties": ext
            }
        })
    }

    #[test]
    fn advisor_keeps_only_the_purchases_the_reservation_services_do_not_collect() {
        let items = vec![
            // Kept: App Service reserved capacity, annual savings.
            advisor(json!({
                "reservedResourceType": "AppService", "sku": "P1v3", "displaySKU": "Premium v3 P1v3",
                "region": "westeurope", "qty": "4", "term": "P3Y", "lookbackPeriod": "30",
                "annualSavingsAmount": "1200", "savingsCurrency": "USD", "scope": "Single"
            })),
            // Skipped: a VM reservation, which virtual_machines collects.
            advisor(json!({
                "vmSize": "Standard_D2s_v3", "location": "eastus", "targetResourceCount": "3", "term": "P3Y",
                "annualSavingsAmount": "2400", "savingsCurrency": "USD"
            })),
            // Skipped: right-sizing is not a purchase.
            advisor(json!({"currentSku": "Standard_D8s_v3", "targetSku": "Standard_D4s_v3", "savingsAmount": "90"})),
            // Kept: a savings plan, monthly savings.
            advisor(json!({
                "sku": "Compute_Savings_Plan", "term": "P1Y", "savingsAmount": "50.5", "savingsCurrency": "USD"
            })),
            // Skipped: a term not configured.
            advisor(json!({"reservedResourceType": "MySQL", "term": "P5Y", "annualSavingsAmount": "100"})),
            // Skipped: not a cost recommendation.
            json!({"properties": {"category": "Security", "extendedProperties": {"term": "P1Y"}}}),
        ];
        let recs = map_advisor(&items, &[12, 36], &account(), Currency::USD).unwrap();
        assert_eq!(recs.len(), 2, "{recs:#?}");
        let app = &recs[0];
        assert_eq!((app.service.as_str(), app.commitment_type), ("advisor", CommitmentType::ReservedInstance));
        assert_eq!(
            (app.resource_type.as_str(), app.platform.as_str(), app.region.as_str()),
            ("P1v3", "AppService", "westeurope")
        );
        assert_eq!((app.term_months, app.recommended_count, app.estimated_monthly_savings), (36, 4.0, amount("100")));
        let plan = &recs[1];
        assert_eq!(
            (plan.commitment_type, plan.term_months, plan.estimated_monthly_savings),
            (CommitmentType::SavingsPlan, 12, amount("50.5"))
        );
        assert!(recs.iter().all(|r| r.currency == Currency::USD));
        let euros = advisor(json!({
            "reservedResourceType": "AppService", "term": "P1Y", "annualSavingsAmount": "12.34",
            "savingsCurrency": "EUR"
        }));
        let recs = map_advisor(&[euros], &[12], &account(), Currency::USD).unwrap();
        assert_eq!((recs[0].currency.as_str(), recs[0].estimated_monthly_savings), ("EUR", amount("1.028333333")));
        let unnamed = advisor(json!({"reservedResourceType": "AppService", "term": "P1Y", "savingsAmount": "9"}));
        let recs = map_advisor(&[unnamed], &[12], &account(), Currency::parse("GBP").unwrap()).unwrap();
        assert_eq!(recs[0].currency.as_str(), "GBP", "no savingsCurrency: the billing currency");
        let garbled =
            advisor(json!({"reservedResourceType": "AppService", "term": "P1Y", "annualSavingsAmount": "lots"}));
        let err = map_advisor(&[garbled], &[12], &account(), Currency::USD).unwrap_err();
        assert!(
            err.contains("extendedProperties.annualSavingsAmount") && err.contains("not a decimal number"),
            "{err}"
        );
    }

    #[test]
    fn entra_refusals_name_the_client_tenant_and_reference_never_the_secret() {
        let creds = AzureCredentials {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "8a3f2c1e-0000-4000-8000-000000000001".into(),
            client_secret: SecretRef::Env("CUDLY_CLOUD_SECRET_PAYMENTS".into()),
        };
        let secret = SecretString::from("s3cr3t-Value~x".to_string());
        let body = json!({
            "error": "invalid_client",
            "error_description":
                "AADSTS7000215: Invalid client secret provided (got s3cr3t-Value~x).\r\nTrace ID: 1\r\nCorrelation: 2",
            "error_codes": [7000215]
        })
        .to_string();
        let message = refusal_message(&creds, 401, &body, &secret);
        assert!(
            message.starts_with("Entra ID refused client 8a3f2c1e-0000-4000-8000-000000000001 in tenant 72f988bf"),
            "{message}"
        );
        assert!(message.contains("(invalid_client): AADSTS7000215: Invalid client secret provided"), "{message}");
        assert!(message.contains("env:CUDLY_CLOUD_SECRET_PAYMENTS"), "{message}");
        assert!(!message.contains("s3cr3t") && !message.contains("Trace ID"), "{message}");
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

    #[test]
    fn next_links_are_followed_on_the_management_host_only() {
        let backend = AzureBackend::new(config("https://management.azure.com/")).unwrap();
        let link = "https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/\
                    reservationRecommendations?api-version=2023-05-01&$skiptoken=AQAAAA%3D%3D&";
        assert_eq!(backend.next_link(link).unwrap().as_str(), link);
        let err = backend.next_link("https://evil.example/steal?$skiptoken=1").unwrap_err();
        assert!(err.contains("evil.example") && err.contains("only https://management.azure.com"), "{err}");
        assert!(backend.next_link("http://management.azure.com/x").is_err(), "a scheme change is another origin");
        let page = backend.parse_page(r#"{"value": [], "nextLink": null}"#).unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
        assert!(backend.parse_page(r#"{"value": "oops"}"#).unwrap_err().contains("`value` is a string"));
        assert!(backend.parse_page("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn urls_and_filters_are_encoded_and_sweeps_follow_the_terms() {
        let backend = AzureBackend::new(config("https://management.azure.com")).unwrap();
        let url = backend.arm_url(
            &["subscriptions", "a b/c", "providers", "Microsoft.Advisor", "recommendations"],
            &[("api-version", "2023-01-01"), ("$filter", "Category eq 'Cost'")],
        );
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/a%20b%2Fc/providers/Microsoft.Advisor/recommendations\
             ?api-version=2023-01-01&$filter=Category%20eq%20%27Cost%27"
        );
        let monthly = |t| Sweep { term_months: t, payment: PaymentOption::Monthly };
        assert_eq!(backend.sweeps("cosmos_db"), vec![monthly(12), monthly(36)]);
        assert_eq!(backend.sweeps("advisor"), vec![monthly(36)]);
        assert_eq!(backend.services(), SERVICES);
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
