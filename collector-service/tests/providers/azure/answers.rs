//! Consumption and Advisor answers, shaped as the API references document
//! them, the references' own examples among them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::SUB_A;

/// A `legacy`-kind item (EA): plain amounts, SKU and location on the item.
pub(super) fn legacy(sku: &str, location: &str, term: &str, quantity: f64, without: f64, with: f64) -> Value {
    json!({
        "id": format!("subscriptions/{SUB_A}/providers/Microsoft.Consumption/reservationRecommendations/{sku}-{term}"),
        "name": format!("{sku}-{term}"),
        "type": "Microsoft.Consumption/reservationRecommendations",
        "sku": sku,
        "location": location,
        "kind": "legacy",
        "properties": {
            "lookBackPeriod": "Last30Days",
            "meterId": "00000000-0000-0000-0000-000000000000",
            "term": term,
            "costWithNoReservedInstances": without,
            "recommendedQuantity": quantity,
            "totalCostWithReservedInstances": with,
            "netSavings": without - with,
            "firstUsageDate": "2024-03-06T00:00:00Z",
            "scope": "Single",
            "instanceFlexibilityRatio": 1,
            "instanceFlexibilityGroup": "DSv5 Series",
            "normalizedSize": sku,
            "recommendedQuantityNormalized": quantity,
            "skuProperties": [{"name": "Cores", "value": "2"}, {"name": "Ram", "value": "8"}],
            "subscriptionId": SUB_A
        }
    })
}

/// A `modern`-kind item (MCA): `{currency, value}` amounts, SKU and location
/// under properties.
pub(super) fn modern(sku: &str, location: &str, term: &str, quantity: f64, without: f64, with: f64) -> Value {
    let usd = |value: f64| json!({"currency": "USD", "value": value});
    json!({
        "id": format!("/subscriptions/{SUB_A}/providers/Microsoft.Consumption/reservationRecommendations/{sku}-{term}"),
        "name": format!("{sku}-{term}"),
        "type": "Microsoft.Consumption/reservationRecommendations",
        "kind": "modern",
        "properties": {
            "costWithNoReservedInstances": usd(without),
            "firstUsageDate": "2024-03-06T00:00:00Z",
            "instanceFlexibilityGroup": "NA",
            "instanceFlexibilityRatio": 1,
            "location": location,
            "lookBackPeriod": 30,
            "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
            "netSavings": usd(without - with),
            "normalizedSize": sku,
            "recommendedQuantity": quantity,
            "recommendedQuantityNormalized": quantity,
            "resourceType": "virtualmachines",
            "scope": "Single",
            "skuName": sku,
            "skuProperties": null,
            "subscriptionId": SUB_A,
            "term": term,
            "totalCostWithReservedInstances": usd(with)
        }
    })
}

/// Look-back totals (30 days, 720 hours): e.g. 2,880 over 720 hours is
/// 2,920 a month of 730 hours.
pub(super) fn sample_pages() -> HashMap<&'static str, Vec<Vec<Value>>> {
    let mut d4 = modern("Standard_D4s_v5", "eastus", "P1Y", 1.0, 700.0, 455.0);
    // 2024-08-01 says how many hours the costs cover.
    d4["properties"]["totalHours"] = json!(700);
    HashMap::from([
        (
            "VirtualMachines",
            vec![
                vec![
                    legacy("Standard_D2s_v5", "westeurope", "P1Y", 4.0, 2880.0, 2016.0),
                    modern("Standard_E8s_v5", "northeurope", "P3Y", 2.0, 7200.0, 3240.0),
                ],
                vec![d4],
                vec![legacy("Standard_D2s_v5", "westeurope", "P3Y", 4.0, 2880.0, 1440.0)],
            ],
        ),
        ("SQLDatabases", vec![vec![modern("SQLDB_GP_Compute_Gen5", "westus2", "P1Y", 8.0, 9600.0, 6240.0)]]),
        ("CosmosDB", vec![vec![modern("Cosmos_DB_100RU", "eastus", "P1Y", 10.0, 1200.0, 960.0)]]),
        ("RedisCache", vec![vec![legacy("Premium_P1", "westeurope", "P1Y", 2.0, 9000.0, 6300.0)]]),
    ])
}

