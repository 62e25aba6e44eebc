//! AWS: reserved-instance and savings-plan purchase recommendations from
//! Cost Explorer, through the official SDK.
//!
//! Every Cost Explorer request is billed (USD 0.01 a request, each page
//! counts), so the SDK's own retries are off: every attempt goes through the
//! provider's rate limiter and retry policy and is counted.
//!
//! An account is collected with its own credentials (the ambient chain, or
//! a role assumed with an external id) for itself, or, when it is an
//! organization's management account, once for every linked account: the
//! call asks for `LINKED` scope and each detail names its account.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::config::http::HttpResponse;
use aws_sdk_costexplorer::config::{Credentials as SdkCredentials, ProvideCredentials};
use aws_sdk_costexplorer::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_costexplorer::types::{
    AccountScope, InstanceDetails, LookbackPeriodInDays, PaymentOption as AwsPayment,
    ReservationPurchaseRecommendation, SavingsPlansPurchaseRecommendation, SupportedSavingsPlansType, TermInYears,
};
use cudly_core::credentials::{AwsCredentials, Credentials};
use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use super::calls::{CallError, CallLimits};
use super::kit::pager::{self, Page};
use super::{BackendError, CloudBackend, Query, RequestCount, Sweep};

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

/// Hours in a month, as AWS prices monthly figures.
const HOURS_PER_MONTH: i128 = 730;

/// Cost Explorer's recommendations for AWS accounts.
pub struct AwsBackend {
    config: AwsConfig,
    base: SdkConfig,
    /// One client per credentials reference (the role's session is cached
    /// and refreshed by its provider).
    clients: Mutex<HashMap<RoleKey, Client>>,
}

/// (role ARN, external id), or `None` for the ambient credentials.
type RoleKey = Option<(String, Option<String>)>;

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
        AwsBackend { config, base, clients: Mutex::new(HashMap::new()) }
    }

    async fn client(&self, credentials: &AwsCredentials) -> Client {
        let key = credentials.role_arn.clone().map(|arn| (arn, credentials.external_id.clone()));
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let mut builder = aws_sdk_costexplorer::config::Builder::from(&self.base).retry_config(RetryConfig::disabled());
        if let Some((arn, external_id)) = &key {
            let mut sts = self.base.to_builder();
            sts.set_endpoint_url(self.config.sts_endpoint_url.clone());
            let mut role = aws_config::sts::AssumeRoleProvider::builder(arn.clone())
                .session_name("cudly-collector")
                .configure(&sts.build());
            if let Some(id) = external_id {
                role = role.external_id(id.clone());
            }
            builder = builder.credentials_provider(role.build().await);
        }
        let client = Client::from_conf(builder.build());
        clients.insert(key, client.clone());
        client
    }

    /// Every page of one request, each through the rate limiter and the
    /// retry policy. No data for the account (a page answered `None`) is no
    /// pages, not a failure.
    async fn all_pages<O, F, Fut>(
        &self,
        calls: &RequestCount,
        what: &str,
        page: F,
        next_token: impl Fn(&O) -> Option<&str>,
    ) -> Result<Vec<O>, BackendError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<O>, CallError>>,
    {
        let (page, next_token) = (&page, &next_token);
        pager::all_items(what, |_, token: Option<String>| async move {
            Ok(match self.config.limits.call(calls, what, || page(token.clone())).await? {
                None => Page::last(Vec::new()),
                Some(output) => {
                    let next = next_token(&output).filter(|t| !t.is_empty()).map(str::to_string);
                    Page { items: vec![output], next }
                }
            })
        })
        .await
    }

    fn lookback(&self) -> LookbackPeriodInDays {
        match self.config.lookback_days {
            7 => LookbackPeriodInDays::SevenDays,
            60 => LookbackPeriodInDays::SixtyDays,
            _ => LookbackPeriodInDays::ThirtyDays,
        }
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
        let client = self.client(&credentials).await;
        let scope = credentials.organization.then_some(AccountScope::Linked);
        let term = if query.sweep.term_months >= 36 { TermInYears::ThreeYears } else { TermInYears::OneYear };
        let payment = match query.sweep.payment {
            PaymentOption::AllUpfront => AwsPayment::AllUpfront,
            PaymentOption::PartialUpfront => AwsPayment::PartialUpfront,
            PaymentOption::NoUpfront | PaymentOption::Monthly => AwsPayment::NoUpfront,
        };
        let access = access(&credentials, account);
        let ctx = Mapping { account, service: query.service, sweep: query.sweep };
        let mut recommendations = Vec::new();
        if let Some((_, ce_service)) = RI_SERVICES.iter().find(|(s, _)| *s == query.service) {
            let what =
                format!("GetReservationPurchaseRecommendation ({ce_service}) for account {}", account.external_id);
            let pages = self
                .all_pages(
                    query.calls,
                    &what,
                    |token| {
                        client
                            .get_reservation_purchase_recommendation()
                            .service(*ce_service)
                            .set_account_scope(scope.clone())
                            // Without organization scope, the account's own
                            // recommendations, whichever identity asks.
                            .set_account_id(scope.is_none().then(|| account.external_id.clone()))
                            .lookback_period_in_days(self.lookback())
                            .term_in_years(term.clone())
                            .payment_option(payment.clone())
                            .set_next_page_token(token)
                            .send()
                            .map(|r| answer(r, &access))
                    },
                    |page| page.next_page_token(),
                )
                .await?;
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
            let pages = self
                .all_pages(
                    query.calls,
                    &what,
                    |token| {
                        client
                            .get_savings_plans_purchase_recommendation()
                            .savings_plans_type(sp_type.clone())
                            .set_account_scope(scope.clone())
                            .lookback_period_in_days(self.lookback())
                            .term_in_years(term.clone())
                            .payment_option(payment.clone())
                            .set_next_page_token(token)
                            .send()
                            .map(|r| answer(r, &access))
                    },
                    |page| page.next_page_token(),
                )
                .await?;
            for rec in pages.iter().filter_map(|page| page.savings_plans_purchase_recommendation()) {
                recommendations.extend(map_savings_plans(&ctx, rec).map_err(|e| malformed(&what, e))?);
            }
        }
        Ok(recommendations)
    }
}

