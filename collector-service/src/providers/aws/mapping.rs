//! From Cost Explorer's details to our recommendations. Each field's
//! meaning is the one the API reference gives for
//! `GetReservationPurchaseRecommendation` (`RecommendationDetails[]`) and
//! `GetSavingsPlansPurchaseRecommendation`
//! (`SavingsPlansPurchaseRecommendationDetails[]`); the README's AWS table
//! lists them.

use aws_sdk_costexplorer::types::{
    InstanceDetails, ReservationPurchaseRecommendation, SavingsPlansPurchaseRecommendation,
};
use cudly_core::credentials::Credentials;
use cudly_core::domain::{Account, CommitmentType, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};

use super::regions::region_code;
use crate::providers::Sweep;

/// Hours in a month, as AWS prices monthly figures.
const HOURS_PER_MONTH: i128 = 730;

/// What a mapped recommendation is for.
pub(super) struct Mapping<'a> {
    pub(super) account: &'a Account,
    pub(super) service: &'static str,
    pub(super) sweep: Sweep,
}

impl Mapping<'_> {
    /// The account a detail belongs to: for an organization, its own
    /// `AccountId` (a linked account); otherwise the account collected.
    fn account_id(&self, detail_account: Option<&str>) -> String {
        let organization = matches!(&self.account.credentials, Some(Credentials::Aws(c)) if c.organization);
        let linked = detail_account.filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()));
        match linked.filter(|_| organization) {
            Some(id) => id.to_string(),
            None => self.account.external_id.clone(),
        }
    }

    fn account_name(&self, account_id: &str) -> String {
        if account_id == self.account.external_id {
            self.account.display_name.clone()
        } else {
            format!("{} (linked to {})", account_id, self.account.display_name)
        }
    }
}

/// A figure that is not money (a count, a percentage, months): Cost
/// Explorer reports numbers as strings; an absent one is 0, a malformed one
/// an error.
fn number(field: &str, value: Option<&str>) -> Result<f64, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(0.0),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("{field} is not a number: {:?}", shorten_to(v, 40))),
    }
}

/// An amount, read exactly from Cost Explorer's decimal string; absent is 0.
fn amount(field: &str, value: Option<&str>) -> Result<Amount, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(Amount::ZERO),
        Some(v) => Amount::parse(v).map_err(|err| format!("{field}: {err}")),
    }
}

/// The detail's `CurrencyCode`. Cost Explorer reports in US dollars and
/// sends the code with every detail; a detail without one is taken as USD.
fn currency(code: Option<&str>) -> Result<Currency, String> {
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(Currency::USD),
        Some(code) => Currency::parse(code).map_err(|err| format!("CurrencyCode: {err}")),
    }
}

