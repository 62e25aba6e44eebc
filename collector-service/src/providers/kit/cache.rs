//! A bounded cache of fetched values (tokens, lists) with one fetch per key,
//! shared by the REST backends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::providers::BackendError;

/// Values fetched once per key and kept until their expiry. Concurrent
/// askers of one key wait for the single fetch (no stampede). A failed fetch
/// is remembered for [`FAILURE_MEMORY`], so the askers that waited for it
/// (other accounts, the other term's sweep) get its answer at once instead
/// of each running the whole retry cycle again. Bounded: past
/// [`CACHE_CAPACITY`] keys, expired and then all unused entries are dropped.
///
/// Caches of fetched data live in a run's [`crate::providers::RunScope`], so that a
/// run reports only what it fetched itself; only credentials (tokens) are
/// kept across runs.
pub(crate) struct Cache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
}

/// One key's value (or failure) and its expiry; the lock is held while it
/// is fetched.
type Slot<T> = Arc<tokio::sync::Mutex<Option<(Instant, Result<T, BackendError>)>>>;

/// How long a failed fetch is answered from memory.
pub(crate) const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// Keys kept before unused entries are dropped.
const CACHE_CAPACITY: usize = 4096;

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache { slots: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> Cache<T> {
    /// The value of `key`, fetched with `fetch` (value and expiry) unless a
    /// fresh one, or a recent failure, is known.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<T, BackendError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Instant), BackendError>>,
    {
        let slot = self.slot(key);
        let mut held = slot.lock().await;
        if let Some((until, value)) = held.as_ref()
            && Instant::now() < *until
        {
            return value.clone();
        }
        match fetch().await {
            Ok((value, until)) => {
                *held = Some((until, Ok(value.clone())));
                Ok(value)
            }
            Err(err) => {
                *held = Some((Instant::now() + FAILURE_MEMORY, Err(err.clone())));
                Err(err)
            }
        }
    }

    fn slot(&self, key: &str) -> Slot<T> {
        let mut slots = self.slots.lock().unwrap();
        if !slots.contains_key(key) && slots.len() >= CACHE_CAPACITY {
            let now = Instant::now();
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1
                    || s.try_lock().is_ok_and(|v| v.as_ref().is_some_and(|(until, _)| now < *until))
            });
            if slots.len() >= CACHE_CAPACITY {
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
        }
        slots.entry(key.to_string()).or_default().clone()
    }

    /// Drops what is known of `key` (e.g. a token the API rejected).
    pub(crate) fn forget(&self, key: &str) {
        self.slots.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Cache, FAILURE_MEMORY};
    use crate::providers::{BackendError, ErrorKind};

    #[tokio::test]
    async fn a_failed_fetch_is_answered_from_memory_for_a_while_with_its_kind() {
        let cache: Cache<u32> = Cache::default();
        let fetches = AtomicU32::new(0);
        let failing = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Err::<(u32, Instant), _>(BackendError::refused("token endpoint: invalid_grant"))
        };
        // Concurrent askers wait for the one fetch and share its failure.
        let answers = futures_util::future::join_all((0..3).map(|_| cache.get_or_fetch("metadata", failing))).await;
        for answer in answers {
            let err = answer.unwrap_err();
            assert!(err.message.contains("invalid_grant"), "{err}");
            assert_eq!(err.kind, ErrorKind::Refused, "a remembered refusal is still a refusal");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "the waiters got the failure at once");
        cache.forget("metadata");
        let value =
            cache.get_or_fetch("metadata", || async { Ok((7, Instant::now() + Duration::from_secs(60))) }).await;
        assert_eq!(value.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn values_expire_and_failures_are_forgotten_after_their_memory() {
        let cache: Cache<u32> = Cache::default();
        let fetches = AtomicU32::new(0);
        let fetch = |value: u32| {
            fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok((value, Instant::now() + Duration::from_secs(10))) }
        };
        assert_eq!(cache.get_or_fetch("k", || fetch(1)).await.unwrap(), 1);
        assert_eq!(cache.get_or_fetch("k", || fetch(2)).await.unwrap(), 1, "fresh: not fetched again");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get_or_fetch("k", || fetch(3)).await.unwrap(), 3, "expired: fetched again");
        let failing = || async { Err::<(u32, Instant), _>(BackendError::failed("down")) };
        assert!(cache.get_or_fetch("f", failing).await.is_err());
        tokio::time::advance(FAILURE_MEMORY + Duration::from_secs(1)).await;
        assert_eq!(cache.get_or_fetch("f", || fetch(4)).await.unwrap(), 4, "a failure is remembered for a while only");
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }
}
