//! The vocabulary both services share: providers, triggers, outcomes, the
//! per-provider status stored as JSON on the state row, and recommendations.
//!
//! The collector writes these shapes to Postgres and api-service reads them
//! back, so they live with their writer and api-service links this crate.

use chrono::{DateTime, Utc};
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::money::{Amount, Currency};

/// An enum stored in Postgres as text (and sent to the collector as text).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal => $pb:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in canonical order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The protobuf enum value.
            pub fn to_proto(self) -> i32 {
                match self { $($name::$variant => $pb as i32),+ }
            }

            /// From a protobuf enum value; `None` for unspecified or unknown.
            pub fn from_proto(value: i32) -> Option<Self> {
                $(if value == $pb as i32 { return Some($name::$variant); })+
                None
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A cloud.
    Provider {
        /// Amazon Web Services.
        Aws = "aws" => pb::Provider::Aws,
        /// Microsoft Azure.
        Azure = "azure" => pb::Provider::Azure,
        /// Google Cloud.
        Gcp = "gcp" => pb::Provider::Gcp,
    }
}

text_enum! {
    /// Why a run was started.
    Trigger {
        /// A caller asked for it.
        User = "user" => pb::Trigger::User,
        /// The first read found no data.
        ColdStart = "cold_start" => pb::Trigger::ColdStart,
        /// A read found stale data.
        Stale = "stale" => pb::Trigger::Stale,
        /// The scheduler asked for it.
        Schedule = "schedule" => pb::Trigger::Schedule,
    }
}

text_enum! {
    /// How a run ended (or that it has not).
    Outcome {
        /// Holds the lease.
        Running = "running" => pb::Outcome::Running,
        /// Everything completed.
        Succeeded = "succeeded" => pb::Outcome::Succeeded,
        /// Some accounts or services failed.
        PartiallySucceeded = "partially_succeeded" => pb::Outcome::PartiallySucceeded,
        /// Nothing was collected.
        Failed = "failed" => pb::Outcome::Failed,
        /// Stopped by its collector, lease released.
        Cancelled = "cancelled" => pb::Outcome::Cancelled,
        /// Stopped heartbeating; lease taken over.
        Abandoned = "abandoned" => pb::Outcome::Abandoned,
    }
}

text_enum! {
    /// State of one provider within a run.
    ProviderState {
        /// Not started yet.
        Pending = "pending" => pb::ProviderState::Pending,
        /// Collecting.
        Running = "running" => pb::ProviderState::Running,
        /// Every account completed.
        Succeeded = "succeeded" => pb::ProviderState::Succeeded,
        /// Some accounts completed.
        PartiallySucceeded = "partially_succeeded" => pb::ProviderState::PartiallySucceeded,
        /// No account completed.
        Failed = "failed" => pb::ProviderState::Failed,
    }
}

text_enum! {
    /// How far the collection of an account with failures got.
    AccountState {
        /// Some units completed, some failed.
        PartiallySucceeded = "partially_succeeded" => pb::AccountState::PartiallySucceeded,
        /// Nothing could be collected.
        Failed = "failed" => pb::AccountState::Failed,
    }
}

text_enum! {
    /// The kind of commitment.
    CommitmentType {
        /// Reserved instances (AWS, Azure reservations).
        ReservedInstance = "reserved_instance" => pb::CommitmentType::ReservedInstance,
        /// AWS savings plans.
        SavingsPlan = "savings_plan" => pb::CommitmentType::SavingsPlan,
        /// GCP committed-use discounts.
        CommittedUseDiscount = "committed_use_discount" => pb::CommitmentType::CommittedUseDiscount,
    }
}

text_enum! {
    /// How a commitment is paid.
    PaymentOption {
        /// Nothing upfront.
        NoUpfront = "no_upfront" => pb::PaymentOption::NoUpfront,
        /// Part upfront, the rest monthly.
        PartialUpfront = "partial_upfront" => pb::PaymentOption::PartialUpfront,
        /// Everything upfront.
        AllUpfront = "all_upfront" => pb::PaymentOption::AllUpfront,
        /// Billed monthly over the term.
        Monthly = "monthly" => pb::PaymentOption::Monthly,
    }
}

/// An account (AWS account, Azure subscription, GCP project) to collect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its cloud.
    pub provider: Provider,
    /// The cloud's id for it.
    pub external_id: String,
    /// A human name.
    pub display_name: String,
    /// How to reach it; `None` uses the provider's default (AWS: the ambient
    /// credentials; GCP: the metadata server; Azure has none).
    pub credentials: Option<crate::credentials::Credentials>,
}