/// Cost Explorer's error code for an account without enough usage data: no
/// recommendations, not a failure.
const NO_DATA: &str = "DataUnavailableException";

/// A Cost Explorer request that got no page, decided where the SDK error is
/// classified: by its error code and the SDK error's kind, never its text.
#[derive(Debug)]
enum Unanswered {
    /// The account has too little usage for recommendations
    /// (`DataUnavailableException`): nothing to collect, not a failure.
    NoData,
    /// A failure, sorted for the retry policy.
    Failed(CallError),
}

/// A page, `None` when Cost Explorer has no data for the account, or the
/// sorted failure.
fn answer<O, E>(result: Result<O, SdkError<E, HttpResponse>>, access: &Access) -> Result<Option<O>, CallError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result.map_err(|err| classify(err, access)) {
        Ok(output) => Ok(Some(output)),
        Err(Unanswered::NoData) => Ok(None),
        Err(Unanswered::Failed(err)) => Err(err),
    }
}

/// A Cost Explorer answer whose details cannot be read: that unit fails.
fn malformed(what: &str, problem: String) -> BackendError {
    BackendError::failed(format!("{what}: malformed answer: {problem}"))
}

/// How an account reaches Cost Explorer, for sorting its failures: whether
/// a role is assumed, and what to do about a refusal.
struct Access {
    assumes_role: bool,
    hint: String,
}

fn access(credentials: &AwsCredentials, account: &Account) -> Access {
    let hint = match &credentials.role_arn {
        Some(arn) => format!(
            "check that {arn} trusts the collector's identity (sts:AssumeRole{}) and allows \
             ce:GetReservationPurchaseRecommendation and ce:GetSavingsPlansPurchaseRecommendation",
            if credentials.external_id.is_some() { " with the external id" } else { "" }
        ),
        None => format!(
            "the collector's own AWS identity needs ce:GetReservationPurchaseRecommendation and \
             ce:GetSavingsPlansPurchaseRecommendation for account {}",
            account.external_id
        ),
    };
    Access { assumes_role: credentials.role_arn.is_some(), hint }
}

