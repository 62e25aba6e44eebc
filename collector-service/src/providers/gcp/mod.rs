//! GCP: committed-use-discount (CUD) recommendations from the Recommender
//! REST API (v1), with Compute Engine's region list.
//!
//! - `compute`: `google.compute.commitment.UsageCommitmentRecommender`, per
//!   project and region (resource-based commitments: vCPU, memory,
//!   accelerators).
//! - `cloud_sql`, `memorystore`: `google.cloudbilling.commitment.
//!   SpendBasedCommitmentRecommender`, per billing account (the account's
//!   `billing_account_id`) and location: `global` and every region of the
//!   project, since spend-based recommendations can sit under regional
//!   locations too; each list is split by the service each recommendation
//!   names. A project without a billing account id has no spend-based
//!   recommendations to collect: those services return nothing (logged at
//!   debug), they do not fail. Spend-based recommendations are attributed
//!   to the billing account (`account_id` = its id), not to the project:
//!   several projects share one billing account, and the same commitment
//!   counted once per project would multiply the savings.
//!
//! Every request (tokens included) goes through the provider's
//! [`CallLimits`]. Lists are asked for `stateInfo.state = ACTIVE` and
//! non-ACTIVE entries are dropped again on arrival; pages are followed to
//! the end. One list answers both terms (and, for a billing account, both
//! services): it is kept for the rest of the run per (credentials, parent),
//! so that a run asks the Recommender once per (project, region) and once
//! per (billing account, location), within its 100 reads a minute, and the
//! next run asks again.
//!
//! Amounts: the recommendation's `primaryImpact.costProjection` is the net
//! cost over `duration`, negative for a saving, in the billing account's
//! currency (`currencyCode`). It is scaled exactly to an average month of
//! 730 hours (8760 / 12, the month the other clouds' monthly figures use; a
//! 30-day projection understates it by 1.4 %). The Recommender gives only
//! the net saving, not the on-demand or commitment cost: those are derived
//! from the nominal discount of the service and term
//! ([`nominal_discount`]), so `savings_percentage` is that nominal rate.

use std::sync::Arc;
use std::time::Duration;

use cudly_core::credentials::{Credentials, SecretRef};
use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::calls::{CallError, CallLimits, RateLimiter, RetryPolicy};
use super::kit::cache::Cache;
use super::kit::http::{self, client, send_error};
use super::kit::pager::{self, Page};
use super::kit::tokens::{Bearer, Credentials as ReadCredentials, Grant, TokenCache};
use super::kit::urls::{base_url, endpoint};
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};

mod mapping;
mod tokens;
mod wire;

use mapping::*;
use tokens::*;
use wire::*;

const USAGE_RECOMMENDER: &str = "google.compute.commitment.UsageCommitmentRecommender";
const SPEND_RECOMMENDER: &str = "google.cloudbilling.commitment.SpendBasedCommitmentRecommender";
/// The services swept, in canonical order.
pub const SERVICES: &[&str] = &["compute", "cloud_sql", "memorystore"];
const ACTIVE_FILTER: &str = "stateInfo.state = ACTIVE";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// An average month in nanoseconds: 8760 hours a year / 12.
const NANOS_PER_MONTH: i128 = 730 * 3600 * 1_000_000_000;
/// The location of recommendations that are not regional.
const GLOBAL: &str = "global";

/// Where and how the GCP backend calls.
#[derive(Debug)]
pub struct GcpConfig {
    /// The Recommender API's base URL.
    pub recommender_url: String,
    /// The Compute Engine API's base URL (region lists).
    pub compute_url: String,
    /// The metadata server, for projects without a service-account key.
    pub metadata_url: String,
    /// Shared by every project: keep it within the Recommender's 100 reads
    /// a minute ([`GcpConfig::default_limits`]).
    pub limits: CallLimits,
}

impl GcpConfig {
    /// Production Recommender endpoint.
    pub const DEFAULT_RECOMMENDER_URL: &'static str = "https://recommender.googleapis.com";
    /// Production Compute Engine endpoint.
    pub const DEFAULT_COMPUTE_URL: &'static str = "https://compute.googleapis.com";
    /// The metadata server as seen from a GCP workload.
    pub const DEFAULT_METADATA_URL: &'static str = "http://metadata.google.internal";