/// Progress and result of one provider within a run, stored as JSON on the
/// state row and in the run history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// The provider.
    pub provider: Provider,
    /// Where it stands.
    pub state: ProviderState,
    /// Enabled accounts of this provider in the run.
    pub accounts_total: u32,
    /// Accounts whose every unit completed.
    pub accounts_succeeded: u32,
    /// Accounts of which some units completed and some failed.
    #[serde(default)]
    pub accounts_partial: u32,
    /// Accounts of which nothing could be collected.
    pub accounts_failed: u32,
    /// Recommendations collected so far.
    pub recommendation_count: u64,
    /// A one-line summary of what failed; empty when nothing did.
    #[serde(default)]
    pub error: String,
    /// Every account that failed or was partly collected, in account order.
    #[serde(default)]
    pub failed_accounts: Vec<AccountFailures>,
    /// Calls made to the provider's API.
    #[serde(default)]
    pub requests: u64,
    /// Calls that failed.
    #[serde(default)]
    pub request_errors: u64,
}

impl ProviderStatus {
    /// A provider that has not started.
    pub fn pending(provider: Provider, accounts_total: u32) -> Self {
        ProviderStatus {
            provider,
            state: ProviderState::Pending,
            accounts_total,
            accounts_succeeded: 0,
            accounts_partial: 0,
            accounts_failed: 0,
            recommendation_count: 0,
            error: String::new(),
            failed_accounts: Vec::new(),
            requests: 0,
            request_errors: 0,
        }
    }

    /// Accounts that collected something (completely or in part).
    pub fn accounts_collected(&self) -> u32 {
        self.accounts_succeeded + self.accounts_partial
    }

    /// The protobuf message.
    pub fn to_proto(&self) -> pb::ProviderStatus {
        pb::ProviderStatus {
            provider: self.provider.to_proto(),
            state: self.state.to_proto(),
            accounts_total: to_i32(self.accounts_total),
            accounts_succeeded: to_i32(self.accounts_succeeded),
            accounts_partially_succeeded: to_i32(self.accounts_partial),
            accounts_failed: to_i32(self.accounts_failed),
            recommendation_count: i64::try_from(self.recommendation_count).unwrap_or(i64::MAX),
            error: self.error.clone(),
            failed_accounts: self.failed_accounts.iter().map(AccountFailures::to_proto).collect(),
            request_count: i64::try_from(self.requests).unwrap_or(i64::MAX),
            request_error_count: i64::try_from(self.request_errors).unwrap_or(i64::MAX),
        }
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What failed in one account: its state, its first error, how many of its
/// units failed, and the first few of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFailures {
    /// The account.
    pub account_id: String,
    /// Failed or partly collected; `None` in runs recorded before the two
    /// were told apart.
    #[serde(default)]
    pub state: Option<AccountState>,
    /// The refusal that stopped the account's sweep, else its first failed
    /// unit's error.
    pub error: String,
    /// Units that failed or were skipped after a refusal.
    pub units_failed: u32,
    /// Units the account's sweep had (0 when not recorded).
    #[serde(default)]
    pub units_total: u32,
    /// The first [`AccountFailures::MAX_LISTED`] failed units.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

impl AccountFailures {
    /// Failed units listed per account; `units_failed` counts them all.
    pub const MAX_LISTED: usize = 5;

    /// The protobuf message.
    pub fn to_proto(&self) -> pb::AccountFailures {
        pb::AccountFailures {
            account_id: self.account_id.clone(),
            state: self.state.map(AccountState::to_proto).unwrap_or_default(),
            error: self.error.clone(),
            units_failed: to_i32(self.units_failed),
            units_total: to_i32(self.units_total),
            failures: self
                .failures
                .iter()
                .map(|f| pb::Failure {
                    account_id: f.account_id.clone(),
                    service: f.service.clone(),
                    region: f.region.clone(),
                    error: f.error.clone(),
                })
                .collect(),
        }
    }
}

/// One failed unit of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The account.
    pub account_id: String,
    /// The service, empty when the whole account failed.
    pub service: String,
    /// The region, empty for account-wide calls.
    pub region: String,
    /// What went wrong, for a human.
    pub error: String,
}

/// One purchase recommendation, as collected.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Its cloud.
    pub provider: Provider,
    /// The account it is for.
    pub account_id: String,
    /// The account's display name.
    pub account_name: String,
    /// The service (e.g. "ec2", "rds", "compute").
    pub service: String,
    /// The region code.
    pub region: String,
    /// Instance type, SKU or machine family.
    pub resource_type: String,
    /// Engine or platform; empty when not applicable.
    pub platform: String,
    /// The commitment kind.
    pub commitment_type: CommitmentType,
    /// 12 or 36.
    pub term_months: i32,
    /// How it is paid.
    pub payment_option: PaymentOption,
    /// The currency of every amount, as the cloud reported it.
    pub currency: Currency,
    /// Instances or units to buy; for savings plans, the hourly commitment
    /// (in `currency` per hour).
    pub recommended_count: f64,
    /// Paid at purchase.
    pub upfront_cost: Amount,
    /// Paid per month (730 hours) during the term.
    pub recurring_monthly_cost: Amount,
    /// What the same usage costs per month on demand.
    pub on_demand_monthly_cost: Amount,
    /// Saved per month.
    pub estimated_monthly_savings: Amount,
    /// Savings as a percentage of the on-demand cost.
    pub savings_percentage: f64,
    /// Months until the savings pay back the upfront cost.
    pub break_even_months: f64,
}

