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
//! (`mapping`), so `savings_percentage` is that nominal rate.
//!
//! - `tokens`: a key's JWT-bearer grant or the metadata server.
//! - `client`: the paged lists, each parent's once per run.
//! - `errors`: Google's error bodies, a token endpoint's refusal.
//! - `wire`, `content`, `mapping`: the JSON read, what a
//!   recommendation's content says, and the mapping to our recommendations.
//! - `regions`: the project's regions, each list's parent, the sweeps.

mod client;
mod content;
mod errors;
mod mapping;
mod regions;
mod tokens;
mod wire;

use cudly_core::credentials::SecretFileDirs;
use cudly_core::domain::{Account, Provider, Recommendation};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::Url;

use super::calls::CallLimits;
use super::kit::http;
use super::kit::tokens::TokenCache;
use super::kit::urls::base_url;
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};
use mapping::{Owner, priced};
use regions::{GLOBAL, Scope, billing_account};

/// The services swept, in canonical order.
pub const SERVICES: &[&str] = &["compute", "cloud_sql", "memorystore"];

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
    /// a minute (`--gcp-rate`, 1.5 a second by default).
    pub limits: CallLimits,
    /// Where `file:` key references may be read from.
    pub secret_files: SecretFileDirs,
}

impl GcpConfig {
    /// Production Recommender endpoint.
    pub const DEFAULT_RECOMMENDER_URL: &'static str = "https://recommender.googleapis.com";
    /// Production Compute Engine endpoint.
    pub const DEFAULT_COMPUTE_URL: &'static str = "https://compute.googleapis.com";
    /// The metadata server as seen from a GCP workload.
    pub const DEFAULT_METADATA_URL: &'static str = "http://metadata.google.internal";

    /// The production endpoints, with `limits` and key files read from
    /// `secret_files`.
    pub fn new(limits: CallLimits, secret_files: SecretFileDirs) -> Self {
        GcpConfig {
            recommender_url: Self::DEFAULT_RECOMMENDER_URL.to_string(),
            compute_url: Self::DEFAULT_COMPUTE_URL.to_string(),
            metadata_url: Self::DEFAULT_METADATA_URL.to_string(),
            limits,
            secret_files,
        }
    }
}

/// Live GCP recommendations, over REST.
pub struct GcpBackend {
    recommender_url: Url,
    compute_url: Url,
    metadata_url: Url,
    limits: CallLimits,
    secret_files: SecretFileDirs,
    http: reqwest::Client,
    /// Access tokens, kept across runs until shortly before they expire.
    tokens: TokenCache,
}

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
            secret_files: config.secret_files,
            http: http::client()?,
            tokens: TokenCache::default(),
        })
    }

    async fn fetch_compute(&self, query: &Query<'_>) -> Result<Vec<Recommendation>, BackendError> {
        let project = query.account.external_id.as_str();
        let region = query.region.ok_or_else(|| {
            BackendError::failed(format!("GCP compute recommendations for project {project}: no region given"))
        })?;
        let scope = Scope::Project { project, region };
        let list = self.recommendations(query, &scope).await?;
        let owner = Owner { id: project.to_string(), name: query.account.display_name.clone() };
        priced(query, &scope, &list, region, &owner)
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
        priced(query, &scope, &list, location, &owner)
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
        regions::sweeps()
    }

    fn regions<'a>(
        &'a self,
        account: &'a Account,
        calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
        async move { self.list_regions(account, calls).await.map(Some) }.boxed()
    }

    fn service_regions(&self, service: &'static str, listed: &[String]) -> Option<Vec<String>> {
        Some(regions::service_regions(service, listed))
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

#[cfg(test)]
mod tests {
    use cudly_core::money::Amount;
    use serde_json::Value;

    use super::wire::ApiRecommendation;
    use super::{GcpBackend, GcpConfig};

    pub(super) fn rec(value: Value) -> ApiRecommendation {
        serde_json::from_value(value).unwrap()
    }

    pub(super) fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    #[test]
    fn endpoints_must_be_http_base_urls() {
        let config = |recommender_url: &str| GcpConfig {
            recommender_url: recommender_url.into(),
            ..GcpConfig::new(
                crate::providers::calls::tests::limits(1000.0, 100, 1),
                cudly_core::credentials::SecretFileDirs::new([std::env::temp_dir()]).unwrap(),
            )
        };
        assert!(GcpBackend::new(config(GcpConfig::DEFAULT_RECOMMENDER_URL)).is_ok());
        let err = GcpBackend::new(config("ftp://recommender.googleapis.com")).err().unwrap();
        assert!(format!("{err:#}").contains("GCP recommender_url \"ftp://recommender.googleapis.com\""), "{err:#}");
    }
}
