//! Every page of regions and recommendations collected and mapped: ACTIVE
//! ones only, spend-based ones in every location split by service and
//! billed to the billing account, amounts in its currency.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cudly_collector::engine::collect;
use cudly_collector::providers::{Backends, CloudBackend, RequestCount, RunScope};
use cudly_core::domain::{CommitmentType, PaymentOption, Provider};
use cudly_core::money::{Amount, Currency};
use serde_json::json;

use super::answers::{compute_rec, spend_rec, with_state};
use super::fake::{Fake, billing_parent, compute_parent, spawn};
use super::{BILLING, KeyFile, amount, backend, fetch, one_sweep, project, quick_retries};

#[tokio::test]
async fn every_page_of_regions_and_recommendations_is_collected_and_mapped() {
    let fake = Arc::new(Fake::default());
    fake.page_size.store(3, Ordering::SeqCst);
    let regions = ["us-central1", "us-east1", "us-west1", "europe-west1", "europe-west4", "asia-east1", "asia-south1"];
    fake.set_regions("alpha-project", &regions);
    let p = "alpha-project";
    let r = "us-central1";
    fake.set_list(
        compute_parent(p, r),
        vec![
            compute_rec(p, r, "n2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 16, ("-300", -500_000_000)),
            compute_rec(p, r, "e2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_E2", 4, ("-20", 0)),
            compute_rec(p, r, "n2-3y", "THIRTY_SIX_MONTH", "GENERAL_PURPOSE_N2", 16, ("-450", -250_000_000)),
            compute_rec(p, r, "c3-3y", "THIRTY_SIX_MONTH", "COMPUTE_OPTIMIZED_C3", 8, ("-200", 0)),
            compute_rec(p, r, "n1-1y", "TWELVE_MONTH", "GENERAL_PURPOSE", 2, ("-10", 0)),
            compute_rec(p, r, "t2d-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_T2D", 32, ("-500", 0)),
            // The last page.
            compute_rec(p, r, "n2d-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2D", 6, ("-60", 0)),
        ],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let backend = backend(&base, quick_retries());
    let account = project(p, Some(&key), None);

    let calls = RequestCount::new();
    let listed = backend.regions(&account, &calls).await.unwrap().unwrap();
    let mut sorted = regions.map(str::to_string).to_vec();
    sorted.sort();
    assert_eq!(listed, sorted, "all three pages of regions, sorted");
    assert_eq!(calls.get(), (4, 0), "one token grant and three region pages");

    let calls = RequestCount::new();
    let run = RunScope::default();
    let one_year = fetch(&run, &backend, &account, "compute", Some(r), 12, &calls).await.unwrap();
    let three_years = fetch(&run, &backend, &account, "compute", Some(r), 36, &calls).await.unwrap();
    assert_eq!(calls.get(), (3, 0), "three pages, fetched once for both terms of the run");

    let types = |recs: &[cudly_core::domain::Recommendation]| {
        let mut t: Vec<String> = recs.iter().map(|r| r.resource_type.clone()).collect();
        t.sort();
        t
    };
    assert_eq!(
        types(&one_year),
        ["general_purpose", "general_purpose_e2", "general_purpose_n2", "general_purpose_n2d", "general_purpose_t2d"]
    );
    assert_eq!(types(&three_years), ["compute_optimized_c3", "general_purpose_n2"]);

    let n2 = one_year.iter().find(|r| r.resource_type == "general_purpose_n2").unwrap();
    assert_eq!(
        (n2.provider, n2.account_id.as_str(), n2.account_name.as_str()),
        (Provider::Gcp, p, "Project alpha-project")
    );
    assert_eq!((n2.service.as_str(), n2.region.as_str(), n2.platform.as_str()), ("compute", r, ""));
    assert_eq!(
        (n2.commitment_type, n2.term_months, n2.payment_option),
        (CommitmentType::CommittedUseDiscount, 12, PaymentOption::Monthly)
    );
    assert_eq!((n2.recommended_count, n2.currency), (16.0, Currency::USD), "counted in vCPUs");
    // -300.50 USD over 30 days is 300.50 × 730 h / 720 h in an average month.
    assert_eq!(n2.estimated_monthly_savings, amount("304.673611111"));
    // The nominal 1-year discount (37 %) splits it into on-demand and commitment cost.
    assert_eq!(
        (n2.on_demand_monthly_cost, n2.recurring_monthly_cost, n2.savings_percentage),
        (amount("823.442192192"), amount("518.768581081"), 37.0)
    );
    assert_eq!((n2.upfront_cost, n2.break_even_months), (Amount::ZERO, 0.0));
    let n2_3y = three_years.iter().find(|r| r.resource_type == "general_purpose_n2").unwrap();
    assert_eq!(
        (n2_3y.term_months, n2_3y.estimated_monthly_savings, n2_3y.savings_percentage),
        (36, amount("456.503472222"), 55.0)
    );
    assert!(one_year.iter().chain(&three_years).all(|r| r.has_finite_figures()));

    assert_eq!(fake.key_grants.load(Ordering::SeqCst), 1, "one token for every call");
    for (path, params) in fake.requests_to("/v1/") {
        assert_eq!(params.get("filter").map(String::as_str), Some("stateInfo.state = ACTIVE"), "{path}");
    }
}

#[tokio::test]
async fn only_active_recommendations_are_kept() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "us-east1");
    // This fake ignores the filter: the backend must drop the others itself.
    let active = compute_rec(p, r, "active", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-80", 0));
    let others = ["CLAIMED", "SUCCEEDED", "FAILED", "DISMISSED"].map(|state| {
        with_state(compute_rec(p, r, state, "TWELVE_MONTH", &format!("GENERAL_PURPOSE_{state}"), 8, ("-90", 0)), state)
    });
    let recs = one_sweep(&fake, p, r, [vec![active], others.to_vec()].concat()).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].resource_type, "general_purpose_n2");
    let asked = fake.requests_to("/v1/");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1.get("filter").map(String::as_str), Some("stateInfo.state = ACTIVE"));
}