    /// The production endpoints, with `limits`.
    pub fn new(limits: CallLimits) -> Self {
        GcpConfig {
            recommender_url: Self::DEFAULT_RECOMMENDER_URL.to_string(),
            compute_url: Self::DEFAULT_COMPUTE_URL.to_string(),
            metadata_url: Self::DEFAULT_METADATA_URL.to_string(),
            limits,
        }
    }

    /// 90 requests a minute in bursts of at most 5, the default retries:
    /// under the Recommender's default quota of 100 reads a minute with room
    /// for token and region requests.
    pub fn default_limits() -> CallLimits {
        CallLimits { limiter: RateLimiter::new(1.5, 5), retry: RetryPolicy::default() }
    }
}

/// Live GCP recommendations, over REST.
pub struct GcpBackend {
    recommender_url: Url,
    compute_url: Url,
    metadata_url: Url,
    limits: CallLimits,
    http: reqwest::Client,
    /// Access tokens, kept across runs until shortly before they expire.
    tokens: TokenCache,
}

/// A run's recommendation lists by (credentials, parent): one list serves
/// both terms (and, for a billing account, both services) of the run.
#[derive(Default)]
struct RunLists(Cache<Arc<Vec<ApiRecommendation>>>);

impl std::fmt::Debug for GcpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpBackend").field("recommender_url", &self.recommender_url.as_str()).finish_non_exhaustive()
    }
}

impl GcpBackend {
    /// A backend calling the configured endpoints; fails on a URL that is
    /// not http(s).
    pub fn new(config: GcpConfig) -> anyhow::Result<Self> {
        Ok(GcpBackend {
            recommender_url: base_url("GCP", "recommender_url", &config.recommender_url)?,
            compute_url: base_url("GCP", "compute_url", &config.compute_url)?,
            metadata_url: base_url("GCP", "metadata_url", &config.metadata_url)?,
            limits: config.limits,
            http: client()?,
            tokens: TokenCache::default(),
        })
    }

    /// An access token for the account's credentials, fetched once per
    /// credential source until shortly before it expires (a refused key is
    /// remembered until it changes).
    async fn token(&self, account: &Account, calls: &RequestCount) -> Result<Bearer, BackendError> {
        let source = token_source(account)?;
        let key = match &source {
            TokenSource::Metadata => "metadata".to_string(),
            TokenSource::Key(secret) => format!("key:{secret}"),
        };
        let what = format!("GCP token for project {}", account.external_id);
        let what = what.as_str();
        let read = || match &source {
            TokenSource::Metadata => {
                Ok(ReadCredentials { value: Grantor::Metadata, fingerprint: SecretString::from(String::new()) })
            }
            // A key that cannot be read refuses every call of the account.
            TokenSource::Key(secret) => {
                let (key, text) = read_key(secret).map_err(BackendError::refused)?;
                Ok(ReadCredentials { value: Grantor::Key { key, reference: secret }, fingerprint: text })
            }
        };
        let request = |grantor| async move {
            match grantor {
                Grantor::Metadata => self.metadata_token(what, calls).await,
                Grantor::Key { key, reference } => self.key_token(&key, reference, what, calls).await,
            }
        };
        self.tokens.bearer(&key, what, read, request).await
    }

    async fn metadata_token(&self, what: &str, calls: &RequestCount) -> Result<Grant, BackendError> {
        let url = endpoint(
            &self.metadata_url,
            &["computeMetadata", "v1", "instance", "service-accounts", "default", "token"],
            &[],
        );
        let hint = "the metadata server has no usable default service account: attach one to the collector's \
                    workload, or set a service_account_key for this project";
        self.limits
            .call_unnamed(calls, what, || async {
                let answer =
                    self.http.get(url.clone()).header("Metadata-Flavor", "Google").send().await.map_err(|e| {
                        CallError::Transient(format!(
                            "metadata server unreachable ({e}); outside GCP, set a service_account_key for this project"
                        ))
                    })?;
                token_answer(answer, hint).await
            })
            .await
    }

