//! The Recommender and Compute APIs' JSON, as far as the backend reads it.

use serde::Deserialize;
use serde_json::Value;

/// One page of `recommendations.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RecommendationPage {
    pub(super) recommendations: Vec<ApiRecommendation>,
    pub(super) next_page_token: Option<String>,
}

/// One page of Compute's `regions.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct RegionPage {
    pub(super) items: Vec<RegionItem>,
    pub(super) next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RegionItem {
    pub(super) name: String,
}

/// The parts of a Recommendation resource this backend reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ApiRecommendation {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) recommender_subtype: String,
    pub(super) primary_impact: Option<Impact>,
    pub(super) content: Content,
    pub(super) state_info: Option<StateInfo>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Impact {
    pub(super) category: String,
    pub(super) cost_projection: Option<CostProjection>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct CostProjection {
    pub(super) cost: Option<Money>,
    pub(super) duration: Option<String>,
}

/// `google.type.Money`: `units` is an int64, a string in JSON.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Money {
    pub(super) currency_code: String,
    pub(super) units: Option<Value>,
    pub(super) nanos: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Content {
    pub(super) overview: serde_json::Map<String, Value>,
    pub(super) operation_groups: Vec<OperationGroup>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct OperationGroup {
    pub(super) operations: Vec<Operation>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Operation {
    pub(super) resource_type: String,
    pub(super) resource: String,
    pub(super) path: String,
    pub(super) value: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StateInfo {
    pub(super) state: String,
}
