//! The deliverer: in every collector replica, from start-up to shutdown, it
//! claims due deliveries from the outbox and sends them, a few at a time.
//!
//! A claim is one statement: it takes due rows no other replica holds
//! (`FOR UPDATE SKIP LOCKED`), counts the attempt and moves the row's
//! `next_attempt_at` past the claim timeout. The row stays `pending`: a
//! replica that dies mid-send leaves it to be claimed again once the claim
//! times out, so every delivery goes out at least once, with the same id.
//! Each outcome is written only if the row is still the same claim
//! (`attempts` unchanged): a sender that outlived its claim cannot undo
//! the attempt that took over.

use std::sync::Arc;
use std::time::Duration;

use cudly_core::credentials::SecretFileDirs;
use cudly_core::notice::NoticePayload;
use cudly_core::quote::at_most;
use cudly_core::schema::NOTICES_CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::email::Mailer;
use super::slack;
use super::webhook;
use super::{Failure, SendError};
use crate::metrics::CollectorMetrics;
use cudly_core::channels::{EmailSettings, SlackSettings, WebhookSettings};

/// The longest `last_error` stored.
const MAX_LAST_ERROR_CHARS: usize = 500;

/// How the deliverer runs (the collector's `--notify-*` flags).
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Sends at once in this replica.
    pub concurrency: usize,
    /// How often the outbox is read without a notification (retries that
    /// fell due, notifications missed), and the oldest-undelivered gauge
    /// refreshed.
    pub poll_interval: Duration,
    /// The first retry waits about this long; each further one twice as
    /// long as the one before.
    pub retry_base: Duration,
    /// No retry waits longer.
    pub retry_max: Duration,
    /// A delivery still failing this long after it was queued is failed.
    pub retry_for: Duration,
    /// Deadline of one request to a receiver.
    pub timeout: Duration,
    /// Where `file:` secret references may be read from.
    pub secret_files: SecretFileDirs,
    /// A PEM CA trusted for email channels' SMTP servers besides the public
    /// roots.
    pub smtp_ca_file: Option<std::path::PathBuf>,
}

impl DeliverySettings {
    /// How long a claim holds a delivery: past it, its sender is presumed
    /// dead and another attempt may take it. Longer than a send may last.
    pub fn claim_timeout(&self) -> Duration {
        self.timeout * 3
    }

    /// The whole of one send (reading the secret, connecting, the request;
    /// for email every SMTP step): well inside the claim.
    fn send_deadline(&self) -> Duration {
        self.timeout * 2
    }

    /// The wait before the attempt after `attempts` failed ones: `base ×
    /// 2^(attempts-1)`, at most `retry_max`, of which the upper half is
    /// random, so that deliveries that failed together do not come back
    /// together.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let full = self.retry_base.saturating_mul(1 << doublings).min(self.retry_max);
        full / 2 + full.mul_f64(fastrand::f64() / 2.0)
    }
}

/// Sends queued notices; see the module's documentation.
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    settings: DeliverySettings,
    metrics: CollectorMetrics,
    client: reqwest::Client,
    mailer: Mailer,
}

/// A claimed delivery, with what sending it takes.
struct Claimed {
    id: Uuid,
    attempts: i32,
    payload: serde_json::Value,
    kind: String,
    channel: String,
    enabled: bool,
    settings: serde_json::Value,
}

impl Deliverer {
    /// A deliverer on `pool`; nothing runs until [`Deliverer::run`].
    pub fn new(pool: PgPool, settings: DeliverySettings, metrics: CollectorMetrics) -> anyhow::Result<Self> {
        anyhow::ensure!(settings.concurrency > 0, "notice delivery needs a concurrency of at least 1");
        let client = super::post::client()?;
        let mailer = Mailer::new(settings.smtp_ca_file.as_deref(), settings.timeout)?;
        Ok(Deliverer { inner: Arc::new(Inner { pool, settings, metrics, client, mailer }) })
    }

