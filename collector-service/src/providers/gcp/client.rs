//! The Recommender's and Compute's paged lists: every page through the
//! provider's limits with the account's token, following `nextPageToken`
//! to the end; a parent's recommendations are asked for once per run.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::GcpBackend;
use super::errors::google_error_text;
use super::regions::Scope;
use super::wire::{ApiRecommendation, RecommendationPage};
use crate::providers::calls::CallError;
use crate::providers::kit::cache::Cache;
use crate::providers::kit::http;
use crate::providers::kit::pager::{self, Page};
use crate::providers::kit::tokens::Bearer;
use crate::providers::kit::urls::endpoint;
use crate::providers::{BackendError, Query, RequestCount};

/// Recommendations are asked for ACTIVE ones only (and others are dropped
/// again on arrival).
const ACTIVE_FILTER: &str = "stateInfo.state = ACTIVE";

/// A run's recommendation lists by (credentials, parent): one list serves
/// both terms (and, for a billing account, both services) of the run.
#[derive(Default)]
struct RunLists(Cache<Arc<Vec<ApiRecommendation>>>);

/// One paged list request: where, with what, and how to name it.
pub(super) struct ListCall<'a> {
    /// Counts its requests.
    pub(super) calls: &'a RequestCount,
    /// Names it in errors.
    pub(super) what: String,
    /// What to do about a refusal.
    pub(super) hint: String,
    /// The token it is asked with.
    pub(super) auth: &'a Bearer,
    /// The API's base URL.
    pub(super) base: &'a Url,
    /// The path under it, one segment each.
    pub(super) segments: &'a [&'a str],
    /// The list's `filter`, if any.
    pub(super) filter: Option<&'a str>,
}

impl GcpBackend {
    /// The ACTIVE recommendations of one parent, every page, once per run.
    pub(super) async fn recommendations(
        &self,
        query: &Query<'_>,
        scope: &Scope<'_>,
    ) -> Result<Arc<Vec<ApiRecommendation>>, BackendError> {
        let auth = self.token(query.account, query.calls).await?;
        let key = format!("{}|{}", auth.key, scope.segments()[1..].join("/"));
        query
            .run
            .get::<RunLists>()
            .0
            .get_or_fetch(&key, || async {
                let list = ListCall {
                    calls: query.calls,
                    what: scope.what(),
                    hint: scope.hint(),
                    auth: &auth,
                    base: &self.recommender_url,
                    segments: &scope.segments(),
                    filter: Some(ACTIVE_FILTER),
                };
                let pages =
                    self.pages(&list, |page: RecommendationPage| (page.recommendations, page.next_page_token)).await?;
                // Kept for the rest of the run (the scope ends with it).
                Ok((Arc::new(pages), Instant::now() + Duration::from_secs(86_400)))
            })
            .await
    }

    /// Follows `nextPageToken` to the end, collecting what `items` takes
    /// out of each page.
    pub(super) async fn pages<P: DeserializeOwned, T>(
        &self,
        list: &ListCall<'_>,
        items: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, BackendError> {
        let items = &items;
        pager::all_items(&list.what, |_, page_token: Option<String>| async move {
            let pairs: Vec<(&str, &str)> = list
                .filter
                .map(|f| ("filter", f))
                .into_iter()
                .chain(page_token.as_deref().map(|t| ("pageToken", t)))
                .collect();
            let page: P = self.get_json(list, endpoint(list.base, list.segments, &pairs)).await?;
            let (found, next) = items(page);
            Ok(Page { items: found, next: next.filter(|t| !t.is_empty()) })
        })
        .await
    }

    async fn get_json<T: DeserializeOwned>(&self, list: &ListCall<'_>, url: Url) -> Result<T, BackendError> {
        self.limits
            .call(list.calls, &list.what, || async {
                let answer =
                    http::get(&self.http, &url, list.auth, &self.tokens, &list.hint, google_error_text).await?;
                serde_json::from_slice(&answer.unwrap_or_default())
                    .map_err(|e| CallError::Permanent(format!("malformed answer: {e}")))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    use super::ACTIVE_FILTER;
    use crate::providers::kit::urls::{encode_query_value, endpoint};

    #[test]
    fn query_values_and_path_segments_are_escaped() {
        assert_eq!(encode_query_value(ACTIVE_FILTER), "stateInfo.state%20%3D%20ACTIVE");
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            endpoint(&base, &["v1", "projects", "a/b?c"], &[]).as_str(),
            "http://127.0.0.1:8080/v1/projects/a%2Fb%3Fc"
        );
    }
}
