//! Listing recommendations: validated filters, keyset pagination in a stable
//! order (savings descending, then id), and a summary over all matches.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use cudly_collector::domain::{CommitmentType, PaymentOption, Provider, timestamp};
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
    /// Minimum estimated monthly savings, USD.
    pub min_monthly_savings: Option<f64>,
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
    /// Where the previous page ended.
    pub after: Option<(f64, Uuid)>,
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
        let savings = self.min_monthly_savings.map(|v| v.to_string()).unwrap_or_default();
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
        if let Some(min) = self.min_monthly_savings {
            q.push(" AND estimated_monthly_savings >= ").push_bind(min);
        }
        if let Some(min) = self.min_savings_percentage {
            q.push(" AND savings_percentage >= ").push_bind(min);
        }
    }
}

/// A request's `page_size`: unset is the default, more than the maximum is
/// the maximum, negative is an error.
pub fn parse_page_size(requested: i32) -> Result<i64, Error> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::InvalidArgument(format!("page_size: must be positive, got {n}"))),
        n => Ok(i64::from(n).min(MAX_PAGE_SIZE)),
    }
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
        return Err(invalid(format!("account_ids: {bad:?} is not an account id")));
    }
    let savings = req.min_monthly_savings;
    if !savings.is_finite() || savings < 0.0 {
        return Err(invalid(format!("min_monthly_savings: must be a non-negative amount, got {savings}")));
    }
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
        min_monthly_savings: (savings > 0.0).then_some(savings),
        min_savings_percentage: (pct > 0.0).then_some(pct),
    };
    // The savings travel as their bits: exact, whatever the value.
    let after = page_token::decode::<(u64, Uuid)>(&req.page_token, filters.fingerprint())?
        .map(|(bits, id)| (f64::from_bits(bits), id));
    if after.as_ref().is_some_and(|(s, _)| !s.is_finite()) {
        return Err(invalid("page_token: not a token this service issued".into()));
    }
    Ok(ListQuery { filters, page_size, after })
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
    recommended_count: f64,
    upfront_cost: f64,
    recurring_monthly_cost: f64,
    on_demand_monthly_cost: f64,
    estimated_monthly_savings: f64,
    savings_percentage: f64,
    break_even_months: f64,
    collected_at: DateTime<Utc>,
}

