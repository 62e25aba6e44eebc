//! The freshness hub: one LISTEN connection per replica wakes it; it reads
//! the state row once per change and fans the snapshot out to every watcher
//! through a watch channel. Watchers cost the database nothing each.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cudly_proto::recommendations::v1 as pb;
use futures_util::Stream;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use cudly_core::schema::STATE_CHANNEL;

use crate::state::read_freshness;

/// Why a WatchFreshness stream could not start, or ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The hub has never read the state row (the database is unreachable).
    #[error("freshness not available yet: the database is unreachable")]
    NotSynced,
    /// This replica already serves its maximum of streams.
    #[error("this replica already serves {0} WatchFreshness streams; retry later or on another replica")]
    Full(i64),
    /// The server is shutting down.
    #[error("server shutting down; reconnect with since_version")]
    ShuttingDown,
    /// The hub stopped publishing.
    #[error("freshness hub stopped; reconnect with since_version")]
    Stopped,
    /// The caller's token expired while the stream was open.
    #[error("the token has expired; reconnect with a fresh token and since_version")]
    TokenExpired,
}

/// The latest snapshot, shared by every watcher of this replica.
#[derive(Clone, Debug)]
pub struct Hub {
    snapshots: watch::Receiver<Arc<pb::Freshness>>,
    shutdown: CancellationToken,
    watchers: Gauge,
    max_watchers: i64,
}

impl Hub {
    /// Starts listening; the first snapshot arrives once the database
    /// answers (see [`Hub::is_synced`]). `resync` bounds how long a missed
    /// notification (or a lease that expired without a change) can go
    /// unseen: the row is re-read that often anyway.
    /// `watchers` counts the open streams; at `max_watchers` a new one is
    /// refused with RESOURCE_EXHAUSTED.
    pub fn start(
        pool: PgPool,
        resync: Duration,
        shutdown: CancellationToken,
        watchers: Gauge,
        max_watchers: u32,
    ) -> Hub {
        // Version 0 never exists in the database (the row starts at 1).
        let (tx, rx) = watch::channel(Arc::new(pb::Freshness::default()));
        let tx = Arc::new(tx);
        // Shutdown reaches every stream as one wake-up of the channel they
        // already wait on; a cancellation future per stream would cost a
        // shared lock per stream on every message.
        let (wake, stop) = (tx.clone(), shutdown.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            wake.send_modify(|_| {});
        });
        tokio::spawn(listen(pool, tx, resync, shutdown.clone()));
        Hub { snapshots: rx, shutdown, watchers, max_watchers: i64::from(max_watchers) }
    }

    /// Whether the hub has read the state row at least once.
    pub fn is_synced(&self) -> bool {
        self.snapshots.borrow().version > 0
    }

    /// A WatchFreshness stream: the current snapshot first (unless the
    /// client already has its version), then every newer snapshot, a
    /// heartbeat re-send every `heartbeat`, `UNAVAILABLE` at shutdown and
    /// `UNAUTHENTICATED` at `expires_at` (when the caller's token expires).
    /// [`WatchError::NotSynced`] at once while the hub has never read the
    /// state; [`WatchError::Full`] when this replica already serves its
    /// maximum.
    pub fn watch(
        &self,
        since_version: i64,
        heartbeat: Duration,
        expires_at: Option<std::time::SystemTime>,
    ) -> Result<impl Stream<Item = Result<pb::Freshness, WatchError>> + Send + 'static, WatchError> {
        if !self.is_synced() {
            return Err(WatchError::NotSynced);
        }
        // Counted before checking, so that concurrent callers cannot all
        // slip under the cap.
        let slot = WatcherSlot(self.watchers.clone());
        if slot.0.inc() >= self.max_watchers {
            return Err(WatchError::Full(self.max_watchers));
        }
        let expiry = expires_at.map(|at| {
            let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
        let mut rx = self.snapshots.clone();
        let current = rx.borrow_and_update().clone();
        let collecting = current.collecting;
        let first = (current.version != since_version).then_some(current);
        let start = tokio::time::Instant::now() + heartbeat;
        let state = WatchState {
            rx,
            last_collecting: collecting,
            first,
            last_sent: since_version,
            heartbeat: tokio::time::interval_at(start, heartbeat),
            shutdown: self.shutdown.clone(),
            expiry,
            done: false,
            _slot: slot,
        };
        Ok(futures_util::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }
}

struct WatchState {
    rx: watch::Receiver<Arc<pb::Freshness>>,
    first: Option<Arc<pb::Freshness>>,
    last_sent: i64,
    /// Whether the last snapshot sent showed a run holding its lease.
    last_collecting: bool,
    heartbeat: tokio::time::Interval,
    shutdown: CancellationToken,
    expiry: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
    _slot: WatcherSlot,
}

/// One open stream in the watcher gauge, given back when the stream ends.
struct WatcherSlot(Gauge);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl WatchState {
    async fn next(&mut self) -> Option<Result<pb::Freshness, WatchError>> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            self.last_sent = first.version;
            self.last_collecting = first.collecting;
            return Some(Ok((*first).clone()));
        }
        loop {
            if self.shutdown.is_cancelled() {
                self.done = true;
                return Some(Err(WatchError::ShuttingDown));
            }
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        self.done = true;
                        return Some(Err(WatchError::Stopped));
                    }
                    let snapshot = self.rx.borrow_and_update().clone();
                    // The same version is news only when the lease expired
                    // without a write (the run shows ABANDONED from then
                    // on); a renewed expiry alone is not.
                    let expired = snapshot.version == self.last_sent && snapshot.collecting != self.last_collecting;
                    if snapshot.version > self.last_sent || expired {
                        self.last_sent = snapshot.version;
                        self.last_collecting = snapshot.collecting;
                        self.heartbeat.reset();
                        return Some(Ok((*snapshot).clone()));
                    }
                }
                _ = self.heartbeat.tick() => {
                    let snapshot = self.rx.borrow().clone();
                    self.last_sent = self.last_sent.max(snapshot.version);
                    self.last_collecting = snapshot.collecting;
                    return Some(Ok((*snapshot).clone()));
                }
                _ = async { self.expiry.as_mut().expect("guarded by the branch condition").await }, if self.expiry.is_some() => {
                    self.done = true;
                    return Some(Err(WatchError::TokenExpired));
                }
            }
        }
    }
}