    /// Delivers until `shutdown`; then claims nothing more and waits, at
    /// most a send's deadline, for the sends in flight (any left are
    /// claimed again after the claim timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        let inner = self.inner;
        let settings = &inner.settings;
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(inner.pool.clone(), wake.clone(), shutdown.clone()));
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        let sends = TaskTracker::new();
        let mut next_poll = Instant::now();
        let mut claim_failures = 0u32;
        tracing::info!(concurrency = settings.concurrency, "notice deliverer started");
        loop {
            if Instant::now() >= next_poll {
                inner.refresh_oldest_undelivered().await;
                next_poll = Instant::now() + settings.poll_interval;
            }
            // Permits first: a claim takes only what can be sent at once,
            // so no claimed row waits here while its claim runs out.
            let mut held = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            while let Ok(more) = permits.clone().try_acquire_owned() {
                held.merge(more);
            }
            let wanted = held.num_permits();
            let wait = match inner.claim(wanted).await {
                Ok(claimed) => {
                    claim_failures = 0;
                    let full = claimed.len() == wanted;
                    for delivery in claimed {
                        let permit = held.split(1).expect("a permit per claimed delivery");
                        let (inner, wake) = (inner.clone(), wake.clone());
                        sends.spawn(async move {
                            inner.attempt(delivery).await;
                            drop(permit);
                            // A retry may now fall due before the loop's
                            // next wake-up: let it look again.
                            wake.notify_one();
                        });
                    }
                    drop(held);
                    if full {
                        continue;
                    }
                    inner.until_next_due().await
                }
                Err(err) => {
                    drop(held);
                    claim_failures += 1;
                    let wait =
                        (Duration::from_millis(100) * 2u32.pow(claim_failures.min(6))).min(settings.poll_interval);
                    tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "claiming notice deliveries failed");
                    wait
                }
            };
            let until = (Instant::now() + wait).min(next_poll);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        sends.close();
        if tokio::time::timeout(settings.send_deadline(), sends.wait()).await.is_err() {
            tracing::warn!(
                "notice sends still running at shutdown; their deliveries are retried after the claim timeout"
            );
        }
        let _ = listener.await;
        tracing::info!("notice deliverer stopped");
    }
}

impl Inner {
    /// Claims up to `n` due deliveries.
    async fn claim(&self, n: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows = sqlx::query!(
            r#"WITH claimed AS (
                   UPDATE notice_deliveries
                   SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
                   WHERE id IN (
                       SELECT id FROM notice_deliveries
                       WHERE status = 'pending' AND next_attempt_at <= now()
                       ORDER BY next_attempt_at
                       LIMIT $1
                       FOR UPDATE SKIP LOCKED
                   )
                   RETURNING id, notice_id, channel_id, attempts
               )
               SELECT c.id AS "id!", c.attempts AS "attempts!", n.payload AS "payload!", ch.kind AS "kind!",
                      ch.name AS "name!", ch.enabled AS "enabled!", ch.settings AS "settings!"
               FROM claimed c
               JOIN notices n ON n.id = c.notice_id
               JOIN notification_channels ch ON ch.id = c.channel_id"#,
            n as i64,
            self.settings.claim_timeout().as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Claimed {
                id: r.id,
                attempts: r.attempts,
                payload: r.payload,
                kind: r.kind,
                channel: r.name,
                enabled: r.enabled,
                settings: r.settings,
            })
            .collect())
    }

    /// How long until the next pending delivery falls due (a poll interval
    /// when none is pending, or when the database does not answer).
    async fn until_next_due(&self) -> Duration {
        let seconds = sqlx::query_scalar!(
            r#"SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8 AS "seconds"
               FROM notice_deliveries WHERE status = 'pending'"#
        )
        .fetch_one(&self.pool)
        .await;
        match seconds {
            // Due already but not claimed: another replica is taking it.
            // Look again soon rather than spin.
            Ok(Some(seconds)) => Duration::from_secs_f64(seconds.clamp(0.01, 86_400.0)),
            Ok(None) | Err(_) => self.settings.poll_interval,
        }
    }

    /// Sets the gauge of the oldest pending delivery's age.
    async fn refresh_oldest_undelivered(&self) {
        let age = sqlx::query_scalar!(
            r#"SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS "seconds!"
               FROM notice_deliveries WHERE status = 'pending'"#
        )
        .fetch_one(&self.pool)
        .await;
        match age {
            Ok(seconds) => self.metrics.oldest_undelivered(Duration::from_secs_f64(seconds.max(0.0))),
            Err(err) => tracing::warn!(error = %err, "reading the oldest undelivered notice failed"),
        }
    }

    /// One attempt at a claimed delivery, and its outcome recorded.
    async fn attempt(&self, d: Claimed) {
        self.metrics.notice_attempted(&d.kind);
        let deadline = self.settings.send_deadline();
        let result = match tokio::time::timeout(deadline, self.send(&d)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Retryable(format!("the send took longer than {deadline:?}")).into()),
        };
        let recorded = match &result {
            Ok(()) => self.record_delivered(&d).await.map(|written| written.then_some("delivered")),
            Err(failure) => self.record_failure(&d, failure).await,
        };
        let outcome = match recorded {
            Ok(Some(outcome)) => outcome,
            Ok(None) => {
                tracing::warn!(delivery_id = %d.id, channel = %d.channel, kind = %d.kind, attempt = d.attempts,
                    "notice attempt outlived its claim; the attempt that took it over decides");
                return;
            }
            Err(err) => {
                tracing::warn!(delivery_id = %d.id, channel = %d.channel, kind = %d.kind, attempt = d.attempts,
                    error = %err, "recording a notice attempt failed; it is tried again after the claim timeout");
                return;
            }
        };
        self.metrics.notice_attempt_ended(&d.kind, outcome);
        match (&result, outcome) {
            (Ok(()), _) => tracing::info!(delivery_id = %d.id, channel = %d.channel, kind = %d.kind,
                attempt = d.attempts, "notice delivered"),
            (Err(failure), "retry") => tracing::warn!(delivery_id = %d.id, channel = %d.channel, kind = %d.kind,
                attempt = d.attempts, error = %failure.error, "notice delivery failed; will retry"),
            (Err(failure), _) => tracing::warn!(delivery_id = %d.id, channel = %d.channel, kind = %d.kind,
                attempt = d.attempts, error = %failure.error, "notice delivery failed for good"),
        }
    }

    /// Renders and sends a claimed delivery for its channel's kind.
    async fn send(&self, d: &Claimed) -> Result<(), Failure> {
        if !d.enabled {
            return Err(SendError::Permanent("the channel is disabled".into()).into());
        }
        let payload: NoticePayload = serde_json::from_value(d.payload.clone())
            .map_err(|err| SendError::Permanent(format!("the notice does not read as a notice: {err}")))?;
        let (client, files, timeout) = (&self.client, &self.settings.secret_files, self.settings.timeout);
        match d.kind.as_str() {
            "webhook" => {
                let settings: WebhookSettings = channel_settings(&d.settings, "webhook")?;
                webhook::send(client, files, timeout, &settings, d.id, &payload).await
            }
            "slack" => {
                let settings: SlackSettings = channel_settings(&d.settings, "slack")?;
                slack::send(client, files, timeout, &settings, &payload).await
            }
            "email" => {
                let settings: EmailSettings = channel_settings(&d.settings, "email")?;
                let password = settings.password_ref.read(files).map_err(SendError::Permanent)?;
                self.mailer.send(&settings, &password, d.id, &payload).await.map_err(Failure::from)
            }
            other => {
                Err(SendError::Permanent(format!("unknown channel kind {}", cudly_core::quote::quoted(other))).into())
            }
        }
    }

    async fn record_delivered(&self, d: &Claimed) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            "UPDATE notice_deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL
             WHERE id = $1 AND attempts = $2 AND status = 'pending'",
            d.id,
            d.attempts,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Schedules the next attempt, or fails the delivery when the failure
    /// is permanent or the retry period is over; the outcome (`retry`,
    /// `failed`), or `None` when the claim was lost. The last retry is held
    /// to the end of the period, so the period is used to its end.
    async fn record_failure(&self, d: &Claimed, failure: &Failure) -> Result<Option<&'static str>, sqlx::Error> {
        let permanent = matches!(failure.error, SendError::Permanent(_));
        let wait =
            self.settings.backoff(d.attempts).max(failure.retry_after.unwrap_or_default().min(self.settings.retry_max));
        let last_error = at_most(&failure.error.to_string(), MAX_LAST_ERROR_CHARS);
        let status = sqlx::query_scalar!(
            r#"UPDATE notice_deliveries
               SET status = CASE WHEN $3 OR now() >= created_at + make_interval(secs => $4) THEN 'failed'
                                 ELSE 'pending' END,
                   next_attempt_at = LEAST(now() + make_interval(secs => $5), created_at + make_interval(secs => $4)),
                   last_error = $6
               WHERE id = $1 AND attempts = $2 AND status = 'pending'
               RETURNING status"#,
            d.id,
            d.attempts,
            permanent,
            self.settings.retry_for.as_secs_f64(),
            wait.as_secs_f64(),
            last_error,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(status.map(|s| if s == "failed" { "failed" } else { "retry" }))
    }
}

