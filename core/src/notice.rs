//! What a notice says: written by the run-end transaction (or a test call)
//! into `notices.payload`, rendered by the deliverers for each channel. One
//! type, so writer and readers agree on its shape.

use serde::{Deserialize, Serialize};

/// At most this many recommendations are listed in a notice; the totals
/// cover all of them.
pub const MAX_NOTICE_ITEMS: usize = 50;

/// A notice's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticePayload {
    /// `recommendations.new_savings` for a run's notice, `test` for a test
    /// notice (the webhook `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The run the notice is about (none for a test notice).
    pub collection_id: Option<uuid::Uuid>,
    /// When the notice was recorded (RFC 3339).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The run's outcome (`succeeded`, `partially_succeeded`), if a run's.
    pub outcome: Option<String>,
    /// Per currency: how many recommendations are new or grew, and their
    /// estimated monthly savings in all.
    pub totals: Vec<NoticeTotal>,
    /// The largest of them, savings descending, at most
    /// [`MAX_NOTICE_ITEMS`].
    pub items: Vec<NoticeItem>,
    /// How many were left out of `items`.
    pub omitted: u32,
    /// The console's address, when one is configured.
    pub console_url: Option<String>,
}

/// The new or grown recommendations of one currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeTotal {
    /// ISO 4217 code.
    pub currency: String,
    /// How many.
    pub count: u32,
    /// Their estimated monthly savings together, an exact decimal string.
    pub monthly_savings: String,
}

/// One recommendation a notice names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeItem {
    /// The recommendation's id (stable across runs).
    pub id: uuid::Uuid,
    /// `aws`, `azure`, `gcp`.
    pub provider: String,
    /// The account it is for.
    pub account_id: String,
    /// What people call that account.
    pub account_name: String,
    /// The service (`ec2`, `rds`, `compute`…).
    pub service: String,
    /// The region.
    pub region: String,
    /// Instance or resource type.
    pub resource_type: String,
    /// Term in months.
    pub term_months: i32,
    /// Payment option.
    pub payment_option: String,
    /// ISO 4217 code of the amounts.
    pub currency: String,
    /// Estimated monthly savings now, an exact decimal string.
    pub monthly_savings: String,
    /// What it was when last announced; `None` when it is new.
    pub previous_monthly_savings: Option<String>,
    /// Savings as a percentage of the on-demand cost.
    pub savings_percentage: f64,
}
