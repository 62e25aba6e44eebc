//! What a Recommender recommendation's content says: its term, the
//! spend-based service it is for, and the shape of a Compute commitment.
//! Google documents the commitment's fields (`plan`, `type`, `resources`);
//! it documents no field for a spend-based service, so names and API hosts
//! are matched.

use serde_json::Value;

use super::wire::{ApiRecommendation, Content};

/// The term: the commitment's `plan` (`TWELVE_MONTH`, `THIRTY_SIX_MONTH`)
/// when an operation carries one, else the term the subtype, the overview
/// or the description names. A recommendation naming no term, or both,
/// is malformed.
pub(super) fn term_of(rec: &ApiRecommendation) -> Result<i32, String> {
    let shape = commitment_shape(&rec.content);
    let mut overview = Vec::new();
    collect_strings(&Value::Object(rec.content.overview.clone()), &mut overview, 0);
    let sources: [(&str, Vec<String>); 4] = [
        ("plan", shape.plan.into_iter().collect()),
        ("recommenderSubtype", vec![rec.recommender_subtype.clone()]),
        ("overview", overview),
        ("description", vec![rec.description.clone()]),
    ];
    for (source, texts) in sources {
        let mut terms: Vec<i32> = texts.iter().flat_map(|t| terms_named(t)).collect();
        terms.sort_unstable();
        terms.dedup();
        match terms[..] {
            [] => continue,
            [term] => return Ok(term),
            _ => return Err(format!("its {source} names both a 1-year and a 3-year term")),
        }
    }
    Err("it names no term (no plan TWELVE_MONTH or THIRTY_SIX_MONTH)".into())
}

/// The terms a text names, as words: `TWELVE_MONTH`, `ONE_YEAR`, `1-year`,
/// `3 years`…
pub(super) fn terms_named(text: &str) -> Vec<i32> {
    let words: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let padded = format!("_{words}_");
    let has = |token: &str| padded.contains(&format!("_{token}_")) || padded.contains(&format!("_{token}S_"));
    let mut out = Vec::new();
    if ["TWELVE_MONTH", "ONE_YEAR", "1_YEAR", "12_MONTH"].iter().any(|t| has(t)) {
        out.push(12);
    }
    if ["THIRTY_SIX_MONTH", "THREE_YEAR", "3_YEAR", "36_MONTH"].iter().any(|t| has(t)) {
        out.push(36);
    }
    out
}

/// Which spend-based service a recommendation is for, from every text it
/// carries (subtype, description, overview, operations). Google documents
/// no field for it, so the names and API hosts are matched; a
/// recommendation naming both or neither is for another service.
pub(super) fn spend_service(rec: &ApiRecommendation) -> Option<&'static str> {
    let mut texts = vec![rec.recommender_subtype.clone(), rec.description.clone()];
    collect_strings(&Value::Object(rec.content.overview.clone()), &mut texts, 0);
    for op in rec.content.operation_groups.iter().flat_map(|g| &g.operations) {
        texts.extend([op.resource_type.clone(), op.resource.clone(), op.path.clone()]);
        if let Some(value) = &op.value {
            collect_strings(value, &mut texts, 0);
        }
    }
    let text = texts.join(" ").to_ascii_lowercase();
    let sql = ["cloud sql", "cloudsql", "cloud_sql", "sqladmin.googleapis.com"].iter().any(|k| text.contains(k));
    let memorystore =
        ["memorystore", "redis.googleapis.com", "memcache.googleapis.com"].iter().any(|k| text.contains(k));
    match (sql, memorystore) {
        (true, false) => Some("cloud_sql"),
        (false, true) => Some("memorystore"),
        _ => None,
    }
}

/// Every string in a JSON value (keys' values, not keys), depth-limited.
pub(super) fn collect_strings(value: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out, depth + 1)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out, depth + 1)),
        _ => {}
    }
}

/// The first of `keys` the overview has as text.
pub(super) fn overview_text(rec: &ApiRecommendation, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| rec.content.overview.get(*k).and_then(Value::as_str)).map(str::to_string)
}

/// A Compute Commitment as the operations describe it: the whole resource
/// added at `/`, or its fields at `/plan`, `/type`, `/resources`.
#[derive(Debug, Default)]
pub(super) struct CommitmentShape {
    pub(super) plan: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) region: Option<String>,
    pub(super) resources: Vec<CommittedResource>,
}

/// One `ResourceCommitment`.
#[derive(Debug)]
pub(super) struct CommittedResource {
    pub(super) kind: String,
    pub(super) amount: f64,
    pub(super) accelerator: Option<String>,
}

/// The commitment the recommendation's operations add.
pub(super) fn commitment_shape(content: &Content) -> CommitmentShape {
    let mut shape = CommitmentShape::default();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    for op in content.operation_groups.iter().flat_map(|g| &g.operations) {
        let value = op.value.as_ref();
        match op.path.as_str() {
            "" | "/" => {
                let Some(Value::Object(commitment)) = value else { continue };
                shape.plan = text(commitment.get("plan")).or(shape.plan);
                shape.kind = text(commitment.get("type")).or(shape.kind);
                shape.region = text(commitment.get("region")).or(shape.region);
                shape.resources.extend(resources(commitment.get("resources")));
            }
            "/plan" => shape.plan = text(value).or(shape.plan),
            "/type" => shape.kind = text(value).or(shape.kind),
            "/resources" => shape.resources.extend(resources(value)),
            _ => {}
        }
    }
    shape
}

