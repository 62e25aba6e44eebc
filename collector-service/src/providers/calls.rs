//! Calling a cloud's API like a good citizen: one token bucket per provider
//! API, shared by all its accounts (so more account parallelism never means
//! a higher request rate), retries with exponential backoff and full jitter
//! on throttling and server errors, a timeout per attempt, and a count of
//! every request made. Every wait is a plain future: dropping it (a
//! cancelled run) cancels it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::BackendError;

/// Requests made to a provider's API (each page and each retry counts) and
/// how many of them failed.
#[derive(Debug, Default)]
pub struct RequestCount {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl RequestCount {
    /// Nothing counted yet.
    pub const fn new() -> Self {
        RequestCount { requests: AtomicU64::new(0), errors: AtomicU64::new(0) }
    }

    /// Counts one request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed request.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// (requests, failed requests) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.requests.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed))
    }
}

/// A token bucket: `rate` requests per second on average, at most `burst`
/// at once. Waiters are served in the order they got their slot.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    /// When the next request may go out (the bucket is full when this is
    /// `burst` intervals in the past).
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `rate` requests per second (> 0), bursts of up to `burst` (>= 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "a rate limit must be positive");
        let interval = Duration::from_secs_f64(1.0 / rate);
        let burst = burst.max(1);
        RateLimiter { interval, burst, next: Mutex::new(Instant::now() - interval * burst) }
    }

    /// Waits for a slot. A slot is taken only when its time has come, by
    /// the clock at that moment: callers that wake late (a busy machine)
    /// cannot go out together on slots reserved earlier, so the rate holds
    /// as the API sees it, not only on paper.
    pub async fn acquire(&self) {
        loop {
            let at = {
                let mut next = self.next.lock().unwrap();
                let now = Instant::now();
                // Unused capacity accumulates up to the burst, not beyond.
                let earliest = now.checked_sub(self.interval * (self.burst - 1)).unwrap_or(now);
                let slot = (*next).max(earliest);
                if slot <= now {
                    *next = slot + self.interval;
                    return;
                }
                slot
            };
            tokio::time::sleep_until(at).await;
        }
    }
}

/// How a failed attempt may be retried.
#[derive(Debug)]
pub enum CallError {
    /// The API throttled us (HTTP 429, AWS `LimitExceededException`, …);
    /// wait at least `retry_after` when the API said so.
    Throttled {
        /// The API's `Retry-After`, if given.
        retry_after: Option<Duration>,
        /// What the API said.
        message: String,
    },
    /// A server error or a network failure: worth another try.
    Transient(String),
    /// A bad request, a malformed answer: trying again would fail the same
    /// way. The message tells a human what to do.
    Permanent(String),
    /// The cloud refused the credentials or a permission (authentication,
    /// authorization, a disabled API): not retried, and the account's other
    /// calls would be refused too. The message tells a human what to fix.
    Refused(String),
}

/// Retries and timeouts for one provider's calls.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff's cap; doubled on every retry.
    pub base_delay: Duration,
    /// No backoff is longer than this.
    pub max_delay: Duration,
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
}

/// A provider's rate limiter and retry policy.
#[derive(Debug)]
pub struct CallLimits {
    /// Shared by every account of the provider.
    pub limiter: RateLimiter,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
}

impl CallLimits {
    /// Runs `attempt` until it succeeds, fails permanently or runs out of
    /// attempts. Every attempt first takes a slot from the rate limiter and
    /// is counted in `calls`; `what` names the call in errors.
    pub async fn call<T, F, Fut>(&self, calls: &RequestCount, what: &str, attempt: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.call_unnamed(calls, what, attempt).await.map_err(|err| err.context(what))
    }