/// Sorts an SDK error: no data is no recommendations; throttling and server
/// errors may be retried; credentials, permissions and bad requests may
/// not.
fn classify<E>(err: SdkError<E, HttpResponse>, access: &Access) -> Unanswered
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let hint = &access.hint;
    let failed = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            let message = service.err().message().unwrap_or("");
            match code {
                NO_DATA => return Unanswered::NoData,
                "LimitExceededException"
                | "ThrottlingException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => {
                    CallError::Throttled { retry_after: None, message: format!("{code}: {message}") }
                }
                "InternalFailure" | "ServiceUnavailable" | "InternalServerError" => {
                    CallError::Transient(format!("{code}: {message}"))
                }
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "AccessDenied" => CallError::Refused(format!("{code}: {message}; {hint}")),
                _ if service.raw().status().is_server_error() => CallError::Transient(format!("{code}: {message}")),
                _ => CallError::Permanent(format!("{code}: {message}")),
            }
        }
        SdkError::ResponseError(_) => {
            // The answer arrived but cannot be read: asking again (a billed
            // request) would get the same answer.
            CallError::Permanent(format!("malformed answer: {}", shorten(&format!("{}", DisplayErrorContext(&err)))))
        }
        SdkError::TimeoutError(_) => CallError::Transient(format!("{}", DisplayErrorContext(&err))),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            CallError::Transient(format!("{}", DisplayErrorContext(&err)))
        }
        _ => {
            // Credentials that cannot be had (AssumeRole refused, no
            // ambient identity) end up here, before anything is sent: every
            // other call of the account would meet the same.
            let what = match (credentials_failed(&err), access.assumes_role) {
                (true, true) => "AssumeRole denied",
                (true, false) => "no usable AWS credentials",
                (false, _) => "the request could not be sent",
            };
            CallError::Refused(format!("{what}: {}; {hint}", shorten(&format!("{}", DisplayErrorContext(&err)))))
        }
    };
    Unanswered::Failed(failed)
}

/// Whether the SDK could not get credentials (the role could not be
/// assumed, no ambient identity): the error's chain holds the error a
/// credentials provider fails with. That type (`CredentialsError`) lives in
/// `aws-credential-types`, which this crate does not name; it is the error
/// of [`ProvideCredentials`]' future, and is named through it here, so the
/// failure is recognised by its type, never by its text.
fn credentials_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    fn chain_holds_error_of<P, F, T, E>(_provide: fn(&'static P) -> F, err: &(dyn std::error::Error + 'static)) -> bool
    where
        P: 'static,
        F: std::future::Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        std::iter::successors(Some(err), |e| e.source()).any(|e| e.is::<E>())
    }
    chain_holds_error_of(<SdkCredentials as ProvideCredentials>::provide_credentials, err)
}

fn shorten(text: &str) -> String {
    text.chars().take(400).collect()
}

/// What a mapped recommendation is for.
struct Mapping<'a> {
    account: &'a Account,
    service: &'static str,
    sweep: Sweep,
}

impl Mapping<'_> {
    /// The account a detail belongs to: for an organization, its own
    /// `AccountId` (a linked account); otherwise the account collected.
    fn account_id(&self, detail_account: Option<&str>) -> String {
        let organization = matches!(&self.account.credentials, Some(Credentials::Aws(c)) if c.organization);
        let linked = detail_account.filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()));
        match linked.filter(|_| organization) {
            Some(id) => id.to_string(),
            None => self.account.external_id.clone(),
        }
    }

    fn account_name(&self, account_id: &str) -> String {
        if account_id == self.account.external_id {
            self.account.display_name.clone()
        } else {
            format!("{} (linked to {})", account_id, self.account.display_name)
        }
    }
}

/// A figure that is not money (a count, a percentage, months): Cost
/// Explorer reports numbers as strings; an absent one is 0, a malformed one
/// an error.
fn number(field: &str, value: Option<&str>) -> Result<f64, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(0.0),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("{field} is not a number: {:?}", shorten_to(v, 40))),
    }
}

/// An amount, read exactly from Cost Explorer's decimal string; absent is 0.
fn amount(field: &str, value: Option<&str>) -> Result<Amount, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(Amount::ZERO),
        Some(v) => Amount::parse(v).map_err(|err| format!("{field}: {err}")),
    }
}

/// The detail's `CurrencyCode`. Cost Explorer reports in US dollars and
/// sends the code with every detail; a detail without one is taken as USD.
fn currency(code: Option<&str>) -> Result<Currency, String> {
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(Currency::USD),
        Some(code) => Currency::parse(code).map_err(|err| format!("CurrencyCode: {err}")),
    }
}

