//! The vocabulary both services share: providers, triggers, outcomes, the
//! per-provider status stored as JSON on the state row, and recommendations.
//!
//! The collector writes these shapes to Postgres and api-service reads them
//! back, so they live with their writer and api-service links this crate.

use chrono::{DateTime, Utc};
use cudly_proto::recommendations::v1 as pb;
use serde::{Deserialize, Serialize};

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
    /// Accounts whose every service completed.
    pub accounts_succeeded: u32,
    /// Accounts with at least one failed service or region.
    pub accounts_failed: u32,
    /// Recommendations collected so far.
    pub recommendation_count: u64,
    /// A one-line summary of what failed; empty when nothing did.
    #[serde(default)]
    pub error: String,
    /// What failed, capped at [`ProviderStatus::MAX_FAILURES`] entries.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Calls made to the provider's API.
    #[serde(default)]
    pub requests: u64,
    /// Calls that failed.
    #[serde(default)]
    pub request_errors: u64,
}

impl ProviderStatus {
    /// Failures kept per provider; the summary still counts all of them.
    pub const MAX_FAILURES: usize = 20;

    /// A provider that has not started.
    pub fn pending(provider: Provider, accounts_total: u32) -> Self {
        ProviderStatus {
            provider,
            state: ProviderState::Pending,
            accounts_total,
            accounts_succeeded: 0,
            accounts_failed: 0,
            recommendation_count: 0,
            error: String::new(),
            failures: Vec::new(),
            requests: 0,
            request_errors: 0,
        }
    }

    /// The protobuf message.
    pub fn to_proto(&self) -> pb::ProviderStatus {
        pb::ProviderStatus {
            provider: self.provider.to_proto(),
            state: self.state.to_proto(),
            accounts_total: to_i32(self.accounts_total),
            accounts_succeeded: to_i32(self.accounts_succeeded),
            accounts_failed: to_i32(self.accounts_failed),
            recommendation_count: i64::try_from(self.recommendation_count).unwrap_or(i64::MAX),
            error: self.error.clone(),
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
            request_count: i64::try_from(self.requests).unwrap_or(i64::MAX),
            request_error_count: i64::try_from(self.request_errors).unwrap_or(i64::MAX),
        }
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
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
    /// Instances or units to buy.
    pub recommended_count: f64,
    /// USD paid at purchase.
    pub upfront_cost: f64,
    /// USD per month during the term.
    pub recurring_monthly_cost: f64,
    /// USD per month the same usage costs on demand.
    pub on_demand_monthly_cost: f64,
    /// USD saved per month.
    pub estimated_monthly_savings: f64,
    /// Savings as a percentage of the on-demand cost.
    pub savings_percentage: f64,
    /// Months until the savings pay back the upfront cost.
    pub break_even_months: f64,
}

impl Recommendation {
    /// Whether every amount is a finite number. A provider's malformed
    /// figure (NaN, infinity) must not reach the table: it would poison
    /// sums and the sort order.
    pub fn has_finite_amounts(&self) -> bool {
        [
            self.recommended_count,
            self.upfront_cost,
            self.recurring_monthly_cost,
            self.on_demand_monthly_cost,
            self.estimated_monthly_savings,
            self.savings_percentage,
            self.break_even_months,
        ]
        .iter()
        .all(|v| v.is_finite())
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
            recommended_count: 1.0,
            upfront_cost: 0.0,
            recurring_monthly_cost: 1.0,
            on_demand_monthly_cost: 2.0,
            estimated_monthly_savings: 1.0,
            savings_percentage: 50.0,
            break_even_months: 0.0,
        };
        let cheaper = Recommendation { estimated_monthly_savings: 0.5, account_name: "b".into(), ..rec.clone() };
        assert_eq!(rec.natural_id(), cheaper.natural_id(), "figures and names are not part of the key");
        let shifted = Recommendation { resource_type: "m5.large/Linux".into(), platform: "UNIX".into(), ..rec.clone() };
        assert_ne!(rec.natural_id(), shifted.natural_id());
        assert_eq!(rec.natural_id().get_version_num(), 5);
        assert!(rec.has_finite_amounts());
        assert!(!Recommendation { savings_percentage: f64::NAN, ..rec.clone() }.has_finite_amounts());
        assert!(!Recommendation { upfront_cost: f64::INFINITY, ..rec }.has_finite_amounts());
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
}