#[tokio::test]
async fn spend_based_recommendations_are_found_in_every_location_split_by_service_and_billed_to_the_account() {
    let fake = Arc::new(Fake::default());
    fake.set_regions("alpha-project", &["europe-west1", "us-central1"]);
    fake.set_list(
        billing_parent("global"),
        vec![spend_rec("sql-global", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "global", "-720")],
    );
    fake.set_list(
        billing_parent("us-central1"),
        vec![
            spend_rec("sql-1y", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "us-central1", "-73"),
            spend_rec("sql-3y", "Cloud SQL", "SPEND_BASED_THREE_YEAR", "us-central1", "-144"),
            spend_rec("spanner-1y", "Spanner", "SPEND_BASED_ONE_YEAR", "us-central1", "-500"),
            with_state(spend_rec("sql-old", "Cloud SQL", "SPEND_BASED_ONE_YEAR", "us-central1", "-9"), "DISMISSED"),
        ],
    );
    fake.set_list(
        billing_parent("europe-west1"),
        vec![spend_rec("redis-1y", "Memorystore for Redis", "SPEND_BASED_ONE_YEAR", "europe-west1", "-36")],
    );
    let base = spawn(fake.clone()).await;
    let key = KeyFile::new(&base, "service_account");
    let listed = vec!["europe-west1".to_string(), "us-central1".to_string()];
    let backend = backend(&base, quick_retries());
    assert_eq!(backend.service_regions("compute", &listed), Some(listed.clone()));
    let everywhere = Some(vec!["global".to_string(), "europe-west1".to_string(), "us-central1".to_string()]);
    assert_eq!(backend.service_regions("cloud_sql", &listed), everywhere);
    assert_eq!(backend.service_regions("memorystore", &listed), everywhere);

    // A whole run of the account through the engine: global and every
    // region, under the region cap and the rate limit, every request counted.
    let backends: Backends = vec![Arc::new(backend)];
    let accounts = [project("alpha-project", Some(&key), Some(BILLING))];
    let (tx, _rx) = tokio::sync::watch::channel(Vec::new());
    let collected = collect(&backends, &accounts, &cudly_testkit::settings::engine(), &tx).await;
    let gcp = &collected.providers[0];
    assert_eq!(gcp.failed_accounts, [], "{gcp:?}");
    let asked: HashSet<String> = fake.requests_to("/v1/billingAccounts/").into_iter().map(|(path, _)| path).collect();
    let expected: HashSet<String> =
        ["global", "europe-west1", "us-central1"].map(|l| format!("/v1/{}/recommendations", billing_parent(l))).into();
    assert_eq!(asked, expected, "the spend-based recommender in global and every region");
    // A grant, the region list, 2 compute lists, 3 billing lists (shared by
    // both services and terms within the run).
    assert_eq!(gcp.requests, 7, "every request counted");

    let spend: Vec<&cudly_core::domain::Recommendation> =
        collected.recommendations.iter().filter(|r| r.service != "compute").collect();
    let found: Vec<(&str, &str, i32)> =
        spend.iter().map(|r| (r.service.as_str(), r.region.as_str(), r.term_months)).collect();
    assert_eq!(
        found,
        [
            ("cloud_sql", "global", 12),
            ("cloud_sql", "us-central1", 12),
            ("cloud_sql", "us-central1", 36),
            ("memorystore", "europe-west1", 12)
        ],
        "in merge order: service, location, term"
    );
    let sql = spend.iter().find(|r| r.region == "us-central1" && r.term_months == 12).unwrap();
    assert_eq!(
        (sql.account_id.as_str(), sql.account_name.as_str()),
        (BILLING, "GCP billing account 01A2B3-C4D5E6-F7A8B9")
    );
    assert_eq!((sql.resource_type.as_str(), sql.recommended_count), ("cloud_sql_spend_commitment", 1.0));
    assert_eq!(
        (sql.estimated_monthly_savings, sql.savings_percentage, sql.on_demand_monthly_cost),
        (amount("74.013888889"), 25.0, amount("296.055555556"))
    );
    let sql_3y = spend.iter().find(|r| r.term_months == 36).unwrap();
    assert_eq!((sql_3y.savings_percentage, sql_3y.estimated_monthly_savings), (52.0, amount("146")));
    assert!(collected.sources.iter().all(|s| s == "alpha-project"), "collected through the project");

    // A project without a billing account has no spend-based recommendations.
    let backend = self::backend(&base, quick_retries());
    let calls = RequestCount::new();
    let unbilled = project("beta-project", Some(&key), None);
    let run = RunScope::default();
    assert!(fetch(&run, &backend, &unbilled, "cloud_sql", Some("global"), 12, &calls).await.unwrap().is_empty());
    assert_eq!(calls.get(), (0, 0));
}

#[tokio::test]
async fn amounts_are_recorded_in_the_billing_accounts_currency() {
    let fake = Arc::new(Fake::default());
    let (p, r) = ("alpha-project", "europe-west4");
    let mut euros = compute_rec(p, r, "n2-1y", "TWELVE_MONTH", "GENERAL_PURPOSE_N2", 8, ("-720", 0));
    euros["primaryImpact"]["costProjection"]["cost"]["currencyCode"] = json!("EUR");
    let recs = one_sweep(&fake, p, r, vec![euros]).await;
    assert_eq!((recs[0].currency.as_str(), recs[0].estimated_monthly_savings), ("EUR", amount("730")));
}
