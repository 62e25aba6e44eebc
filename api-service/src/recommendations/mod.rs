//! Listing recommendations: validated filters, keyset pagination in a stable
//! order (savings descending, then id), and a summary over all matches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use cudly_core::domain::{CommitmentType, PaymentOption, Provider, money, timestamp};
use cudly_core::money::{Amount, Currency};
use cudly_core::quote::quoted;
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::Error;
use crate::page_token;

/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest page; larger requests get this many.
pub const MAX_PAGE_SIZE: i64 = 1000;
/// Most account ids one filter may name.
const MAX_ACCOUNT_IDS: usize = 1000;
/// Longest text filter accepted.
const MAX_FILTER_LEN: usize = 256;

/// Validated filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this region.
    pub region: Option<String>,
    /// Only these accounts (empty: all).
    pub account_ids: Vec<String>,
    /// Only rows in this currency saving at least this much a month
    /// (amounts are never converted between currencies).
    pub min_monthly_savings: Option<(Currency, Amount)>,
    /// Minimum savings percentage.
    pub min_savings_percentage: Option<f64>,
}

/// A validated list request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// What to match.
    pub filters: Filters,
    /// Rows per page.
    pub page_size: i64,
    /// Where the previous page ended: its last row's savings (nano-units)
    /// and id.
    pub after: Option<(i64, Uuid)>,
}

/// One page and the summary of every match.
#[derive(Debug)]
pub struct Page {
    /// The page's rows.
    pub recommendations: Vec<pb::Recommendation>,
    /// Token for the next page; empty on the last.
    pub next_page_token: String,
    /// Totals over every match.
    pub summary: pb::Summary,
}

impl Filters {
    /// The filters as one unambiguous string (fields and account ids
    /// separated by control characters no filter may contain).
    fn canonical(&self) -> String {
        let savings = self
            .min_monthly_savings
            .map(|(currency, amount)| format!("{currency} {}", amount.nanos()))
            .unwrap_or_default();
        let pct = self.min_savings_percentage.map(|v| v.to_string()).unwrap_or_default();
        [
            self.provider.map(Provider::as_str).unwrap_or(""),
            self.service.as_deref().unwrap_or(""),
            self.region.as_deref().unwrap_or(""),
            &self.account_ids.join("\u{1e}"),
            &savings,
            &pct,
        ]
        .join("\u{1f}")
    }

    /// Binds page tokens to these filters.
    fn fingerprint(&self) -> u64 {
        page_token::fingerprint(&[&self.canonical()])
    }

    fn push_where(&self, q: &mut QueryBuilder<Postgres>) {
        q.push(" WHERE true");
        if let Some(p) = self.provider {
            q.push(" AND provider = ").push_bind(p.as_str());
        }
        if let Some(s) = &self.service {
            q.push(" AND service = ").push_bind(s.clone());
        }
        if let Some(r) = &self.region {
            q.push(" AND region = ").push_bind(r.clone());
        }
        if !self.account_ids.is_empty() {
            q.push(" AND account_id = ANY(").push_bind(self.account_ids.clone()).push(")");
        }
        if let Some((currency, min)) = self.min_monthly_savings {
            q.push(" AND currency = ").push_bind(currency.as_str().to_string());
            if min != Amount::ZERO {
                q.push(" AND estimated_monthly_savings_nanos >= ").push_bind(min.nanos());
            }
        }
        if let Some(min) = self.min_savings_percentage {
            q.push(" AND savings_percentage >= ").push_bind(min);
        }
    }
}

