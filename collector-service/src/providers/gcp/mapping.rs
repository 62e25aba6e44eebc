//! From a Recommender recommendation to this table's terms.

use super::*;

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
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("money {name} {:?} is not an integer", s.chars().take(40).collect::<String>())),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("money {name} {n} is not an integer")),
        Some(other) => Err(format!("money {name} is {other}, not an integer")),
    }
}

/// A `google.protobuf.Duration` in JSON (`"2592000s"`, `"1.5s"`), in
/// nanoseconds; it must be positive. (Its seconds are a decimal with up to
/// nine fraction digits, read exactly as an amount's units are.)
pub(super) fn duration_nanos(text: &str) -> Result<i128, String> {
    let bad =
        || format!("duration {:?} is not a positive number of seconds", text.chars().take(40).collect::<String>());
    let seconds = text.strip_suffix('s').ok_or_else(bad)?;
    let nanos = Amount::parse(seconds).map_err(|_| bad())?.nanos();
    if nanos > 0 { Ok(i128::from(nanos)) } else { Err(bad()) }
}

/// The term: the commitment's `plan` (`TWELVE_MONTH`, `THIRTY_SIX_MONTH`)
/// when an operation carries one, else the term the subtype, the overview
/// or the description names. A recommendation naming no term, or both,
/// is malformed.
pub(super) fn term_of(rec: &ApiRecommendation) -> Result<i32, String> {
    let shape = commitment_shape(&rec.content);
    let mut overview = Vec::new();
    collect_strings(&Value::Object(rec.content.overview.clone()), &mut overview, 0);
    let sources: [(&str, Vec<String>); 4] = [
        ("plan", shape.plan.into_iter().collect()),
        ("recommenderSubtype", vec![rec.recommender_subtype.clone()]),
        ("overview", overview),
        ("description", vec![rec.description.clone()]),
    ];
    for (source, texts) in sources {
        let mut terms: Vec<i32> = texts.iter().flat_map(|t| terms_named(t)).collect();
        terms.sort_unstable();
        terms.dedup();
        match terms[..] {
            [] => continue,
            [term] => return Ok(term),
            _ => return Err(format!("its {source} names both a 1-year and a 3-year term")),
        }
    }
    Err("it names no term (no plan TWELVE_MONTH or THIRTY_SIX_MONTH)".into())
}

/// The terms a text names, as words: `TWELVE_MONTH`, `ONE_YEAR`, `1-year`,
/// `3 years`…
pub(super) fn terms_named(text: &str) -> Vec<i32> {
    let words: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let padded = format!("_{words}_");
    let has = |token: &str| padded.contains(&format!("_{token}_")) || padded.contains(&format!("_{token}S_"));
    let mut out = Vec::new();
    if ["TWELVE_MONTH", "ONE_YEAR", "1_YEAR", "12_MONTH"].iter().any(|t| has(t)) {
        out.push(12);
    }
    if ["THIRTY_SIX_MONTH", "THREE_YEAR", "3_YEAR", "36_MONTH"].iter().any(|t| has(t)) {
        out.push(36);
    }
    out
}

/// Which spend-based service a recommendation is for, from every text it
/// carries (subtype, description, overview, operations). Google documents
/// no field for it, so the names and API hosts are matched; a
/// recommendation naming both or neither is for another service.
pub(super) fn spend_service(rec: &ApiRecommendation) -> Option<&'static str> {
    let mut texts = vec![rec.recommender_subtype.clone(), rec.description.clone()];
    collect_strings(&Value::Object(rec.content.overview.clone()), &mut texts, 0);
    for op in rec.content.operation_groups.iter().flat_map(|g| &g.operations) {
        texts.extend([op.resource_type.clone(), op.resource.clone(), op.path.clone()]);
        if let Some(value) = &op.value {
            collect_strings(value, &mut texts, 0);
        }
    }
    let text = texts.join(" ").to_ascii_lowercase();
    let sql = ["cloud sql", "cloudsql", "cloud_sql", "sqladmin.googleapis.com"].iter().any(|k| text.contains(k));
    let memorystore =
        ["memorystore", "redis.googleapis.com", "memcache.googleapis.com"].iter().any(|k| text.contains(k));
    match (sql, memorystore) {
        (true, false) => Some("cloud_sql"),
        (false, true) => Some("memorystore"),
        _ => None,
    }
}

