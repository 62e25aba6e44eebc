//! From the Consumption API's reservation recommendations (the `legacy` and
//! `modern` kinds of `ReservationRecommendations_List`, api-version
//! 2024-08-01) to our recommendations, and the JSON readers Advisor's
//! mapping shares.

use cudly_core::domain::{Account, CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use serde_json::{Map, Value};

/// What a JSON value is, for messages.
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

/// A field's text, trimmed; `None` when absent or empty.
pub(super) fn text<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// A finite number, else an error naming `field`.
pub(super) fn finite(value: Option<f64>, field: &str) -> Result<f64, String> {
    value.filter(|v| v.is_finite()).ok_or_else(|| format!("{field} is not a finite number"))
}

/// A field that must be a JSON number.
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

#[cfg(test)]
mod tests {
    use cudly_core::domain::{PaymentOption, Recommendation};
    use cudly_core::money::{Amount, Currency};
    use serde_json::{Value, json};

    use super::super::tests::{account, amount};
    use super::{Reading, lookback_hours, map_reservations, monthly};

    fn reading() -> Reading {
        Reading { lookback_days: 30, billing_currency: Currency::USD }
    }

    /// The `legacy` item of the Consumption API reference's example
    /// (ReservationRecommendationsByBillingAccount, 2023-05-01): one
    /// Standard_DS1_v2 over a 7-day look-back.
    fn documented_legacy() -> Value {
        json!({
            "id": "billingAccount/123456/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "location": "westus",
            "sku": "Standard_DS1_v2",
            "kind": "legacy",
            "properties": {
                "meterId": "00000000-0000-0000-0000-000000000000",
                "term": "P1Y",
                "costWithNoReservedInstances": 12.0785105,
                "recommendedQuantity": 1,
                "totalCostWithReservedInstances": 11.4899644807748,
                "netSavings": 0.588546019225182,
                "firstUsageDate": "2019-07-07T00:00:00-07:00",
                "scope": "Shared",
                "lookBackPeriod": "Last7Days",
                "instanceFlexibilityRatio": 1,
                "instanceFlexibilityGroup": "DSv2 Series",
                "normalizedSize": "Standard_DS1_v2",
                "recommendedQuantityNormalized": 1,
                "skuProperties": [{"name": "Cores", "value": "1"}, {"name": "Ram", "value": "1"}]
            }
        })
    }

    /// An item of the documented `modern` example (billing profile): the same
    /// SKU, quantity and region for both terms, look-back 60 days.
    fn modern(term: &str, without: f64, with: f64, savings: f64) -> Value {
        json!({
            "id": "/providers/Microsoft.Billing/billingAccounts/123456/billingProfiles/6420/providers/\
                   Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "kind": "modern",
            "properties": {
                "costWithNoReservedInstances": {"currency": "USD", "value": without},
                "firstUsageDate": "2022-08-22T00:00:00Z",
                "instanceFlexibilityGroup": "NA",
                "instanceFlexibilityRatio": 1,
                "location": "westus2",
                "lookBackPeriod": 60,
                "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
                "netSavings": {"currency": "USD", "value": savings},
                "normalizedSize": "SQLDB_BC_Compute_Gen5",
                "recommendedQuantity": 35,
                "recommendedQuantityNormalized": 35,
                "resourceType": "sqldatabases",
                "scope": "Single",
                "skuName": "SQLDB_BC_Compute_Gen5",
                "skuProperties": null,
                "subscriptionId": "c6aa8a01-a744-44a7-a4f1-caad17512f27",
                "term": term,
                "totalCostWithReservedInstances": {"currency": "USD", "value": with}
            }
        })
    }

    #[test]
    fn look_back_totals_become_amounts_per_month_of_730_hours() {
        // 12.0785105 over 168 hours (Last7Days) is 52.484003958 a month:
        // one DS1_v2's pay-as-you-go price, about $0.072 an hour.
        let recs = map_reservations(&[documented_legacy()], 12, "virtual_machines", &account(), &reading()).unwrap();
        let ds1 = &recs[0];
        assert_eq!(ds1.on_demand_monthly_cost, amount("52.484003958"));
        assert_eq!(ds1.recurring_monthly_cost, amount("49.926631376"));
        assert_eq!(ds1.estimated_monthly_savings, amount("2.557372583"));
        assert_eq!((ds1.region.as_str(), ds1.resource_type.as_str()), ("westus", "Standard_DS1_v2"));
        assert_eq!((ds1.recommended_count, ds1.term_months, ds1.currency), (1.0, 12, Currency::USD));
        assert!((ds1.savings_percentage - 4.8726).abs() < 1e-3, "{}", ds1.savings_percentage);
        assert_eq!((ds1.upfront_cost, ds1.break_even_months), (Amount::ZERO, 0.0), "paid monthly");
        assert_eq!(ds1.payment_option, PaymentOption::Monthly);

        // 2024-08-01 says how many hours the costs cover: 701 here.
        let mut with_hours = documented_legacy();
        with_hours["properties"]["totalHours"] = json!(701);
        with_hours["properties"]["lastUsageDate"] = json!("2019-08-07T00:00:00-07:00");
        let recs = map_reservations(&[with_hours], 12, "virtual_machines", &account(), &reading()).unwrap();
        assert_eq!(recs[0].on_demand_monthly_cost, amount("12.578192104"), "12.0785105 × 730 / 701");

        // The modern kind: a look-back of 60 days is 1,440 hours.
        let items = [
            modern("P3Y", 279881.9457795231, 126115.06849314792, 153766.87728637524),
            modern("P1Y", 93208.8596802244, 60654.99999999984, 32553.85968022456),
        ];
        let one = map_reservations(&items, 12, "sql_database", &account(), &reading()).unwrap();
        let three = map_reservations(&items, 36, "sql_database", &account(), &reading()).unwrap();
        assert_eq!((one.len(), three.len()), (1, 1), "each sweep keeps its own term");
        assert_eq!(one[0].on_demand_monthly_cost, amount("47251.713587891"));
        assert_eq!(one[0].recurring_monthly_cost, amount("30748.715277778"));
        assert_eq!(one[0].estimated_monthly_savings, amount("16502.998310114"));
        assert_eq!(three[0].estimated_monthly_savings, amount("77951.264179898"));
        assert_eq!((one[0].recommended_count, one[0].region.as_str()), (35.0, "westus2"));
        assert!(one.iter().chain(&three).all(Recommendation::has_finite_figures));
    }

    #[test]
    fn the_look_back_comes_from_the_item_before_the_request() {
        let props = |v: Value| v.as_object().unwrap().clone();
        let r = reading();
        assert_eq!(lookback_hours(&props(json!({"totalHours": 701, "lookBackPeriod": "Last7Days"})), &r), Ok(701));
        assert_eq!(lookback_hours(&props(json!({"lookBackPeriod": "Last60Days"})), &r), Ok(1440));
        assert_eq!(lookback_hours(&props(json!({"lookBackPeriod": 7})), &r), Ok(168));
        assert_eq!(lookback_hours(&props(json!({})), &r), Ok(720), "the requested 30 days");
        assert!(lookback_hours(&props(json!({"totalHours": 0})), &r).is_err());
        assert!(lookback_hours(&props(json!({"totalHours": "701"})), &r).is_err());
        assert!(lookback_hours(&props(json!({"lookBackPeriod": "LastWeek"})), &r).unwrap_err().contains("LastWeek"));
    }

    #[test]
    fn currencies_are_recorded_as_reported_and_must_agree_within_an_item() {
        let mut euros = modern("P1Y", 1440.0, 720.0, 720.0);
        for field in ["costWithNoReservedInstances", "totalCostWithReservedInstances", "netSavings"] {
            euros["properties"][field]["currency"] = json!("EUR");
        }
        let recs = map_reservations(&[euros.clone()], 12, "sql_database", &account(), &reading()).unwrap();
        assert_eq!((recs[0].currency.as_str(), recs[0].on_demand_monthly_cost), ("EUR", amount("730")));
        euros["properties"]["netSavings"]["currency"] = json!("USD");
        let err = map_reservations(&[euros], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("different currencies (EUR, EUR, USD)"), "{err}");
        // The legacy kind has no currency: the configured billing currency.
        let chf = Reading { lookback_days: 30, billing_currency: Currency::parse("CHF").unwrap() };
        let recs = map_reservations(&[documented_legacy()], 12, "virtual_machines", &account(), &chf).unwrap();
        assert_eq!(recs[0].currency.as_str(), "CHF");
    }

    #[test]
    fn no_on_demand_cost_gives_zero_percent_rather_than_nan() {
        let m = monthly(168, Amount::ZERO, Amount::ZERO, amount("4.634521202630137")).unwrap();
        assert_eq!(m.savings_percentage, 0.0);
        assert_eq!(m.savings, amount("20.138098084"));
    }

    #[test]
    fn malformed_items_are_errors_naming_the_field_never_panics() {
        let mut wrong_currency = modern("P1Y", 10.0, 5.0, 5.0);
        wrong_currency["properties"]["netSavings"]["currency"] = json!("dollars");
        let err = map_reservations(&[wrong_currency], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("netSavings.currency"), "{err}");
        let mut object_amount = modern("P1Y", 10.0, 5.0, 5.0);
        object_amount["properties"]["costWithNoReservedInstances"] = json!({"amount": 3});
        let err = map_reservations(&[object_amount], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("recommendation 0: costWithNoReservedInstances.value is missing"), "{err}");
        let mut no_term = modern("P1Y", 10.0, 5.0, 5.0);
        no_term["properties"].as_object_mut().unwrap().remove("term");
        let err = map_reservations(&[no_term], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("term is missing"));
        let err = map_reservations(&[json!("oops")], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("is a string, not an object"), "{err}");
        let mut text_quantity = modern("P1Y", 10.0, 5.0, 5.0);
        text_quantity["properties"]["recommendedQuantity"] = json!("lots");
        let err = map_reservations(&[text_quantity], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("recommendedQuantity is a string"), "{err}");
        let mut huge = modern("P1Y", 10.0, 5.0, 5.0);
        huge["properties"]["netSavings"]["value"] = json!(1e300);
        let err = map_reservations(&[huge], 12, "sql_database", &account(), &reading()).unwrap_err();
        assert!(err.contains("netSavings") && err.len() < 200, "{err}");
    }
}