/// A request's `page_size`: unset is the default, more than the maximum is
/// the maximum, negative is an error.
pub fn parse_page_size(requested: i32) -> Result<i64, Error> {
    crate::page_token::page_size(requested, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
}

/// Validates a request into a query; every error names its field.
pub fn parse_request(req: pb::ListRecommendationsRequest) -> Result<ListQuery, Error> {
    let invalid = |msg: String| Error::InvalidArgument(msg);
    let provider = match req.provider {
        0 => None,
        v => Some(Provider::from_proto(v).ok_or_else(|| invalid(format!("provider: unknown value {v}")))?),
    };
    let text = |name: &str, value: String| -> Result<Option<String>, Error> {
        if value.len() > MAX_FILTER_LEN {
            return Err(invalid(format!("{name}: longer than {MAX_FILTER_LEN} bytes")));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(format!("{name}: control characters are not allowed")));
        }
        Ok((!value.is_empty()).then_some(value))
    };
    if req.account_ids.len() > MAX_ACCOUNT_IDS {
        return Err(invalid(format!("account_ids: more than {MAX_ACCOUNT_IDS} ids")));
    }
    if let Some(bad) =
        req.account_ids.iter().find(|a| a.is_empty() || a.len() > MAX_FILTER_LEN || a.chars().any(char::is_control))
    {
        return Err(invalid(format!("account_ids: {} is not an account id", quoted(bad))));
    }
    let min_monthly_savings = parse_min_savings(req.min_monthly_savings)?;
    let pct = req.min_savings_percentage;
    if !(0.0..=100.0).contains(&pct) {
        return Err(invalid(format!("min_savings_percentage: must be between 0 and 100, got {pct}")));
    }
    let page_size = parse_page_size(req.page_size)?;
    let mut account_ids = req.account_ids;
    account_ids.sort();
    account_ids.dedup();
    let filters = Filters {
        provider,
        service: text("service", req.service)?,
        region: text("region", req.region)?,
        account_ids,
        min_monthly_savings,
        min_savings_percentage: (pct > 0.0).then_some(pct),
    };
    // The savings travel as nano-units: exact.
    let after = page_token::decode::<(i64, Uuid)>(&req.page_token, filters.fingerprint())?;
    Ok(ListQuery { filters, page_size, after })
}

/// The minimum-savings filter: unset, or a currency with an amount of zero
/// or more (zero: that currency only).
fn parse_min_savings(money: Option<Money>) -> Result<Option<(Currency, Amount)>, Error> {
    let invalid = |msg: String| Error::InvalidArgument(format!("min_monthly_savings: {msg}"));
    let Some(money) = money else { return Ok(None) };
    let amount = Amount::from_units_and_nanos(money.units, i64::from(money.nanos)).ok_or_else(|| {
        invalid(format!(
            "units {} and nanos {} are not an amount (nanos within ±999999999, of the same sign as units)",
            money.units, money.nanos
        ))
    })?;
    if amount < Amount::ZERO {
        return Err(invalid(format!("must not be negative, got {amount}")));
    }
    if money.currency_code.is_empty() {
        if amount == Amount::ZERO {
            return Ok(None);
        }
        return Err(invalid(
            "currency_code is required with an amount: amounts are compared in one currency, never converted".into(),
        ));
    }
    let currency = Currency::parse(&money.currency_code)
        .map_err(|err| Error::InvalidArgument(format!("min_monthly_savings.currency_code: {err}")))?;
    Ok(Some((currency, amount)))
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    provider: String,
    account_id: String,
    account_name: String,
    service: String,
    region: String,
    resource_type: String,
    platform: String,
    commitment_type: String,
    term_months: i32,
    payment_option: String,
    currency: String,
    recommended_count: f64,
    upfront_cost_nanos: i64,
    recurring_monthly_cost_nanos: i64,
    on_demand_monthly_cost_nanos: i64,
    estimated_monthly_savings_nanos: i64,
    savings_percentage: f64,
    break_even_months: f64,
    collected_at: DateTime<Utc>,
}

