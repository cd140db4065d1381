//! The session-token signing keys of this replica, kept equal to the store's.
//!
//! Replicas share the store's signing keys (ADR 0006): one of them rotates (a compare-and-set
//! in the store, so it happens once), and every other one must sign with the new key and
//! serve it in `/.well-known/jwks.json` too. [`KeyRing::refresh`] checks before serving, as
//! the policy cache does: a rotation is an admin write, which moves the store's IAM
//! generation, so a replica whose generation is unchanged has nothing to reload (one
//! coalesced point read on PostgreSQL, an atomic load on SQLite); otherwise it re-reads the
//! keys, makes its verifier trust exactly the store's live keys and signs with the store's
//! current key. The JWKS handler and the minting of session credentials refresh first; a
//! token of an unknown `kid` forces a refresh (at most once a second).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokengate_store::{Store, StoreError};
use tokengate_token::session::{KeyError, SessionClaims, SigningKey, TokenSigner, TokenVerifier};

use crate::state::MAX_SESSION_SECS;

/// The current signer, and what the key set was last read under.
pub struct KeyRing {
    signer: RwLock<Arc<TokenSigner>>,
    loaded: Mutex<Option<Loaded>>,
}

#[derive(Clone, Copy)]
struct Loaded {
    /// The store's IAM generation read before the keys were.
    generation: u64,
    /// When the set changes by itself: the first retired key stops verifying.
    until: i64,
}

impl KeyRing {
    /// A ring signing with `signer` (start-up's current key); the first
    /// [`KeyRing::refresh`] reads the store.
    pub fn new(signer: TokenSigner) -> Self {
        Self {
            signer: RwLock::new(Arc::new(signer)),
            loaded: Mutex::new(None),
        }
    }

    /// The signer of the current key.
    pub fn signer(&self) -> Arc<TokenSigner> {
        Arc::clone(&self.signer.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The `kid` of the current key.
    pub fn kid(&self) -> String {
        self.signer().kid().to_owned()
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &SessionClaims) -> Result<String, KeyError> {
        self.signer().sign(claims)
    }

    /// Makes `verifier` trust exactly the store's keys that still verify at `now`, and this
    /// ring sign with the store's current key — unless the store's IAM generation has not
    /// moved since the last read and no retired key has expired since (`force` reads
    /// anyway). An unreadable generation is an error: the keys may have changed.
    pub fn refresh(
        &self,
        store: &dyn Store,
        verifier: &TokenVerifier,
        now: i64,
        force: bool,
    ) -> Result<(), StoreError> {
        let generation = store.checked_iam_generation()?;
        let last = *self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && last.is_some_and(|l| l.generation == generation && now < l.until) {
            return Ok(());
        }
        let stored = store.signing_keys()?;
        let mut live = HashSet::new();
        let mut until = i64::MAX;
        let mut current = None;
        for k in &stored {
            if let Some(retired) = k.retired {
                let expires = retired.saturating_add(MAX_SESSION_SECS);
                if expires <= now {
                    continue;
                }
                until = until.min(expires);
            }
            // A key that does not parse verifies nothing; start-up reports it.
            let Ok(key) = SigningKey::from_pkcs8(k.pkcs8.clone()) else {
                tracing::error!(kid = %k.kid, "a stored signing key does not parse");
                continue;
            };
            verifier.add_key(key.public_key());
            live.insert(key.kid().to_owned());
            if k.retired.is_none() && current.is_none() {
                current = Some(key);
            }
        }
        for kid in verifier.kids() {
            if !live.contains(&kid) {
                verifier.remove_key(&kid);
            }
        }
        if let Some(key) = current
            && key.kid() != self.signer().kid()
        {
            match TokenSigner::new(&key) {
                Ok(signer) => {
                    tracing::info!(kid = %key.kid(), "signing with the store's current key");
                    *self.signer.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(signer);
                }
                Err(e) => tracing::error!(kid = %key.kid(), error = %e, "signing key unusable"),
            }
        }
        *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Loaded { generation, until });
        Ok(())
    }
}