    /// [`Self::call`], its error not yet named after the call (`what` names
    /// it in the log only): for an answer several askers share, each naming
    /// it its own way.
    pub(crate) async fn call_unnamed<T, F, Fut>(
        &self,
        calls: &RequestCount,
        what: &str,
        mut attempt: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let policy = &self.retry;
        let mut tries = 0;
        loop {
            tries += 1;
            self.limiter.acquire().await;
            calls.request();
            let outcome = match tokio::time::timeout(policy.attempt_timeout, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(CallError::Transient(format!("no answer within {:?}", policy.attempt_timeout))),
            };
            let (retry_after, message) = match outcome {
                Ok(value) => return Ok(value),
                Err(CallError::Permanent(message)) => {
                    calls.error();
                    return Err(BackendError::failed(message));
                }
                Err(CallError::Refused(message)) => {
                    calls.error();
                    return Err(BackendError::refused(message));
                }
                Err(CallError::Throttled { retry_after, message }) => {
                    calls.error();
                    (retry_after, format!("throttled: {message}"))
                }
                Err(CallError::Transient(message)) => {
                    calls.error();
                    (None, message)
                }
            };
            if tries >= policy.max_attempts {
                return Err(BackendError::failed(format!("{message} (gave up after {tries} attempts)")));
            }
            let delay = backoff(policy, tries).max(retry_after.unwrap_or_default().min(policy.max_delay));
            tracing::debug!(what, attempt = tries, delay_ms = delay.as_millis() as u64, %message, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Full jitter: uniform in [0, min(max, base × 2^(attempt-1))].
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let cap = policy.base_delay.saturating_mul(1 << (attempt - 1).min(20)).min(policy.max_delay);
    cap.mul_f64(fastrand::f64())
}

/// Parses an HTTP `Retry-After` in seconds (the form cost APIs send).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    // Capped at a day: a huge value must not overflow a deadline (the
    // retry policy caps the wait again).
    value?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{CallError, CallLimits, RateLimiter, RequestCount, RetryPolicy, retry_after};

    /// Limits for unit tests: `rate` calls a second in bursts of `burst`,
    /// `attempts` per call, short backoffs.
    pub(crate) fn limits(rate: f64, burst: u32, attempts: u32) -> CallLimits {
        CallLimits {
            limiter: RateLimiter::new(rate, burst),
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                attempt_timeout: Duration::from_secs(5),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(5.0, 2);
        let start = Instant::now();
        for _ in 0..12 {
            limiter.acquire().await;
        }
        // 2 at once, then 10 more at 200 ms each.
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_until_success_and_every_attempt_counts() {
        let limits = limits(100.0, 10, 5);
        let calls = RequestCount::default();
        let attempts = AtomicU32::new(0);
        let got = limits
            .call(&calls, "GetThing", || async {
                match attempts.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(CallError::Throttled { retry_after: Some(Duration::from_secs(1)), message: "429".into() }),
                    1 => Err(CallError::Transient("503".into())),
                    _ => Ok(7),
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 7);
        assert_eq!(calls.get(), (3, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_attempts_are_capped() {
        let limits = limits(100.0, 10, 3);
        let calls = RequestCount::default();
        let err = limits
            .call(&calls, "AssumeRole", || async { Err::<(), _>(CallError::Refused("access denied".into())) })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "AssumeRole: access denied");
        assert_eq!(err.kind, crate::providers::ErrorKind::Refused);
        assert_eq!(calls.get(), (1, 1));
        let calls = RequestCount::default();
        let err = limits
            .call(&calls, "List", || async { Err::<(), _>(CallError::Permanent("malformed answer".into())) })
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::providers::ErrorKind::Failed);
        assert_eq!(calls.get(), (1, 1), "a malformed answer is not asked again");
        let calls = RequestCount::default();
        let err = limits
            .call(&calls, "List", || async { Err::<(), _>(CallError::Transient("503".into())) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("gave up after 3 attempts"), "{err}");
        assert_eq!(calls.get(), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unnamed_error_is_the_same_error_without_the_calls_name() {
        let limits = limits(100.0, 10, 2);
        let calls = RequestCount::default();
        let transient = || async { Err::<(), _>(CallError::Transient("503".into())) };
        let named = limits.call(&calls, "Token", transient).await.unwrap_err();
        let unnamed = limits.call_unnamed(&calls, "Token", transient).await.unwrap_err();
        assert_eq!(unnamed.to_string(), "503 (gave up after 2 attempts)");
        assert_eq!(named.to_string(), unnamed.clone().context("Token").to_string());
        assert_eq!(
            (named.kind, unnamed.kind),
            (crate::providers::ErrorKind::Failed, crate::providers::ErrorKind::Failed)
        );
        assert_eq!(calls.get(), (4, 4));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
        assert_eq!(retry_after(Some("1e20")), Some(Duration::from_secs(86_400)), "no overflow");
    }
}
