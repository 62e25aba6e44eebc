//! What api-service and collector-service share, so that neither depends on
//! the other: the domain vocabulary and exact money, credentials
//! references, the lease (acquire, heartbeat, fence, the run-end write),
//! the schema's names, database setup and migrations, the gRPC serving
//! plumbing, the rule for outbound URLs, telemetry, metrics and the common
//! command-line flags.

pub mod channels;
pub mod config;
pub mod credentials;
pub mod db;
pub mod domain;
pub mod files;
pub mod lease;
pub mod metrics;
pub mod money;
pub mod notice;
pub mod quote;
pub mod schema;
pub mod server;
pub mod telemetry;
pub mod url;
