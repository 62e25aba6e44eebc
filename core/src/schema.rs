//! Names the schema in `migrations/` defines and the services share. SQL
//! cannot import these, so each names the migration that writes it, and a
//! test against the migrated schema proves they still agree.

/// The channel the state row's trigger notifies on every change
/// (`collection_state_versioned()` in `20261129000001_init.up.sql`). The hub
/// listens on it.
pub const STATE_CHANNEL: &str = "collection_state";

/// The advisory lock (`pg_advisory_xact_lock`) that serializes a run's
/// result write with account deletion, so a deleted account's rows never
/// come back. Taken by the collector's `persist` and by the accounts store.
pub const ACCOUNTS_LOCK: i64 = 0x6375_646c_7961;

/// The channel a new notice delivery is announced on (`pg_notify` by
/// whoever queues one: the run-end transaction, SendTestNotice), so that an
/// idle deliverer wakes at once instead of at its next poll.
pub const NOTICES_CHANNEL: &str = "cudly_notices";

/// The advisory lock (`pg_advisory_xact_lock`) that serializes creating
/// notification channels, so that concurrent creates cannot pass the cap on
/// their number together. Taken by api-service's channel store.
pub const CHANNELS_LOCK: i64 = 0x6375_646c_796e;