    async fn key_token(
        &self,
        key: &ServiceAccountKey,
        reference: &SecretRef,
        what: &str,
        calls: &RequestCount,
    ) -> Result<Grant, BackendError> {
        let hint = format!("check the service-account key {reference}: it may be deleted, disabled or malformed");
        self.limits
            .call_unnamed(calls, what, || async {
                // Signed per attempt: `iat` must be fresh.
                let assertion = key.assertion().map_err(CallError::Permanent)?;
                let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)];
                let answer = self.http.post(key.token_uri.clone()).form(&form).send().await.map_err(send_error)?;
                token_answer(answer, &hint).await
            })
            .await
    }

    /// The ACTIVE recommendations of one parent, every page, once per run.
    async fn recommendations(
        &self,
        query: &Query<'_>,
        scope: &Scope<'_>,
    ) -> Result<Arc<Vec<ApiRecommendation>>, BackendError> {
        let auth = self.token(query.account, query.calls).await?;
        let key = format!("{}|{}", auth.key, scope.segments()[1..].join("/"));
        query
            .run
            .get::<RunLists>()
            .0
            .get_or_fetch(&key, || async {
                let list = ListCall {
                    calls: query.calls,
                    what: scope.what(),
                    hint: scope.hint(),
                    auth: &auth,
                    base: &self.recommender_url,
                    segments: &scope.segments(),
                    filter: Some(ACTIVE_FILTER),
                };
                let pages =
                    self.pages(&list, |page: RecommendationPage| (page.recommendations, page.next_page_token)).await?;
                // Kept for the rest of the run (the scope ends with it).
                Ok((Arc::new(pages), Instant::now() + Duration::from_secs(86_400)))
            })
            .await
    }

    /// Follows `nextPageToken` to the end, collecting what `items` takes
    /// out of each page.
    async fn pages<P: DeserializeOwned, T>(
        &self,
        list: &ListCall<'_>,
        items: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, BackendError> {
        let items = &items;
        pager::all_items(&list.what, |_, page_token: Option<String>| async move {
            let pairs: Vec<(&str, &str)> = list
                .filter
                .map(|f| ("filter", f))
                .into_iter()
                .chain(page_token.as_deref().map(|t| ("pageToken", t)))
                .collect();
            let page: P = self.get_json(list, endpoint(list.base, list.segments, &pairs)).await?;
            let (found, next) = items(page);
            Ok(Page { items: found, next: next.filter(|t| !t.is_empty()) })
        })
        .await
    }

    async fn get_json<T: DeserializeOwned>(&self, list: &ListCall<'_>, url: Url) -> Result<T, BackendError> {
        self.limits
            .call(list.calls, &list.what, || async {
                let answer =
                    http::get(&self.http, &url, list.auth, &self.tokens, &list.hint, google_error_text).await?;
                serde_json::from_slice(&answer.unwrap_or_default())
                    .map_err(|e| CallError::Permanent(format!("malformed answer: {e}")))
            })
            .await
    }

    async fn fetch_compute(&self, query: &Query<'_>) -> Result<Vec<Recommendation>, BackendError> {
        let project = query.account.external_id.as_str();
        let region = query.region.ok_or_else(|| {
            BackendError::failed(format!("GCP compute recommendations for project {project}: no region given"))
        })?;
        let scope = Scope::Project { project, region };
        let list = self.recommendations(query, &scope).await?;
        let owner = Owner { id: project.to_string(), name: query.account.display_name.clone() };
        self.priced(query, &scope, &list, region, &owner)
    }

    async fn fetch_spend_based(&self, query: &Query<'_>) -> Result<Vec<Recommendation>, BackendError> {
        let project = query.account.external_id.as_str();
        let Some(billing) = billing_account(query.account) else {
            tracing::debug!(project, service = query.service, "no billing account id: no spend-based recommendations");
            return Ok(Vec::new());
        };
        let location = query.region.unwrap_or(GLOBAL);
        let scope = Scope::Billing { id: &billing, project, location };
        let list = self.recommendations(query, &scope).await?;
        let owner = Owner { id: billing.clone(), name: format!("GCP billing account {billing}") };
        self.priced(query, &scope, &list, location, &owner)
    }

    /// Maps the list's recommendations of `query.service` and its term.
    fn priced(
        &self,
        query: &Query<'_>,
        scope: &Scope<'_>,
        list: &[ApiRecommendation],
        default_region: &str,
        owner: &Owner,
    ) -> Result<Vec<Recommendation>, BackendError> {
        let mut out: Vec<Recommendation> = Vec::new();
        for rec in list {
            let malformed = |problem: String| {
                let name: String = rec.name.chars().take(200).collect();
                BackendError::failed(format!("{}: recommendation {name}: {problem}", scope.what()))
            };
            let mapped = map_recommendation(rec, query.service, default_region).map_err(malformed)?;
            let Some(m) = mapped.filter(|m| m.term_months == query.sweep.term_months) else { continue };
            let rec = m.into_recommendation(query, owner).map_err(malformed)?;
            // Alternatives (stable-usage and optimal, one xorGroup) share a
            // natural key: keep the larger saving.
            match out.iter_mut().find(|r| r.region == rec.region && r.resource_type == rec.resource_type) {
                Some(kept) if kept.estimated_monthly_savings >= rec.estimated_monthly_savings => {}
                Some(kept) => *kept = rec,
                None => out.push(rec),
            }
        }
        Ok(out)
    }
}