impl Row {
    fn into_proto(self) -> pb::Recommendation {
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
            upfront_cost: self.upfront_cost,
            recurring_monthly_cost: self.recurring_monthly_cost,
            on_demand_monthly_cost: self.on_demand_monthly_cost,
            estimated_monthly_savings: self.estimated_monthly_savings,
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
        entries.get(filters).filter(|(v, _)| *v == data_version).map(|(_, s)| *s)
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
                commitment_type, term_months, payment_option, recommended_count, upfront_cost,
                recurring_monthly_cost, on_demand_monthly_cost, estimated_monthly_savings,
                savings_percentage, break_even_months, collected_at
         FROM recommendations"
    ));
    query.filters.push_where(&mut q);
    if let Some((savings, id)) = &query.after {
        // The order mixes directions (savings descending, id ascending), so
        // no row comparison fits; `savings <= s` is the index range that
        // starts the scan at the previous page's end, the rest a filter.
        q.push(" AND estimated_monthly_savings <= ")
            .push_bind(*savings)
            .push(" AND (estimated_monthly_savings < ")
            .push_bind(*savings)
            .push(" OR id > ")
            .push_bind(*id)
            .push(")");
    }
    q.push(" ORDER BY estimated_monthly_savings DESC, id LIMIT ").push_bind(query.page_size + 1);
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
        page_token::encode(query.filters.fingerprint(), &(last.estimated_monthly_savings.to_bits(), &last.id))
    } else {
        String::new()
    };

    let key = query.filters.canonical();
    let summary = match cache.get(&key, data_version) {
        Some(summary) => summary,
        None => {
            let mut s = QueryBuilder::new(
                "SELECT count(*), coalesce(sum(estimated_monthly_savings), 0), coalesce(sum(upfront_cost), 0)
                 FROM recommendations",
            );
            query.filters.push_where(&mut s);
            let (count, total_monthly_savings, total_upfront_cost): (i64, f64, f64) =
                s.build_query_as().fetch_one(pool).await?;
            let summary = pb::Summary { count, total_monthly_savings, total_upfront_cost };
            cache.put(key, data_version, summary);
            summary
        }
    };

    Ok(Page { recommendations: rows.into_iter().map(Row::into_proto).collect(), next_page_token, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::ListRecommendationsRequest {
        pb::ListRecommendationsRequest::default()
    }

    #[test]
    fn defaults_and_caps() {
        let q = parse_request(request()).unwrap();
        assert_eq!(q.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(q.filters, Filters::default());
        let q = parse_request(pb::ListRecommendationsRequest { page_size: 50_000, ..request() }).unwrap();
        assert_eq!(q.page_size, MAX_PAGE_SIZE);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (pb::ListRecommendationsRequest { provider: 9, ..request() }, "provider"),
            (pb::ListRecommendationsRequest { page_size: -1, ..request() }, "page_size"),
            (pb::ListRecommendationsRequest { min_savings_percentage: 101.0, ..request() }, "min_savings_percentage"),
            (pb::ListRecommendationsRequest { min_monthly_savings: f64::NAN, ..request() }, "min_monthly_savings"),
            (pb::ListRecommendationsRequest { account_ids: vec![String::new()], ..request() }, "account_ids"),
            (pb::ListRecommendationsRequest { region: "x".repeat(300), ..request() }, "region"),
            (pb::ListRecommendationsRequest { service: "ec2\u{1f}".into(), ..request() }, "service"),
            (pb::ListRecommendationsRequest { account_ids: vec!["a\nb".into()], ..request() }, "account_ids"),
            (pb::ListRecommendationsRequest { page_token: "garbage".into(), ..request() }, "page_token"),
        ];
        for (req, field) in cases {
            let err = parse_request(req).unwrap_err().to_string();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn a_token_only_works_with_the_filters_it_was_issued_for() {
        let aws = Filters { provider: Some(Provider::Aws), ..Filters::default() };
        let id = Uuid::new_v4();
        let token = page_token::encode(aws.fingerprint(), &(10.0_f64.to_bits(), id));
        let same = pb::ListRecommendationsRequest {
            provider: Provider::Aws.to_proto(),
            page_token: token.clone(),
            ..request()
        };
        assert_eq!(parse_request(same).unwrap().after, Some((10.0, id)));
        let other = pb::ListRecommendationsRequest { page_token: token, ..request() };
        assert!(parse_request(other).is_err());
    }

    // Fuzzing request validation: any request gets a query or an error that
    // names a field, never a panic.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_request_is_a_query_or_a_named_field_error(
            provider in proptest::prelude::any::<i32>(),
            service in ".{0,300}",
            region in "[a-z0-9-]{0,20}|.{0,300}",
            account_ids in proptest::collection::vec(".{0,80}", 0..120),
            min_monthly_savings in proptest::prelude::any::<f64>(),
            min_savings_percentage in proptest::prelude::any::<f64>(),
            page_size in proptest::prelude::any::<i32>(),
            page_token in ".{0,64}",
        ) {
            let req = pb::ListRecommendationsRequest {
                provider, service, region, account_ids, min_monthly_savings, min_savings_percentage, page_size, page_token,
            };
            match parse_request(req) {
                Ok(q) => proptest::prop_assert!((1..=MAX_PAGE_SIZE).contains(&q.page_size)),
                Err(Error::InvalidArgument(msg)) => {
                    let fields = ["provider", "service", "region", "account_ids", "min_monthly_savings",
                        "min_savings_percentage", "page_size", "page_token"];
                    proptest::prop_assert!(fields.iter().any(|f| msg.starts_with(f)), "{msg}");
                }
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }
}
