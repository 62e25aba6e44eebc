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

/// How the amounts of a listing are read: the look-back asked for (when an
/// item does not say) and the currency of amounts sent without one.
pub(super) struct Reading {
    pub(super) lookback_days: u32,
    pub(super) billing_currency: Currency,
}

/// An amount and its currency: `{currency, value}` (`modern` kind) or a
/// plain number (`legacy` kind, which carries no currency anywhere: the
/// billing currency is assumed).
pub(super) fn amount(
    object: &Map<String, Value>,
    field: &str,
    reading: &Reading,
) -> Result<(Amount, Currency), String> {
    let (value, currency) = match object.get(field) {
        Some(Value::Object(money)) => {
            let currency = match money.get("currency") {
                Some(Value::String(code)) => Currency::parse(code).map_err(|err| format!("{field}.currency: {err}"))?,
                None | Some(Value::Null) => reading.billing_currency,
                Some(other) => return Err(format!("{field}.currency is {}, not a currency code", kind(other))),
            };
            (number(money, "value").map_err(|err| format!("{field}.{err}"))?, currency)
        }
        _ => (number(object, field)?, reading.billing_currency),
    };
    let amount = Amount::from_json_number(value).map_err(|err| format!("{field}: {err}"))?;
    Ok((amount, currency))
}

/// Hours a month has, as every cloud's monthly figures count it (8760 / 12).
pub(super) const HOURS_PER_MONTH: i128 = 730;

/// The hours a recommendation's costs cover: `totalHours` ("The total hours
/// for which the cost is covered", api-version 2024-08-01) when the item
/// carries it, else its look-back period's days × 24 (`"Last30Days"` in the
/// `legacy` kind, `30` in the `modern` kind), else the look-back asked for.
pub(super) fn lookback_hours(props: &Map<String, Value>, reading: &Reading) -> Result<i64, String> {
    match props.get("totalHours") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            return n
                .as_i64()
                .filter(|h| *h > 0)
                .ok_or_else(|| format!("totalHours {n} is not a positive number of hours"));
        }
        Some(other) => return Err(format!("totalHours is {}, not a number", kind(other))),
    }
    let days = match props.get("lookBackPeriod") {
        None | Some(Value::Null) => i64::from(reading.lookback_days),
        Some(Value::Number(n)) => {
            n.as_i64().filter(|d| *d > 0).ok_or_else(|| format!("lookBackPeriod {n} is not a number of days"))?
        }
        Some(Value::String(text)) => {
            let digits = text.trim().strip_prefix("Last").and_then(|t| t.strip_suffix("Days"));
            digits.and_then(|d| d.parse::<i64>().ok()).filter(|d| *d > 0).ok_or_else(|| {
                format!("lookBackPeriod {:?} is not Last<N>Days", text.chars().take(40).collect::<String>())
            })?
        }
        Some(other) => return Err(format!("lookBackPeriod is {}, not a period", kind(other))),
    };
    Ok(days * 24)
}

/// Monthly figures of one reservation recommendation.
#[derive(Debug, PartialEq)]
pub(super) struct Monthly {
    pub(super) on_demand: Amount,
    pub(super) with_reservation: Amount,
    pub(super) savings: Amount,
    pub(super) savings_percentage: f64,
}

/// Each amount from the look-back's total to an average month of 730 hours:
/// `amount × 730 / hours`, exact and rounded once.
///
/// `costWithNoReservedInstances`, `totalCostWithReservedInstances` and
/// `netSavings` are totals over the LOOK-BACK PERIOD, not over the term and
/// not per month. The reference does not state the period; the evidence
/// (README, "Azure"): the Consumption API reference's legacy example
/// (`Standard_DS1_v2`, P1Y, `Last7Days`, one instance) costs 12.08 without a
/// reservation, one DS1_v2's pay-as-you-go price for 168 hours (about
/// $0.072/h), where a year would be about $630; 2024-08-01 added
/// `totalHours`, "the total hours for which the cost is covered"; the
/// Enterprise Reporting API this one replaced said "Net Savings within 7, 30
/// or 60 days"; and CUDly reads the same API as look-back-period savings.
/// The modern example, whose P3Y cost is three times its P1Y cost, cannot
/// be a look-back figure (both terms are computed over the same look-back)
/// and is taken as illustrative.
pub(super) fn monthly(
    hours: i64,
    cost_without: Amount,
    cost_with: Amount,
    net_savings: Amount,
) -> Result<Monthly, String> {
    let per_month = |amount: Amount, field: &str| {
        amount.mul_div(HOURS_PER_MONTH, i128::from(hours)).ok_or_else(|| format!("{field} is out of range"))
    };
    let on_demand = per_month(cost_without, "costWithNoReservedInstances")?;
    let savings = per_month(net_savings, "netSavings")?;
    Ok(Monthly {
        on_demand,
        with_reservation: per_month(cost_with, "totalCostWithReservedInstances")?,
        savings,
        savings_percentage: savings.percent_of(on_demand),
    })
}

/// Maps the documented `value[]` of reservation recommendations (both kinds)
/// to recommendations of one term; other terms are skipped.
pub(super) fn map_reservations(
    items: &[Value],
    term: i32,
    service: &str,
    account: &Account,
    reading: &Reading,
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
        let (cost_without, currency) = amount(props, "costWithNoReservedInstances", reading).map_err(at)?;
        let (cost_with, with_currency) = amount(props, "totalCostWithReservedInstances", reading).map_err(at)?;
        let (net_savings, savings_currency) = amount(props, "netSavings", reading).map_err(at)?;
        if with_currency != currency || savings_currency != currency {
            return Err(at(format!(
                "its amounts are in different currencies ({currency}, {with_currency}, {savings_currency})"
            )));
        }
        let hours = lookback_hours(props, reading).map_err(at)?;
        let m = monthly(hours, cost_without, cost_with, net_savings).map_err(at)?;
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
            currency,
            recommended_count: quantity,
            upfront_cost: Amount::ZERO,
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