impl CloudBackend for GcpBackend {
    fn provider(&self) -> Provider {
        Provider::Gcp
    }

    fn services(&self) -> &'static [&'static str] {
        SERVICES
    }

    fn sweeps(&self, _service: &'static str) -> Vec<Sweep> {
        [12, 36].into_iter().map(|term_months| Sweep { term_months, payment: PaymentOption::Monthly }).collect()
    }

    fn regions<'a>(
        &'a self,
        account: &'a Account,
        calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
        async move {
            let project = account.external_id.as_str();
            let auth = self.token(account, calls).await?;
            let list = ListCall {
                calls,
                what: format!("GCP regions for project {project}"),
                hint: format!(
                    "enable the Compute Engine API (compute.googleapis.com) on project {project} and grant the \
                     collector's service account a role with compute.regions.list there (e.g. roles/compute.viewer)"
                ),
                auth: &auth,
                base: &self.compute_url,
                segments: &["compute", "v1", "projects", project, "regions"],
                filter: None,
            };
            let mut names = self
                .pages(&list, |page: RegionPage| {
                    (page.items.into_iter().map(|r| r.name).collect(), page.next_page_token)
                })
                .await?;
            names.sort();
            names.dedup();
            Ok(Some(names))
        }
        .boxed()
    }

    fn service_regions(&self, service: &'static str, listed: &[String]) -> Option<Vec<String>> {
        match service {
            "compute" => Some(listed.to_vec()),
            // Billing-account scope: `global` and every region.
            _ => Some(std::iter::once(GLOBAL.to_string()).chain(listed.iter().cloned()).collect()),
        }
    }

    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>> {
        async move {
            match query.service {
                "compute" => self.fetch_compute(&query).await,
                "cloud_sql" | "memorystore" => self.fetch_spend_based(&query).await,
                other => Err(BackendError::failed(format!("GCP has no service {other:?}"))),
            }
        }
        .boxed()
    }
}

/// Where a list lives, for URLs, errors and hints.
enum Scope<'a> {
    Project { project: &'a str, region: &'a str },
    Billing { id: &'a str, project: &'a str, location: &'a str },
}

impl Scope<'_> {
    /// `v1/<parent>/recommendations`, one segment each.
    fn segments(&self) -> Vec<&str> {
        match *self {
            Scope::Project { project, region } => {
                vec![
                    "v1",
                    "projects",
                    project,
                    "locations",
                    region,
                    "recommenders",
                    USAGE_RECOMMENDER,
                    "recommendations",
                ]
            }
            Scope::Billing { id, location, .. } => {
                vec![
                    "v1",
                    "billingAccounts",
                    id,
                    "locations",
                    location,
                    "recommenders",
                    SPEND_RECOMMENDER,
                    "recommendations",
                ]
            }
        }
    }

    fn what(&self) -> String {
        match self {
            Scope::Project { project, region } => {
                format!("GCP compute recommendations for project {project} in {region}")
            }
            Scope::Billing { id, project, location } => {
                format!("GCP spend-based recommendations for project {project} (billing account {id}) in {location}")
            }
        }
    }

    fn hint(&self) -> String {
        match self {
            Scope::Project { project, .. } => format!(
                "enable the Recommender API (recommender.googleapis.com) on project {project} and on the service \
                 account's own project, and grant the collector's service account roles/recommender.computeViewer \
                 on project {project}"
            ),
            Scope::Billing { id, .. } => format!(
                "grant the collector's service account roles/recommender.billingAccountCudViewer on billing account \
                 {id}, and enable the Recommender API on the service account's own project"
            ),
        }
    }
}

