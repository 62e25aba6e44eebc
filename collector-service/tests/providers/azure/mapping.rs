//! Every page collected, and look-back totals read as amounts per month of
//! 730 hours.

use cudly_collector::providers::{RequestCount, RunScope};
use cudly_core::domain::{CommitmentType, PaymentOption, Provider, Recommendation};
use cudly_core::money::{Amount, Currency};

use super::answers::documented_items;
use super::fake::start;
use super::{CLIENT_A, SUB_A, SecretFile, account, amount, backend, fetch, fetch_in};

#[tokio::test]
async fn reservation_recommendations_are_collected_across_every_page_and_mapped_to_monthly_figures() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();

    let one_year = fetch_in(&run, &backend, &account, "virtual_machines", 12, &calls).await;
    // A token, then three pages: the nextLinks were followed to the end.
    assert_eq!(calls.get(), (4, 0));
    let three_years = fetch_in(&run, &backend, &account, "virtual_machines", 36, &calls).await;
    assert_eq!(calls.get(), (4, 0), "the run's 3-year sweep reuses the listing, which holds every term");

    let key = |r: &Recommendation| (r.resource_type.clone(), r.region.clone());
    let mut keys: Vec<_> = one_year.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [("Standard_D2s_v5".into(), "westeurope".into()), ("Standard_D4s_v5".into(), "eastus".into())],
        "page 1 and page 2 both count"
    );
    let mut keys: Vec<_> = three_years.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [("Standard_D2s_v5".into(), "westeurope".into()), ("Standard_E8s_v5".into(), "northeurope".into())],
        "page 1 and page 3 both count"
    );

    let d2 = one_year.iter().find(|r| r.resource_type == "Standard_D2s_v5").unwrap();
    assert_eq!(
        (d2.provider, d2.account_id.as_str(), d2.account_name.as_str()),
        (Provider::Azure, SUB_A, "Payments prod")
    );
    assert_eq!((d2.service.as_str(), d2.platform.as_str()), ("virtual_machines", ""));
    assert_eq!(
        (d2.commitment_type, d2.term_months, d2.payment_option),
        (CommitmentType::ReservedInstance, 12, PaymentOption::Monthly)
    );
    assert_eq!((d2.recommended_count, d2.currency), (4.0, Currency::USD));
    // 2,880 on demand and 2,016 reserved over the 30-day look-back (720
    // hours): per month of 730 hours.
    assert_eq!(d2.on_demand_monthly_cost, amount("2920"), "{d2:?}");
    assert_eq!(d2.recurring_monthly_cost, amount("2044"), "{d2:?}");
    assert_eq!(d2.estimated_monthly_savings, amount("876"), "{d2:?}");
    assert!((d2.savings_percentage - 30.0).abs() < 1e-9, "{d2:?}");
    assert_eq!((d2.upfront_cost, d2.break_even_months), (Amount::ZERO, 0.0));
    let e8 = three_years.iter().find(|r| r.resource_type == "Standard_E8s_v5").unwrap();
    // 7,200 and 3,240 over 720 hours, from the `modern` kind's amounts.
    assert_eq!((e8.on_demand_monthly_cost, e8.estimated_monthly_savings), (amount("7300"), amount("4015")), "{e8:?}");
    assert_eq!((e8.term_months, e8.recommended_count), (36, 2.0));
    // The item that says its costs cover 700 hours.
    let d4 = one_year.iter().find(|r| r.resource_type == "Standard_D4s_v5").unwrap();
    assert_eq!((d4.on_demand_monthly_cost, d4.recurring_monthly_cost), (amount("730"), amount("474.5")));

    let requests = fake.arm_requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[0].contains(
            "api-version=2024-08-01&$filter=properties/scope eq 'Single' AND properties/resourceType eq \
             'VirtualMachines' AND properties/lookBackPeriod eq 'Last30Days'"
        ),
        "{requests:?}"
    );
    assert!(requests[1].ends_with("$skiptoken=1") && requests[2].ends_with("$skiptoken=2"), "{requests:?}");

    // A new run lists afresh, even a second later: it reports only what it
    // fetched itself.
    fetch(&backend, &account, "virtual_machines", 12, &calls).await;
    assert_eq!(fake.arm_requests().len(), 6);
}

#[tokio::test]
async fn the_reference_examples_are_read_as_look_back_totals_per_month_of_730_hours() {
    let secret = SecretFile::new("client-secret-a");
    let fake = start(|f| {
        f.secrets.insert(CLIENT_A, "client-secret-a".into());
        f.pages.insert("VirtualMachines", vec![documented_items()]);
    })
    .await;
    let backend = backend(&fake, vec![12, 36]);
    let account = account(SUB_A, "Payments prod", CLIENT_A, &secret);
    let calls = RequestCount::new();
    let run = RunScope::default();
    let one_year = fetch_in(&run, &backend, &account, "virtual_machines", 12, &calls).await;
    let three_years = fetch_in(&run, &backend, &account, "virtual_machines", 36, &calls).await;

    // One Standard_DS1_v2 over the 7-day look-back (168 hours): 12.0785105
    // is about $0.072 an hour, pay-as-you-go; 52.48 a month, not 1.01 (a
    // term total over 12 months) and not 12.08.
    let ds1 = one_year.iter().find(|r| r.resource_type == "Standard_DS1_v2").unwrap();
    assert_eq!(ds1.on_demand_monthly_cost, amount("52.484003958"));
    assert_eq!(ds1.recurring_monthly_cost, amount("49.926631376"));
    assert_eq!(ds1.estimated_monthly_savings, amount("2.557372583"));
    assert_eq!((ds1.region.as_str(), ds1.recommended_count, ds1.currency), ("westus", 1.0, Currency::USD));
    // The same figures covering the 701 hours its totalHours names.
    let ds1_p3y = &three_years[0];
    assert_eq!((ds1_p3y.term_months, ds1_p3y.on_demand_monthly_cost), (36, amount("12.578192104")));
    assert_eq!(ds1_p3y.estimated_monthly_savings, amount("0.612893857"));
    // The modern item: 60 days, 1,440 hours.
    let sql = one_year.iter().find(|r| r.resource_type == "SQLDB_BC_Compute_Gen5").unwrap();
    assert_eq!(sql.on_demand_monthly_cost, amount("47251.713587891"));
    assert_eq!(sql.recurring_monthly_cost, amount("30748.715277778"));
    assert_eq!(sql.estimated_monthly_savings, amount("16502.998310114"));
    assert_eq!((sql.region.as_str(), sql.recommended_count, sql.term_months), ("westus2", 35.0, 12));
    assert!(one_year.iter().chain(&three_years).all(|r| r.payment_option == PaymentOption::Monthly));
}