/// `ResourceCommitment`s: `type` (VCPU, MEMORY in MB, ACCELERATOR,
/// LOCAL_SSD in GB), `amount` (an int64), `acceleratorType`.
pub(super) fn resources(value: Option<&Value>) -> Vec<CommittedResource> {
    let Some(Value::Array(items)) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let kind = item.get("type")?.as_str()?.to_string();
            let amount = match item.get("amount")? {
                Value::String(s) => s.trim().parse::<f64>().ok()?,
                Value::Number(n) => n.as_f64()?,
                _ => return None,
            };
            let accelerator = item.get("acceleratorType").and_then(Value::as_str).map(|a| last_segment(a).to_string());
            (amount.is_finite() && amount >= 0.0).then_some(CommittedResource { kind, amount, accelerator })
        })
        .collect()
}

/// Resource type and count of a resource-based commitment: the commitment
/// type (`general_purpose_n2`…; absent is Google's default,
/// `general_purpose`) and its vCPUs; an accelerator commitment is counted in
/// accelerators of its type; memory alone in GB.
pub(super) fn compute_resources(shape: &CommitmentShape) -> Result<(String, f64), String> {
    let kind = shape.kind.as_deref().unwrap_or("GENERAL_PURPOSE").to_ascii_lowercase();
    let total = |k: &str| shape.resources.iter().filter(|r| r.kind == k).map(|r| r.amount).sum::<f64>();
    let vcpus = total("VCPU");
    if vcpus > 0.0 {
        return Ok((kind, vcpus));
    }
    let accelerators = total("ACCELERATOR");
    if accelerators > 0.0 {
        let name = shape.resources.iter().find_map(|r| r.accelerator.clone()).unwrap_or(kind);
        return Ok((name, accelerators));
    }
    let memory_gb = total("MEMORY") / 1024.0;
    if memory_gb > 0.0 {
        return Ok((format!("{kind}_memory_gb"), memory_gb));
    }
    Err("its commitment names no vCPU, accelerator or memory amount".into())
}

/// The last `/`-separated part (a resource name's id).
pub(super) fn last_segment(text: &str) -> &str {
    text.rsplit('/').next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::rec;
    use super::{commitment_shape, compute_resources, spend_service, term_of, terms_named};

    #[test]
    fn the_plan_decides_the_term_and_a_missing_or_double_one_is_malformed() {
        let with_plan = |plan: &str| {
            rec(json!({"content": {"operationGroups": [{"operations": [
                {"path": "/", "value": {"plan": plan, "resources": []}}]}]}}))
        };
        assert_eq!(term_of(&with_plan("TWELVE_MONTH")).unwrap(), 12);
        assert_eq!(term_of(&with_plan("THIRTY_SIX_MONTH")).unwrap(), 36);
        let by_path = rec(json!({"content": {"operationGroups": [{"operations": [
            {"path": "/plan", "value": "THIRTY_SIX_MONTH"}]}]}}));
        assert_eq!(term_of(&by_path).unwrap(), 36);
        // The plan wins over a description that says otherwise.
        let mut both = with_plan("TWELVE_MONTH");
        both.description = "Save with a 3-year commitment".into();
        assert_eq!(term_of(&both).unwrap(), 12);
        assert_eq!(term_of(&rec(json!({"recommenderSubtype": "COMMIT_ONE_YEAR"}))).unwrap(), 12);
        assert_eq!(term_of(&rec(json!({"description": "Buy a 3 years commitment"}))).unwrap(), 36);
        assert_eq!(terms_named("THIRTEEN_YEARS 31_YEAR"), Vec::<i32>::new(), "whole words only");
        assert!(term_of(&rec(json!({"description": "1-year or 3-year"}))).unwrap_err().contains("both"));
        assert!(term_of(&rec(json!({"description": "a commitment"}))).unwrap_err().contains("no term"));
    }

    #[test]
    fn compute_commitments_count_vcpus_then_accelerators_then_memory() {
        let shape = |value: Value| {
            commitment_shape(
                &rec(json!({"content": {"operationGroups": [{"operations": [
                {"path": "/", "value": value}]}]}}))
                .content,
            )
        };
        let n2 = shape(json!({"type": "GENERAL_PURPOSE_N2",
            "resources": [{"type": "VCPU", "amount": "16"}, {"type": "MEMORY", "amount": "65536"}]}));
        assert_eq!(compute_resources(&n2).unwrap(), ("general_purpose_n2".to_string(), 16.0));
        let gpu = shape(json!({"type": "ACCELERATOR_OPTIMIZED", "resources": [
            {"type": "ACCELERATOR", "amount": 2, "acceleratorType": "projects/p/zones/z/acceleratorTypes/nvidia-l4"}]}));
        assert_eq!(compute_resources(&gpu).unwrap(), ("nvidia-l4".to_string(), 2.0));
        let memory = shape(json!({"resources": [{"type": "MEMORY", "amount": "2048"}]}));
        assert_eq!(compute_resources(&memory).unwrap(), ("general_purpose_memory_gb".to_string(), 2.0));
        assert!(compute_resources(&shape(json!({"resources": [{"type": "VCPU", "amount": "x"}]}))).is_err());
    }

    #[test]
    fn spend_based_recommendations_are_told_apart_by_the_service_they_name() {
        let sql = rec(json!({"description": "Purchase a spend-based commitment for Cloud SQL"}));
        assert_eq!(spend_service(&sql), Some("cloud_sql"));
        let redis = rec(json!({"content": {"overview": {"service": "Memorystore for Redis"}}}));
        assert_eq!(spend_service(&redis), Some("memorystore"));
        let by_host = rec(json!({"content": {"operationGroups": [{"operations": [
            {"resourceType": "sqladmin.googleapis.com/Instance"}]}]}}));
        assert_eq!(spend_service(&by_host), Some("cloud_sql"));
        assert_eq!(spend_service(&rec(json!({"description": "Spanner commitment"}))), None);
        assert_eq!(spend_service(&rec(json!({"description": "Cloud SQL and Memorystore"}))), None);
    }
}
