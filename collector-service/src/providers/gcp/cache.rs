//! A bounded cache of fetched values (tokens, lists) with one fetch per key.

use super::*;

/// Values fetched once per key and kept until their expiry. Concurrent
/// askers of one key wait for the single fetch (no stampede). A failed fetch
/// is remembered for [`FAILURE_MEMORY`], so the askers that waited for it
/// (other accounts, the other term's sweep) get its answer at once instead
/// of each running the whole retry cycle again. Bounded: past
/// [`CACHE_CAPACITY`] keys, expired and then all unused entries are dropped.
pub(super) struct Cache<T> {
    pub(super) slots: Mutex<HashMap<String, Slot<T>>>,
}

/// One key's value (or failure) and its expiry; the lock is held while it
/// is fetched.
pub(super) type Slot<T> = Arc<tokio::sync::Mutex<Option<(Instant, Result<T, String>)>>>;

/// How long a failed fetch is answered from memory.
pub(super) const FAILURE_MEMORY: Duration = Duration::from_secs(30);

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache { slots: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> Cache<T> {
    pub(super) async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<T, BackendError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Instant), BackendError>>,
    {
        let slot = self.slot(key);
        let mut held = slot.lock().await;
        if let Some((until, value)) = held.as_ref()
            && Instant::now() < *until
        {
            return value.clone().map_err(BackendError);
        }
        match fetch().await {
            Ok((value, until)) => {
                *held = Some((until, Ok(value.clone())));
                Ok(value)
            }
            Err(err) => {
                *held = Some((Instant::now() + FAILURE_MEMORY, Err(err.0.clone())));
                Err(err)
            }
        }
    }

    pub(super) fn slot(&self, key: &str) -> Slot<T> {
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

    pub(super) fn forget(&self, key: &str) {
        self.slots.lock().unwrap().remove(key);
    }
}
