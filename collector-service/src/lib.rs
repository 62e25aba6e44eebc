//! collector-service: runs recommendation collections in the background.
//!
//! A run is delivered by api-service after it took the collection lease. The
//! collector checks the lease, acknowledges at once, and collects: providers,
//! accounts, services and regions in parallel under caps, heartbeating the
//! lease and fencing every write by the run's (id, generation). Results are
//! written in one transaction.
//!
//! This crate also holds what both services share: the domain vocabulary,
//! database connection and migrations, telemetry and server plumbing.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod credentials;
pub mod db;
pub mod domain;
pub mod engine;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod money;
pub mod persist;
pub mod providers;
pub mod run;
pub mod service;
pub mod serving;
pub mod startup;
pub mod telemetry;
