//! Access tokens, kept across runs until shortly before they expire. One
//! slot per credentials: its lock makes concurrent askers wait for a
//! single token request (no stampede). A failed request is remembered, a
//! refusal until the credentials change, so that the other accounts,
//! services and sweeps using them fail at once instead of asking again;
//! each failure is named for its asker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::memory::{FAILURE_MEMORY, REFUSAL_MEMORY, Remembered};
use crate::providers::{BackendError, ErrorKind};

/// A token is renewed this long before it expires (at most half its life).
pub(crate) const RENEWAL_MARGIN: Duration = Duration::from_secs(300);

/// What a token endpoint granted.
#[derive(Debug)]
pub(crate) struct Grant {
    /// The access token.
    pub(crate) token: SecretString,
    /// How long it is valid from the request.
    pub(crate) lifetime: Duration,
}

/// Credentials read for a token request, and what tells them apart from
/// other credentials under the same key (the secret itself, a key file's
/// content): a remembered refusal holds only for the credentials it
/// refused.
pub(crate) struct Credentials<C> {
    /// What the token request uses.
    pub(crate) value: C,
    /// Changes when the credentials do.
    pub(crate) fingerprint: SecretString,
}

/// A token and the slot it came from, so that a token an API rejects can
/// be dropped.
#[derive(Clone)]
pub(crate) struct Bearer {
    /// The credentials' key in the [`TokenCache`].
    pub(crate) key: String,
    /// The access token.
    pub(crate) token: SecretString,
}

/// Access tokens by credentials key.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Default)]
struct Slot {
    /// The token and when to renew it.
    token: Option<(SecretString, Instant)>,
    /// The last request's failure, and the credentials it was for.
    failure: Option<(Remembered, SecretString)>,
}

impl TokenCache {
    /// A token for the credentials `key`, from the cache while it is
    /// fresh. Otherwise the credentials are read (`read`; a failure to
    /// read them is not remembered, so a fixed secret is used at once); a
    /// failure remembered for these same credentials is answered at once;
    /// else `request` asks for a token: through the provider's limits, its
    /// error not yet named ([`crate::providers::calls::CallLimits::call_unnamed`]).
    /// Errors are named `what`, for this asker.
    pub(crate) async fn bearer<C, R, F, Fut>(
        &self,
        key: &str,
        what: &str,
        read: R,
        request: F,
    ) -> Result<Bearer, BackendError>
    where
        R: FnOnce() -> Result<Credentials<C>, BackendError>,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<Grant, BackendError>>,
    {
        let slot = self.slots.lock().unwrap().entry(key.to_string()).or_default().clone();
        let mut slot = slot.lock().await;
        let bearer = |token: &SecretString| Bearer { key: key.to_string(), token: token.clone() };
        if let Some((token, renew_at)) = &slot.token
            && Instant::now() < *renew_at
        {
            return Ok(bearer(token));
        }
        let credentials = read().map_err(|err| err.context(what))?;
        if let Some((remembered, refused)) = &slot.failure
            && refused.expose_secret() == credentials.fingerprint.expose_secret()
            && let Some(err) = remembered.recall()
        {
            return Err(err.clone().context(what));
        }
        let asked_at = Instant::now();
        match request(credentials.value).await {
            Ok(grant) => {
                let renew_at = asked_at + grant.lifetime - RENEWAL_MARGIN.min(grant.lifetime / 2);
                slot.token = Some((grant.token.clone(), renew_at));
                slot.failure = None;
                Ok(bearer(&grant.token))
            }
            Err(err) => {
                let memory = match err.kind {
                    ErrorKind::Refused => REFUSAL_MEMORY,
                    ErrorKind::Failed => FAILURE_MEMORY,
                };
                slot.failure = Some((Remembered::new(err.clone(), memory), credentials.fingerprint));
                Err(err.context(what))
            }
        }
    }

