//! The kit the cloud backends are built from. Each mechanism exists once,
//! here; what really differs between clouds (ARM's and Google's error
//! bodies, a `nextLink` or a `nextPageToken`) is a small provider part
//! plugged into it.
//!
//! - [`http`]: the HTTP client of the REST backends, and the sorting of an
//!   answer into success, throttling, a transient or permanent failure or a
//!   refusal.
//! - [`urls`]: base URLs checked at start-up, request URLs built with
//!   every path segment and query value percent-encoded.
//! - [`pager`]: a paged list followed to its end, bounded, a repeated
//!   cursor refused.
//! - [`memory`]: how long a failure is answered from memory.
//! - [`cache`]: values fetched once per key, a failure answered from memory
//!   for a while (the run's listings).
//! - [`tokens`]: access tokens per credentials, renewed before they expire,
//!   a refusal remembered until the credentials change, a token an API
//!   rejects dropped.
//!
//! Rate limits, retries and request counts are [`super::calls`].

pub(crate) mod cache;
pub(crate) mod http;
pub(crate) mod memory;
pub(crate) mod pager;
pub(crate) mod tokens;
pub(crate) mod urls;
