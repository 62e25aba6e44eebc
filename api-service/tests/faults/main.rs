//! Fault tests with the real binaries and a real Postgres: processes killed,
//! paused, drained; the database restarted, its LISTEN connection killed,
//! or absent at start-up. Each is bounded to seconds and talks only to
//! loopback.
//!
//! They are `#[ignore]`d in the ordinary run because one of them restarts
//! the Postgres server: `scripts/test` runs them one at a time against a
//! cluster of their own (`--run-ignored only -j 1`).

mod procs;
mod scenarios;
mod watchers;
