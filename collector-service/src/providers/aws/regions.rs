//! Where and what an AWS account is swept for: Cost Explorer answers for
//! every region of an account in one call (no region list), once per term
//! and payment option; its details name regions by display name, mapped
//! here to their codes.

use cudly_core::domain::PaymentOption;

use crate::providers::Sweep;

/// Every configured term with every configured payment option, for each
/// service alike.
pub(super) fn sweeps(terms: &[i32], payment_options: &[PaymentOption]) -> Vec<Sweep> {
    terms
        .iter()
        .flat_map(|&term_months| payment_options.iter().map(move |&payment| Sweep { term_months, payment }))
        .collect()
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

#[cfg(test)]
mod tests {
    use cudly_core::domain::PaymentOption;

    use super::{region_code, sweeps};
    use crate::providers::Sweep;

    #[test]
    fn region_names_map_to_codes() {
        assert_eq!(region_code("US East (N. Virginia)"), "us-east-1");
        assert_eq!(region_code("EU (Ireland)"), "eu-west-1");
        assert_eq!(region_code("eu-west-1"), "eu-west-1");
        assert_eq!(region_code("Moon (Base 1)"), "Moon (Base 1)");
        assert_eq!(region_code(""), "");
    }

    #[test]
    fn every_term_is_swept_with_every_payment_option() {
        let swept = sweeps(&[12, 36], &[PaymentOption::NoUpfront, PaymentOption::AllUpfront]);
        let sweep = |term_months, payment| Sweep { term_months, payment };
        assert_eq!(
            swept,
            [
                sweep(12, PaymentOption::NoUpfront),
                sweep(12, PaymentOption::AllUpfront),
                sweep(36, PaymentOption::NoUpfront),
                sweep(36, PaymentOption::AllUpfront)
            ]
        );
    }
}
