//! From the Consumption and Advisor answers to this table's terms.

use super::*;

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `P1Y` → 12, `P3Y` → 36; other terms are not swept.
pub(super) fn term_months(term: &str) -> Option<i32> {
    match term.trim().to_ascii_uppercase().as_str() {
        "P1Y" => Some(12),
        "P3Y" => Some(36),
        _ => None,
    }
}

pub(super) fn text<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

pub(super) fn finite(value: Option<f64>, field: &str) -> Result<f64, String> {
    value.filter(|v| v.is_finite()).ok_or_else(|| format!("{field} is not a finite number"))
}

pub(super) fn number(object: &Map<String, Value>, field: &str) -> Result<f64, String> {
    match object.get(field) {
        Some(Value::Number(n)) => finite(n.as_f64(), field),
        None | Some(Value::Null) => Err(format!("{field} is missing")),
        Some(other) => Err(format!("{field} is {}, not a number", kind(other))),
    }
}

pub(super) fn ensure_usd(currency: &str, field: &str) -> Result<(), String> {
    if currency.trim().eq_ignore_ascii_case("USD") {
        Ok(())
    } else {
        Err(format!("{field} is in {currency}, and cudly stores USD amounts without converting currencies"))
    }
}

/// An amount: a plain number (`legacy` kind, billing currency assumed USD)
/// or `{currency, value}` (`modern` kind).
pub(super) fn amount(object: &Map<String, Value>, field: &str) -> Result<f64, String> {
    match object.get(field) {
        Some(Value::Object(money)) => {
            if let Some(currency) = money.get("currency").and_then(Value::as_str) {
                ensure_usd(currency, field)?;
            }
            number(money, "value").map_err(|err| format!("{field}.{err}"))
        }
        _ => number(object, field),
    }
}

/// Monthly figures of one reservation recommendation.
#[derive(Debug, PartialEq)]
pub(super) struct Monthly {
    pub(super) on_demand: f64,
    pub(super) with_reservation: f64,
    pub(super) savings: f64,
    pub(super) savings_percentage: f64,
}

/// ASSUMPTION (cost period): `costWithNoReservedInstances`,
/// `totalCostWithReservedInstances` and `netSavings` are totals over the
/// reservation TERM, not over the look-back period and not per month. The
/// documented `modern` example (2023-05-01, billing profile, look-back 60
/// days) lists the same SKU, quantity (35) and region for both terms: the
/// pay-as-you-go cost is 93,208.86 for P1Y and 279,881.95 for P3Y (3.00×),
/// and the reserved cost for P1Y is 60,655.00 = 35 × 1,733.00, a whole unit
/// price. The same usage's on-demand cost would not depend on the term if it
/// covered the look-back period; per vCore-hour it is $0.30 over a term and
/// would be $1.85 over 60 days. (The `legacy` examples have zero costs with
/// positive savings and cannot tell.) So each figure is divided by the
/// term's months.
pub(super) fn monthly(term_months: i32, cost_without: f64, cost_with: f64, net_savings: f64) -> Monthly {
    let months = f64::from(term_months.max(1));
    let on_demand = cost_without / months;
    let savings = net_savings / months;
    let savings_percentage = if on_demand > 0.0 { savings / on_demand * 100.0 } else { 0.0 };
    Monthly { on_demand, with_reservation: cost_with / months, savings, savings_percentage }
}

/// Maps the documented `value[]` of reservation recommendations (both kinds)
/// to recommendations of one term; other terms are skipped.
pub(super) fn map_reservations(
    items: &[Value],
    term: i32,
    service: &str,
    account: &Account,
) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |err: String| format!("recommendation {i}: {err}");
        let item = item.as_object().ok_or_else(|| at(format!("is {}, not an object", kind(item))))?;
        let props =
            item.get("properties").and_then(Value::as_object).ok_or_else(|| at("properties is missing".into()))?;
        let item_term = text(props, "term").ok_or_else(|| at("term is missing".into()))?;
        if term_months(item_term) != Some(term) {
            continue;
        }
        // `modern` puts location and SKU under properties, `legacy` on the item.
        let region = text(props, "location").or_else(|| text(item, "location"));
        let region = region.ok_or_else(|| at("location is missing".into()))?.to_ascii_lowercase();
        let sku = text(props, "skuName").or_else(|| text(item, "sku")).or_else(|| text(props, "normalizedSize"));
        let sku = sku.ok_or_else(|| at("skuName (or sku) is missing".into()))?;
        let quantity = number(props, "recommendedQuantity").map_err(at)?;
        let cost_without = amount(props, "costWithNoReservedInstances").map_err(at)?;
        let cost_with = amount(props, "totalCostWithReservedInstances").map_err(at)?;
        let net_savings = amount(props, "netSavings").map_err(at)?;
        let m = monthly(term, cost_without, cost_with, net_savings);
        out.push(Recommendation {
            provider: Provider::Azure,
            account_id: account.external_id.clone(),
            account_name: account.display_name.clone(),
            service: service.to_string(),
            region,
            resource_type: sku.to_string(),
            // Azure reservations cover compute only, whatever the OS.
            platform: String::new(),
            commitment_type: CommitmentType::ReservedInstance,
            term_months: term,
            payment_option: PaymentOption::Monthly,
            recommended_count: quantity,
            upfront_cost: 0.0,
            // What the usage costs per month with the reservation bought
            // (its price plus any usage it leaves uncovered).
            recurring_monthly_cost: m.with_reservation,
            on_demand_monthly_cost: m.on_demand,
            estimated_monthly_savings: m.savings,
            savings_percentage: m.savings_percentage,
            break_even_months: 0.0,
        });
    }
    Ok(out)
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
/// or else `savingsAmount` (taken as monthly); USD. Skipped: everything else
/// (right-sizing, shutdown, …), and reservations of the four resource types
/// the reservation services collect, which Advisor copies from the same
/// engine (its single-subscription, three-year figures). Advisor gives the
/// savings only: on-demand and recurring cost and the percentage are 0
/// (unknown). `platform` names the reserved product, `region` is empty for
/// savings plans.
pub(super) fn map_advisor(items: &[Value], terms: &[i32], account: &Account) -> Result<Vec<Recommendation>, String> {
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
        let savings = match advisor_number(ext, "annualSavingsAmount").map_err(at)? {
            Some(annual) => annual / 12.0,
            None => match advisor_number(ext, "savingsAmount").map_err(at)? {
                Some(monthly) => monthly,
                None => continue,
            },
        };
        if let Some(currency) = text(ext, "savingsCurrency") {
            ensure_usd(currency, "extendedProperties.savingsCurrency").map_err(at)?;
        }
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
            recommended_count: count,
            upfront_cost: 0.0,
            recurring_monthly_cost: 0.0,
            on_demand_monthly_cost: 0.0,
            estimated_monthly_savings: savings,
            savings_percentage: 0.0,
            break_even_months: 0.0,
        });
    }
    Ok(out)
}
