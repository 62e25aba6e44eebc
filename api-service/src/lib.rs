//! api-service: answers RefreshRecommendations at once by taking the
//! collection lease and handing the run to collector-service; streams the
//! collection state with WatchFreshness; serves recommendations.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod error;
pub mod grpc;
pub mod hub;
pub mod metrics;
pub mod notifications;
pub mod page_token;
pub mod recommendations;
pub mod refresh;
pub mod state;