impl Row {
    fn into_proto(self) -> pb::Recommendation {
        // The table's CHECK keeps currencies to three upper-case letters.
        let currency = Currency::parse(&self.currency).unwrap_or(Currency::USD);
        let amount = |nanos: i64| Some(money(Amount::from_nanos(nanos), currency));
        pb::Recommendation {
            id: self.id.to_string(),
            provider: Provider::parse(&self.provider).map(Provider::to_proto).unwrap_or_default(),
            account_id: self.account_id,
            account_name: self.account_name,
            service: self.service,
            region: self.region,
            resource_type: self.resource_type,
            platform: self.platform,
            commitment_type: CommitmentType::parse(&self.commitment_type)
                .map(CommitmentType::to_proto)
                .unwrap_or_default(),
            term_months: self.term_months,
            payment_option: PaymentOption::parse(&self.payment_option).map(PaymentOption::to_proto).unwrap_or_default(),
            recommended_count: self.recommended_count,
            upfront_cost: amount(self.upfront_cost_nanos),
            recurring_monthly_cost: amount(self.recurring_monthly_cost_nanos),
            on_demand_monthly_cost: amount(self.on_demand_monthly_cost_nanos),
            estimated_monthly_savings: amount(self.estimated_monthly_savings_nanos),
            savings_percentage: self.savings_percentage,
            break_even_months: self.break_even_months,
            collected_at: Some(timestamp(self.collected_at)),
        }
    }
}

/// Summaries by filter, valid while the data version they were computed at
/// is current: paging through a large result costs the aggregate once.
#[derive(Debug, Default)]
pub struct SummaryCache {
    entries: Mutex<HashMap<String, (i64, pb::Summary)>>,
}

impl SummaryCache {
    /// Filters remembered at most; beyond that the cache starts over.
    const CAPACITY: usize = 1024;

    fn get(&self, filters: &str, data_version: i64) -> Option<pb::Summary> {
        let entries = self.entries.lock().unwrap();
        entries.get(filters).filter(|(v, _)| *v == data_version).map(|(_, s)| s.clone())
    }

    /// Remembers `summary`, computed after `data_version` was read: if the
    /// data changed in between, the next read sees a newer version and
    /// recomputes.
    fn put(&self, filters: String, data_version: i64, summary: pb::Summary) {
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&filters) {
            entries.clear();
        }
        entries.insert(filters, (data_version, summary));
    }
}

/// The query of one page (keyset: rows after the previous page's last
/// savings and id, in list order), behind `prefix` (e.g. `EXPLAIN `).
pub fn page_query(prefix: &str, query: &ListQuery) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(format!(
        "{prefix}SELECT id, provider, account_id, account_name, service, region, resource_type, platform,
                commitment_type, term_months, payment_option, currency, recommended_count,
                upfront_cost_nanos, recurring_monthly_cost_nanos, on_demand_monthly_cost_nanos,
                estimated_monthly_savings_nanos, savings_percentage, break_even_months, collected_at
         FROM recommendations"
    ));
    query.filters.push_where(&mut q);
    if let Some((savings, id)) = &query.after {
        // The order mixes directions (savings descending, id ascending), so
        // no row comparison fits; `savings <= s` is the index range that
        // starts the scan at the previous page's end, the rest a filter.
        q.push(" AND estimated_monthly_savings_nanos <= ")
            .push_bind(*savings)
            .push(" AND (estimated_monthly_savings_nanos < ")
            .push_bind(*savings)
            .push(" OR id > ")
            .push_bind(*id)
            .push(")");
    }
    q.push(" ORDER BY estimated_monthly_savings_nanos DESC, id LIMIT ").push_bind(query.page_size + 1);
    q
}

/// One page of matches and the summary over all of them (from `cache` when
/// the data has not changed since it was computed).
pub async fn list(
    pool: &PgPool,
    query: &ListQuery,
    cache: &SummaryCache,
    data_version: i64,
) -> Result<Page, sqlx::Error> {
    let mut q = page_query("", query);
    let mut rows: Vec<Row> = q.build_query_as().fetch_all(pool).await?;

    let next_page_token = if rows.len() as i64 > query.page_size {
        rows.truncate(query.page_size as usize);
        let last = rows.last().expect("a full page has a last row");
        page_token::encode(query.filters.fingerprint(), &(last.estimated_monthly_savings_nanos, &last.id))
    } else {
        String::new()
    };

    let key = query.filters.canonical();
    let summary = match cache.get(&key, data_version) {
        Some(summary) => summary,
        None => {
            let summary = summarize(pool, &query.filters).await?;
            cache.put(key, data_version, summary.clone());
            summary
        }
    };

    Ok(Page { recommendations: rows.into_iter().map(Row::into_proto).collect(), next_page_token, summary })
}

