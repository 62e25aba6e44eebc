//! collector-service: runs recommendation collections in the background.
//!
//! A run is delivered by api-service after it took the collection lease. The
//! collector checks the lease, acknowledges at once, and collects: providers,
//! accounts, services and regions in parallel under caps, heartbeating the
//! lease and fencing every write by the run's (id, generation). Results are
//! written in one transaction.
//!
//! What it shares with api-service (the domain, the lease, the schema's
//! names, serving plumbing) lives in `cudly_core`.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod collection;
pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod notices;
pub mod notify;
pub mod persist;
pub mod providers;