fn shorten_to(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// An instance type from its dot-separated parts, never repeating a part
/// that the previous one already ends with: Cost Explorer's OpenSearch
/// details give a class and a size, and the size may already carry the
/// class ("c6g" + "c6g.xlarge.search" is "c6g.xlarge.search", as is "c6g" +
/// "xlarge.search").
fn join_type(parts: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in parts {
        let pieces: Vec<&str> = part.split('.').map(str::trim).filter(|p| !p.is_empty()).collect();
        let overlap =
            (0..=pieces.len().min(out.len())).rev().find(|&k| out[out.len() - k..] == pieces[..k]).unwrap_or(0);
        out.extend(&pieces[overlap..]);
    }
    out.join(".")
}

/// (resource type, platform, region display name) of an instance detail.
/// Each service's type comes from its documented field: EC2 and RDS
/// `InstanceType` (RDS types carry their `db.` prefix), ElastiCache and
/// Redshift `NodeType` (`cache.` prefix; Redshift types have none), and
/// OpenSearch `InstanceClass` + `InstanceSize` joined without repeating a
/// part, with OpenSearch's `.search` suffix (the name its reserved-instance
/// offerings use) when Cost Explorer left it out.
fn instance(details: Option<&InstanceDetails>) -> (String, String, String) {
    let s = |v: Option<&str>| v.map(str::trim).unwrap_or("").to_string();
    let Some(d) = details else { return Default::default() };
    if let Some(ec2) = d.ec2_instance_details() {
        let platform = match ec2.tenancy() {
            Some(t) if t.trim().eq_ignore_ascii_case("dedicated") => format!("{} (dedicated)", s(ec2.platform())),
            _ => s(ec2.platform()),
        };
        return (join_type(&[ec2.instance_type().unwrap_or("")]), platform, s(ec2.region()));
    }
    if let Some(rds) = d.rds_instance_details() {
        let mut platform = s(rds.database_engine());
        if let Some(edition) = rds.database_edition().map(str::trim).filter(|e| !e.is_empty()) {
            platform = format!("{platform} {edition}");
        }
        if let Some(deployment) = rds.deployment_option().map(str::trim).filter(|e| !e.is_empty()) {
            platform = format!("{platform} ({deployment})");
        }
        return (join_type(&[rds.instance_type().unwrap_or("")]), platform, s(rds.region()));
    }
    if let Some(cache) = d.elasti_cache_instance_details() {
        return (join_type(&[cache.node_type().unwrap_or("")]), s(cache.product_description()), s(cache.region()));
    }
    if let Some(es) = d.es_instance_details() {
        let mut resource_type = join_type(&[es.instance_class().unwrap_or(""), es.instance_size().unwrap_or("")]);
        let suffixed = resource_type.ends_with(".search") || resource_type.ends_with(".elasticsearch");
        if !resource_type.is_empty() && !suffixed {
            resource_type.push_str(".search");
        }
        return (resource_type, String::new(), s(es.region()));
    }
    if let Some(redshift) = d.redshift_instance_details() {
        return (join_type(&[redshift.node_type().unwrap_or("")]), String::new(), s(redshift.region()));
    }
    Default::default()
}

/// Maps one reserved-instance recommendation. Cost Explorer's figures are
/// monthly already (`EstimatedMonthly…`, `RecurringStandardMonthlyCost`);
/// the upfront cost is once per purchase.
pub(super) fn map_reservations(
    ctx: &Mapping<'_>,
    rec: &ReservationPurchaseRecommendation,
) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    for detail in rec.recommendation_details() {
        let currency = currency(detail.currency_code())?;
        let (resource_type, platform, region_name) = instance(detail.instance_details());
        let account_id = ctx.account_id(detail.account_id());
        out.push(Recommendation {
            provider: Provider::Aws,
            account_name: ctx.account_name(&account_id),
            account_id,
            service: ctx.service.to_string(),
            region: region_code(&region_name),
            resource_type,
            platform,
            commitment_type: CommitmentType::ReservedInstance,
            term_months: ctx.sweep.term_months,
            payment_option: ctx.sweep.payment,
            currency,
            recommended_count: number(
                "RecommendedNumberOfInstancesToPurchase",
                detail.recommended_number_of_instances_to_purchase(),
            )?,
            upfront_cost: amount("UpfrontCost", detail.upfront_cost())?,
            recurring_monthly_cost: amount("RecurringStandardMonthlyCost", detail.recurring_standard_monthly_cost())?,
            on_demand_monthly_cost: amount("EstimatedMonthlyOnDemandCost", detail.estimated_monthly_on_demand_cost())?,
            estimated_monthly_savings: amount(
                "EstimatedMonthlySavingsAmount",
                detail.estimated_monthly_savings_amount(),
            )?,
            savings_percentage: number(
                "EstimatedMonthlySavingsPercentage",
                detail.estimated_monthly_savings_percentage(),
            )?,
            break_even_months: number("EstimatedBreakEvenInMonths", detail.estimated_break_even_in_months())?,
        });
    }
    Ok(out)
}