impl Recommendation {
    /// Whether every figure that is not an amount (count, percentage,
    /// break-even) is a finite number. A provider's malformed figure (NaN,
    /// infinity) must not reach the table: it would poison the sort order.
    /// (Amounts are exact integers and cannot be non-finite.)
    pub fn has_finite_figures(&self) -> bool {
        [self.recommended_count, self.savings_percentage, self.break_even_months].iter().all(|v| v.is_finite())
    }

    /// The stable id: a name-based (v5) UUID of the natural key, so the
    /// same commitment keeps its id across runs.
    pub fn natural_id(&self) -> uuid::Uuid {
        // Each part escaped, so that joining them is unambiguous ("Linux/UNIX"
        // is a platform name).
        let parts = [
            self.provider.as_str(),
            &self.account_id,
            &self.service,
            &self.region,
            &self.resource_type,
            &self.platform,
            self.commitment_type.as_str(),
            &self.term_months.to_string(),
            self.payment_option.as_str(),
        ];
        let key: Vec<String> = parts.iter().map(|p| p.replace('%', "%25").replace('/', "%2F")).collect();
        uuid::Uuid::new_v5(&RECOMMENDATION_NAMESPACE, key.join("/").as_bytes())
    }
}

/// The namespace of recommendation ids (a fixed, random UUID).
const RECOMMENDATION_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1b_1f0e_9d3a_4b7e_8f21_5a4c_d2e8_7b90);

/// An amount as `google.type.Money`.
pub fn money(amount: Amount, currency: Currency) -> Money {
    let (units, nanos) = amount.units_and_nanos();
    Money { currency_code: currency.as_str().to_string(), units, nanos }
}

/// Converts a database timestamp to protobuf.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip_through_their_stored_names_and_proto_values() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()), Some(*t));
            assert_eq!(Trigger::from_proto(t.to_proto()), Some(*t));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(Provider::from_proto(0), None);
        assert_eq!(Provider::parse("AWS"), None);
    }

    #[test]
    fn natural_ids_are_stable_and_unambiguous() {
        let rec = Recommendation {
            provider: Provider::Aws,
            account_id: "123456789012".into(),
            account_name: "a".into(),
            service: "ec2".into(),
            region: "us-east-1".into(),
            resource_type: "m5.large".into(),
            platform: "Linux/UNIX".into(),
            commitment_type: CommitmentType::ReservedInstance,
            term_months: 12,
            payment_option: PaymentOption::NoUpfront,
            currency: Currency::USD,
            recommended_count: 1.0,
            upfront_cost: Amount::ZERO,
            recurring_monthly_cost: Amount::from_units(1).unwrap(),
            on_demand_monthly_cost: Amount::from_units(2).unwrap(),
            estimated_monthly_savings: Amount::from_units(1).unwrap(),
            savings_percentage: 50.0,
            break_even_months: 0.0,
        };
        let cheaper = Recommendation {
            estimated_monthly_savings: Amount::from_nanos(500_000_000),
            account_name: "b".into(),
            ..rec.clone()
        };
        assert_eq!(rec.natural_id(), cheaper.natural_id(), "figures and names are not part of the key");
        let shifted = Recommendation { resource_type: "m5.large/Linux".into(), platform: "UNIX".into(), ..rec.clone() };
        assert_ne!(rec.natural_id(), shifted.natural_id());
        assert_eq!(rec.natural_id().get_version_num(), 5);
        assert!(rec.has_finite_figures());
        assert!(!Recommendation { savings_percentage: f64::NAN, ..rec.clone() }.has_finite_figures());
        assert!(!Recommendation { break_even_months: f64::INFINITY, ..rec }.has_finite_figures());
    }

    #[test]
    fn provider_status_json_keeps_its_shape() {
        let status = ProviderStatus::pending(Provider::Gcp, 3);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["provider"], "gcp");
        assert_eq!(json["state"], "pending");
        let back: ProviderStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn money_splits_into_units_and_nanos_of_one_sign() {
        let m = money(Amount::parse("-1025.791944444").unwrap(), Currency::parse("EUR").unwrap());
        assert_eq!((m.currency_code.as_str(), m.units, m.nanos), ("EUR", -1025, -791_944_444));
    }
}
