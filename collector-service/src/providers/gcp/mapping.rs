//! From a Recommender recommendation to our recommendation. The fields
//! read, as the Recommender's reference defines them: `stateInfo.state`,
//! `primaryImpact.costProjection` (`cost`, a `google.type.Money`, over
//! `duration`, a `google.protobuf.Duration`) and the content's commitment
//! (see [`super::content`]); the README's GCP table lists them.

use cudly_core::domain::{CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};
use cudly_core::quote::quoted_at_most;
use serde_json::Value;

use super::content::{commitment_shape, compute_resources, last_segment, overview_text, spend_service, term_of};
use super::regions::Scope;
use super::wire::{ApiRecommendation, Money};
use crate::providers::{BackendError, Query};

/// An average month in nanoseconds: 8760 hours a year / 12.
const NANOS_PER_MONTH: i128 = 730 * 3600 * 1_000_000_000;

/// Who a mapped recommendation belongs to.
pub(super) struct Owner {
    /// The project, or the billing account of spend-based ones.
    pub(super) id: String,
    /// Its name.
    pub(super) name: String,
}

/// Maps the list's recommendations of `query.service` and its term.
pub(super) fn priced(
    query: &Query<'_>,
    scope: &Scope<'_>,
    list: &[ApiRecommendation],
    default_region: &str,
    owner: &Owner,
) -> Result<Vec<Recommendation>, BackendError> {
    let mut out: Vec<Recommendation> = Vec::new();
    for rec in list {
        let malformed = |problem: String| {
            let name = cudly_core::quote::at_most(&rec.name, 200);
            BackendError::failed(format!("{}: recommendation {name}: {problem}", scope.what()))
        };
        let mapped = map_recommendation(rec, query.service, default_region).map_err(malformed)?;
        let Some(m) = mapped.filter(|m| m.term_months == query.sweep.term_months) else { continue };
        let rec = m.into_recommendation(query, owner).map_err(malformed)?;
        // Alternatives (stable-usage and optimal, one xorGroup) share a
        // natural key: keep the larger saving.
        match out.iter_mut().find(|r| r.region == rec.region && r.resource_type == rec.resource_type) {
            Some(kept) if kept.estimated_monthly_savings >= rec.estimated_monthly_savings => {}
            Some(kept) => *kept = rec,
            None => out.push(rec),
        }
    }
    Ok(out)
}

/// What a recommendation says, reduced to this table's terms.
#[derive(Debug, PartialEq)]
pub(super) struct Mapped {
    pub(super) service: &'static str,
    pub(super) term_months: i32,
    pub(super) region: String,
    pub(super) resource_type: String,
    pub(super) count: f64,
    pub(super) monthly_savings: Amount,
    pub(super) currency: Currency,
}

impl Mapped {
    /// The recommendation, with the on-demand and commitment costs split
    /// from the saving at the nominal discount (exact, rounded once).
    pub(super) fn into_recommendation(self, query: &Query<'_>, owner: &Owner) -> Result<Recommendation, String> {
        let percent = nominal_discount(self.service, self.term_months);
        let on_demand = match percent {
            0 => Amount::ZERO,
            p => self.monthly_savings.mul_div(100, i128::from(p)).ok_or("the saving is out of range")?,
        };
        let recurring = if on_demand.is_positive() {
            on_demand.checked_sub(self.monthly_savings).ok_or("the saving is out of range")?
        } else {
            Amount::ZERO
        };
        Ok(Recommendation {
            provider: Provider::Gcp,
            account_id: owner.id.clone(),
            account_name: owner.name.clone(),
            service: query.service.to_string(),
            region: self.region,
            resource_type: self.resource_type,
            platform: String::new(),
            commitment_type: CommitmentType::CommittedUseDiscount,
            term_months: self.term_months,
            payment_option: PaymentOption::Monthly,
            currency: self.currency,
            recommended_count: self.count,
            upfront_cost: Amount::ZERO,
            recurring_monthly_cost: recurring,
            on_demand_monthly_cost: on_demand,
            estimated_monthly_savings: self.monthly_savings,
            savings_percentage: f64::from(percent),
            break_even_months: 0.0,
        })
    }
}