/// A channel's stored settings as its kind reads them.
fn channel_settings<T: serde::de::DeserializeOwned>(settings: &serde_json::Value, kind: &str) -> Result<T, SendError> {
    serde_json::from_value(settings.clone()).map_err(|err| {
        SendError::Permanent(format!(
            "the channel's settings do not read as {kind} settings: {}",
            at_most(&err.to_string(), 200)
        ))
    })
}

/// Keeps one LISTEN connection on [`NOTICES_CHANNEL`] and wakes the loop on
/// every notification and every (re)connect; reconnects with backoff.
async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(NOTICES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match connected.await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "notice listener cannot connect");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // LISTEN first, then look: what was queued while no one listened
        // is found by the claim this wake-up starts.
        wake.notify_one();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => wake.notify_one(),
                    Ok(None) => {
                        tracing::warn!("notice listener lost its connection; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "notice listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            concurrency: 8,
            poll_interval: Duration::from_secs(5),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            retry_for: Duration::from_secs(86_400),
            timeout: Duration::from_secs(10),
            secret_files: SecretFileDirs::new([]).unwrap(),
            smtp_ca_file: None,
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let s = settings();
        for _ in 0..100 {
            let first = s.backoff(1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2), "{first:?}");
            let fourth = s.backoff(4);
            assert!(fourth >= Duration::from_secs(8) && fourth <= Duration::from_secs(16), "{fourth:?}");
            let late = s.backoff(40);
            assert!(late >= Duration::from_secs(300) && late <= Duration::from_secs(600), "{late:?}");
        }
        assert!(s.send_deadline() < s.claim_timeout(), "a send ends before its claim does");
    }
}