    /// Drops a token an API rejected (revoked, or expired early), so that
    /// the next asker requests a new one instead of failing until it
    /// expires; a newer token in its slot is kept.
    pub(crate) async fn forget(&self, rejected: &Bearer) {
        let slot = self.slots.lock().unwrap().get(&rejected.key).cloned();
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if slot.token.as_ref().is_some_and(|(t, _)| t.expose_secret() == rejected.token.expose_secret()) {
                slot.token = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use secrecy::{ExposeSecret, SecretString};

    use super::{Credentials, Grant, RENEWAL_MARGIN, TokenCache};
    use crate::providers::kit::memory::{FAILURE_MEMORY, REFUSAL_MEMORY};
    use crate::providers::{BackendError, ErrorKind};

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    fn credentials(fingerprint: &str) -> Result<Credentials<()>, BackendError> {
        Ok(Credentials { value: (), fingerprint: secret(fingerprint) })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_askers_share_one_request_and_the_token_is_renewed_before_it_expires() {
        let tokens = TokenCache::default();
        let requests = AtomicU32::new(0);
        let request = |_: ()| async {
            let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Grant { token: secret(&format!("token-{n}")), lifetime: Duration::from_secs(3600) })
        };
        let askers = (0..5).map(|_| tokens.bearer("tenant/client", "Token", || credentials("s"), request));
        for bearer in futures_util::future::join_all(askers).await {
            assert_eq!(bearer.unwrap().token.expose_secret(), "token-1");
        }
        tokio::time::advance(Duration::from_secs(3600) - RENEWAL_MARGIN - Duration::from_secs(1)).await;
        let bearer = tokens.bearer("tenant/client", "Token", || credentials("s"), request).await.unwrap();
        assert_eq!(bearer.token.expose_secret(), "token-1", "still fresh");
        tokio::time::advance(Duration::from_secs(1)).await;
        let bearer = tokens.bearer("tenant/client", "Token", || credentials("s"), request).await.unwrap();
        assert_eq!(bearer.token.expose_secret(), "token-2", "renewed five minutes before it expires");
        let short = |_: ()| async { Ok(Grant { token: secret("short"), lifetime: Duration::from_secs(60) }) };
        tokens.bearer("other", "Token", || credentials("s"), short).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        let renewed = tokens.bearer("other", "Token", || credentials("s"), request).await.unwrap();
        assert_eq!(renewed.token.expose_secret(), "token-3", "a short-lived token at half its life");
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_remembered_for_the_same_credentials_and_named_for_each_asker() {
        let tokens = TokenCache::default();
        let requests = AtomicU32::new(0);
        let refuse = |_: ()| async {
            requests.fetch_add(1, Ordering::SeqCst);
            Err::<Grant, _>(BackendError::refused("invalid_client"))
        };
        let first = tokens.bearer("app", "Token for A", || credentials("old"), refuse).await.err().unwrap();
        let second = tokens.bearer("app", "Token for B", || credentials("old"), refuse).await.err().unwrap();
        assert_eq!((first.to_string(), first.kind), ("Token for A: invalid_client".to_string(), ErrorKind::Refused));
        assert_eq!((second.to_string(), second.kind), ("Token for B: invalid_client".to_string(), ErrorKind::Refused));
        assert_eq!(requests.load(Ordering::SeqCst), 1, "answered from memory");
        tokens.bearer("app", "Token for A", || credentials("new"), refuse).await.err().unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2, "changed credentials are tried at once");
        tokio::time::advance(REFUSAL_MEMORY - Duration::from_secs(1)).await;
        tokens.bearer("app", "Token for A", || credentials("new"), refuse).await.err().unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        tokens.bearer("app", "Token for A", || credentials("new"), refuse).await.err().unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 3, "asked again when the memory ends");
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_are_remembered_briefly_and_unreadable_credentials_not_at_all() {
        let tokens = TokenCache::default();
        let requests = AtomicU32::new(0);
        let down = |_: ()| async {
            requests.fetch_add(1, Ordering::SeqCst);
            Err::<Grant, _>(BackendError::failed("HTTP 503"))
        };
        tokens.bearer("k", "Token", || credentials("s"), down).await.err().unwrap();
        tokio::time::advance(FAILURE_MEMORY - Duration::from_secs(1)).await;
        let err = tokens.bearer("k", "Token", || credentials("s"), down).await.err().unwrap();
        assert_eq!((err.to_string(), err.kind), ("Token: HTTP 503".to_string(), ErrorKind::Failed));
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        tokens.bearer("k", "Token", || credentials("s"), down).await.err().unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        let unreadable = || Err::<Credentials<()>, _>(BackendError::refused("cannot read env:X"));
        let err = tokens.bearer("k2", "Token", unreadable, down).await.err().unwrap();
        assert_eq!((err.to_string(), err.kind), ("Token: cannot read env:X".to_string(), ErrorKind::Refused));
        let granted = |_: ()| async { Ok(Grant { token: secret("t"), lifetime: Duration::from_secs(3600) }) };
        assert!(tokens.bearer("k2", "Token", || credentials("s"), granted).await.is_ok(), "not remembered");
        assert_eq!(requests.load(Ordering::SeqCst), 2, "nothing was asked for unreadable credentials");
    }

    #[tokio::test]
    async fn a_rejected_token_is_dropped_but_not_a_newer_one() {
        let tokens = TokenCache::default();
        let n = AtomicU32::new(0);
        let request = |_: ()| async {
            let n = n.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Grant { token: secret(&format!("token-{n}")), lifetime: Duration::from_secs(3600) })
        };
        let first = tokens.bearer("k", "Token", || credentials("s"), request).await.unwrap();
        tokens.forget(&first).await;
        let second = tokens.bearer("k", "Token", || credentials("s"), request).await.unwrap();
        assert_eq!(second.token.expose_secret(), "token-2", "the rejected token was not kept");
        tokens.forget(&first).await;
        let still = tokens.bearer("k", "Token", || credentials("s"), request).await.unwrap();
        assert_eq!(still.token.expose_secret(), "token-2", "a late rejection of the old token keeps the new one");
    }
}
