//! What a run announces: recorded in its results transaction (the outbox),
//! new and grown recommendations only, each level announced once, nothing
//! from a run that lost its lease, and a wake-up only once it committed.

use std::time::Duration;

use cudly_collector::engine::Collected;
use cudly_collector::notices::NoticeRules;
use cudly_collector::persist::{FinishError, Finished, finish_run};
use cudly_core::domain::{Provider, ProviderStatus, Recommendation};
use cudly_core::lease::Lease;
use cudly_core::money::{Amount, Currency};
use cudly_core::notice::{MAX_NOTICE_ITEMS, NoticePayload};
use cudly_core::schema::NOTICES_CHANNEL;
use cudly_testkit::fixtures::recommendation;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::fencing::{ACCOUNT, hold_accounts_lock, register, start_run, waiting_for_the_lock};

/// The flags' defaults: minimum 0, growth 20 % and 10.
fn defaults() -> NoticeRules {
    cudly_testkit::settings::notice_rules()
}

fn usd(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

/// A recommendation of the registered account, named by its resource type.
fn saving(resource_type: &str, monthly: &str) -> Recommendation {
    Recommendation { estimated_monthly_savings: usd(monthly), ..recommendation(ACCOUNT, resource_type) }
}

fn id_of(resource_type: &str) -> Uuid {
    recommendation(ACCOUNT, resource_type).natural_id()
}

/// A complete sweep of the registered account returning `recommendations`.
fn collected(recommendations: Vec<Recommendation>) -> Collected {
    Collected {
        sources: vec![ACCOUNT.to_string(); recommendations.len()],
        recommendations,
        providers: vec![ProviderStatus::pending(Provider::Aws, 1)],
        complete_accounts: vec![(Provider::Aws, ACCOUNT.to_string())],
    }
}

/// One run from start to finish with these results.
async fn run(pool: &PgPool, rows: &[(&str, &str)], rules: &NoticeRules) -> (Lease, Finished) {
    let (lease, _) = start_run(pool).await;
    let recs = rows.iter().map(|(kind, monthly)| saving(kind, monthly)).collect();
    let finished = finish_run(pool, &lease, collected(recs), rules).await.expect("the run finishes");
    (lease, finished)
}

async fn add_channel(pool: &PgPool, name: &str, enabled: bool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notification_channels (id, name, kind, enabled, settings)
         VALUES ($1, $2, 'webhook', $3, '{\"url\": \"https://127.0.0.1:9/hook\", \"signing_secret_ref\": \"env:CUDLY_CLOUD_SECRET_HOOK\"}')",
    )
    .bind(id)
    .bind(name)
    .bind(enabled)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Every notice, oldest first: (id, item_count, payload).
async fn notices(pool: &PgPool) -> Vec<(Uuid, i32, NoticePayload)> {
    let rows: Vec<(Uuid, i32, serde_json::Value, bool)> =
        sqlx::query_as("SELECT id, item_count, payload, test FROM notices ORDER BY created_at, id")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, count, payload, test)| {
            assert!(!test, "a run's notice is not a test notice");
            (id, count, serde_json::from_value(payload).expect("the payload is a NoticePayload"))
        })
        .collect()
}

/// Every delivery: (notice, channel, status, attempts).
async fn deliveries(pool: &PgPool) -> Vec<(Uuid, Uuid, String, i32)> {
    sqlx::query_as("SELECT notice_id, channel_id, status, attempts FROM notice_deliveries ORDER BY created_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The announced level of each recommendation, by resource type.
async fn level(pool: &PgPool, resource_type: &str) -> Option<(String, Amount)> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT currency, savings_nanos FROM notified_levels WHERE recommendation_id = $1",
    )
    .bind(id_of(resource_type))
    .fetch_optional(pool)
    .await
    .unwrap()
    .map(|(currency, nanos)| (currency, Amount::from_nanos(nanos)))
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    // `table` is one of this file's literals.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(pool).await.unwrap()
}

