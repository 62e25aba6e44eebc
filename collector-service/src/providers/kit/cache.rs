//! A bounded cache of fetched values (a run's listings) with one fetch per
//! key, shared by the REST backends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::memory::{FAILURE_MEMORY, Remembered};
use crate::providers::BackendError;

/// Values fetched once per key and kept until their expiry. Concurrent
/// askers of one key wait for the single fetch (no stampede). A failed fetch
/// is remembered for [`FAILURE_MEMORY`], so the askers that waited for it
/// (other accounts, the other term's sweep) get its answer at once instead
/// of each running the whole retry cycle again. Bounded: past
/// [`CACHE_CAPACITY`] keys, expired and then all unused entries are dropped.
///
/// Caches of fetched data live in a run's [`crate::providers::RunScope`],
/// so that a run reports only what it fetched itself; only credentials are
/// kept across runs ([`super::tokens::TokenCache`]).
pub(crate) struct Cache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
}

/// One key's value or failure; the lock is held while it is fetched.
type Slot<T> = Arc<tokio::sync::Mutex<Option<Entry<T>>>>;

/// A fetched value until its expiry, or a remembered failure.
enum Entry<T> {
    Value(T, Instant),
    Failure(Remembered),
}

impl<T> Entry<T> {
    /// Whether the entry still answers.
    fn fresh(&self) -> bool {
        match self {
            Entry::Value(_, until) => Instant::now() < *until,
            Entry::Failure(remembered) => remembered.recall().is_some(),
        }
    }
}

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
        match held.as_ref() {
            Some(Entry::Value(value, until)) if Instant::now() < *until => return Ok(value.clone()),
            Some(Entry::Failure(remembered)) => {
                if let Some(err) = remembered.recall() {
                    return Err(err.clone());
                }
            }
            _ => {}
        }
        match fetch().await {
            Ok((value, until)) => {
                *held = Some(Entry::Value(value.clone(), until));
                Ok(value)
            }
            Err(err) => {
                *held = Some(Entry::Failure(Remembered::new(err.clone(), FAILURE_MEMORY)));
                Err(err)
            }
        }
    }

    fn slot(&self, key: &str) -> Slot<T> {
        let mut slots = self.slots.lock().unwrap();
        if !slots.contains_key(key) && slots.len() >= CACHE_CAPACITY {
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1 || s.try_lock().is_ok_and(|v| v.as_ref().is_some_and(Entry::fresh))
            });
            if slots.len() >= CACHE_CAPACITY {
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
        }
        slots.entry(key.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use std::time::Duration;

    use tokio::time::Instant;

    use super::Cache;
    use crate::providers::kit::memory::FAILURE_MEMORY;
    use crate::providers::{BackendError, ErrorKind};

    #[tokio::test(start_paused = true)]
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
        tokio::time::advance(FAILURE_MEMORY).await;
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