/// Every string in a JSON value (keys' values, not keys), depth-limited.
pub(super) fn collect_strings(value: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out, depth + 1)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out, depth + 1)),
        _ => {}
    }
}

pub(super) fn overview_text(rec: &ApiRecommendation, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| rec.content.overview.get(*k).and_then(Value::as_str)).map(str::to_string)
}

/// A Compute Commitment as the operations describe it: the whole resource
/// added at `/`, or its fields at `/plan`, `/type`, `/resources`.
#[derive(Debug, Default)]
pub(super) struct CommitmentShape {
    pub(super) plan: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) region: Option<String>,
    pub(super) resources: Vec<CommittedResource>,
}

#[derive(Debug)]
pub(super) struct CommittedResource {
    pub(super) kind: String,
    pub(super) amount: f64,
    pub(super) accelerator: Option<String>,
}

pub(super) fn commitment_shape(content: &Content) -> CommitmentShape {
    let mut shape = CommitmentShape::default();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    for op in content.operation_groups.iter().flat_map(|g| &g.operations) {
        let value = op.value.as_ref();
        match op.path.as_str() {
            "" | "/" => {
                let Some(Value::Object(commitment)) = value else { continue };
                shape.plan = text(commitment.get("plan")).or(shape.plan);
                shape.kind = text(commitment.get("type")).or(shape.kind);
                shape.region = text(commitment.get("region")).or(shape.region);
                shape.resources.extend(resources(commitment.get("resources")));
            }
            "/plan" => shape.plan = text(value).or(shape.plan),
            "/type" => shape.kind = text(value).or(shape.kind),
            "/resources" => shape.resources.extend(resources(value)),
            _ => {}
        }
    }
    shape
}

/// `ResourceCommitment`s: `type` (VCPU, MEMORY in MB, ACCELERATOR,
/// LOCAL_SSD in GB), `amount` (an int64), `acceleratorType`.
pub(super) fn resources(value: Option<&Value>) -> Vec<CommittedResource> {
    let Some(Value::Array(items)) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let kind = item.get("type")?.as_str()?.to_string();
            let amount = match item.get("amount")? {
                Value::String(s) => s.trim().parse::<f64>().ok()?,
                Value::Number(n) => n.as_f64()?,
                _ => return None,
            };
            let accelerator = item.get("acceleratorType").and_then(Value::as_str).map(|a| last_segment(a).to_string());
            (amount.is_finite() && amount >= 0.0).then_some(CommittedResource { kind, amount, accelerator })
        })
        .collect()
}

/// Resource type and count of a resource-based commitment: the commitment
/// type (`general_purpose_n2`…; absent is Google's default,
/// `general_purpose`) and its vCPUs; an accelerator commitment is counted in
/// accelerators of its type; memory alone in GB.
pub(super) fn compute_resources(shape: &CommitmentShape) -> Result<(String, f64), String> {
    let kind = shape.kind.as_deref().unwrap_or("GENERAL_PURPOSE").to_ascii_lowercase();
    let total = |k: &str| shape.resources.iter().filter(|r| r.kind == k).map(|r| r.amount).sum::<f64>();
    let vcpus = total("VCPU");
    if vcpus > 0.0 {
        return Ok((kind, vcpus));
    }
    let accelerators = total("ACCELERATOR");
    if accelerators > 0.0 {
        let name = shape.resources.iter().find_map(|r| r.accelerator.clone()).unwrap_or(kind);
        return Ok((name, accelerators));
    }
    let memory_gb = total("MEMORY") / 1024.0;
    if memory_gb > 0.0 {
        return Ok((format!("{kind}_memory_gb"), memory_gb));
    }
    Err("its commitment names no vCPU, accelerator or memory amount".into())
}

pub(super) fn last_segment(text: &str) -> &str {
    text.rsplit('/').next().unwrap_or(text)
}
