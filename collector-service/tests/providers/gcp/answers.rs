//! Sample recommendations, as the Recommender writes them.

use serde_json::{Value, json};

use super::fake::{billing_parent, compute_parent};

/// A resource-based commitment recommendation (`UsageCommitmentRecommender`).
pub(super) fn compute_rec(
    project: &str,
    region: &str,
    id: &str,
    plan: &str,
    kind: &str,
    vcpus: u32,
    cost: (&str, i64),
) -> Value {
    let memory_mb = vcpus * 4096;
    let years = if plan == "TWELVE_MONTH" { 1 } else { 3 };
    json!({
        "name": format!("{}/recommendations/{id}", compute_parent(project, region)),
        "description": format!("Purchase a {years} year commitment for {vcpus} vCPUs in {region}"),
        "recommenderSubtype": "COMMIT_RESOURCES",
        "lastRefreshTime": "2026-03-01T06:00:00Z",
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": cost.0, "nanos": cost.1},
                "duration": "2592000s"
            }
        },
        "priority": "P2",
        "content": {
            "overview": {"algorithm": "OPTIMAL"},
            "operationGroups": [{"operations": [{
                "action": "add",
                "resourceType": "compute.googleapis.com/Commitment",
                "resource": format!("//compute.googleapis.com/projects/{project}/regions/{region}/commitments/{id}"),
                "path": "/",
                "value": {
                    "name": id,
                    "plan": plan,
                    "type": kind,
                    "region": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}"),
                    "resources": [
                        {"type": "VCPU", "amount": vcpus.to_string()},
                        {"type": "MEMORY", "amount": memory_mb.to_string()}
                    ]
                }
            }]}]
        },
        "stateInfo": {"state": "ACTIVE"},
        "etag": format!("\"{id}-etag\""),
        "associatedInsights": [{"insight": format!(
            "projects/{project}/locations/{region}/insightTypes/google.compute.commitment.UsageCommitmentInsight/insights/{id}"
        )}],
        "xorGroupId": format!("{id}-group")
    })
}

/// A spend-based commitment recommendation. Google documents no schema for
/// its content: this one names its service and region in the overview and
/// its term in the subtype, as the backend reads them.
pub(super) fn spend_rec(id: &str, service: &str, subtype: &str, region: &str, units: &str) -> Value {
    json!({
        "name": format!("{}/recommendations/{id}", billing_parent(region)),
        "description": format!("Purchase a spend-based commitment for {service} in {region}"),
        "recommenderSubtype": subtype,
        "primaryImpact": {"category": "COST", "costProjection": {
            "cost": {"currencyCode": "USD", "units": units}, "duration": "2592000s"}},
        "content": {"overview": {"service": service, "region": region}},
        "stateInfo": {"state": "ACTIVE"},
        "etag": "\"e\""
    })
}

pub(super) fn with_state(mut rec: Value, state: &str) -> Value {
    rec["stateInfo"]["state"] = json!(state);
    rec
}