/// The published nominal CUD discount of a service and term: the
/// Recommender reports the net saving only, and this splits it into the
/// on-demand and the commitment cost (Compute Engine resource-based: 37 %
/// and 55 % for most machine series; Cloud SQL: 25 % and 52 %;
/// Memorystore: 20 % and 40 %), in percent; 0 when unknown.
pub(super) fn nominal_discount(service: &str, term_months: i32) -> u8 {
    match (service, term_months >= 36) {
        ("compute", false) => 37,
        ("compute", true) => 55,
        ("cloud_sql", false) => 25,
        ("cloud_sql", true) => 52,
        ("memorystore", false) => 20,
        ("memorystore", true) => 40,
        _ => 0,
    }
}

/// Maps one recommendation for `service`: `None` when it is not for that
/// service, not ACTIVE or saves nothing; an error when it is malformed.
pub(super) fn map_recommendation(
    rec: &ApiRecommendation,
    service: &str,
    default_region: &str,
) -> Result<Option<Mapped>, String> {
    if rec.state_info.as_ref().is_none_or(|s| s.state != "ACTIVE") {
        return Ok(None);
    }
    let service: &'static str = match service {
        "compute" => "compute",
        "cloud_sql" | "memorystore" => match spend_service(rec) {
            Some(s) if s == service => s,
            _ => return Ok(None),
        },
        other => return Err(format!("unknown service {other:?}")),
    };
    let term_months = term_of(rec)?;
    let Some((monthly_savings, currency)) = monthly_savings(rec)? else { return Ok(None) };
    let shape = commitment_shape(&rec.content);
    let (region, resource_type, count) = if service == "compute" {
        let (resource_type, count) = compute_resources(&shape)?;
        (default_region.to_string(), resource_type, count)
    } else {
        // A spend-based commitment is an amount of money: one commitment,
        // sized by its cost.
        let region =
            overview_text(rec, &["region", "location"]).or(shape.region).unwrap_or_else(|| default_region.to_string());
        (last_segment(&region).to_string(), format!("{service}_spend_commitment"), 1.0)
    };
    Ok(Some(Mapped { service, term_months, region, resource_type, count, monthly_savings, currency }))
}

/// The saving per average month and its currency: the cost projection's
/// negated `cost`, scaled exactly from its `duration` to 730 hours. `None`
/// when the projection saves nothing.
pub(super) fn monthly_savings(rec: &ApiRecommendation) -> Result<Option<(Amount, Currency)>, String> {
    let projection = rec
        .primary_impact
        .as_ref()
        .and_then(|i| i.cost_projection.as_ref())
        .ok_or("no primaryImpact.costProjection")?;
    let Some(cost) = &projection.cost else { return Ok(None) };
    let Some((amount, currency)) = money(cost)? else { return Ok(None) };
    let nanos = duration_nanos(projection.duration.as_deref().ok_or("the cost projection has no duration")?)?;
    let saving = amount
        .checked_neg()
        .and_then(|saving| saving.mul_div(NANOS_PER_MONTH, nanos))
        .ok_or("the cost projection is out of range")?;
    Ok(saving.is_positive().then_some((saving, currency)))
}

/// A `google.type.Money`: its amount and currency, `None` for zero (which
/// may come without a currency).
pub(super) fn money(money: &Money) -> Result<Option<(Amount, Currency)>, String> {
    let units = int_field(money.units.as_ref(), "units")?;
    let nanos = int_field(money.nanos.as_ref(), "nanos")?;
    let amount = Amount::from_units_and_nanos(units, nanos)
        .ok_or_else(|| format!("malformed money: units {units}, nanos {nanos}"))?;
    if amount == Amount::ZERO {
        return Ok(None);
    }
    let currency = match money.currency_code.trim() {
        "" => return Err("an amount without a currency code".into()),
        code => Currency::parse(code).map_err(|err| format!("currencyCode: {err}"))?,
    };
    Ok(Some((amount, currency)))
}

