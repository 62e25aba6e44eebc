//! ARM's paged lists: a token first, then every page through the
//! provider's limits, following `nextLink` (on the management host only)
//! to the end; a subscription's reservation listing is asked for once per
//! run.

use std::sync::Arc;
use std::time::Duration;

use cudly_core::credentials::AzureCredentials;
use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;

use super::errors::arm_error_text;
use super::mapping::kind;
use super::{ADVISOR_API_VERSION, AzureBackend, CONSUMPTION_API_VERSION};
use crate::providers::calls::CallError;
use crate::providers::kit::cache::Cache;
use crate::providers::kit::http;
use crate::providers::kit::pager::{self, Page};
use crate::providers::kit::tokens::Bearer;
use crate::providers::kit::urls::endpoint;
use crate::providers::{BackendError, Query};

/// A run's reservation listings by (subscription, resource type): the
/// documented filter has no term, so one listing serves every term's sweep
/// of the run, and the next run lists afresh.
#[derive(Default)]
struct RunListings(Cache<Arc<Vec<Value>>>);

impl AzureBackend {
    /// The subscription's reservation recommendations of a resource type,
    /// every term at once, listed once per run.
    pub(super) async fn reservation_listing(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
        resource_type: &'static str,
    ) -> Result<Arc<Vec<Value>>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let filter = format!(
            "properties/scope eq 'Single' AND properties/resourceType eq '{resource_type}' AND \
             properties/lookBackPeriod eq '{}'",
            self.lookback
        );
        let url = self.arm_url(
            &["subscriptions", subscription, "providers", "Microsoft.Consumption", "reservationRecommendations"],
            &[("api-version", CONSUMPTION_API_VERSION), ("$filter", &filter)],
        );
        let what = format!("reservation recommendations ({resource_type})");
        let listings = query.run.get::<RunListings>();
        let key = format!("{subscription}|{resource_type}");
        listings
            .0
            .get_or_fetch(&key, || async {
                let items = self.list_all(url, &what, query, creds).await?;
                // Kept for the rest of the run (the scope ends with it).
                Ok((Arc::new(items), Instant::now() + Duration::from_secs(86_400)))
            })
            .await
    }

    /// The subscription's Advisor cost recommendations.
    pub(super) async fn advisor_listing(
        &self,
        query: &Query<'_>,
        creds: &AzureCredentials,
    ) -> Result<Vec<Value>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let url = self.arm_url(
            &["subscriptions", subscription, "providers", "Microsoft.Advisor", "recommendations"],
            &[("api-version", ADVISOR_API_VERSION), ("$filter", "Category eq 'Cost'")],
        );
        self.list_all(url, "Advisor cost recommendations", query, creds).await
    }

    /// Every item of a paged ARM list, following nextLink to the end (a
    /// token first, from the cache while it is fresh).
    async fn list_all(
        &self,
        first: Url,
        what: &str,
        query: &Query<'_>,
        creds: &AzureCredentials,
    ) -> Result<Vec<Value>, BackendError> {
        let subscription = query.account.external_id.as_str();
        let bearer = self.token(creds, subscription, query.calls).await?;
        let hint = format!(
            "grant the app (client {}) the Reader and Cost Management Reader roles on subscription {subscription}",
            creds.client_id
        );
        let (bearer, hint, first) = (&bearer, hint.as_str(), &first);
        let list = format!("Azure {what} for subscription {subscription}");
        pager::all_items(&list, |number, next: Option<Url>| async move {
            let what = match number {
                1 => format!("Azure {what} for subscription {subscription}"),
                n => format!("Azure {what}, page {n}, for subscription {subscription}"),
            };
            let url = next.unwrap_or_else(|| first.clone());
            self.limits.call(query.calls, &what, || self.get_page(&url, bearer, hint)).await
        })
        .await
    }

    /// One page of an ARM list.
    async fn get_page(&self, url: &Url, bearer: &Bearer, hint: &str) -> Result<Page<Value, Url>, CallError> {
        // The Consumption API documents 204 for a scope with nothing to say.
        let Some(body) = http::get(&self.client, url, bearer, &self.tokens, hint, arm_error_text).await? else {
            return Ok(Page::last(Vec::new()));
        };
        self.parse_page(&String::from_utf8_lossy(&body))
            .map_err(|err| CallError::Permanent(format!("malformed answer: {err}")))
    }

    fn parse_page(&self, body: &str) -> Result<Page<Value, Url>, String> {
        let doc: Value = serde_json::from_str(body).map_err(|err| format!("not JSON ({err})"))?;
        let Value::Object(mut doc) = doc else { return Err(format!("the answer is {}, not an object", kind(&doc))) };
        let items = match doc.remove("value") {
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("`value` is {}, not a list", kind(&other))),
            None => return Err("`value` is missing".into()),
        };
        let next = match doc.remove("nextLink") {
            Some(Value::String(link)) if !link.is_empty() => Some(self.next_link(&link)?),
            None | Some(Value::Null) | Some(Value::String(_)) => None,
            Some(other) => return Err(format!("`nextLink` is {}, not a URL", kind(&other))),
        };
        Ok(Page { items, next })
    }

    /// The bearer token goes to the configured management host only.
    fn next_link(&self, link: &str) -> Result<Url, String> {
        let url = Url::parse(link).map_err(|err| format!("`nextLink` is not a URL ({err})"))?;
        let origin =
            |u: &Url| (u.scheme().to_string(), u.host_str().map(str::to_ascii_lowercase), u.port_or_known_default());
        if origin(&url) != origin(&self.management) {
            return Err(format!(
                "refusing to follow `nextLink` to {}://{}: only {} is sent the token",
                url.scheme(),
                url.host_str().unwrap_or(""),
                self.management.as_str().trim_end_matches('/')
            ));
        }
        Ok(url)
    }

    fn arm_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        endpoint(&self.management, segments, query)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use crate::providers::azure::AzureBackend;

    #[test]
    fn next_links_are_followed_on_the_management_host_only() {
        let backend = AzureBackend::new(config("https://management.azure.com/")).unwrap();
        let link = "https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/\
                    reservationRecommendations?api-version=2023-05-01&$skiptoken=AQAAAA%3D%3D&";
        assert_eq!(backend.next_link(link).unwrap().as_str(), link);
        let err = backend.next_link("https://evil.example/steal?$skiptoken=1").unwrap_err();
        assert!(err.contains("evil.example") && err.contains("only https://management.azure.com"), "{err}");
        assert!(backend.next_link("http://management.azure.com/x").is_err(), "a scheme change is another origin");
        let page = backend.parse_page(r#"{"value": [], "nextLink": null}"#).unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
        assert!(backend.parse_page(r#"{"value": "oops"}"#).unwrap_err().contains("`value` is a string"));
        assert!(backend.parse_page("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn urls_and_filters_are_encoded() {
        let backend = AzureBackend::new(config("https://management.azure.com")).unwrap();
        let url = backend.arm_url(
            &["subscriptions", "a b/c", "providers", "Microsoft.Advisor", "recommendations"],
            &[("api-version", "2023-01-01"), ("$filter", "Category eq 'Cost'")],
        );
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/a%20b%2Fc/providers/Microsoft.Advisor/recommendations\
             ?api-version=2023-01-01&$filter=Category%20eq%20%27Cost%27"
        );
    }
}