/// The items of the Consumption API reference's examples, as published:
/// the `legacy` ones of ReservationRecommendationsByBillingAccount (with the
/// `totalHours` that 2024-08-01 adds) and the `modern` ones of
/// ReservationRecommendationsByBillingProfile.
pub(super) fn documented_items() -> Vec<Value> {
    let p1y = json!({
        "id": "billingAccount/123456/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
        "name": "00000000-0000-0000-0000-000000000000",
        "type": "Microsoft.Consumption/reservationRecommendations",
        "location": "westus", "sku": "Standard_DS1_v2", "kind": "legacy",
        "properties": {
            "meterId": "00000000-0000-0000-0000-000000000000", "term": "P1Y",
            "costWithNoReservedInstances": 12.0785105, "recommendedQuantity": 1,
            "totalCostWithReservedInstances": 11.4899644807748, "netSavings": 0.588546019225182,
            "firstUsageDate": "2019-07-07T00:00:00-07:00", "scope": "Shared", "lookBackPeriod": "Last7Days",
            "instanceFlexibilityRatio": 1, "instanceFlexibilityGroup": "DSv2 Series",
            "normalizedSize": "Standard_DS1_v2", "recommendedQuantityNormalized": 1,
            "skuProperties": [{"name": "Cores", "value": "1"}, {"name": "Ram", "value": "1"}]
        }
    });
    // The same item for three years, with the hours 2024-08-01 adds.
    let mut p3y = p1y.clone();
    p3y["properties"]["term"] = json!("P3Y");
    p3y["properties"]["totalHours"] = json!(701);
    p3y["properties"]["lastUsageDate"] = json!("2019-08-07T00:00:00-07:00");
    vec![
        p1y,
        p3y,
        json!({
            "id": "/providers/Microsoft.Billing/billingAccounts/123456/billingProfiles/6420/providers/Microsoft.Consumption/reservationRecommendations/00000000-0000-0000-0000-000000000000",
            "name": "00000000-0000-0000-0000-000000000000",
            "type": "Microsoft.Consumption/reservationRecommendations",
            "kind": "modern",
            "properties": {
                "costWithNoReservedInstances": {"currency": "USD", "value": 93208.8596802244},
                "firstUsageDate": "2022-08-22T00:00:00Z", "instanceFlexibilityGroup": "NA",
                "instanceFlexibilityRatio": 1, "location": "westus2", "lookBackPeriod": 60,
                "meterId": "30f7049a-b092-42f4-9173-9ec31ab945ad",
                "netSavings": {"currency": "USD", "value": 32553.85968022456},
                "normalizedSize": "SQLDB_BC_Compute_Gen5", "recommendedQuantity": 35,
                "recommendedQuantityNormalized": 35, "resourceType": "sqldatabases", "scope": "Single",
                "skuName": "SQLDB_BC_Compute_Gen5", "skuProperties": null,
                "subscriptionId": "c6aa8a01-a744-44a7-a4f1-caad17512f27", "term": "P1Y",
                "totalCostWithReservedInstances": {"currency": "USD", "value": 60654.99999999984}
            }
        }),
    ]
}

pub(super) fn sample_advisor() -> Vec<Value> {
    let rec = |name: &str, ext: Value| {
        json!({
            "id": format!("/subscriptions/{SUB_A}/providers/Microsoft.Advisor/recommendations/{name}"),
            "name": name,
            "type": "Microsoft.Advisor/recommendations",
            "properties": {
                "category": "Cost",
                "impact": "High",
                "impactedField": "Microsoft.Subscriptions/subscriptions",
                "impactedValue": SUB_A,
                "lastUpdated": "2024-05-01T00:00:00Z",
                "shortDescription": {"problem": "Buy reserved capacity", "solution": "Buy reserved capacity"},
                "extendedProperties": ext
            }
        })
    };
    vec![
        rec(
            "app-service",
            json!({
                "reservedResourceType": "AppService", "sku": "P1v3", "displaySKU": "Premium v3 P1v3",
                "region": "westeurope", "qty": "4", "term": "P3Y", "lookbackPeriod": "30",
                "annualSavingsAmount": "1800", "savingsCurrency": "USD", "scope": "Single"
            }),
        ),
        rec(
            "vm",
            json!({
                "vmSize": "Standard_D2s_v5", "location": "westeurope", "targetResourceCount": "4", "term": "P3Y",
                "annualSavingsAmount": "4200", "savingsCurrency": "USD"
            }),
        ),
        rec("resize", json!({"currentSku": "Standard_D8s_v5", "targetSku": "Standard_D4s_v5", "savingsAmount": "120"})),
    ]
}