/// Exact totals per currency over every row matching `filters`, and the
/// same per provider and per service. Postgres sums the integer nano-units
/// per (provider, service, currency) into `numeric` (no overflow, no
/// rounding) and splits them into units and nanos; the coarser totals are
/// added up here in `i128` nano-units, exact too. One hash aggregate: the
/// rollup costs nothing measurable, where grouping sets doubled the scan.
async fn summarize(pool: &PgPool, filters: &Filters) -> Result<pb::Summary, sqlx::Error> {
    let mut s = QueryBuilder::new(
        "SELECT provider, service, currency, count(*),
                div(sum(estimated_monthly_savings_nanos), 1000000000)::int8,
                mod(sum(estimated_monthly_savings_nanos), 1000000000)::int4,
                div(sum(upfront_cost_nanos), 1000000000)::int8,
                mod(sum(upfront_cost_nanos), 1000000000)::int4
         FROM recommendations",
    );
    filters.push_where(&mut s);
    s.push(" GROUP BY provider, service, currency");
    type GroupRow = (String, String, String, i64, i64, i32, i64, i32);
    let rows: Vec<GroupRow> = s.build_query_as().fetch_all(pool).await?;
    // Keyed in the order they are shown: provider order (the enum's),
    // service, currency code.
    let mut totals: BTreeMap<String, Sums> = BTreeMap::new();
    let mut by_provider: BTreeMap<(i32, String), Sums> = BTreeMap::new();
    let mut by_service: BTreeMap<(i32, String, String), Sums> = BTreeMap::new();
    for (provider, service, currency, count, savings_units, savings_nanos, upfront_units, upfront_nanos) in rows {
        let sums = Sums {
            count,
            savings: i128::from(savings_units) * NANOS + i128::from(savings_nanos),
            upfront: i128::from(upfront_units) * NANOS + i128::from(upfront_nanos),
        };
        let provider = Provider::parse(&provider).map(Provider::to_proto).unwrap_or_default();
        totals.entry(currency.clone()).or_default().add(sums);
        by_provider.entry((provider, currency.clone())).or_default().add(sums);
        by_service.entry((provider, service, currency)).or_default().add(sums);
    }
    let group = |provider, service, currency: &str, sums: Sums| pb::GroupTotal {
        provider,
        service,
        total: Some(sums.total(currency)),
    };
    Ok(pb::Summary {
        count: totals.values().map(|t| t.count).sum(),
        totals: totals.iter().map(|(currency, sums)| sums.total(currency)).collect(),
        by_provider: by_provider.into_iter().map(|((p, c), sums)| group(p, String::new(), &c, sums)).collect(),
        by_service: by_service.into_iter().map(|((p, s, c), sums)| group(p, s, &c, sums)).collect(),
    })
}

/// Nano-units in one unit of a currency.
const NANOS: i128 = 1_000_000_000;

/// Count and exact sums (nano-units) of some matching rows.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    count: i64,
    savings: i128,
    upfront: i128,
}

impl Sums {
    fn add(&mut self, other: Sums) {
        self.count += other.count;
        self.savings += other.savings;
        self.upfront += other.upfront;
    }

    fn total(&self, currency: &str) -> pb::CurrencyTotal {
        // Units and nanos share the sign, as google.type.Money requires. A
        // total beyond i64 units (9.2 · 10^18) is beyond any real fleet.
        let money = |nanos: i128| Money {
            currency_code: currency.to_string(),
            units: i64::try_from(nanos / NANOS).unwrap_or(i64::MAX),
            nanos: (nanos % NANOS) as i32,
        };
        pb::CurrencyTotal {
            currency_code: currency.to_string(),
            count: self.count,
            monthly_savings: Some(money(self.savings)),
            upfront_cost: Some(money(self.upfront)),
        }
    }
}

#[cfg(test)]
mod tests;
