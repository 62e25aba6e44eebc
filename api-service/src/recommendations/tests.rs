//! Request validation field by field, and the listing query it builds.

use cudly_core::domain::Provider;
use cudly_core::money::{Amount, Currency};
use cudly_proto::google::r#type::Money;
use cudly_proto::recommendations::v1 as pb;
use proptest::prelude::*;
use uuid::Uuid;

use super::{DEFAULT_PAGE_SIZE, Filters, MAX_PAGE_SIZE, parse_request};
use crate::error::Error;
use crate::page_token;

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
        (pb::ListRecommendationsRequest { min_monthly_savings: Some(usd(-5, 0)), ..request() }, "min_monthly_savings"),
        (pb::ListRecommendationsRequest { min_monthly_savings: Some(usd(5, -1)), ..request() }, "min_monthly_savings"),
        (
            pb::ListRecommendationsRequest {
                min_monthly_savings: Some(Money { currency_code: String::new(), units: 5, nanos: 0 }),
                ..request()
            },
            "min_monthly_savings",
        ),
        (
            pb::ListRecommendationsRequest {
                min_monthly_savings: Some(Money { currency_code: "dollars".into(), units: 5, nanos: 0 }),
                ..request()
            },
            "min_monthly_savings.currency_code",
        ),
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

fn usd(units: i64, nanos: i32) -> Money {
    Money { currency_code: "USD".into(), units, nanos }
}

#[test]
fn the_savings_minimum_names_its_currency() {
    let q =
        parse_request(pb::ListRecommendationsRequest { min_monthly_savings: Some(usd(500, 250_000_000)), ..request() })
            .unwrap();
    assert_eq!(q.filters.min_monthly_savings, Some((Currency::USD, Amount::parse("500.25").unwrap())));
    let eur_only = Money { currency_code: "eur".into(), units: 0, nanos: 0 };
    let q = parse_request(pb::ListRecommendationsRequest { min_monthly_savings: Some(eur_only), ..request() }).unwrap();
    assert_eq!(q.filters.min_monthly_savings, Some((Currency::parse("EUR").unwrap(), Amount::ZERO)));
    let nothing = Money::default();
    let q = parse_request(pb::ListRecommendationsRequest { min_monthly_savings: Some(nothing), ..request() }).unwrap();
    assert_eq!(q.filters.min_monthly_savings, None, "an empty Money is no minimum");
    let a =
        Filters { min_monthly_savings: Some((Currency::USD, Amount::from_units(5).unwrap())), ..Filters::default() };
    let b = Filters {
        min_monthly_savings: Some((Currency::parse("EUR").unwrap(), Amount::from_units(5).unwrap())),
        ..Filters::default()
    };
    assert_ne!(a.fingerprint(), b.fingerprint(), "a token for USD is not one for EUR");
}

#[test]
fn a_token_only_works_with_the_filters_it_was_issued_for() {
    let aws = Filters { provider: Some(Provider::Aws), ..Filters::default() };
    let id = Uuid::new_v4();
    let token = page_token::encode(aws.fingerprint(), &(10_000_000_000_i64, id));
    let same =
        pb::ListRecommendationsRequest { provider: Provider::Aws.to_proto(), page_token: token.clone(), ..request() };
    assert_eq!(parse_request(same).unwrap().after, Some((10_000_000_000, id)));
    let other = pb::ListRecommendationsRequest { page_token: token, ..request() };
    assert!(parse_request(other).is_err());
}

/// A field's value and whether the service must accept it.
type Drawn<T> = (T, bool);

fn text_field() -> impl Strategy<Value = Drawn<String>> {
    prop_oneof![
        4 => "[a-z0-9_-]{0,40}".prop_map(|v| (v, true)),
        1 => "[a-z]{257,300}".prop_map(|v| (v, false)),
        1 => "[a-z]{0,8}[\u{0}-\u{1f}\u{7f}][a-z]{0,8}".prop_map(|v| (v, false)),
    ]
}

