//! AWS: reserved-instance and savings-plan purchase recommendations from
//! Cost Explorer, through the official SDK.
//!
//! An account is collected with its own credentials (the ambient chain, or
//! a role assumed with an external id) for itself, or, when it is an
//! organization's management account, once for every linked account: the
//! call asks for `LINKED` scope and each detail names its account.
//!
//! - `client`: the SDK clients and every page of a request, through the
//!   provider's limits.
//! - `errors`: Cost Explorer's failures sorted for the retry policy.
//! - `mapping`: its details mapped to our recommendations.
//! - `regions`: what is swept (no region list), region names to codes.

use aws_config::SdkConfig;
use aws_sdk_costexplorer::types::SupportedSavingsPlansType;
use cudly_core::credentials::{AwsCredentials, Credentials};
use cudly_core::domain::{Account, PaymentOption, Provider, Recommendation};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

mod client;
mod errors;
mod mapping;
mod regions;

use super::calls::CallLimits;
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};
use client::{Ask, Clients};
use errors::malformed;
use mapping::{Mapping, map_reservations, map_savings_plans};

pub use regions::region_code;

/// How the AWS backend calls Cost Explorer.
#[derive(Debug)]
pub struct AwsConfig {
    /// Cost Explorer endpoint override, e.g. a VPC endpoint or a local
    /// fake; `None` uses AWS's.
    pub endpoint_url: Option<String>,
    /// STS endpoint override for assuming roles; `None` uses AWS's (not the
    /// Cost Explorer override).
    pub sts_endpoint_url: Option<String>,
    /// Cost Explorer's region (its API lives in us-east-1).
    pub region: String,
    /// Days of usage the recommendations consider: 7, 30 or 60.
    pub lookback_days: u32,
    /// Terms swept, in months: 12 and/or 36.
    pub terms: Vec<i32>,
    /// Payment options swept.
    pub payment_options: Vec<PaymentOption>,
    /// Shared by every account (Cost Explorer allows a few requests a second).
    pub limits: CallLimits,
}

/// Reserved-instance services (Cost Explorer's names), in canonical order.
const RI_SERVICES: &[(&str, &str)] = &[
    ("ec2", "Amazon Elastic Compute Cloud - Compute"),
    ("rds", "Amazon Relational Database Service"),
    ("elasticache", "Amazon ElastiCache"),
    ("opensearch", "Amazon OpenSearch Service"),
    ("redshift", "Amazon Redshift"),
];

/// Reserved instances, then savings-plan types.
pub const SERVICES: &[&str] = &[
    "ec2",
    "rds",
    "elasticache",
    "opensearch",
    "redshift",
    "compute_savings_plans",
    "ec2_instance_savings_plans",
    "sagemaker_savings_plans",
];

/// Cost Explorer's recommendations for AWS accounts.
pub struct AwsBackend {
    config: AwsConfig,
    clients: Clients,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsBackend").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AwsBackend {
    /// A backend over the ambient AWS configuration (environment, profile,
    /// web identity, instance or pod role).
    pub async fn new(config: AwsConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()));
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        Self::with_sdk_config(config, base)
    }

    /// A backend over a given SDK configuration (its credentials are the
    /// ambient ones).
    pub fn with_sdk_config(config: AwsConfig, base: SdkConfig) -> Self {
        let clients = Clients::new(base, config.sts_endpoint_url.clone());
        AwsBackend { config, clients }
    }

    async fn fetch_query(&self, query: &Query<'_>) -> Result<Vec<Recommendation>, BackendError> {
        let account = query.account;
        let credentials = match &account.credentials {
            None => AwsCredentials::default(),
            Some(Credentials::Aws(c)) => c.clone(),
            Some(_) => {
                return Err(BackendError::refused(format!(
                    "account {}: its stored credentials are not AWS credentials; fix them with UpdateAccount",
                    account.external_id
                )));
            }
        };
        let client = self.clients.client(&credentials).await;
        let ask = Ask::new(client, query, &credentials, self.config.lookback_days, &self.config.limits);
        let ctx = Mapping { account, service: query.service, sweep: query.sweep };
        let mut recommendations = Vec::new();
        if let Some((_, ce_service)) = RI_SERVICES.iter().find(|(s, _)| *s == query.service) {
            let what =
                format!("GetReservationPurchaseRecommendation ({ce_service}) for account {}", account.external_id);
            let pages = ask.reservations(ce_service, &what).await?;
            for rec in pages.iter().flat_map(|page| page.recommendations()) {
                recommendations.extend(map_reservations(&ctx, rec).map_err(|e| malformed(&what, e))?);
            }
        } else {
            let sp_type = match query.service {
                "compute_savings_plans" => SupportedSavingsPlansType::ComputeSp,
                "ec2_instance_savings_plans" => SupportedSavingsPlansType::Ec2InstanceSp,
                "sagemaker_savings_plans" => SupportedSavingsPlansType::SagemakerSp,
                other => return Err(BackendError::failed(format!("unknown AWS service {other:?}"))),
            };
            let what = format!("GetSavingsPlansPurchaseRecommendation ({sp_type}) for account {}", account.external_id);
            let pages = ask.savings_plans(&sp_type, &what).await?;
            for rec in pages.iter().filter_map(|page| page.savings_plans_purchase_recommendation()) {
                recommendations.extend(map_savings_plans(&ctx, rec).map_err(|e| malformed(&what, e))?);
            }
        }
        Ok(recommendations)
    }
}

impl CloudBackend for AwsBackend {
    fn provider(&self) -> Provider {
        Provider::Aws
    }

    fn services(&self) -> &'static [&'static str] {
        SERVICES
    }

    fn sweeps(&self, _service: &'static str) -> Vec<Sweep> {
        regions::sweeps(&self.config.terms, &self.config.payment_options)
    }

    fn regions<'a>(
        &'a self,
        _account: &'a Account,
        _calls: &'a RequestCount,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, BackendError>> {
        // Cost Explorer answers for every region of an account at once.
        async { Ok(None) }.boxed()
    }

    fn fetch<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<Vec<Recommendation>, BackendError>> {
        async move { self.fetch_query(&query).await }.boxed()
    }
}
