//! api-service integration tests: the real pair on port 0, a real Postgres
//! database per test, real tonic clients.

mod accounts;
mod auth;
mod bad_input;
mod collector_auth;
mod console;
mod contract;
mod cudlyctl;
mod figures;
mod grpc_web;
mod guarantees;
mod identity_provider;
mod keys;
mod listing;
mod notifications;
mod observability;
mod refresh;
mod watch;