/// Keeps one LISTEN connection and publishes a snapshot after every
/// notification, every reconnect, every `resync`, and when the running
/// run's lease expires (nothing is written then, so nothing notifies: the
/// hub notices by itself, and watchers see the run abandoned at once).
async fn listen(
    pool: PgPool,
    tx: Arc<watch::Sender<Arc<pb::Freshness>>>,
    resync: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "freshness listener cannot connect");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // LISTEN first, then read: a change in between is both read and
        // notified, never lost.
        publish(&pool, &tx).await;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
        loop {
            let expiry = lease_expiry_check(&tx.borrow());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => publish(&pool, &tx).await,
                _ = sleep_until_some(expiry) => publish(&pool, &tx).await,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => publish(&pool, &tx).await,
                    Ok(None) => {
                        tracing::warn!("freshness listener lost its connection; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "freshness listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// When to read the row again to see the running run's lease expire: just
/// after its expiry by this replica's clock, and never sooner than
/// [`EXPIRY_RECHECK`] from now (the database's clock decides; a skewed
/// clock only costs a few re-reads). `None` when no run holds a lease.
fn lease_expiry_check(snapshot: &pb::Freshness) -> Option<tokio::time::Instant> {
    let expires = snapshot.lease_expires_at.as_ref().filter(|_| snapshot.collecting)?;
    let expires = std::time::UNIX_EPOCH
        + Duration::new(u64::try_from(expires.seconds).ok()?, u32::try_from(expires.nanos).unwrap_or(0));
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    Some(tokio::time::Instant::now() + left.max(EXPIRY_RECHECK))
}

/// The least time between two reads for a lease's expiry.
const EXPIRY_RECHECK: Duration = Duration::from_millis(250);

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(STATE_CHANNEL).await?;
    Ok(listener)
}

/// Reads the row and publishes it unless it is older than what watchers have.
async fn publish(pool: &PgPool, tx: &watch::Sender<Arc<pb::Freshness>>) {
    match read_freshness(pool).await {
        Ok(snapshot) => {
            tx.send_if_modified(|current| {
                if snapshot.version < current.version || **current == snapshot {
                    return false;
                }
                *current = Arc::new(snapshot);
                true
            });
        }
        Err(err) => tracing::warn!(error = %err, "reading the collection state failed"),
    }
}
