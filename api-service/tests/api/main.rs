//! api-service integration tests: the real pair on port 0, a real Postgres
//! database per test, real tonic clients.

mod grpc_web;
mod helpers;
mod listing;
mod refresh;
mod watch;