/// The items a payload names: (resource type, savings, previous savings),
/// in the payload's order.
fn named(payload: &NoticePayload) -> Vec<(String, String, Option<String>)> {
    payload
        .items
        .iter()
        .map(|i| (i.resource_type.clone(), i.monthly_savings.clone(), i.previous_monthly_savings.clone()))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn the_same_data_twice_is_announced_once_to_each_enabled_channel(pool: PgPool) {
    register(&pool).await;
    let hook = add_channel(&pool, "hook", true).await;
    add_channel(&pool, "paused", false).await;
    let rules = NoticeRules { console_url: Some("https://cudly.example.com/".into()), ..defaults() };
    let rows = [("m5.large", "30"), ("c6i.large", "45.5"), ("r6g.large", "12.25")];

    let (first, finished) = run(&pool, &rows, &rules).await;
    let recorded = finished.notice.expect("the first run announces");
    assert_eq!((recorded.item_count, recorded.deliveries), (3, 1));
    let (second, finished) = run(&pool, &rows, &rules).await;
    assert_eq!(finished.notice, None, "the second run has nothing new");

    let all = notices(&pool).await;
    assert_eq!(all.len(), 1, "exactly one notice for two runs of the same data");
    let (id, item_count, payload) = &all[0];
    assert_eq!((*id, *item_count), (recorded.notice_id, 3));
    assert_eq!(payload.kind, "recommendations.new_savings");
    assert_eq!(payload.collection_id, Some(first.collection_id));
    assert_ne!(payload.collection_id, Some(second.collection_id));
    assert_eq!(payload.outcome.as_deref(), Some("succeeded"));
    assert_eq!(payload.console_url.as_deref(), Some("https://cudly.example.com/"));
    assert_eq!(
        named(payload),
        [
            ("c6i.large".into(), "45.5".into(), None),
            ("m5.large".into(), "30".into(), None),
            ("r6g.large".into(), "12.25".into(), None)
        ],
        "every row, largest savings first, all new"
    );
    assert_eq!(payload.omitted, 0);
    assert_eq!(payload.items[0].id, id_of("c6i.large"));
    assert_eq!(payload.items[0].account_id, ACCOUNT);
    assert_eq!(
        deliveries(&pool).await,
        [(recorded.notice_id, hook, "pending".to_string(), 0)],
        "one pending delivery, to the enabled channel only"
    );
    assert_eq!(level(&pool, "c6i.large").await, Some(("USD".into(), usd("45.5"))));
    assert_eq!(count(&pool, "notified_levels").await, 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_recommendation_that_grew_by_a_quarter_is_announced_alone_with_its_previous_savings(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    run(&pool, &[("m5.large", "100"), ("c6i.large", "100")], &defaults()).await;

    let (_, finished) = run(&pool, &[("m5.large", "125"), ("c6i.large", "100")], &defaults()).await;
    assert_eq!(finished.notice.as_ref().map(|n| n.item_count), Some(1));
    let all = notices(&pool).await;
    assert_eq!(all.len(), 2);
    let (_, item_count, payload) = &all[1];
    assert_eq!(*item_count, 1);
    assert_eq!(named(payload), [("m5.large".into(), "125".into(), Some("100".into()))]);
    assert_eq!(payload.totals.len(), 1);
    assert_eq!((payload.totals[0].count, payload.totals[0].monthly_savings.as_str()), (1, "125"));
    assert_eq!(level(&pool, "m5.large").await, Some(("USD".into(), usd("125"))), "the level follows");
    assert_eq!(deliveries(&pool).await.len(), 2, "one delivery per notice");
}

#[sqlx::test(migrations = "../migrations")]
async fn growth_below_the_share_is_not_announced_and_does_not_move_the_level(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    run(&pool, &[("m5.large", "1000")], &defaults()).await;

    let (_, finished) = run(&pool, &[("m5.large", "1050")], &defaults()).await;
    assert_eq!(finished.notice, None, "5 % is below the 20 % share (though 50 is above the amount of 10)");
    assert_eq!(level(&pool, "m5.large").await, Some(("USD".into(), usd("1000"))));
    // 1210 is 21 % above the announced 1000 (only 15 % above the 1050 seen
    // since): growth counts from the announced level.
    let (_, finished) = run(&pool, &[("m5.large", "1210")], &defaults()).await;
    assert_eq!(finished.notice.as_ref().map(|n| n.item_count), Some(1));
    assert_eq!(named(&notices(&pool).await[1].2), [("m5.large".into(), "1210".into(), Some("1000".into()))]);
    assert_eq!(count(&pool, "notices").await, 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn growth_by_the_share_but_less_than_the_amount_is_not_announced(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    run(&pool, &[("t3.micro", "20")], &defaults()).await;

    let (_, finished) = run(&pool, &[("t3.micro", "25")], &defaults()).await;
    assert_eq!(finished.notice, None, "25 % more, but 5 is below the amount of 10");
    assert_eq!(level(&pool, "t3.micro").await, Some(("USD".into(), usd("20"))));
    // Both thresholds met: 25 % and 10.
    let (_, finished) = run(&pool, &[("t3.micro", "30")], &defaults()).await;
    assert_eq!(finished.notice.map(|n| n.item_count), Some(1));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_level_is_never_lowered_so_a_dip_and_return_is_not_announced_again(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    run(&pool, &[("m5.large", "100")], &defaults()).await;

    let (_, dipped) = run(&pool, &[("m5.large", "80")], &defaults()).await;
    let (_, back) = run(&pool, &[("m5.large", "100")], &defaults()).await;
    assert_eq!((dipped.notice, back.notice), (None, None), "back at the announced level: nothing new");
    assert_eq!(level(&pool, "m5.large").await, Some(("USD".into(), usd("100"))));
    assert_eq!(count(&pool, "notices").await, 1);

    // Evicted (a complete sweep without it), then back: its level stayed.
    let (_, gone) = run(&pool, &[("c6i.large", "50")], &defaults()).await;
    assert_eq!(gone.evicted, 1);
    let (_, returned) = run(&pool, &[("c6i.large", "50"), ("m5.large", "100")], &defaults()).await;
    assert_eq!(returned.notice, None, "a returning recommendation is judged against its announced level");
}

#[sqlx::test(migrations = "../migrations")]
async fn savings_below_the_minimum_are_not_announced_and_compare_in_their_own_currency(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    let rules = NoticeRules { min_savings: usd("50"), ..defaults() };
    let (lease, _) = start_run(&pool).await;
    let euros = Recommendation { currency: Currency::parse("EUR").unwrap(), ..saving("r6g.large", "50") };
    let recs = vec![saving("t3.micro", "49.999999999"), saving("m5.large", "50"), euros];
    let finished = finish_run(&pool, &lease, collected(recs), &rules).await.unwrap();

    assert_eq!(finished.notice.map(|n| n.item_count), Some(2));
    let (_, _, payload) = &notices(&pool).await[0];
    let mut kinds: Vec<_> = payload.items.iter().map(|i| (i.resource_type.as_str(), i.currency.as_str())).collect();
    kinds.sort();
    assert_eq!(kinds, [("m5.large", "USD"), ("r6g.large", "EUR")], "50 in either currency is at the minimum");
    assert_eq!(level(&pool, "t3.micro").await, None, "below the minimum: no level either");

    // A currency change is new: judged with no level to grow from.
    let (_, finished) = run(&pool, &[("r6g.large", "50")], &rules).await;
    assert_eq!(finished.notice.map(|n| n.item_count), Some(1));
    let (_, _, payload) = &notices(&pool).await[1];
    assert_eq!(named(payload), [("r6g.large".into(), "50".into(), None)]);
    assert_eq!(level(&pool, "r6g.large").await, Some(("USD".into(), usd("50"))));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_that_lost_its_lease_records_no_notice_and_moves_no_level(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    let (old, _) = start_run(&pool).await;
    // It passes the check before its transaction, then waits for the lock
    // while its lease expires and a newer run takes over.
    let lock = hold_accounts_lock(&pool).await;
    let stale = {
        let pool = pool.clone();
        let recs = vec![saving("m5.large", "100")];
        tokio::spawn(async move { finish_run(&pool, &old, collected(recs), &defaults()).await })
    };
    waiting_for_the_lock(&pool, 1).await;
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    let (newer, run) = start_run(&pool).await;
    assert!(run.took_over);
    lock.commit().await.unwrap();

    assert!(matches!(stale.await.unwrap(), Err(FinishError::LeaseLost)));
    assert_eq!(count(&pool, "notices").await, 0, "no notice from a run that lost its lease");
    assert_eq!(count(&pool, "notice_deliveries").await, 0);
    assert_eq!(count(&pool, "notified_levels").await, 0, "no level moved");

    // So the run that took over announces it.
    let finished = finish_run(&pool, &newer, collected(vec![saving("m5.large", "100")]), &defaults()).await.unwrap();
    assert_eq!(finished.notice.map(|n| n.item_count), Some(1));
    assert_eq!(notices(&pool).await[0].2.collection_id, Some(newer.collection_id));
}

#[sqlx::test(migrations = "../migrations")]
async fn with_no_enabled_channel_nothing_is_recorded_so_the_first_channel_hears_everything(pool: PgPool) {
    register(&pool).await;
    let paused = add_channel(&pool, "paused", false).await;
    let rows = [("m5.large", "30"), ("c6i.large", "45")];
    let (_, finished) = run(&pool, &rows, &defaults()).await;
    assert_eq!(finished.notice, None);
    assert_eq!((count(&pool, "notices").await, count(&pool, "notified_levels").await), (0, 0), "no notice, no level");

    sqlx::query("UPDATE notification_channels SET enabled = true WHERE id = $1")
        .bind(paused)
        .execute(&pool)
        .await
        .unwrap();
    let (_, finished) = run(&pool, &rows, &defaults()).await;
    assert_eq!(finished.notice.map(|n| n.item_count), Some(2), "the whole picture, not just what changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn totals_are_exact_per_currency_and_items_are_capped_with_the_rest_counted(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    // 60 USD amounts of a tenth plus a nano-unit each (floats drift on
    // tenths), and one EUR amount.
    let mut recs: Vec<Recommendation> =
        (0..60).map(|i| saving(&format!("type-{i:02}"), &format!("{}.100000001", i + 1))).collect();
    let euros = Recommendation { currency: Currency::parse("EUR").unwrap(), ..saving("eur", "0.3") };
    recs.push(euros);
    let expected_usd =
        (0..60).fold(Amount::ZERO, |sum, i| sum.checked_add(usd(&format!("{}.100000001", i + 1))).unwrap());
    assert_eq!(expected_usd.to_string(), "1836.00000006");
    let (lease, _) = start_run(&pool).await;
    let finished = finish_run(&pool, &lease, collected(recs), &defaults()).await.unwrap();

    assert_eq!(finished.notice.map(|n| n.item_count), Some(61));
    let (_, item_count, payload) = &notices(&pool).await[0];
    assert_eq!(*item_count, 61);
    let totals: Vec<_> =
        payload.totals.iter().map(|t| (t.currency.as_str(), t.count, t.monthly_savings.as_str())).collect();
    assert_eq!(totals, [("EUR", 1, "0.3"), ("USD", 60, "1836.00000006")]);
    assert_eq!(payload.items.len(), MAX_NOTICE_ITEMS);
    assert_eq!(payload.omitted, 11);
    let listed: Vec<Amount> = payload.items.iter().map(|i| usd(&i.monthly_savings)).collect();
    assert_eq!(listed[0], usd("60.100000001"), "the largest first");
    assert!(listed.windows(2).all(|w| w[0] >= w[1]), "savings descending");
    assert_eq!(*listed.last().unwrap(), usd("11.100000001"), "the 50 largest");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_wake_up_names_the_delivery_and_comes_only_with_the_commit(pool: PgPool) {
    register(&pool).await;
    add_channel(&pool, "hook", true).await;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(NOTICES_CHANNEL).await.unwrap();

    // A run that lost its lease inside its transaction sends nothing…
    let (old, _) = start_run(&pool).await;
    let lock = hold_accounts_lock(&pool).await;
    let stale = {
        let pool = pool.clone();
        tokio::spawn(async move { finish_run(&pool, &old, collected(vec![saving("old", "99")]), &defaults()).await })
    };
    waiting_for_the_lock(&pool, 1).await;
    sqlx::query("UPDATE collection_state SET lease_expires_at = now() - interval '1 ms'").execute(&pool).await.unwrap();
    lock.commit().await.unwrap();
    assert!(matches!(stale.await.unwrap(), Err(FinishError::LeaseLost)));

    // …so the first wake-up is the next run's, sent at its commit: its
    // delivery is visible to every other connection by then.
    let (_, finished) = run(&pool, &[("m5.large", "30")], &defaults()).await;
    let notice = finished.notice.expect("a notice");
    let woken = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.expect("woken").unwrap();
    let delivery: Uuid = woken.payload().parse().expect("the payload is a delivery id");
    let (notice_id, status): (Uuid, String) =
        sqlx::query_as("SELECT notice_id, status FROM notice_deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_one(&pool)
            .await
            .expect("the delivery it names is committed");
    assert_eq!((notice_id, status.as_str()), (notice.notice_id, "pending"));
}
