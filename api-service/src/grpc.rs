//! The thin gRPC adapter of RecommendationsService: validate, make one
//! domain call, convert back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cudly_core::domain::{Trigger, timestamp};
use cudly_core::lease::Acquired;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::recommendations_service_server::RecommendationsService;
use futures_util::{Stream, StreamExt as _};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::auth::Principal;
use crate::error::Error;
use crate::hub::Hub;
use crate::recommendations::{self, SummaryCache};
use crate::refresh::Refresher;
use crate::state::AutoRefresh;
use crate::{page_token, state};

/// RecommendationsService over the database, the refresher and the hub.
pub struct RecommendationsApi {
    pool: PgPool,
    refresher: Arc<Refresher>,
    hub: Hub,
    auto: AutoRefresh,
    watch_heartbeat: Duration,
    summaries: SummaryCache,
}

impl RecommendationsApi {
    /// Wires the service.
    pub fn new(
        pool: PgPool,
        refresher: Arc<Refresher>,
        hub: Hub,
        auto: AutoRefresh,
        watch_heartbeat: Duration,
    ) -> Self {
        RecommendationsApi { pool, refresher, hub, auto, watch_heartbeat, summaries: SummaryCache::default() }
    }

    /// The freshness hub behind WatchFreshness.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

type FreshnessStream = Pin<Box<dyn Stream<Item = Result<pb::Freshness, Status>> + Send>>;

#[tonic::async_trait]
impl RecommendationsService for RecommendationsApi {
    #[tracing::instrument(skip_all, fields(trigger = tracing::field::Empty))]
    async fn refresh_recommendations(
        &self,
        request: Request<pb::RefreshRecommendationsRequest>,
    ) -> Result<Response<pb::RefreshRecommendationsResponse>, Status> {
        let requested = request.into_inner().trigger;
        let trigger = parse_refresh_trigger(requested);
        // The trigger by name, as the request meant it (unset is USER).
        let span = tracing::Span::current();
        match &trigger {
            Ok(trigger) => span.record("trigger", tracing::field::display(trigger)),
            Err(_) => span.record("trigger", tracing::field::display(trigger_name(requested))),
        };
        let trigger = trigger?;
        let acquired = self.refresher.refresh(trigger).await?;
        let (run, deduplicated) = match acquired {
            Acquired::Started(run) => (run, false),
            Acquired::Joined(run) => (run, true),
        };
        Ok(Response::new(pb::RefreshRecommendationsResponse {
            collection: Some(pb::Collection {
                id: run.collection_id.to_string(),
                generation: run.generation,
                trigger: run.trigger.to_proto(),
                started_at: Some(timestamp(run.started_at)),
                outcome: pb::Outcome::Running as i32,
                ..Default::default()
            }),
            deduplicated,
            last_collected_at: run.last_collected_at.map(timestamp),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_freshness(&self, _: Request<pb::GetFreshnessRequest>) -> Result<Response<pb::Freshness>, Status> {
        let freshness = state::read_freshness(&self.pool).await.map_err(Error::from)?;
        Ok(Response::new(freshness))
    }

    type WatchFreshnessStream = FreshnessStream;

    #[tracing::instrument(skip_all, fields(since_version = request.get_ref().since_version))]
    async fn watch_freshness(
        &self,
        request: Request<pb::WatchFreshnessRequest>,
    ) -> Result<Response<Self::WatchFreshnessStream>, Status> {
        let expires_at = request.extensions().get::<Principal>().map(|p| p.expires_at);
        let since = request.into_inner().since_version;
        if since < 0 {
            return Err(Error::InvalidArgument(format!("since_version: must not be negative, got {since}")).into());
        }
        let stream = self.hub.watch(since, self.watch_heartbeat, expires_at).map_err(Error::from)?;
        Ok(Response::new(Box::pin(stream.map(|item| item.map_err(|err| Status::from(Error::from(err)))))))
    }

    #[tracing::instrument(skip_all)]
    async fn list_recommendations(
        &self,
        request: Request<pb::ListRecommendationsRequest>,
    ) -> Result<Response<pb::ListRecommendationsResponse>, Status> {
        let query = recommendations::parse_request(request.into_inner())?;
        let state = state::read_state(&self.pool, Some(&self.auto)).await.map_err(Error::from)?;
        let mut freshness = state.freshness;
        if let Some(due) = state.due {
            match self.refresher.refresh_in_background(due).await {
                // Show the run in flight: the one this read started, or the
                // one another caller started since the state was read.
                Ok(_) => freshness = state::read_freshness(&self.pool).await.map_err(Error::from)?,
                // The read still answers; the next one tries again.
                Err(err) => tracing::warn!(error = %err, trigger = %due, "automatic refresh not started"),
            }
        }
        let page = recommendations::list(&self.pool, &query, &self.summaries, state.data_version)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListRecommendationsResponse {
            recommendations: page.recommendations,
            next_page_token: page.next_page_token,
            summary: Some(page.summary),
            freshness: Some(freshness),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let req = request.into_inner();
        let page_size = recommendations::parse_page_size(req.page_size)?;
        let before = page_token::decode::<i64>(&req.page_token, COLLECTIONS_TOKEN)?;
        let mut runs = state::list_collections(&self.pool, before, page_size + 1).await.map_err(Error::from)?;
        let next_page_token = if runs.len() as i64 > page_size {
            runs.truncate(page_size as usize);
            page_token::encode(COLLECTIONS_TOKEN, &runs.last().expect("a full page has a last run").generation())
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListCollectionsResponse {
            collections: runs.into_iter().map(state::CollectionRow::into_proto).collect(),
            next_page_token,
        }))
    }
}

/// Tells collection-history tokens from recommendation tokens.
const COLLECTIONS_TOKEN: u64 = 0xc011_ec71_0500;

/// A protobuf trigger value's name, for a log line (unknown values by number).
fn trigger_name(value: i32) -> String {
    match pb::Trigger::try_from(value) {
        Ok(trigger) => trigger.as_str_name().to_string(),
        Err(_) => format!("unknown ({value})"),
    }
}

fn parse_refresh_trigger(value: i32) -> Result<Trigger, Error> {
    match Trigger::from_proto(value) {
        None if value == 0 => Ok(Trigger::User),
        Some(t @ (Trigger::User | Trigger::Schedule)) => Ok(t),
        Some(t) => Err(Error::InvalidArgument(format!(
            "trigger: {} refreshes are started by the service itself; use USER or SCHEDULE",
            t.as_str().to_uppercase()
        ))),
        None => Err(Error::InvalidArgument(format!("trigger: unknown value {value}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_triggers_default_to_user_and_refuse_internal_ones() {
        assert_eq!(parse_refresh_trigger(0).unwrap(), Trigger::User);
        assert_eq!(parse_refresh_trigger(pb::Trigger::Schedule as i32).unwrap(), Trigger::Schedule);
        assert!(parse_refresh_trigger(pb::Trigger::ColdStart as i32).unwrap_err().to_string().contains("COLD_START"));
        assert!(parse_refresh_trigger(42).unwrap_err().to_string().starts_with("trigger"));
    }
}