/// One paged list request: where, with what, and how to name it.
struct ListCall<'a> {
    calls: &'a RequestCount,
    what: String,
    hint: String,
    auth: &'a Bearer,
    base: &'a Url,
    segments: &'a [&'a str],
    filter: Option<&'a str>,
}

/// Who a mapped recommendation belongs to.
struct Owner {
    id: String,
    name: String,
}

/// `{"error": {"status", "message"}}` (Google APIs) or `{"error",
/// "error_description"}` (OAuth2) as one line; anything else as is.
fn google_error_text(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else { return body.to_string() };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match json.get("error") {
        Some(Value::Object(error)) => {
            let status = text(error.get("status"));
            let message = text(error.get("message"));
            if status.is_empty() { message } else { format!("{status}: {message}") }
        }
        Some(Value::String(code)) => match text(json.get("error_description")) {
            d if d.is_empty() => code.clone(),
            d => format!("{code}: {d}"),
        },
        _ => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::kit::urls::encode_query_value;

    fn rec(value: Value) -> ApiRecommendation {
        serde_json::from_value(value).unwrap()
    }

    fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    #[test]
    fn money_is_units_plus_nanos_in_the_currency_it_names() {
        let of = |c: &str, units: Value, nanos: i64| money(&money_json(c, units, nanos));
        assert_eq!(of("USD", json!("-300"), -500_000_000).unwrap(), Some((amount("-300.5"), Currency::USD)));
        assert_eq!(of("USD", json!(12), 250_000_000).unwrap(), Some((amount("12.25"), Currency::USD)));
        assert_eq!(
            of("EUR", json!("0"), -750_000_000).unwrap(),
            Some((amount("-0.75"), Currency::parse("EUR").unwrap()))
        );
        assert_eq!(money(&Money::default()).unwrap(), None, "an absent amount is zero, in no currency");
        assert!(of("", json!("-10"), 0).unwrap_err().contains("without a currency"));
        assert!(of("USD", json!("ten"), 0).unwrap_err().contains("not an integer"));
        assert!(of("USD", json!("-1"), 5).unwrap_err().contains("malformed money"), "signs must agree");
        assert!(of("USD", json!("1"), 1_000_000_000).is_err());
        let long = "9".repeat(10_000);
        assert!(of("USD", json!(long), 0).unwrap_err().len() < 120, "the message quotes a bounded prefix");
    }

    fn money_json(currency: &str, units: Value, nanos: i64) -> Money {
        Money { currency_code: currency.into(), units: Some(units), nanos: Some(json!(nanos)) }
    }

    #[test]
    fn durations_convert_exactly_to_an_average_month_of_730_hours() {
        assert_eq!(duration_nanos("2592000s").unwrap(), 2_592_000_000_000_000);
        assert_eq!(duration_nanos("1.5s").unwrap(), 1_500_000_000);
        for bad in ["0s", "-5s", "2592000", "s", "NaNs", "infs"] {
            assert!(duration_nanos(bad).is_err(), "{bad}");
        }
        let projection = |units: &str, nanos: i64, duration: &str| {
            rec(json!({"primaryImpact": {"costProjection": {
                "cost": {"currencyCode": "USD", "units": units, "nanos": nanos}, "duration": duration}}}))
        };
        // 30 days of -720 USD is -1 USD an hour: 730 USD an average month.
        assert_eq!(monthly_savings(&projection("-720", 0, "2592000s")).unwrap(), Some((amount("730"), Currency::USD)));
        assert_eq!(
            monthly_savings(&projection("-8760", 0, "31536000s")).unwrap(),
            Some((amount("730"), Currency::USD))
        );
        // -100.10 over 30 days is 101.4902777… a month.
        assert_eq!(
            monthly_savings(&projection("-100", -100_000_000, "2592000s")).unwrap(),
            Some((amount("101.490277778"), Currency::USD))
        );
        assert_eq!(monthly_savings(&projection("100", 0, "2592000s")).unwrap(), None, "a cost is no saving");
        assert!(monthly_savings(&projection("-1", 0, "0s")).is_err(), "no division by a zero duration");
        assert!(monthly_savings(&rec(json!({"primaryImpact": {"category": "COST"}}))).is_err());
    }

    #[test]
    fn the_plan_decides_the_term_and_a_missing_or_double_one_is_malformed() {
        let with_plan = |plan: &str| {
            rec(json!({"content": {"operationGroups": [{"operations": [
                {"path": "/", "value": {"plan": plan, "resources": []}}]}]}}))
        };
        assert_eq!(term_of(&with_plan("TWELVE_MONTH")).unwrap(), 12);
        assert_eq!(term_of(&with_plan("THIRTY_SIX_MONTH")).unwrap(), 36);
        let by_path = rec(json!({"content": {"operationGroups": [{"operations": [
            {"path": "/plan", "value": "THIRTY_SIX_MONTH"}]}]}}));
        assert_eq!(term_of(&by_path).unwrap(), 36);
        // The plan wins over a description that says otherwise.
        let mut both = with_plan("TWELVE_MONTH");
        both.description = "Save with a 3-year commitment".into();
        assert_eq!(term_of(&both).unwrap(), 12);
        assert_eq!(term_of(&rec(json!({"recommenderSubtype": "COMMIT_ONE_YEAR"}))).unwrap(), 12);
        assert_eq!(term_of(&rec(json!({"description": "Buy a 3 years commitment"}))).unwrap(), 36);
        assert_eq!(terms_named("THIRTEEN_YEARS 31_YEAR"), Vec::<i32>::new(), "whole words only");
        assert!(term_of(&rec(json!({"description": "1-year or 3-year"}))).unwrap_err().contains("both"));
        assert!(term_of(&rec(json!({"description": "a commitment"}))).unwrap_err().contains("no term"));
    }

    #[test]
    fn compute_commitments_count_vcpus_then_accelerators_then_memory() {
        let shape = |value: Value| {
            commitment_shape(
                &rec(json!({"content": {"operationGroups": [{"operations": [
                {"path": "/", "value": value}]}]}}))
                .content,
            )
        };
        let n2 = shape(json!({"type": "GENERAL_PURPOSE_N2",
            "resources": [{"type": "VCPU", "amount": "16"}, {"type": "MEMORY", "amount": "65536"}]}));
        assert_eq!(compute_resources(&n2).unwrap(), ("general_purpose_n2".to_string(), 16.0));
        let gpu = shape(json!({"type": "ACCELERATOR_OPTIMIZED", "resources": [
            {"type": "ACCELERATOR", "amount": 2, "acceleratorType": "projects/p/zones/z/acceleratorTypes/nvidia-l4"}]}));
        assert_eq!(compute_resources(&gpu).unwrap(), ("nvidia-l4".to_string(), 2.0));
        let memory = shape(json!({"resources": [{"type": "MEMORY", "amount": "2048"}]}));
        assert_eq!(compute_resources(&memory).unwrap(), ("general_purpose_memory_gb".to_string(), 2.0));
        assert!(compute_resources(&shape(json!({"resources": [{"type": "VCPU", "amount": "x"}]}))).is_err());
    }

    #[test]
    fn spend_based_recommendations_are_told_apart_by_the_service_they_name() {
        let sql = rec(json!({"description": "Purchase a spend-based commitment for Cloud SQL"}));
        assert_eq!(spend_service(&sql), Some("cloud_sql"));
        let redis = rec(json!({"content": {"overview": {"service": "Memorystore for Redis"}}}));
        assert_eq!(spend_service(&redis), Some("memorystore"));
        let by_host = rec(json!({"content": {"operationGroups": [{"operations": [
            {"resourceType": "sqladmin.googleapis.com/Instance"}]}]}}));
        assert_eq!(spend_service(&by_host), Some("cloud_sql"));
        assert_eq!(spend_service(&rec(json!({"description": "Spanner commitment"}))), None);
        assert_eq!(spend_service(&rec(json!({"description": "Cloud SQL and Memorystore"}))), None);
    }

    #[test]
    fn the_saving_is_split_by_the_nominal_discount_without_nan() {
        let account = Account {
            provider: Provider::Gcp,
            external_id: "my-project".into(),
            display_name: "My project".into(),
            credentials: None,
        };
        let calls = RequestCount::new();
        let query = Query {
            account: &account,
            service: "compute",
            region: Some("us-central1"),
            sweep: Sweep { term_months: 12, payment: PaymentOption::Monthly },
            calls: &calls,
            run: &crate::providers::RunScope::default(),
        };
        let owner = Owner { id: "my-project".into(), name: "My project".into() };
        let mapped = Mapped {
            service: "compute",
            term_months: 12,
            region: "us-central1".into(),
            resource_type: "general_purpose_n2".into(),
            count: 16.0,
            monthly_savings: amount("370"),
            currency: Currency::USD,
        };
        let r = mapped.into_recommendation(&query, &owner).unwrap();
        assert_eq!(
            (r.on_demand_monthly_cost, r.recurring_monthly_cost, r.savings_percentage),
            (amount("1000"), amount("630"), 37.0)
        );
        assert!(r.has_finite_figures());
        let unknown = Mapped {
            service: "spanner",
            term_months: 12,
            region: String::new(),
            resource_type: String::new(),
            count: 1.0,
            monthly_savings: amount("5"),
            currency: Currency::USD,
        };
        let r = unknown.into_recommendation(&query, &owner).unwrap();
        assert!(r.has_finite_figures() && r.savings_percentage == 0.0, "an unknown discount divides by nothing");
        assert_eq!(r.on_demand_monthly_cost, Amount::ZERO);
    }

    #[test]
    fn only_active_recommendations_that_save_are_mapped() {
        let base = json!({
            "name": "r", "stateInfo": {"state": "ACTIVE"},
            "primaryImpact": {"category": "COST", "costProjection": {
                "cost": {"currencyCode": "USD", "units": "-100"}, "duration": "2592000s"}},
            "content": {"operationGroups": [{"operations": [{"path": "/", "value": {
                "plan": "TWELVE_MONTH", "resources": [{"type": "VCPU", "amount": "4"}]}}]}]}
        });
        let mapped = map_recommendation(&rec(base.clone()), "compute", "europe-west1").unwrap().unwrap();
        assert_eq!((mapped.region.as_str(), mapped.count, mapped.term_months), ("europe-west1", 4.0, 12));
        let mut dismissed = base.clone();
        dismissed["stateInfo"]["state"] = json!("DISMISSED");
        assert_eq!(map_recommendation(&rec(dismissed), "compute", "r").unwrap(), None);
        let mut costly = base.clone();
        costly["primaryImpact"]["costProjection"]["cost"]["units"] = json!("100");
        assert_eq!(map_recommendation(&rec(costly), "compute", "r").unwrap(), None);
        let mut no_state = base;
        no_state.as_object_mut().unwrap().remove("stateInfo");
        assert_eq!(map_recommendation(&rec(no_state), "compute", "r").unwrap(), None);
    }

    #[test]
    fn query_values_and_path_segments_are_escaped() {
        assert_eq!(encode_query_value(ACTIVE_FILTER), "stateInfo.state%20%3D%20ACTIVE");
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            endpoint(&base, &["v1", "projects", "a/b?c"], &[]).as_str(),
            "http://127.0.0.1:8080/v1/projects/a%2Fb%3Fc"
        );
        assert_eq!(
            google_error_text(r#"{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}"#),
            "PERMISSION_DENIED: denied"
        );
        assert_eq!(
            google_error_text(r#"{"error": "invalid_grant", "error_description": "bad"}"#),
            "invalid_grant: bad"
        );
        assert_eq!(google_error_text("<html>"), "<html>");
    }
}