fn shorten_to(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// An instance type from its dot-separated parts, never repeating a part
/// that the previous one already ends with: Cost Explorer's OpenSearch
/// details give a class and a size, and the size may already carry the
/// class ("c6g" + "c6g.xlarge.search" is "c6g.xlarge.search", as is "c6g" +
/// "xlarge.search").
fn join_type(parts: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in parts {
        let pieces: Vec<&str> = part.split('.').map(str::trim).filter(|p| !p.is_empty()).collect();
        let overlap =
            (0..=pieces.len().min(out.len())).rev().find(|&k| out[out.len() - k..] == pieces[..k]).unwrap_or(0);
        out.extend(&pieces[overlap..]);
    }
    out.join(".")
}

/// (resource type, platform, region display name) of an instance detail.
/// Each service's type comes from its documented field: EC2 and RDS
/// `InstanceType` (RDS types carry their `db.` prefix), ElastiCache and
/// Redshift `NodeType` (`cache.` prefix; Redshift types have none), and
/// OpenSearch `InstanceClass` + `InstanceSize` joined without repeating a
/// part, with OpenSearch's `.search` suffix (the name its reserved-instance
/// offerings use) when Cost Explorer left it out.
fn instance(details: Option<&InstanceDetails>) -> (String, String, String) {
    let s = |v: Option<&str>| v.map(str::trim).unwrap_or("").to_string();
    let Some(d) = details else { return Default::default() };
    if let Some(ec2) = d.ec2_instance_details() {
        let platform = match ec2.tenancy() {
            Some(t) if t.trim().eq_ignore_ascii_case("dedicated") => format!("{} (dedicated)", s(ec2.platform())),
            _ => s(ec2.platform()),
        };
        return (join_type(&[ec2.instance_type().unwrap_or("")]), platform, s(ec2.region()));
    }
    if let Some(rds) = d.rds_instance_details() {
        let mut platform = s(rds.database_engine());
        if let Some(edition) = rds.database_edition().map(str::trim).filter(|e| !e.is_empty()) {
            platform = format!("{platform} {edition}");
        }
        if let Some(deployment) = rds.deployment_option().map(str::trim).filter(|e| !e.is_empty()) {
            platform = format!("{platform} ({deployment})");
        }
        return (join_type(&[rds.instance_type().unwrap_or("")]), platform, s(rds.region()));
    }
    if let Some(cache) = d.elasti_cache_instance_details() {
        return (join_type(&[cache.node_type().unwrap_or("")]), s(cache.product_description()), s(cache.region()));
    }
    if let Some(es) = d.es_instance_details() {
        let mut resource_type = join_type(&[es.instance_class().unwrap_or(""), es.instance_size().unwrap_or("")]);
        let suffixed = resource_type.ends_with(".search") || resource_type.ends_with(".elasticsearch");
        if !resource_type.is_empty() && !suffixed {
            resource_type.push_str(".search");
        }
        return (resource_type, String::new(), s(es.region()));
    }
    if let Some(redshift) = d.redshift_instance_details() {
        return (join_type(&[redshift.node_type().unwrap_or("")]), String::new(), s(redshift.region()));
    }
    Default::default()
}

/// Maps one reserved-instance recommendation. Cost Explorer's figures are
/// monthly already (`EstimatedMonthly…`, `RecurringStandardMonthlyCost`);
/// the upfront cost is once per purchase.
fn map_reservations(ctx: &Mapping<'_>, rec: &ReservationPurchaseRecommendation) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    for detail in rec.recommendation_details() {
        let currency = currency(detail.currency_code())?;
        let (resource_type, platform, region_name) = instance(detail.instance_details());
        let account_id = ctx.account_id(detail.account_id());
        out.push(Recommendation {
            provider: Provider::Aws,
            account_name: ctx.account_name(&account_id),
            account_id,
            service: ctx.service.to_string(),
            region: region_code(&region_name),
            resource_type,
            platform,
            commitment_type: CommitmentType::ReservedInstance,
            term_months: ctx.sweep.term_months,
            payment_option: ctx.sweep.payment,
            currency,
            recommended_count: number(
                "RecommendedNumberOfInstancesToPurchase",
                detail.recommended_number_of_instances_to_purchase(),
            )?,
            upfront_cost: amount("UpfrontCost", detail.upfront_cost())?,
            recurring_monthly_cost: amount("RecurringStandardMonthlyCost", detail.recurring_standard_monthly_cost())?,
            on_demand_monthly_cost: amount("EstimatedMonthlyOnDemandCost", detail.estimated_monthly_on_demand_cost())?,
            estimated_monthly_savings: amount(
                "EstimatedMonthlySavingsAmount",
                detail.estimated_monthly_savings_amount(),
            )?,
            savings_percentage: number(
                "EstimatedMonthlySavingsPercentage",
                detail.estimated_monthly_savings_percentage(),
            )?,
            break_even_months: number("EstimatedBreakEvenInMonths", detail.estimated_break_even_in_months())?,
        });
    }
    Ok(out)
}

