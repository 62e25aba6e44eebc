//! Recommendations and run results as tests write them.

use cudly_collector::engine::Collected;
use cudly_core::domain::{CommitmentType, PaymentOption, Provider, ProviderStatus, Recommendation};
use cudly_core::money::{Amount, Currency};

/// An AWS EC2 reserved-instance recommendation for `account_id`: one
/// `resource_type`, 70 USD a month instead of 100, saving 30.
pub fn recommendation(account_id: &str, resource_type: &str) -> Recommendation {
    Recommendation {
        provider: Provider::Aws,
        account_id: account_id.into(),
        account_name: account_id.into(),
        service: "ec2".into(),
        region: "us-east-1".into(),
        resource_type: resource_type.into(),
        platform: "Linux/UNIX".into(),
        commitment_type: CommitmentType::ReservedInstance,
        term_months: 12,
        payment_option: PaymentOption::NoUpfront,
        currency: Currency::USD,
        recommended_count: 1.0,
        upfront_cost: Amount::ZERO,
        recurring_monthly_cost: Amount::from_units(70).unwrap(),
        on_demand_monthly_cost: Amount::from_units(100).unwrap(),
        estimated_monthly_savings: Amount::from_units(30).unwrap(),
        savings_percentage: 30.0,
        break_even_months: 0.0,
    }
}

/// An AWS run's results: one [`recommendation`] per `(account, collected
/// through, resource type)` row, and the accounts whose sweep completed.
pub fn collected(rows: &[(&str, &str, &str)], complete: &[&str]) -> Collected {
    Collected {
        recommendations: rows.iter().map(|(account, _, kind)| recommendation(account, kind)).collect(),
        sources: rows.iter().map(|(_, via, _)| via.to_string()).collect(),
        providers: vec![ProviderStatus::pending(Provider::Aws, complete.len() as u32)],
        complete_accounts: complete.iter().map(|a| (Provider::Aws, a.to_string())).collect(),
    }
}