fn money_field() -> impl Strategy<Value = Drawn<Option<Money>>> {
    let currency = prop_oneof!["USD", "EUR", "jpy"];
    prop_oneof![
        2 => Just((None, true)),
        4 => (currency.clone(), 0..10_000_000_i64, 0..1_000_000_000_i32)
            .prop_map(|(c, units, nanos)| (Some(Money { currency_code: c.to_string(), units, nanos }), true)),
        1 => (currency.clone(), i64::MIN..0, -999_999_999..=0_i32)
            .prop_map(|(c, units, nanos)| (Some(Money { currency_code: c.to_string(), units, nanos }), false)),
        1 => (currency, 1..1_000_i64, -999_999_999..0_i32)
            .prop_map(|(c, units, nanos)| (Some(Money { currency_code: c.to_string(), units, nanos }), false)),
        1 => (1..1_000_i64).prop_map(|units| (Some(Money { currency_code: String::new(), units, nanos: 0 }), false)),
        1 => "[A-Za-z$]{0,2}|[A-Z]{4,6}".prop_map(|c| (Some(Money { currency_code: c, units: 1, nanos: 0 }), false)),
    ]
}

fn request_fields() -> impl Strategy<Value = Vec<(&'static str, bool, pb::ListRecommendationsRequest)>> {
    (
        prop_oneof![4 => (0..=3_i32).prop_map(|v| (v, true)), 1 => (4..=i32::MAX).prop_map(|v| (v, false)),
                    1 => (i32::MIN..0).prop_map(|v| (v, false))],
        text_field(),
        text_field(),
        prop_oneof![
            4 => proptest::collection::vec("[0-9a-z-]{1,40}", 0..20).prop_map(|v| (v, true)),
            1 => proptest::collection::vec("[0-9a-z-]{1,40}", 0..5).prop_map(|mut v| { v.push(String::new()); (v, false) }),
            1 => proptest::collection::vec("[0-9]{1,4}[\n\t][0-9]{1,4}", 1..3).prop_map(|v| (v, false)),
        ],
        money_field(),
        prop_oneof![4 => (0.0..=100.0_f64).prop_map(|v| (v, true)), 1 => (100.001..1e12_f64).prop_map(|v| (v, false)),
                    1 => (-1e12..-0.001_f64).prop_map(|v| (v, false)), 1 => Just((f64::NAN, false))],
        prop_oneof![4 => (0..=i32::MAX).prop_map(|v| (v, true)), 1 => (i32::MIN..0).prop_map(|v| (v, false))],
        prop_oneof![4 => Just((String::new(), true)), 1 => ".{1,64}".prop_map(|v| (v, false))],
    )
        .prop_map(|(provider, service, region, accounts, savings, pct, size, token)| {
            let req = pb::ListRecommendationsRequest {
                provider: provider.0,
                service: service.0,
                region: region.0,
                account_ids: accounts.0,
                min_monthly_savings: savings.0,
                min_savings_percentage: pct.0,
                page_size: size.0,
                page_token: token.0,
            };
            let valid = [
                ("provider", provider.1),
                ("service", service.1),
                ("region", region.1),
                ("account_ids", accounts.1),
                ("min_monthly_savings", savings.1),
                ("min_savings_percentage", pct.1),
                ("page_size", size.1),
                ("page_token", token.1),
            ];
            valid.into_iter().map(|(name, ok)| (name, ok, req.clone())).collect()
        })
}

// Fuzzing request validation with valid and invalid values of every
// field: a request whose fields are all valid is a query; one with any
// invalid field is INVALID_ARGUMENT naming one of its invalid fields;
// never a panic.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_valid_request_is_a_query_and_every_invalid_one_names_a_bad_field(fields in request_fields()) {
        let req = fields[0].2.clone();
        let invalid: Vec<&str> = fields.iter().filter(|(_, ok, _)| !ok).map(|(name, _, _)| *name).collect();
        match parse_request(req.clone()) {
            Ok(q) => {
                proptest::prop_assert!(invalid.is_empty(), "{invalid:?} accepted in {req:?}");
                proptest::prop_assert!((1..=MAX_PAGE_SIZE).contains(&q.page_size));
            }
            Err(Error::InvalidArgument(msg)) => {
                proptest::prop_assert!(!invalid.is_empty(), "a valid request was refused: {msg} ({req:?})");
                // The message names the field (nested fields start with
                // their parent's name and a dot).
                let named = msg.split([':', '.']).next().unwrap_or("");
                proptest::prop_assert!(invalid.contains(&named), "{msg} names none of {invalid:?}");
                proptest::prop_assert!(msg.len() < 600, "the message is bounded: {} bytes", msg.len());
            }
            Err(other) => proptest::prop_assert!(false, "{other:?}"),
        }
    }
}