/// Maps one savings-plan recommendation. Monthly figures use a month of 730
/// hours: the on-demand cost from the average hourly on-demand spend, the
/// recurring cost from the hourly commitment; the monthly savings are given
/// as such. (`EstimatedOnDemandCost`, `EstimatedSPCost` and
/// `EstimatedSavingsAmount` cover the look-back period, not a month, and are
/// not used.) The count is the hourly commitment.
fn map_savings_plans(
    ctx: &Mapping<'_>,
    rec: &SavingsPlansPurchaseRecommendation,
) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    let out_of_range = |what: &str| format!("{what} is out of range");
    for detail in rec.savings_plans_purchase_recommendation_details() {
        let currency = currency(detail.currency_code())?;
        let account_id = ctx.account_id(detail.account_id());
        let hourly = amount("HourlyCommitmentToPurchase", detail.hourly_commitment_to_purchase())?;
        let upfront = amount("UpfrontCost", detail.upfront_cost())?;
        let savings = amount("EstimatedMonthlySavingsAmount", detail.estimated_monthly_savings_amount())?;
        let on_demand = amount("CurrentAverageHourlyOnDemandSpend", detail.current_average_hourly_on_demand_spend())?
            .mul_div(HOURS_PER_MONTH, 1)
            .ok_or_else(|| out_of_range("CurrentAverageHourlyOnDemandSpend"))?;
        // The commitment covers the whole term; what is paid upfront is not
        // paid again monthly.
        let term = i128::from(ctx.sweep.term_months.max(1));
        let committed = hourly.mul_div(HOURS_PER_MONTH, 1).ok_or_else(|| out_of_range("HourlyCommitmentToPurchase"))?;
        let prepaid = upfront.mul_div(1, term).ok_or_else(|| out_of_range("UpfrontCost"))?;
        let recurring = committed.checked_sub(prepaid).filter(|r| *r > Amount::ZERO).unwrap_or(Amount::ZERO);
        let details = detail.savings_plans_details();
        let family = details.and_then(|d| d.instance_family()).unwrap_or("").trim().to_string();
        let region_name = details.and_then(|d| d.region()).unwrap_or("").to_string();
        let resource_type = match ctx.service {
            "compute_savings_plans" => "compute".to_string(),
            "sagemaker_savings_plans" => "sagemaker".to_string(),
            _ => family,
        };
        out.push(Recommendation {
            provider: Provider::Aws,
            account_name: ctx.account_name(&account_id),
            account_id,
            service: ctx.service.to_string(),
            region: if region_name.trim().is_empty() { "global".to_string() } else { region_code(&region_name) },
            resource_type,
            platform: String::new(),
            commitment_type: CommitmentType::SavingsPlan,
            term_months: ctx.sweep.term_months,
            payment_option: ctx.sweep.payment,
            currency,
            recommended_count: number("HourlyCommitmentToPurchase", detail.hourly_commitment_to_purchase())?,
            upfront_cost: upfront,
            recurring_monthly_cost: recurring,
            on_demand_monthly_cost: on_demand,
            estimated_monthly_savings: savings,
            savings_percentage: number("EstimatedSavingsPercentage", detail.estimated_savings_percentage())?,
            break_even_months: if upfront.is_positive() { upfront.ratio(savings) } else { 0.0 },
        });
    }
    Ok(out)
}