/// An int64 field: a JSON string (proto3 JSON) or number; absent is 0.
pub(super) fn int_field(value: Option<&Value>, name: &str) -> Result<i64, String> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => {
            s.trim().parse().map_err(|_| format!("money {name} {} is not an integer", quoted_at_most(s, 40)))
        }
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("money {name} {n} is not an integer")),
        Some(other) => Err(format!("money {name} is {other}, not an integer")),
    }
}

/// A `google.protobuf.Duration` in JSON (`"2592000s"`, `"1.5s"`), in
/// nanoseconds; it must be positive. (Its seconds are a decimal with up to
/// nine fraction digits, read exactly as an amount's units are.)
pub(super) fn duration_nanos(text: &str) -> Result<i128, String> {
    let bad = || format!("duration {} is not a positive number of seconds", quoted_at_most(text, 40));
    let seconds = text.strip_suffix('s').ok_or_else(bad)?;
    let nanos = Amount::parse(seconds).map_err(|_| bad())?.nanos();
    if nanos > 0 { Ok(i128::from(nanos)) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use cudly_core::domain::{Account, PaymentOption, Provider};
    use cudly_core::money::{Amount, Currency};
    use serde_json::{Value, json};

    use super::super::tests::{amount, rec};
    use super::{Mapped, Owner, duration_nanos, map_recommendation, money, monthly_savings};
    use crate::providers::gcp::wire::Money;
    use crate::providers::{Query, RequestCount, Sweep};

    #[test]
    fn money_is_units_plus_nanos_in_the_currency_it_names() {
        let of = |c: &str, units: Value, nanos: i64| money(&money_json(c, units, nanos));
        assert_eq!(of("USD", json!("-300"), -500_000_000).unwrap(), Some((amount("-300.5"), Currency::USD)));
        assert_eq!(of("USD", json!(12), 250_000_000).unwrap(), Some((amount("12.25"), Currency::USD)));
        assert_eq!(
            of("EUR", json!("0"), -750_000_000).unwrap(),
            Some((amount("-0.75"), Currency::parse("EUR").unwrap()))
        );
        assert_eq!(money(&Money::default()).unwrap(), None, "an absent amount is zero, in no currency");
        assert!(of("", json!("-10"), 0).unwrap_err().contains("without a currency"));
        assert!(of("USD", json!("ten"), 0).unwrap_err().contains("not an integer"));
        assert!(of("USD", json!("-1"), 5).unwrap_err().contains("malformed money"), "signs must agree");
        assert!(of("USD", json!("1"), 1_000_000_000).is_err());
        let long = "9".repeat(10_000);
        assert!(of("USD", json!(long), 0).unwrap_err().len() < 120, "the message quotes a bounded prefix");
    }

    fn money_json(currency: &str, units: Value, nanos: i64) -> Money {
        Money { currency_code: currency.into(), units: Some(units), nanos: Some(json!(nanos)) }
    }

    #[test]
    fn durations_convert_exactly_to_an_average_month_of_730_hours() {
        assert_eq!(duration_nanos("2592000s").unwrap(), 2_592_000_000_000_000);
        assert_eq!(duration_nanos("1.5s").unwrap(), 1_500_000_000);
        for bad in ["0s", "-5s", "2592000", "s", "NaNs", "infs"] {
            assert!(duration_nanos(bad).is_err(), "{bad}");
        }
        let projection = |units: &str, nanos: i64, duration: &str| {
            rec(json!({"primaryImpact": {"costProjection": {
                "cost": {"currencyCode": "USD", "units": units, "nanos": nanos}, "duration": duration}}}))
        };
        // 30 days of -720 USD is -1 USD an hour: 730 USD an average month.
        assert_eq!(monthly_savings(&projection("-720", 0, "2592000s")).unwrap(), Some((amount("730"), Currency::USD)));
        assert_eq!(
            monthly_savings(&projection("-8760", 0, "31536000s")).unwrap(),
            Some((amount("730"), Currency::USD))
        );
        // -100.10 over 30 days is 101.4902777… a month.
        assert_eq!(
            monthly_savings(&projection("-100", -100_000_000, "2592000s")).unwrap(),
            Some((amount("101.490277778"), Currency::USD))
        );
        assert_eq!(monthly_savings(&projection("100", 0, "2592000s")).unwrap(), None, "a cost is no saving");
        assert!(monthly_savings(&projection("-1", 0, "0s")).is_err(), "no division by a zero duration");
        assert!(monthly_savings(&rec(json!({"primaryImpact": {"category": "COST"}}))).is_err());
    }

    #[test]
    fn the_saving_is_split_by_the_nominal_discount_without_nan() {
        let account = Account {
            provider: Provider::Gcp,
            external_id: "my-project".into(),
            display_name: "My project".into(),
            credentials: None,
        };
        let calls = RequestCount::new();
        let query = Query {
            account: &account,
            service: "compute",
            region: Some("us-central1"),
            sweep: Sweep { term_months: 12, payment: PaymentOption::Monthly },
            calls: &calls,
            run: &crate::providers::RunScope::default(),
        };
        let owner = Owner { id: "my-project".into(), name: "My project".into() };
        let mapped = Mapped {
            service: "compute",
            term_months: 12,
            region: "us-central1".into(),
            resource_type: "general_purpose_n2".into(),
            count: 16.0,
            monthly_savings: amount("370"),
            currency: Currency::USD,
        };
        let r = mapped.into_recommendation(&query, &owner).unwrap();
        assert_eq!(
            (r.on_demand_monthly_cost, r.recurring_monthly_cost, r.savings_percentage),
            (amount("1000"), amount("630"), 37.0)
        );
        assert!(r.has_finite_figures());
        let unknown = Mapped {
            service: "spanner",
            term_months: 12,
            region: String::new(),
            resource_type: String::new(),
            count: 1.0,
            monthly_savings: amount("5"),
            currency: Currency::USD,
        };
        let r = unknown.into_recommendation(&query, &owner).unwrap();
        assert!(r.has_finite_figures() && r.savings_percentage == 0.0, "an unknown discount divides by nothing");
        assert_eq!(r.on_demand_monthly_cost, Amount::ZERO);
    }

    #[test]
    fn only_active_recommendations_that_save_are_mapped() {
        let base = json!({
            "name": "r", "stateInfo": {"state": "ACTIVE"},
            "primaryImpact": {"category": "COST", "costProjection": {
                "cost": {"currencyCode": "USD", "units": "-100"}, "duration": "2592000s"}},
            "content": {"operationGroups": [{"operations": [{"path": "/", "value": {
                "plan": "TWELVE_MONTH", "resources": [{"type": "VCPU", "amount": "4"}]}}]}]}
        });
        let mapped = map_recommendation(&rec(base.clone()), "compute", "europe-west1").unwrap().unwrap();
        assert_eq!((mapped.region.as_str(), mapped.count, mapped.term_months), ("europe-west1", 4.0, 12));
        let mut dismissed = base.clone();
        dismissed["stateInfo"]["state"] = json!("DISMISSED");
        assert_eq!(map_recommendation(&rec(dismissed), "compute", "r").unwrap(), None);
        let mut costly = base.clone();
        costly["primaryImpact"]["costProjection"]["cost"]["units"] = json!("100");
        assert_eq!(map_recommendation(&rec(costly), "compute", "r").unwrap(), None);
        let mut no_state = base;
        no_state.as_object_mut().unwrap().remove("stateInfo");
        assert_eq!(map_recommendation(&rec(no_state), "compute", "r").unwrap(), None);
    }
}
