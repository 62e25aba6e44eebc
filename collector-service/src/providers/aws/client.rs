//! Cost Explorer through the official SDK: one client per credentials
//! reference, and every page of a request, each through the provider's
//! rate limiter and retry policy.
//!
//! Every Cost Explorer request is billed (USD 0.01 a request, each page
//! counts), so the SDK's own retries are off: every attempt is the
//! provider's, and is counted.

use std::collections::HashMap;
use std::future::Future;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::config::http::HttpResponse;
use aws_sdk_costexplorer::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_costexplorer::operation::get_reservation_purchase_recommendation::GetReservationPurchaseRecommendationOutput as ReservationPage;
use aws_sdk_costexplorer::operation::get_savings_plans_purchase_recommendation::GetSavingsPlansPurchaseRecommendationOutput as SavingsPlanPage;
use aws_sdk_costexplorer::types::{
    AccountScope, LookbackPeriodInDays, PaymentOption as AwsPayment, SupportedSavingsPlansType, TermInYears,
};
use cudly_core::credentials::AwsCredentials;
use cudly_core::domain::{Account, PaymentOption};
use futures_util::FutureExt;
use tokio::sync::Mutex;

use super::errors::{Access, access, answer};
use crate::providers::calls::CallLimits;
use crate::providers::kit::pager::{self, Page};
use crate::providers::{BackendError, Query, RequestCount};

/// The SDK clients of a backend, one per credentials reference (a role's
/// session is cached and refreshed by its provider).
pub(super) struct Clients {
    base: SdkConfig,
    sts_endpoint_url: Option<String>,
    clients: Mutex<HashMap<RoleKey, Client>>,
}

/// (role ARN, external id), or `None` for the ambient credentials.
type RoleKey = Option<(String, Option<String>)>;

impl Clients {
    /// Clients over `base` (its credentials are the ambient ones); roles are
    /// assumed through `sts_endpoint_url` when set.
    pub(super) fn new(base: SdkConfig, sts_endpoint_url: Option<String>) -> Self {
        Clients { base, sts_endpoint_url, clients: Mutex::new(HashMap::new()) }
    }

    /// The client for `credentials`: the ambient identity, or the role it
    /// names assumed with its external id. Its retries are off.
    pub(super) async fn client(&self, credentials: &AwsCredentials) -> Client {
        let key = credentials.role_arn.clone().map(|arn| (arn, credentials.external_id.clone()));
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let mut builder = aws_sdk_costexplorer::config::Builder::from(&self.base).retry_config(RetryConfig::disabled());
        if let Some((arn, external_id)) = &key {
            let mut sts = self.base.to_builder();
            sts.set_endpoint_url(self.sts_endpoint_url.clone());
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
}

/// One sweep's requests: who asks, for which account scope, look-back,
/// term and payment option, each page through the provider's limits.
pub(super) struct Ask<'a> {
    client: Client,
    account: &'a Account,
    scope: Option<AccountScope>,
    lookback: LookbackPeriodInDays,
    term: TermInYears,
    payment: AwsPayment,
    access: Access,
    limits: &'a CallLimits,
    calls: &'a RequestCount,
}

impl<'a> Ask<'a> {
    /// The requests of `query`'s sweep, made with `client` (the account's
    /// `credentials`) over `lookback_days` of usage.
    pub(super) fn new(
        client: Client,
        query: &Query<'a>,
        credentials: &AwsCredentials,
        lookback_days: u32,
        limits: &'a CallLimits,
    ) -> Self {
        let term = if query.sweep.term_months >= 36 { TermInYears::ThreeYears } else { TermInYears::OneYear };
        let payment = match query.sweep.payment {
            PaymentOption::AllUpfront => AwsPayment::AllUpfront,
            PaymentOption::PartialUpfront => AwsPayment::PartialUpfront,
            PaymentOption::NoUpfront | PaymentOption::Monthly => AwsPayment::NoUpfront,
        };
        Ask {
            client,
            account: query.account,
            scope: credentials.organization.then_some(AccountScope::Linked),
            lookback: lookback(lookback_days),
            term,
            payment,
            access: access(credentials, query.account),
            limits,
            calls: query.calls,
        }
    }

    /// Every page of `GetReservationPurchaseRecommendation` for a service
    /// (Cost Explorer's name); `what` names it in errors.
    pub(super) async fn reservations(
        &self,
        ce_service: &str,
        what: &str,
    ) -> Result<Vec<ReservationPage>, BackendError> {
        self.all_pages(
            what,
            |token| {
                self.client
                    .get_reservation_purchase_recommendation()
                    .service(ce_service)
                    .set_account_scope(self.scope.clone())
                    // Without organization scope, the account's own
                    // recommendations, whichever identity asks.
                    .set_account_id(self.scope.is_none().then(|| self.account.external_id.clone()))
                    .lookback_period_in_days(self.lookback.clone())
                    .term_in_years(self.term.clone())
                    .payment_option(self.payment.clone())
                    .set_next_page_token(token)
                    .send()
            },
            |page| page.next_page_token(),
        )
        .await
    }

    /// Every page of `GetSavingsPlansPurchaseRecommendation` for a plan
    /// type; `what` names it in errors.
    pub(super) async fn savings_plans(
        &self,
        plan_type: &SupportedSavingsPlansType,
        what: &str,
    ) -> Result<Vec<SavingsPlanPage>, BackendError> {
        self.all_pages(
            what,
            |token| {
                self.client
                    .get_savings_plans_purchase_recommendation()
                    .savings_plans_type(plan_type.clone())
                    .set_account_scope(self.scope.clone())
                    .lookback_period_in_days(self.lookback.clone())
                    .term_in_years(self.term.clone())
                    .payment_option(self.payment.clone())
                    .set_next_page_token(token)
                    .send()
            },
            |page| page.next_page_token(),
        )
        .await
    }

    /// Every page of one request (`send` sends it from a page token), each
    /// through the rate limiter and the retry policy, its answer sorted by
    /// [`answer`], following `NextPageToken` (empty means none). No data for
    /// the account is no pages, not a failure.
    async fn all_pages<O, E, F, Fut>(
        &self,
        what: &str,
        send: F,
        next_token: impl Fn(&O) -> Option<&str>,
    ) -> Result<Vec<O>, BackendError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (send, next_token) = (&send, &next_token);
        let page = |token: Option<String>| send(token).map(|r| answer(r, &self.access));
        let page = &page;
        pager::all_items(what, |_, token: Option<String>| async move {
            Ok(match self.limits.call(self.calls, what, || page(token.clone())).await? {
                None => Page::last(Vec::new()),
                Some(output) => {
                    let next = next_token(&output).filter(|t| !t.is_empty()).map(str::to_string);
                    Page { items: vec![output], next }
                }
            })
        })
        .await
    }
}

/// The look-back Cost Explorer offers for `days`: 7, 30 (the default) or 60.
fn lookback(days: u32) -> LookbackPeriodInDays {
    match days {
        7 => LookbackPeriodInDays::SevenDays,
        60 => LookbackPeriodInDays::SixtyDays,
        _ => LookbackPeriodInDays::ThirtyDays,
    }
}
