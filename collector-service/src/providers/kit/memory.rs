//! Failure memory: a failed fetch is answered from memory for a while, so
//! that the askers that waited for it (other accounts, the other term's
//! sweep) get its answer at once instead of each running the whole retry
//! cycle again, while a fix on the cloud's side is still seen soon.

use std::time::Duration;

use tokio::time::Instant;

use crate::providers::BackendError;

/// How long a failure is answered from memory.
pub(crate) const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// How long a refusal of credentials is answered from memory while the
/// credentials stay the same (changed ones are tried at once): the other
/// services and sweeps of a run fail at once instead of asking again.
pub(crate) const REFUSAL_MEMORY: Duration = Duration::from_secs(120);

/// A failure and until when it is answered from memory.
#[derive(Clone, Debug)]
pub(crate) struct Remembered {
    error: BackendError,
    until: Instant,
}

impl Remembered {
    /// `error`, remembered for `memory` from now.
    pub(crate) fn new(error: BackendError, memory: Duration) -> Self {
        Remembered { error, until: Instant::now() + memory }
    }

    /// The failure, while it is remembered.
    pub(crate) fn recall(&self) -> Option<&BackendError> {
        (Instant::now() < self.until).then_some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FAILURE_MEMORY, Remembered};
    use crate::providers::{BackendError, ErrorKind};

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_recalled_with_its_kind_until_its_memory_ends() {
        let remembered = Remembered::new(BackendError::refused("invalid_grant"), FAILURE_MEMORY);
        let recalled = remembered.recall().unwrap();
        assert_eq!((recalled.kind, recalled.message.as_str()), (ErrorKind::Refused, "invalid_grant"));
        tokio::time::advance(FAILURE_MEMORY - Duration::from_millis(1)).await;
        assert!(remembered.recall().is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(remembered.recall().is_none(), "forgotten when its memory ends");
    }
}
