//! From Azure Advisor's cost recommendations (`Recommendations_List`,
//! api-version 2023-01-01, string extended properties) to our
//! recommendations: the commitment purchases among them.

use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use serde_json::{Map, Value};

use super::mapping::{finite, kind, term_months, text};
use super::{ADVISOR, SERVICES, reserved_resource_type};

/// An amount Advisor sent as text (its extended properties are strings),
/// read exactly; `None` when absent or empty.
pub(super) fn advisor_amount(ext: &Map<String, Value>, field: &str) -> Result<Option<Amount>, String> {
    let parsed = match ext.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => Amount::parse(s),
        Some(Value::Number(n)) => Amount::from_json_number(n.as_f64().unwrap_or(f64::NAN)),
        Some(other) => return Err(format!("extendedProperties.{field} is {}, not an amount", kind(other))),
    };
    parsed.map(Some).map_err(|err| format!("extendedProperties.{field}: {err}"))
}

/// A number Advisor sent as text (its extended properties are strings).
pub(super) fn advisor_number(ext: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    let value = match ext.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(other) => return Err(format!("extendedProperties.{field} is {}, not a number", kind(other))),
    };
    finite(value, &format!("extendedProperties.{field}")).map(Some)
}

/// Maps Advisor cost recommendations that describe a commitment purchase.
///
/// Kept, conservatively: category Cost; `extendedProperties.term` of P1Y or
/// P3Y among the configured terms; a reservation (`reservedResourceType`, or
/// `vmSize` for the virtual-machine kind) or a savings plan (SKU
/// `Compute_Savings_Plan`); a savings figure, `annualSavingsAmount` (÷ 12)
/// or else `savingsAmount` (monthly: in captured answers it is the annual
/// amount ÷ 12, and established tools read it as monthly), in
/// `savingsCurrency` (else the billing currency). Skipped: everything else
/// (right-sizing, shutdown, …), and reservations of the four resource types
/// the reservation services collect, which Advisor copies from the same
/// engine (its single-subscription, three-year figures). Advisor gives the
/// savings only: on-demand and recurring cost and the percentage are 0
/// (unknown). `platform` names the reserved product, `region` is empty for
/// savings plans.
pub(super) fn map_advisor(
    items: &[Value],
    terms: &[i32],
    account: &Account,
    billing_currency: Currency,
) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |err: String| format!("recommendation {i}: {err}");
        let props =
            item.get("properties").and_then(Value::as_object).ok_or_else(|| at("properties is missing".into()))?;
        if text(props, "category").is_some_and(|c| !c.eq_ignore_ascii_case("Cost")) {
            continue;
        }
        let Some(ext) = props.get("extendedProperties").and_then(Value::as_object) else { continue };
        let Some(term) = text(ext, "term").and_then(term_months).filter(|t| terms.contains(t)) else { continue };
        let sku = text(ext, "sku").or_else(|| text(ext, "vmSize")).or_else(|| text(ext, "displaySKU"));
        let reserved = text(ext, "reservedResourceType").or_else(|| text(ext, "vmSize").map(|_| "VirtualMachines"));
        let squash = |s: &str| s.to_ascii_lowercase().replace(['_', ' ', '-'], "");
        let savings_plan = sku.into_iter().chain(reserved).any(|s| squash(s).contains("savingsplan"));
        if !savings_plan {
            match reserved {
                None => continue,
                Some(r)
                    if SERVICES.iter().filter_map(|s| reserved_resource_type(s)).any(|t| t.eq_ignore_ascii_case(r)) =>
                {
                    continue;
                }
                Some(_) => {}
            }
        }
        let savings = match advisor_amount(ext, "annualSavingsAmount").map_err(at)? {
            Some(annual) => annual.mul_div(1, 12).ok_or_else(|| at("annualSavingsAmount is out of range".into()))?,
            None => match advisor_amount(ext, "savingsAmount").map_err(at)? {
                Some(monthly) => monthly,
                None => continue,
            },
        };
        let currency = match text(ext, "savingsCurrency") {
            Some(code) => {
                Currency::parse(code).map_err(|err| at(format!("extendedProperties.savingsCurrency: {err}")))?
            }
            None => billing_currency,
        };
        let count = ["targetResourceCount", "qty", "displayQty"]
            .iter()
            .find_map(|f| advisor_number(ext, f).ok().flatten())
            .unwrap_or(0.0);
        let region = text(ext, "region").or_else(|| text(ext, "location")).unwrap_or("").to_ascii_lowercase();
        let (commitment_type, platform) = if savings_plan {
            (CommitmentType::SavingsPlan, String::new())
        } else {
            (CommitmentType::ReservedInstance, reserved.unwrap_or("").to_string())
        };
        let resource_type = sku.or(reserved).unwrap_or("Compute_Savings_Plan").to_string();
        out.push(Recommendation {
            provider: Provider::Azure,
            account_id: account.external_id.clone(),
            account_name: account.display_name.clone(),
            service: ADVISOR.to_string(),
            region,
            resource_type,
            platform,
            commitment_type,
            term_months: term,
            payment_option: PaymentOption::Monthly,
            currency,
            recommended_count: count,
            upfront_cost: Amount::ZERO,
            recurring_monthly_cost: Amount::ZERO,
            on_demand_monthly_cost: Amount::ZERO,
            estimated_monthly_savings: savings,
            savings_percentage: 0.0,
            break_even_months: 0.0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::CommitmentType;
    use cudly_core::money::Currency;
    use serde_json::{Value, json};

    use super::super::tests::{account, amount};
    use super::map_advisor;

    fn advisor(ext: Value) -> Value {
        json!({
            "id": "/subscriptions/c6aa8a01-a744-44a7-a4f1-caad17512f27/providers/Microsoft.Advisor/recommendations/r",
            "name": "r",
            "type": "Microsoft.Advisor/recommendations",
            "properties": {
                "category": "Cost",
                "impact": "High",
                "impactedField": "Microsoft.Subscriptions/subscriptions",
                "impactedValue": "c6aa8a01-a744-44a7-a4f1-caad17512f27",
                "lastUpdated": "2024-05-01T00:00:00Z",
                "shortDescription": {"problem": "Buy reserved capacity", "solution": "Buy reserved capacity"},
                "extendedProperties": ext
            }
        })
    }

    #[test]
    fn advisor_keeps_only_the_purchases_the_reservation_services_do_not_collect() {
        let items = vec![
            // Kept: App Service reserved capacity, annual savings.
            advisor(json!({
                "reservedResourceType": "AppService", "sku": "P1v3", "displaySKU": "Premium v3 P1v3",
                "region": "westeurope", "qty": "4", "term": "P3Y", "lookbackPeriod": "30",
                "annualSavingsAmount": "1200", "savingsCurrency": "USD", "scope": "Single"
            })),
            // Skipped: a VM reservation, which virtual_machines collects.
            advisor(json!({
                "vmSize": "Standard_D2s_v3", "location": "eastus", "targetResourceCount": "3", "term": "P3Y",
                "annualSavingsAmount": "2400", "savingsCurrency": "USD"
            })),
            // Skipped: right-sizing is not a purchase.
            advisor(json!({"currentSku": "Standard_D8s_v3", "targetSku": "Standard_D4s_v3", "savingsAmount": "90"})),
            // Kept: a savings plan, monthly savings.
            advisor(json!({
                "sku": "Compute_Savings_Plan", "term": "P1Y", "savingsAmount": "50.5", "savingsCurrency": "USD"
            })),
            // Skipped: a term not configured.
            advisor(json!({"reservedResourceType": "MySQL", "term": "P5Y", "annualSavingsAmount": "100"})),
            // Skipped: not a cost recommendation.
            json!({"properties": {"category": "Security", "extendedProperties": {"term": "P1Y"}}}),
        ];
        let recs = map_advisor(&items, &[12, 36], &account(), Currency::USD).unwrap();
        assert_eq!(recs.len(), 2, "{recs:#?}");
        let app = &recs[0];
        assert_eq!((app.service.as_str(), app.commitment_type), ("advisor", CommitmentType::ReservedInstance));
        assert_eq!(
            (app.resource_type.as_str(), app.platform.as_str(), app.region.as_str()),
            ("P1v3", "AppService", "westeurope")
        );
        assert_eq!((app.term_months, app.recommended_count, app.estimated_monthly_savings), (36, 4.0, amount("100")));
        let plan = &recs[1];
        assert_eq!(
            (plan.commitment_type, plan.term_months, plan.estimated_monthly_savings),
            (CommitmentType::SavingsPlan, 12, amount("50.5"))
        );
        assert!(recs.iter().all(|r| r.currency == Currency::USD));
        let euros = advisor(json!({
            "reservedResourceType": "AppService", "term": "P1Y", "annualSavingsAmount": "12.34",
            "savingsCurrency": "EUR"
        }));
        let recs = map_advisor(&[euros], &[12], &account(), Currency::USD).unwrap();
        assert_eq!((recs[0].currency.as_str(), recs[0].estimated_monthly_savings), ("EUR", amount("1.028333333")));
        let unnamed = advisor(json!({"reservedResourceType": "AppService", "term": "P1Y", "savingsAmount": "9"}));
        let recs = map_advisor(&[unnamed], &[12], &account(), Currency::parse("GBP").unwrap()).unwrap();
        assert_eq!(recs[0].currency.as_str(), "GBP", "no savingsCurrency: the billing currency");
        let garbled =
            advisor(json!({"reservedResourceType": "AppService", "term": "P1Y", "annualSavingsAmount": "lots"}));
        let err = map_advisor(&[garbled], &[12], &account(), Currency::USD).unwrap_err();
        assert!(
            err.contains("extendedProperties.annualSavingsAmount") && err.contains("not a decimal number"),
            "{err}"
        );
    }
}
