//! What the services' tests and benchmarks share, so each exists once:
//! settings built from the services' real defaults (their clap flags),
//! spawning collector-service and api-service in-process on port 0,
//! minting JWTs, issuing certificates, fixture recommendations, and
//! notices with a receiver that checks their signatures.

pub mod fixtures;
pub mod jwt;
pub mod logs;
pub mod notify;
pub mod pki;
pub mod settings;
pub mod spawn;
