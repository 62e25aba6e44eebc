//! What an Azure subscription is swept for. Subscription scope covers every
//! region in one call: there is no region list. Reservations are swept
//! once per configured term; Advisor once for all.

use cudly_core::domain::PaymentOption;

use super::ADVISOR;
use crate::providers::Sweep;

/// The sweeps of `service` over the configured `terms` (sorted, 12 and/or
/// 36).
pub(super) fn sweeps(terms: &[i32], service: &str) -> Vec<Sweep> {
    // Azure reservations cost the same paid upfront or monthly, and the
    // recommendations carry no billing plan: one sweep per term, labelled
    // Monthly (no upfront cost, the whole price spread over the term).
    if service != ADVISOR {
        return terms.iter().map(|&term_months| Sweep { term_months, payment: PaymentOption::Monthly }).collect();
    }
    // Advisor answers once for every term; its savings are for
    // three-year reservations where sold, so the sweep is labelled so
    // (each recommendation keeps the term Advisor gives).
    let term_months = if terms.contains(&36) { 36 } else { 12 };
    vec![Sweep { term_months, payment: PaymentOption::Monthly }]
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::PaymentOption;

    use super::super::tests::config;
    use crate::providers::azure::{AzureBackend, SERVICES};
    use crate::providers::{CloudBackend, Sweep};

    #[test]
    fn sweeps_follow_the_terms() {
        let backend = AzureBackend::new(config("https://management.azure.com")).unwrap();
        let monthly = |t| Sweep { term_months: t, payment: PaymentOption::Monthly };
        assert_eq!(backend.sweeps("cosmos_db"), vec![monthly(12), monthly(36)]);
        assert_eq!(backend.sweeps("advisor"), vec![monthly(36)]);
        assert_eq!(backend.services(), SERVICES);
        assert_eq!(super::sweeps(&[12], "advisor"), vec![monthly(12)], "without 3-year terms, a 1-year label");
    }
}
