//! NotificationsService: the channels notices go to (a signed webhook, a
//! Slack-compatible incoming webhook, email), with their secrets as
//! references; test notices; the deliveries and where each stands.
//! Requests are checked in `validate`, stored through `store`; delivering
//! is the collector's.

mod store;
mod validate;

use cudly_core::domain::timestamp;
use cudly_core::quote::at_most;
use cudly_proto::recommendations::v1 as pb;
use cudly_proto::recommendations::v1::notifications_service_server::NotificationsService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use self::store::{Changes, Channel, DeliveryKey, DeliveryRow};
use self::validate::{parse_new, parse_update_kind, validate_name};
use crate::page_token;

/// Tells delivery-list tokens from every other kind.
const DELIVERIES_TOKEN: &str = "deliveries";
/// Deliveries per page when the request does not say.
pub const DEFAULT_DELIVERIES_PAGE_SIZE: i64 = 50;
/// Largest page of deliveries; larger requests get this many.
pub const MAX_DELIVERIES_PAGE_SIZE: i64 = 500;
/// Longest `last_error` shown (the deliverers bound it when they write it).
const MAX_LAST_ERROR_CHARS: usize = 1000;

impl Channel {
    fn into_proto(self) -> pb::Channel {
        pb::Channel {
            name: self.name,
            enabled: Some(self.enabled),
            kind: Some(self.settings.into_proto()),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }
}

impl DeliveryRow {
    fn into_proto(self) -> pb::Delivery {
        let status = match self.status.as_str() {
            "pending" => pb::DeliveryStatus::Pending,
            "delivered" => pb::DeliveryStatus::Delivered,
            "failed" => pb::DeliveryStatus::Failed,
            _ => pb::DeliveryStatus::Unspecified,
        };
        let pending = status == pb::DeliveryStatus::Pending;
        pb::Delivery {
            id: self.id.to_string(),
            channel: self.channel,
            collection_id: self.collection_id.map(|id| id.to_string()).unwrap_or_default(),
            test: self.test,
            status: status as i32,
            attempts: self.attempts,
            last_error: self.last_error.map(|e| at_most(&e, MAX_LAST_ERROR_CHARS)).unwrap_or_default(),
            created_at: Some(timestamp(self.created_at)),
            delivered_at: self.delivered_at.map(timestamp),
            next_attempt_at: pending.then(|| timestamp(self.next_attempt_at)),
            item_count: self.item_count,
        }
    }
}

/// NotificationsService over the database.
#[derive(Clone, Debug)]
pub struct NotificationsApi {
    pool: PgPool,
}

impl NotificationsApi {
    /// The service over `pool`.
    pub fn new(pool: PgPool) -> Self {
        NotificationsApi { pool }
    }
}

#[tonic::async_trait]
impl NotificationsService for NotificationsApi {
    #[tracing::instrument(skip_all)]
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let new = parse_new(request.into_inner().channel)?;
        let channel = store::insert(&self.pool, new).await?;
        tracing::info!(channel = %channel.name, kind = channel.settings.kind(), "notification channel added");
        Ok(Response::new(channel.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn get_channel(&self, request: Request<pb::GetChannelRequest>) -> Result<Response<pb::Channel>, Status> {
        let name = request.into_inner().name;
        validate_name("name", &name)?;
        Ok(Response::new(store::fetch(&self.pool, &name).await?.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn list_channels(
        &self,
        _request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let channels = store::list(&self.pool).await?;
        Ok(Response::new(pb::ListChannelsResponse {
            channels: channels.into_iter().map(Channel::into_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_channel(
        &self,
        request: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let req = request.into_inner();
        validate_name("name", &req.name)?;
        let settings = req.kind.map(parse_update_kind).transpose()?;
        let changes = Changes { enabled: req.enabled, settings };
        let channel = store::update(&self.pool, &req.name, changes).await?;
        tracing::info!(channel = %channel.name, kind = channel.settings.kind(), enabled = channel.enabled, "notification channel updated");
        Ok(Response::new(channel.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let name = request.into_inner().name;
        validate_name("name", &name)?;
        let deleted = store::remove(&self.pool, &name).await?;
        tracing::info!(channel = %name, deliveries = deleted, "notification channel deleted");
        Ok(Response::new(pb::DeleteChannelResponse { deleted_deliveries: deleted as i64 }))
    }

    #[tracing::instrument(skip_all)]
    async fn send_test_notice(
        &self,
        request: Request<pb::SendTestNoticeRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let name = request.into_inner().name;
        validate_name("name", &name)?;
        let delivery = store::queue_test_notice(&self.pool, &name).await?;
        tracing::info!(channel = %name, delivery = %delivery.id, "test notice queued");
        Ok(Response::new(delivery.into_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let req = request.into_inner();
        let page_size = page_token::page_size(req.page_size, DEFAULT_DELIVERIES_PAGE_SIZE, MAX_DELIVERIES_PAGE_SIZE)?;
        let filters = page_token::fingerprint(&[DELIVERIES_TOKEN, &req.channel]);
        let after = page_token::decode::<DeliveryKey>(&req.page_token, filters)?
            .map(|(micros, id)| {
                chrono::DateTime::from_timestamp_micros(micros).map(|t| (t, id)).ok_or_else(|| {
                    crate::error::Error::InvalidArgument("page_token: not a token this service issued".into())
                })
            })
            .transpose()?;
        let channel_id = match req.channel.as_str() {
            "" => None,
            name => {
                validate_name("channel", name)?;
                Some(store::channel_id(&self.pool, name).await?)
            }
        };
        let mut rows = store::deliveries(&self.pool, channel_id, after, page_size + 1).await?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            let last = rows.last().expect("a full page has a last row");
            page_token::encode(filters, &last.key())
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: rows.into_iter().map(DeliveryRow::into_proto).collect(),
            next_page_token,
        }))
    }
}
