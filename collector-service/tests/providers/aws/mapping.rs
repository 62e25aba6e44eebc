//! Every page collected, every documented field mapped to ours.

use cudly_collector::providers::RequestCount;
use cudly_core::domain::{CommitmentType, PaymentOption, Provider};
use cudly_core::money::{Amount, Currency};
use serde_json::json;

use super::answers::{detail_of, ri_detail, ri_page, sp_detail, sp_page};
use super::fake::{EC2, Fake, RI, SP, key, start};
use super::{account, amount, backend, config, fetch};

#[tokio::test]
async fn every_page_is_collected_and_mapped_and_the_lookback_goes_with_every_call() {
    let mut fake = Fake::default();
    fake.pages
        .insert(key(RI, EC2, ""), ri_page(vec![ri_detail("123456789012", "m5.large", "79.2000000000")], Some("p2")));
    fake.pages.insert(key(RI, EC2, "p2"), ri_page(vec![ri_detail("123456789012", "m5.xlarge", "12.00")], Some("p3")));
    fake.pages.insert(key(RI, EC2, "p3"), ri_page(vec![ri_detail("123456789012", "m5.2xlarge", "3.50")], None));
    fake.pages.insert(key(SP, "COMPUTE_SP", ""), sp_page("COMPUTE_SP", sp_detail("", "", "1.0", "0", "2.0")));
    let (addr, state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();

    let recs = fetch(&backend, &acct, "ec2", &calls).await;
    assert_eq!(recs.len(), 3, "three pages, one recommendation each");
    assert_eq!(calls.get(), (3, 0), "each page is a request");
    let first = &recs[0];
    assert_eq!(
        (first.provider, first.account_id.as_str(), first.account_name.as_str()),
        (Provider::Aws, "123456789012", "Account 123456789012")
    );
    assert_eq!((first.service.as_str(), first.region.as_str()), ("ec2", "us-east-1"));
    assert_eq!((first.resource_type.as_str(), first.platform.as_str()), ("m5.large", "Linux/UNIX"));
    assert_eq!(
        (first.commitment_type, first.term_months, first.payment_option),
        (CommitmentType::ReservedInstance, 12, PaymentOption::NoUpfront)
    );
    assert_eq!((first.currency, first.recommended_count), (Currency::USD, 4.0));
    assert_eq!(
        (first.upfront_cost, first.recurring_monthly_cost, first.on_demand_monthly_cost),
        (Amount::ZERO, amount("201.48"), amount("280.32"))
    );
    assert_eq!((first.estimated_monthly_savings, first.savings_percentage), (amount("79.2"), 28.125));

    let seen = &state.lock().unwrap().seen;
    assert_eq!(seen.len(), 3);
    for (_, _, body) in seen {
        assert_eq!(body["LookbackPeriodInDays"], "SIXTY_DAYS", "{body}");
        assert_eq!(body["TermInYears"], "ONE_YEAR");
        assert_eq!(body["PaymentOption"], "NO_UPFRONT");
        assert_eq!(body["AccountId"], "123456789012", "the account's own recommendations");
    }
    assert_eq!(seen[1].2["NextPageToken"], "p2");
}

#[tokio::test]
async fn every_reserved_instance_service_gets_its_documented_type_without_a_repeated_part() {
    let mut fake = Fake::default();
    let pages = [
        (
            "Amazon Relational Database Service",
            json!({"RDSInstanceDetails": {"Family": "db.r5", "InstanceType": "db.r5.large",
                "Region": "US East (N. Virginia)", "DatabaseEngine": "PostgreSQL", "DatabaseEdition": "",
                "DeploymentOption": "Multi-AZ", "LicenseModel": "No license required",
                "CurrentGeneration": true, "SizeFlexEligible": true}}),
        ),
        (
            "Amazon ElastiCache",
            json!({"ElastiCacheInstanceDetails": {"Family": "cache.r6g", "NodeType": "cache.r6g.large",
                "Region": "EU (Ireland)", "ProductDescription": "redis", "CurrentGeneration": true,
                "SizeFlexEligible": true}}),
        ),
        (
            "Amazon Redshift",
            json!({"RedshiftInstanceDetails": {"Family": "ra3", "NodeType": "ra3.xlplus",
                "Region": "US East (Ohio)", "CurrentGeneration": true, "SizeFlexEligible": false}}),
        ),
    ];
    for (service, instance) in pages {
        fake.pages.insert(key(RI, service, ""), ri_page(vec![detail_of(instance, "USD")], None));
    }
    // OpenSearch: the class, and a size that already carries it (as seen),
    // that does not, or that lacks the suffix: one type each time.
    let search = |class: &str, size: &str| {
        detail_of(
            json!({"ESInstanceDetails": {"InstanceClass": class, "InstanceSize": size,
                "Region": "US West (Oregon)", "CurrentGeneration": true, "SizeFlexEligible": false}}),
            "USD",
        )
    };
    fake.pages.insert(
        key(RI, "Amazon OpenSearch Service", ""),
        ri_page(
            vec![
                search("c6g", "c6g.xlarge.search"),
                search("r6g", "large.search"),
                search("m6g", "2xlarge"),
                search("m5", "m5.large.elasticsearch"),
            ],
            None,
        ),
    );
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();
    let types = |recs: &[cudly_core::domain::Recommendation]| {
        recs.iter().map(|r| (r.resource_type.clone(), r.platform.clone(), r.region.clone())).collect::<Vec<_>>()
    };
    let owned = |t: &[(&str, &str, &str)]| {
        t.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect::<Vec<_>>()
    };

    let rds = fetch(&backend, &acct, "rds", &calls).await;
    assert_eq!(types(&rds), owned(&[("db.r5.large", "PostgreSQL (Multi-AZ)", "us-east-1")]));
    let cache = fetch(&backend, &acct, "elasticache", &calls).await;
    assert_eq!(types(&cache), owned(&[("cache.r6g.large", "redis", "eu-west-1")]));
    let redshift = fetch(&backend, &acct, "redshift", &calls).await;
    assert_eq!(types(&redshift), owned(&[("ra3.xlplus", "", "us-east-2")]));
    let opensearch = fetch(&backend, &acct, "opensearch", &calls).await;
    assert_eq!(
        types(&opensearch),
        owned(&[
            ("c6g.xlarge.search", "", "us-west-2"),
            ("r6g.large.search", "", "us-west-2"),
            ("m6g.2xlarge.search", "", "us-west-2"),
            ("m5.large.elasticsearch", "", "us-west-2"),
        ])
    );
    for rec in rds.iter().chain(&cache).chain(&redshift).chain(&opensearch) {
        assert_eq!(rec.upfront_cost.to_string(), "1412");
        assert_eq!(rec.estimated_monthly_savings.to_string(), "75.644285577", "ten decimals, read exactly");
        assert_eq!(rec.on_demand_monthly_cost.to_string(), "193.310952381");
        assert_eq!((rec.break_even_months, rec.recommended_count), (7.3042938468, 2.0));
        assert!(
            !rec.resource_type.split('.').collect::<Vec<_>>().windows(2).any(|w| w[0] == w[1]),
            "{}",
            rec.resource_type
        );
    }
}

#[tokio::test]
async fn savings_plans_are_priced_per_month_of_730_hours_in_the_currency_reported() {
    let mut fake = Fake::default();
    fake.pages.insert(key(SP, "COMPUTE_SP", ""), sp_page("COMPUTE_SP", sp_detail("", "", "1.0", "0", "2.0")));
    let mut euros = sp_detail("EU (Frankfurt)", "m5", "0.421", "1200", "0.9");
    euros["CurrencyCode"] = json!("EUR");
    fake.pages.insert(key(SP, "EC2_INSTANCE_SP", ""), sp_page("EC2_INSTANCE_SP", euros));
    let (addr, _state) = start(fake).await;
    let backend = backend(config(addr, 100.0, 10)).await;
    let acct = account("123456789012", None);
    let calls = RequestCount::default();

    let sp = fetch(&backend, &acct, "compute_savings_plans", &calls).await;
    assert_eq!(sp.len(), 1);
    let plan = &sp[0];
    // 2 USD an hour of on-demand spend is 1,460 USD a month of 730 hours;
    // 1 USD an hour committed is 730 USD a month.
    assert_eq!(plan.on_demand_monthly_cost, amount("1460"));
    assert_eq!(plan.recurring_monthly_cost, amount("730"));
    assert_eq!(plan.estimated_monthly_savings, amount("730.123456789"), "EstimatedMonthlySavingsAmount, exactly");
    assert_eq!((plan.recommended_count, plan.savings_percentage, plan.currency), (1.0, 50.0, Currency::USD));
    assert_eq!(
        (plan.commitment_type, plan.region.as_str(), plan.resource_type.as_str()),
        (CommitmentType::SavingsPlan, "global", "compute")
    );

    let ec2 = fetch(&backend, &acct, "ec2_instance_savings_plans", &calls).await;
    let plan = &ec2[0];
    assert_eq!(plan.currency.as_str(), "EUR", "the detail's CurrencyCode is recorded, not assumed");
    assert_eq!((plan.region.as_str(), plan.resource_type.as_str()), ("eu-central-1", "m5"));
    assert_eq!(plan.on_demand_monthly_cost, amount("657"), "0.9 × 730");
    // 0.421 × 730 = 307.33 committed a month, less the 1,200 upfront over
    // the 12 months of the term.
    assert_eq!(plan.recurring_monthly_cost, amount("207.33"));
    assert_eq!(plan.upfront_cost, amount("1200"));
}