/// Cost Explorer names regions ("US East (N. Virginia)"); recommendations
/// carry codes. An unknown name is kept as it is rather than dropped.
pub fn region_code(name: &str) -> String {
    const REGIONS: &[(&str, &str)] = &[
        ("US East (N. Virginia)", "us-east-1"),
        ("US East (Ohio)", "us-east-2"),
        ("US West (N. California)", "us-west-1"),
        ("US West (Oregon)", "us-west-2"),
        ("Africa (Cape Town)", "af-south-1"),
        ("Asia Pacific (Hong Kong)", "ap-east-1"),
        ("Asia Pacific (Hyderabad)", "ap-south-2"),
        ("Asia Pacific (Jakarta)", "ap-southeast-3"),
        ("Asia Pacific (Malaysia)", "ap-southeast-5"),
        ("Asia Pacific (Melbourne)", "ap-southeast-4"),
        ("Asia Pacific (Mumbai)", "ap-south-1"),
        ("Asia Pacific (Osaka)", "ap-northeast-3"),
        ("Asia Pacific (Seoul)", "ap-northeast-2"),
        ("Asia Pacific (Singapore)", "ap-southeast-1"),
        ("Asia Pacific (Sydney)", "ap-southeast-2"),
        ("Asia Pacific (Thailand)", "ap-southeast-7"),
        ("Asia Pacific (Tokyo)", "ap-northeast-1"),
        ("Canada (Central)", "ca-central-1"),
        ("Canada West (Calgary)", "ca-west-1"),
        ("EU (Frankfurt)", "eu-central-1"),
        ("Europe (Frankfurt)", "eu-central-1"),
        ("EU (Ireland)", "eu-west-1"),
        ("Europe (Ireland)", "eu-west-1"),
        ("EU (London)", "eu-west-2"),
        ("Europe (London)", "eu-west-2"),
        ("EU (Milan)", "eu-south-1"),
        ("Europe (Milan)", "eu-south-1"),
        ("EU (Paris)", "eu-west-3"),
        ("Europe (Paris)", "eu-west-3"),
        ("Europe (Spain)", "eu-south-2"),
        ("EU (Stockholm)", "eu-north-1"),
        ("Europe (Stockholm)", "eu-north-1"),
        ("Europe (Zurich)", "eu-central-2"),
        ("Israel (Tel Aviv)", "il-central-1"),
        ("Mexico (Central)", "mx-central-1"),
        ("Middle East (Bahrain)", "me-south-1"),
        ("Middle East (UAE)", "me-central-1"),
        ("South America (Sao Paulo)", "sa-east-1"),
        ("South America (São Paulo)", "sa-east-1"),
        ("AWS GovCloud (US-East)", "us-gov-east-1"),
        ("AWS GovCloud (US-West)", "us-gov-west-1"),
        ("AWS GovCloud (US)", "us-gov-west-1"),
    ];
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    // Some answers carry the code already.
    if trimmed.split('-').count() >= 3
        && trimmed.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return trimmed.to_string();
    }
    REGIONS.iter().find(|(n, _)| *n == trimmed).map(|(_, c)| c.to_string()).unwrap_or_else(|| trimmed.to_string())
}

impl CloudBackend for AwsBackend {
    fn provider(&self) -> Provider {
        Provider::Aws
    }

