//! Cost Explorer's answers, shaped exactly as the API reference documents
//! them (every number a decimal string, regions by display name).

use serde_json::{Value, json};

/// One `RecommendationDetails` entry of `GetReservationPurchaseRecommendation`
/// with every documented field, values as Cost Explorer sends them (strings,
/// ten decimals, a region's display name, title-cased tenancy): the EC2
/// entry of a captured answer.
pub(super) fn ri_detail(account: &str, instance_type: &str, savings: &str) -> Value {
    json!({
        "AccountId": account,
        "InstanceDetails": {"EC2InstanceDetails": {
            "AvailabilityZone": "", "Family": "m5", "InstanceType": instance_type,
            "Region": "US East (N. Virginia)", "Platform": "Linux/UNIX", "Tenancy": "Shared",
            "CurrentGeneration": true, "SizeFlexEligible": true
        }},
        "RecommendedNumberOfInstancesToPurchase": "4",
        "RecommendedNormalizedUnitsToPurchase": "32.0",
        "MinimumNumberOfInstancesUsedPerHour": "3.0000000000",
        "MinimumNormalizedUnitsUsedPerHour": "24.0000000000",
        "MaximumNumberOfInstancesUsedPerHour": "4.0000000000",
        "MaximumNormalizedUnitsUsedPerHour": "32.0000000000",
        "AverageNumberOfInstancesUsedPerHour": "3.9523809524",
        "AverageNormalizedUnitsUsedPerHour": "31.6190476190",
        "AverageUtilization": "98.8095238095",
        "EstimatedBreakEvenInMonths": "0.0",
        "CurrencyCode": "USD",
        "EstimatedMonthlySavingsAmount": savings,
        "EstimatedMonthlySavingsPercentage": "28.1250000000",
        "EstimatedMonthlyOnDemandCost": "280.3200000000",
        "EstimatedReservationCostForLookbackPeriod": "402.9600000000",
        "UpfrontCost": "0.0000000000",
        "RecurringStandardMonthlyCost": "201.4800000000"
    })
}

/// A detail of another RI service: `instance` is its `InstanceDetails`.
pub(super) fn detail_of(instance: Value, currency: &str) -> Value {
    json!({
        "AccountId": "123456789012",
        "InstanceDetails": instance,
        "RecommendedNumberOfInstancesToPurchase": "2",
        "AverageUtilization": "91.5000000000",
        "EstimatedBreakEvenInMonths": "7.3042938468",
        "CurrencyCode": currency,
        "EstimatedMonthlySavingsAmount": "75.6442855770",
        "EstimatedMonthlySavingsPercentage": "39.0000",
        "EstimatedMonthlyOnDemandCost": "193.3109523810",
        "EstimatedReservationCostForLookbackPeriod": "27.0794520864",
        "UpfrontCost": "1412.0000000000",
        "RecurringStandardMonthlyCost": "0.0000000000"
    })
}

/// A `GetReservationPurchaseRecommendation` answer as the API reference
/// documents it: metadata, one recommendation with its details and summary.
pub(super) fn ri_page(details: Vec<Value>, next: Option<&str>) -> Value {
    let mut page = json!({
        "Metadata": {"RecommendationId": "49063162-94c2-4e6e-967a-7e72e0f14fbc",
                     "GenerationTimestamp": "2026-11-28T00:00:00Z", "AdditionalMetadata": ""},
        "Recommendations": [{
            "AccountScope": "PAYER", "LookbackPeriodInDays": "SIXTY_DAYS", "TermInYears": "ONE_YEAR",
            "PaymentOption": "NO_UPFRONT", "ServiceSpecification": {"EC2Specification": {"OfferingClass": "STANDARD"}},
            "RecommendationDetails": details,
            "RecommendationSummary": {"TotalEstimatedMonthlySavingsAmount": "1", "TotalEstimatedMonthlySavingsPercentage": "28.0",
                                      "CurrencyCode": "USD"}
        }]
    });
    if let Some(token) = next {
        page["NextPageToken"] = json!(token);
    }
    page
}

/// A `GetSavingsPlansPurchaseRecommendation` answer with every documented
/// field of its one detail.
pub(super) fn sp_page(kind: &str, detail: Value) -> Value {
    json!({
        "Metadata": {"RecommendationId": "a1b2", "GenerationTimestamp": "2026-11-28T00:00:00Z",
                     "AdditionalMetadata": ""},
        "SavingsPlansPurchaseRecommendation": {
            "AccountScope": "PAYER", "SavingsPlansType": kind, "TermInYears": "ONE_YEAR",
            "PaymentOption": "PARTIAL_UPFRONT", "LookbackPeriodInDays": "SIXTY_DAYS",
            "SavingsPlansPurchaseRecommendationDetails": [detail],
            "SavingsPlansPurchaseRecommendationSummary": {
                "CurrencyCode": "USD", "CurrentOnDemandSpend": "2880", "DailyCommitmentToPurchase": "24",
                "EstimatedMonthlySavingsAmount": "730", "EstimatedOnDemandCostWithCurrentCommitment": "2880",
                "EstimatedROI": "100", "EstimatedSavingsAmount": "1440", "EstimatedSavingsPercentage": "50",
                "EstimatedTotalCost": "1440", "HourlyCommitmentToPurchase": "1.0", "TotalRecommendationCount": "1"
            }
        }
    })
}

pub(super) fn sp_detail(region: &str, family: &str, hourly: &str, upfront: &str, on_demand_hourly: &str) -> Value {
    json!({
        "SavingsPlansDetails": {"Region": region, "InstanceFamily": family, "OfferingId": "o-1"},
        "AccountId": "123456789012", "UpfrontCost": upfront, "CurrencyCode": "USD",
        "EstimatedSPCost": "1440", "EstimatedOnDemandCost": "1440",
        "EstimatedOnDemandCostWithCurrentCommitment": "2880", "EstimatedROI": "100",
        "EstimatedSavingsAmount": "1440", "EstimatedSavingsPercentage": "50.0",
        "EstimatedAverageUtilization": "100", "RecommendationDetailId": "d-1",
        "HourlyCommitmentToPurchase": hourly, "EstimatedMonthlySavingsAmount": "730.1234567890",
        "CurrentMinimumHourlyOnDemandSpend": "1.5", "CurrentMaximumHourlyOnDemandSpend": "2.5",
        "CurrentAverageHourlyOnDemandSpend": on_demand_hourly
    })
}
