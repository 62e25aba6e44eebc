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
//! - [`cache`]: values fetched once per key, a failure answered from memory
//!   for a while (the run's listings).
//!
//! Rate limits, retries and request counts are [`super::calls`].

pub(crate) mod cache;
pub(crate) mod http;
pub(crate) mod urls;
