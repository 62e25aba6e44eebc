//! The figures a user reads: exact money per currency, the minimum-savings
//! filter in one currency, and runs that say the same thing in every view.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use cudly_core::domain::Trigger;
use cudly_core::lease::{Acquired, acquire_lease};
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use sqlx::PgPool;

use cudly_testkit::spawn::{Options, TestApp, spawn_app};

fn money(currency: &str, units: i64, nanos: i32) -> Money {
    Money { currency_code: currency.into(), units, nanos }
}

/// An amount in nano-units, from the API's Money.
fn nanos(m: Option<&Money>) -> i128 {
    let m = m.expect("every amount is set");
    assert!(
        m.nanos.abs() < 1_000_000_000
            && (m.units == 0 || m.nanos == 0 || m.units.signum() == i64::from(m.nanos.signum()))
    );
    i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos)
}

/// The run history's first page.
async fn history(app: &TestApp) -> Vec<pb::Collection> {
    let req = pb::ListCollectionsRequest { page_size: 10, page_token: String::new() };
    app.client.clone().list_collections(req).await.unwrap().into_inner().collections
}

/// Every row matching `filter`, page by page.
async fn all_pages(app: &TestApp, filter: &pb::ListRecommendationsRequest) -> (Vec<pb::Recommendation>, pb::Summary) {
    let mut rows = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .list(pb::ListRecommendationsRequest { page_size: 9, page_token: token.clone(), ..filter.clone() })
            .await
            .unwrap();
        rows.extend(page.recommendations);
        if page.next_page_token.is_empty() {
            return (rows, page.summary.unwrap());
        }
        token = page.next_page_token;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn totals_are_exact_per_currency_and_the_minimum_compares_in_its_own(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    app.collect().await;
    // One Azure subscription bills in euros; ten AWS rows save 0.10 each,
    // which binary floats cannot add up to 1.
    sqlx::query("UPDATE recommendations SET currency = 'EUR' WHERE provider = 'azure' AND account_id LIKE '%1'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE recommendations SET estimated_monthly_savings_nanos = 100000000, upfront_cost_nanos = 0
         WHERE id IN (SELECT id FROM recommendations WHERE account_id = '100000000001' ORDER BY id LIMIT 10)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // And large purchases priced to the nano-unit: more digits than a double
    // holds (1,234,567.891234567 has sixteen).
    sqlx::query(
        "UPDATE recommendations SET upfront_cost_nanos = 1234567891234567 + ascii(substr(id::text, 1, 1))
         WHERE id IN (SELECT id FROM recommendations WHERE provider = 'aws' ORDER BY id LIMIT 25)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let (rows, summary) = all_pages(&app, &pb::ListRecommendationsRequest::default()).await;
    assert_eq!(rows.len() as i64, summary.count);
    let mut expected: BTreeMap<String, (i64, i128, i128)> = BTreeMap::new();
    for r in &rows {
        let savings = r.estimated_monthly_savings.as_ref().unwrap();
        for m in [&r.upfront_cost, &r.recurring_monthly_cost, &r.on_demand_monthly_cost] {
            assert_eq!(m.as_ref().unwrap().currency_code, savings.currency_code, "one currency per row");
        }
        let e = expected.entry(savings.currency_code.clone()).or_default();
        e.0 += 1;
        e.1 += nanos(Some(savings));
        e.2 += nanos(r.upfront_cost.as_ref());
    }
    assert_eq!(expected.keys().collect::<Vec<_>>(), ["EUR", "USD"]);
    let totals: BTreeMap<String, (i64, i128, i128)> = summary
        .totals
        .iter()
        .map(|t| {
            assert_eq!(t.monthly_savings.as_ref().unwrap().currency_code, t.currency_code);
            (t.currency_code.clone(), (t.count, nanos(t.monthly_savings.as_ref()), nanos(t.upfront_cost.as_ref())))
        })
        .collect();
    assert_eq!(totals, expected, "each currency totalled exactly, never added to another");

    // The same, per provider and per service of a provider, in the order
    // a chart shows them: provider order (the enum's), service, currency.
    type Key = (i32, String, String);
    let mut by_provider: BTreeMap<Key, (i64, i128, i128)> = BTreeMap::new();
    let mut by_service: BTreeMap<Key, (i64, i128, i128)> = BTreeMap::new();
    for r in &rows {
        let savings = r.estimated_monthly_savings.as_ref().unwrap();
        let currency = savings.currency_code.clone();
        for (map, key) in [
            (&mut by_provider, (r.provider, String::new(), currency.clone())),
            (&mut by_service, (r.provider, r.service.clone(), currency)),
        ] {
            let e = map.entry(key).or_default();
            e.0 += 1;
            e.1 += nanos(Some(savings));
            e.2 += nanos(r.upfront_cost.as_ref());
        }
    }
    let grouped = |groups: &[pb::GroupTotal]| -> Vec<(Key, (i64, i128, i128))> {
        groups
            .iter()
            .map(|g| {
                let t = g.total.as_ref().unwrap();
                let key = (g.provider, g.service.clone(), t.currency_code.clone());
                (key, (t.count, nanos(t.monthly_savings.as_ref()), nanos(t.upfront_cost.as_ref())))
            })
            .collect()
    };
    assert!(by_provider.len() >= 4 && by_service.len() > by_provider.len(), "{by_provider:?}");
    assert_eq!(grouped(&summary.by_provider), by_provider.into_iter().collect::<Vec<_>>());
    assert_eq!(grouped(&summary.by_service), by_service.into_iter().collect::<Vec<_>>());

    let tenths = pb::ListRecommendationsRequest {
        account_ids: vec!["100000000001".into()],
        min_monthly_savings: Some(money("USD", 0, 0)),
        ..Default::default()
    };
    let (rows, summary) = all_pages(&app, &tenths).await;
    let small: Vec<&pb::Recommendation> =
        rows.iter().filter(|r| nanos(r.estimated_monthly_savings.as_ref()) == 100_000_000).collect();
    assert_eq!(small.len(), 10);
    let floats: f64 = small.iter().map(|_| 0.1_f64).sum();
    assert_ne!(floats, 1.0, "what a float sum would have said");
    let (usd_rows, usd_summary) = (rows.len(), &summary.totals[0]);
    assert_eq!(usd_summary.count as usize, usd_rows);
    assert_eq!(
        nanos(usd_summary.monthly_savings.as_ref()),
        rows.iter().map(|r| nanos(r.estimated_monthly_savings.as_ref())).sum::<i128>()
    );

    // The minimum names its currency: rows in another never match.
    let euros = pb::ListRecommendationsRequest { min_monthly_savings: Some(money("EUR", 0, 0)), ..Default::default() };
    let (rows, summary) = all_pages(&app, &euros).await;
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.estimated_monthly_savings.as_ref().unwrap().currency_code == "EUR")
    );
    assert_eq!(summary.totals.iter().map(|t| t.currency_code.as_str()).collect::<Vec<_>>(), ["EUR"]);
    let floor = money("USD", 100, 500_000_000);
    let dollars = pb::ListRecommendationsRequest { min_monthly_savings: Some(floor), ..Default::default() };
    let (rows, _) = all_pages(&app, &dollars).await;
    assert!(!rows.is_empty());
    for r in &rows {
        let s = r.estimated_monthly_savings.as_ref().unwrap();
        assert_eq!(s.currency_code, "USD");
        assert!(nanos(Some(s)) >= 100_500_000_000, "{s:?}");
    }

    // Paging stays exact: every row once, savings descending then id.
    let (rows, summary) = all_pages(&app, &pb::ListRecommendationsRequest::default()).await;
    let ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len() as i64, summary.count, "no row twice, none left out");
    let keys: Vec<(i128, &str)> =
        rows.iter().map(|r| (nanos(r.estimated_monthly_savings.as_ref()), r.id.as_str())).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    assert_eq!(keys, sorted);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_whose_lease_expired_is_abandoned_in_every_view_at_once(pool: PgPool) {
    let opts = Options { with_collector: false, ..Options::default() };
    let app = spawn_app(pool.clone(), opts).await;
    let mut stream =
        app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();

    // A run whose collector dies at once: its lease lives one second.
    let Acquired::Started(run) = acquire_lease(&pool, Trigger::User, Duration::from_secs(1)).await.unwrap() else {
        panic!("no run held the lease");
    };
    let id = run.collection_id.to_string();
    let abandoned = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let f = stream.message().await.unwrap().unwrap();
            if f.collection.as_ref().is_some_and(|c| c.id == id && c.outcome == pb::Outcome::Abandoned as i32) {
                return f;
            }
        }
    })
    .await
    .expect("watchers hear of the expiry though nothing was written");
    assert!(!abandoned.collecting);

    let freshness = app.freshness().await;
    let shown = freshness.collection.unwrap();
    let listed = history(&app).await.into_iter().find(|c| c.id == id).unwrap();
    assert_eq!(listed.outcome, pb::Outcome::Abandoned as i32, "not RUNNING until a takeover records it");
    assert_eq!(
        (shown.outcome, &shown.finished_at, &shown.error, shown.recommendation_count),
        (listed.outcome, &listed.finished_at, &listed.error, listed.recommendation_count),
        "both views say the same"
    );
    assert!(shown.finished_at.is_some() && shown.error.contains("stopped heartbeating"), "{shown:?}");
    assert_eq!(shown.recommendation_count, 0, "it wrote nothing");
    assert_eq!(abandoned.collection.unwrap().finished_at, shown.finished_at);

    // The takeover records what every view already showed.
    let Acquired::Started(next) = acquire_lease(&pool, Trigger::User, Duration::from_secs(30)).await.unwrap() else {
        panic!("the expired lease was not taken over");
    };
    assert!(next.took_over);
    let recorded = history(&app).await.into_iter().find(|c| c.id == id).unwrap();
    assert_eq!((recorded.outcome, &recorded.finished_at), (listed.outcome, &listed.finished_at));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_running_and_a_cancelled_run_show_the_same_count_in_every_view(pool: PgPool) {
    let mut opts = Options::default();
    opts.sim.latency = Duration::from_millis(200);
    let mut app = spawn_app(pool.clone(), opts).await;
    let mut stream =
        app.client.clone().watch_freshness(pb::WatchFreshnessRequest::default()).await.unwrap().into_inner();
    let run = app.refresh().await.unwrap().collection.unwrap();
    // Wait for progress with collected recommendations.
    let running = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let f = stream.message().await.unwrap().unwrap();
            let Some(c) = f.collection.as_ref().filter(|c| c.id == run.id) else { continue };
            if f.collecting && c.providers.iter().any(|p| p.recommendation_count > 0) {
                return f;
            }
        }
    })
    .await
    .expect("progress while the run collects");
    let listed = history(&app).await.into_iter().find(|c| c.id == run.id).unwrap();
    assert_eq!(running.collection.as_ref().unwrap().recommendation_count, 0, "nothing written yet");
    assert_eq!(listed.recommendation_count, 0);
    assert_eq!(listed.outcome, pb::Outcome::Running as i32);

    // The collector stops mid-run: the run is cancelled and wrote nothing.
    app.shutdown_collector().await;
    let ended = app.freshness().await.collection.unwrap();
    let listed = history(&app).await.into_iter().find(|c| c.id == run.id).unwrap();
    assert_eq!(ended.outcome, pb::Outcome::Cancelled as i32);
    assert_eq!((ended.recommendation_count, listed.recommendation_count), (0, 0));
    assert_eq!(ended.outcome, listed.outcome);
}