/// Maps one savings-plan recommendation. Monthly figures use a month of 730
/// hours: the on-demand cost from the average hourly on-demand spend, the
/// recurring cost from the hourly commitment; the monthly savings are given
/// as such. (`EstimatedOnDemandCost`, `EstimatedSPCost` and
/// `EstimatedSavingsAmount` cover the look-back period, not a month, and are
/// not used.) The count is the hourly commitment.
pub(super) fn map_savings_plans(
    ctx: &Mapping<'_>,
    rec: &SavingsPlansPurchaseRecommendation,
) -> Result<Vec<Recommendation>, String> {
    let mut out = Vec::new();
    let out_of_range = |what: &str| format!("{what} is out of range");
    for detail in rec.savings_plans_purchase_recommendation_details() {
        let currency = currency(detail.currency_code())?;
        let account_id = ctx.account_id(detail.account_id());
        let hourly = amount("HourlyCommitmentToPurchase", detail.hourly_commitment_to_purchase())?;
        let upfront = amount("UpfrontCost", detail.upfront_cost())?;
        let savings = amount("EstimatedMonthlySavingsAmount", detail.estimated_monthly_savings_amount())?;
        let on_demand = amount("CurrentAverageHourlyOnDemandSpend", detail.current_average_hourly_on_demand_spend())?
            .mul_div(HOURS_PER_MONTH, 1)
            .ok_or_else(|| out_of_range("CurrentAverageHourlyOnDemandSpend"))?;
        // The commitment covers the whole term; what is paid upfront is not
        // paid again monthly.
        let term = i128::from(ctx.sweep.term_months.max(1));
        let committed = hourly.mul_div(HOURS_PER_MONTH, 1).ok_or_else(|| out_of_range("HourlyCommitmentToPurchase"))?;
        let prepaid = upfront.mul_div(1, term).ok_or_else(|| out_of_range("UpfrontCost"))?;
        let recurring = committed.checked_sub(prepaid).filter(|r| *r > Amount::ZERO).unwrap_or(Amount::ZERO);
        let details = detail.savings_plans_details();
        let family = details.and_then(|d| d.instance_family()).unwrap_or("").trim().to_string();
        let region_name = details.and_then(|d| d.region()).unwrap_or("").to_string();
        let resource_type = match ctx.service {
            "compute_savings_plans" => "compute".to_string(),
            "sagemaker_savings_plans" => "sagemaker".to_string(),
            _ => family,
        };
        out.push(Recommendation {
            provider: Provider::Aws,
            account_name: ctx.account_name(&account_id),
            account_id,
            service: ctx.service.to_string(),
            region: if region_name.trim().is_empty() { "global".to_string() } else { region_code(&region_name) },
            resource_type,
            platform: String::new(),
            commitment_type: CommitmentType::SavingsPlan,
            term_months: ctx.sweep.term_months,
            payment_option: ctx.sweep.payment,
            currency,
            recommended_count: number("HourlyCommitmentToPurchase", detail.hourly_commitment_to_purchase())?,
            upfront_cost: upfront,
            recurring_monthly_cost: recurring,
            on_demand_monthly_cost: on_demand,
            estimated_monthly_savings: savings,
            savings_percentage: number("EstimatedSavingsPercentage", detail.estimated_savings_percentage())?,
            break_even_months: if upfront.is_positive() { upfront.ratio(savings) } else { 0.0 },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use cudly_core::money::Currency;

    use super::{amount, currency, join_type, number};

    #[test]
    fn numbers_come_as_strings_and_garbage_is_an_error() {
        assert_eq!(number("x", Some("12.50")).unwrap(), 12.5);
        assert_eq!(number("x", None).unwrap(), 0.0);
        assert!(number("UpfrontCost", Some("lots")).unwrap_err().contains("UpfrontCost"));
        assert!(number("x", Some("NaN")).is_err());
        assert_eq!(amount("UpfrontCost", Some("1094.3647983296")).unwrap().to_string(), "1094.36479833");
        assert!(amount("UpfrontCost", Some("lots")).unwrap_err().starts_with("UpfrontCost"));
        assert_eq!(currency(Some("EUR")).unwrap().as_str(), "EUR");
        assert_eq!(currency(None).unwrap(), Currency::USD);
        assert!(currency(Some("euros")).unwrap_err().contains("CurrencyCode"));
    }

    #[test]
    fn instance_types_never_repeat_a_part() {
        assert_eq!(join_type(&["c6g", "c6g.xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["c6g", "xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["c6g.xlarge", "xlarge.search"]), "c6g.xlarge.search");
        assert_eq!(join_type(&["", "r6g.large.search"]), "r6g.large.search");
        assert_eq!(join_type(&["db.r6g.large"]), "db.r6g.large");
        assert_eq!(join_type(&["m5", "m5"]), "m5");
    }
}