    fn services(&self) -> &'static [&'static str] {
        SERVICES
    }

    fn sweeps(&self, _service: &'static str) -> Vec<Sweep> {
        self.config
            .terms
            .iter()
            .flat_map(|&term_months| {
                self.config.payment_options.iter().map(move |&payment| Sweep { term_months, payment })
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_map_to_codes() {
        assert_eq!(region_code("US East (N. Virginia)"), "us-east-1");
        assert_eq!(region_code("EU (Ireland)"), "eu-west-1");
        assert_eq!(region_code("eu-west-1"), "eu-west-1");
        assert_eq!(region_code("Moon (Base 1)"), "Moon (Base 1)");
        assert_eq!(region_code(""), "");
    }

    #[test]
    fn numbers_come_as_strings_and_garbage_is_an_error() {
        assert_eq!(number("x", Some("12.50")).unwrap(), 12.5);
        assert_eq!(number("x", None).unwrap(), 0.0);
        assert!(number("UpfrontCost", Some("lots")).unwrap_err().contains("UpfrontCost"));
        assert!(number("x", Some("NaN")).is_err());
        assert_eq!(amount("UpfrontCost", Some("1094.3647983296")).unwrap().to_string(), "1094.36479833");
        assert!(amount("UpfrontCost", Some("lots")).unwrap_err().starts_with("UpfrontCost"));
        assert_eq!(currency(Some("EUR")).unwrap().as_str(), "EUR");
        assert_eq!(currency(None).unwrap(), Currency::USD);
        assert!(currency(Some("euros")).unwrap_err().contains("CurrencyCode"));
    }

    #[test]
    fn instance_types_never_repeat_a_part() {
        assert_eq!(join_type(&["c6g", "c6g.xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["c6g", "xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["c6g.xlarge", "xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["", "r6g.large.search"]), "r6g.large.search");
        assert_eq!(join_type(&["db.r6g.large"]), "db.r6g.large");
        assert_eq!(join_type(&["m5", "m5"]), "m5");
    }

    mod classify {
        use aws_config::retry::RetryConfig;
        use aws_sdk_costexplorer::config::ProvideCredentials;
        use aws_sdk_costexplorer::config::http::HttpResponse;
        use aws_sdk_costexplorer::error::{ConnectorError, ErrorMetadata, SdkError};
        use aws_sdk_costexplorer::operation::get_reservation_purchase_recommendation::GetReservationPurchaseRecommendationError as RiError;

        use super::super::{Access, CallError, SdkCredentials, Unanswered, classify};

        fn access(assumes_role: bool) -> Access {
            Access { assumes_role, hint: "the hint".into() }
        }

        fn service_error(code: &str, status: u16) -> SdkError<RiError, HttpResponse> {
            let error = RiError::generic(ErrorMetadata::builder().code(code).message("it said so").build());
            SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), "".into()))
        }

        fn unsent(source: Box<dyn std::error::Error + Send + Sync>) -> SdkError<RiError, HttpResponse> {
            SdkError::dispatch_failure(ConnectorError::other(source, None))
        }

        #[test]
        fn no_data_is_told_by_its_code_and_is_no_failure() {
            assert!(matches!(
                classify(service_error("DataUnavailableException", 400), &access(false)),
                Unanswered::NoData
            ));
            let throttled = classify(service_error("LimitExceededException", 400), &access(false));
            assert!(matches!(throttled, Unanswered::Failed(CallError::Throttled { .. })), "{throttled:?}");
            let denied = classify(service_error("AccessDeniedException", 400), &access(false));
            assert!(
                matches!(&denied, Unanswered::Failed(CallError::Refused(m))
                    if m == "AccessDeniedException: it said so; the hint"),
                "{denied:?}"
            );
            let unknown = classify(service_error("ValidationException", 400), &access(false));
            assert!(matches!(unknown, Unanswered::Failed(CallError::Permanent(_))), "{unknown:?}");
            let server = classify(service_error("Whatever", 503), &access(false));
            assert!(matches!(server, Unanswered::Failed(CallError::Transient(_))), "{server:?}");
        }

        #[tokio::test]
        async fn credentials_that_cannot_be_had_are_refused_and_named_by_their_type_not_their_text() {
            // STS where nothing listens: the role's provider fails to get credentials.
            let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
            let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(format!("http://{closed}"))
                .retry_config(RetryConfig::disabled())
                .credentials_provider(SdkCredentials::new("AKIDTEST", "test-secret", None, None, "test"))
                .load()
                .await;
            let role = aws_config::sts::AssumeRoleProvider::builder("arn:aws:iam::123456789012:role/cudly-read")
                .configure(&base)
                .build()
                .await;
            let no_credentials = || async { unsent(Box::new(role.provide_credentials().await.unwrap_err())) };
            let refused = |unanswered: Unanswered| match unanswered {
                Unanswered::Failed(CallError::Refused(message)) => message,
                other => panic!("not a refusal: {other:?}"),
            };
            let message = refused(classify(no_credentials().await, &access(true)));
            assert!(message.starts_with("AssumeRole denied: ") && message.ends_with("; the hint"), "{message}");
            let message = refused(classify(no_credentials().await, &access(false)));
            assert!(message.starts_with("no usable AWS credentials: "), "{message}");
            // A text that mentions credentials is not a credentials failure.
            let message = refused(classify(unsent("no AssumeRole credentials here".into()), &access(true)));
            assert!(message.starts_with("the request could not be sent: "), "{message}");
        }
    }
}
