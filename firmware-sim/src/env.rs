//! The authenticator's environment: a clock, randomness, user presence and persistent
//! storage, each behind a trait so that the authenticator core stays sans-IO and tests are
//! deterministic (after OpenSK's `Env`).
//!
//! * [`Clock`]: monotonic milliseconds as a [`Timestamp`]; tests use [`ManualClock`] and
//!   advance it instead of sleeping.
//! * randomness: ring's `SecureRandom`. ring seals that trait, so the only implementation
//!   is `SystemRandom`; tests therefore check random-dependent outputs (keys, signatures,
//!   nonces) by verifying them, never by comparing bytes.
//! * [`UserPresence`]: "is the button touched?", polled while a command waits; tests script
//!   it with [`ScriptedPresence`], the binary uses a [`TouchPolicy`] or a terminal prompt.
//! * [`Storage`]: one opaque blob, loaded at power-up and replaced durably (the file backend
//!   in `io` does atomic replace + fsync); tests use [`MemoryStorage`].
//!
//! What it will not do: none of the implementations here touch files, sockets or the wall
//! clock (`SystemClock` and the file and prompt backends live in `io`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ring::rand::SecureRandom;
pub use tokengate_ctaphid::Timestamp;

use crate::Error;

/// A monotonic clock.
pub trait Clock: Send {
    /// Now, in milliseconds since an epoch of the clock's choosing (e.g. power-up).
    fn now(&self) -> Timestamp;
}

/// Why the authenticator wants a touch (for prompts and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceReason {
    /// authenticatorMakeCredential.
    MakeCredential,
    /// authenticatorGetAssertion.
    GetAssertion,
    /// MakeCredential that will end in CREDENTIAL_EXCLUDED (CTAP 2.1 §6.1.2 step 8).
    ExcludedCredential,
    /// A zero-length pinUvAuthParam: the platform asks which authenticator to use.
    PinUvAuthSelection,
    /// authenticatorReset.
    Reset,
    /// authenticatorSelection.
    Selection,
    /// U2F REGISTER.
    U2fRegister,
    /// U2F AUTHENTICATE.
    U2fAuthenticate,
}

/// A request for user presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceRequest {
    /// Why.
    pub reason: PresenceReason,
    /// The RP the touch is for, if any (U2F knows only a hash: `None`).
    pub rp_id: Option<String>,
}

/// What a poll of the button found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The user touched the key.
    Touched,
    /// The user declined (a prompt answered "no", or the `deny` policy).
    Declined,
    /// Nothing yet.
    Waiting,
}

/// The button. The authenticator calls [`UserPresence::begin`] when it starts waiting,
/// [`UserPresence::poll`] repeatedly (at least every keepalive, for U2F on every re-sent
/// APDU), and [`UserPresence::end`] when it stops waiting for any reason.
pub trait UserPresence: Send {
    /// A wait starts at `now`.
    fn begin(&mut self, now: Timestamp, request: &PresenceRequest);
    /// Whether the user has touched (or declined) since `begin`.
    fn poll(&mut self, now: Timestamp) -> Presence;
    /// The wait is over (touched, declined, cancelled or timed out).
    fn end(&mut self) {}
}

/// Persistent storage of the device state: one blob.
pub trait Storage: Send {
    /// The stored blob, or `None` on first power-up.
    fn load(&mut self) -> Result<Option<Vec<u8>>, Error>;
    /// Replaces the blob durably: when this returns `Ok`, a crash cannot bring back the old
    /// blob.
    fn store(&mut self, blob: &[u8]) -> Result<(), Error>;
    /// The signature counter kept apart from the blob, if this storage keeps one (the
    /// authenticator uses the larger of it and the blob's).
    fn load_counter(&mut self) -> Result<Option<u32>, Error> {
        Ok(None)
    }
    /// Records `counter` durably without rewriting the blob, if this storage can; `false`
    /// means it cannot and the caller must [`Storage::store`] the whole blob instead.
    fn store_counter(&mut self, counter: u32) -> Result<bool, Error> {
        let _ = counter;
        Ok(false)
    }
}

/// Everything the authenticator needs from the outside world.
pub struct Env {
    /// The clock.
    pub clock: Box<dyn Clock>,
    /// The random source.
    pub rng: Box<dyn SecureRandom + Send + Sync>,
    /// The button.
    pub presence: Box<dyn UserPresence>,
    /// The state store.
    pub storage: Box<dyn Storage>,
}

impl Env {
    /// An environment with the system random source (ring's `SystemRandom`, the only
    /// implementation ring allows) and the given clock, button and storage — what tests and
    /// fuzz targets of other crates use.
    pub fn with_system_random(
        clock: impl Clock + 'static,
        presence: impl UserPresence + 'static,
        storage: impl Storage + 'static,
    ) -> Self {
        Self {
            clock: Box::new(clock),
            rng: Box::new(ring::rand::SystemRandom::new()),
            presence: Box::new(presence),
            storage: Box::new(storage),
        }
    }
}

/// How the button behaves in the binary and in [`crate::SimConfig`] (besides `prompt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchPolicy {
    /// Touched at once.
    Auto,
    /// Declined at once: CTAP2 answers `CTAP2_ERR_OPERATION_DENIED`, U2F keeps answering
    /// 0x6985. (Use `Delay` with a long duration to provoke the 30 s timeout instead.)
    Deny,
    /// Touched this long after the wait began.
    Delay(Duration),
    /// Ask on the terminal ("Touch? [y/N]"); implemented in the `io` module.
    Prompt,
}

/// A [`UserPresence`] for the `auto`, `deny` and `delay` policies. (`Prompt` behaves as
/// `Deny` here; the binary substitutes the terminal prompt.)
#[derive(Clone, Debug)]
pub struct PolicyPresence {
    policy: TouchPolicy,
    since: Timestamp,
}

impl PolicyPresence {
    /// The button for `policy`.
    pub fn new(policy: TouchPolicy) -> Self {
        Self {
            policy,
            since: Timestamp::ZERO,
        }
    }
}

impl UserPresence for PolicyPresence {
    fn begin(&mut self, now: Timestamp, _request: &PresenceRequest) {
        self.since = now;
    }

    fn poll(&mut self, now: Timestamp) -> Presence {
        match self.policy {
            TouchPolicy::Auto => Presence::Touched,
            TouchPolicy::Deny | TouchPolicy::Prompt => Presence::Declined,
            TouchPolicy::Delay(delay) if now >= self.since.saturating_add(delay) => {
                Presence::Touched
            }
            TouchPolicy::Delay(_) => Presence::Waiting,
        }
    }
}

/// A clock that moves only when told to; clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// One scripted reaction to a presence request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Touched as soon as asked.
    Immediately,
    /// Touched this long after the request began.
    After(Duration),
    /// Declined.
    Decline,
    /// Never touched.
    Never,
}

#[derive(Debug)]
struct Script {
    default: Touch,
    queue: VecDeque<Touch>,
    current: Option<(Touch, Timestamp)>,
    requests: Vec<PresenceRequest>,
}

/// A button driven by a script: each request takes the next queued [`Touch`] (or the
/// default). Clones share the script, so a test keeps one to queue touches and read back
/// the requests made.
#[derive(Clone, Debug)]
pub struct ScriptedPresence(Arc<Mutex<Script>>);

impl ScriptedPresence {
    /// A button that reacts with `default` unless a touch is queued.
    pub fn new(default: Touch) -> Self {
        Self(Arc::new(Mutex::new(Script {
            default,
            queue: VecDeque::new(),
            current: None,
            requests: Vec::new(),
        })))
    }

    /// Queues the reaction to a future request.
    pub fn queue(&self, touch: Touch) {
        self.script().queue.push_back(touch);
    }

    /// Every request made so far.
    pub fn requests(&self) -> Vec<PresenceRequest> {
        self.script().requests.clone()
    }

    /// Whether a wait is in progress.
    pub fn waiting(&self) -> bool {
        self.script().current.is_some()
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl UserPresence for ScriptedPresence {
    fn begin(&mut self, now: Timestamp, request: &PresenceRequest) {
        let mut script = self.script();
        let touch = script.queue.pop_front().unwrap_or(script.default);
        script.current = Some((touch, now));
        script.requests.push(request.clone());
    }

    fn poll(&mut self, now: Timestamp) -> Presence {
        match self.script().current {
            None | Some((Touch::Never, _)) => Presence::Waiting,
            Some((Touch::Immediately, _)) => Presence::Touched,
            Some((Touch::Decline, _)) => Presence::Declined,
            Some((Touch::After(delay), since)) if now >= since.saturating_add(delay) => {
                Presence::Touched
            }
            Some((Touch::After(_), _)) => Presence::Waiting,
        }
    }

    fn end(&mut self) {
        self.script().current = None;
    }
}

#[derive(Debug, Default)]
struct Memory {
    blob: Option<Vec<u8>>,
    stores: usize,
    fail: bool,
}

/// Storage in memory; clones share the blob, so a test can copy it into a second
/// authenticator (a clone of the key) or make the next stores fail.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage(Arc<Mutex<Memory>>);

impl MemoryStorage {
    /// Empty storage (first power-up).
    pub fn new() -> Self {
        Self::default()
    }

    /// Storage holding `blob`.
    pub fn with_blob(blob: Vec<u8>) -> Self {
        let storage = Self::default();
        storage.memory().blob = Some(blob);
        storage
    }

    /// The stored blob.
    pub fn blob(&self) -> Option<Vec<u8>> {
        self.memory().blob.clone()
    }

    /// How many stores succeeded.
    pub fn stores(&self) -> usize {
        self.memory().stores
    }

    /// Makes every following store fail (a full disk).
    pub fn fail_stores(&self, fail: bool) {
        self.memory().fail = fail;
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn load(&mut self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.memory().blob.clone())
    }

    fn store(&mut self, blob: &[u8]) -> Result<(), Error> {
        let mut memory = self.memory();
        if memory.fail {
            return Err(Error::Storage("injected storage failure".into()));
        }
        memory.blob = Some(blob.to_vec());
        memory.stores += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PresenceRequest {
        PresenceRequest {
            reason: PresenceReason::Selection,
            rp_id: None,
        }
    }

    #[test]
    fn policies() {
        let t0 = Timestamp::from_millis(1_000);
        let mut auto = PolicyPresence::new(TouchPolicy::Auto);
        auto.begin(t0, &request());
        assert_eq!(auto.poll(t0), Presence::Touched);
        let mut deny = PolicyPresence::new(TouchPolicy::Deny);
        deny.begin(t0, &request());
        assert_eq!(deny.poll(t0), Presence::Declined);
        let mut delay = PolicyPresence::new(TouchPolicy::Delay(Duration::from_millis(250)));
        delay.begin(t0, &request());
        assert_eq!(delay.poll(Timestamp::from_millis(1_249)), Presence::Waiting);
        assert_eq!(delay.poll(Timestamp::from_millis(1_250)), Presence::Touched);
    }

    #[test]
    fn scripted_presence_follows_its_queue() {
        let script = ScriptedPresence::new(Touch::Never);
        let mut button = script.clone();
        script.queue(Touch::After(Duration::from_millis(10)));
        let t0 = Timestamp::from_millis(5);
        assert_eq!(button.poll(t0), Presence::Waiting);
        button.begin(t0, &request());
        assert!(script.waiting());
        assert_eq!(button.poll(Timestamp::from_millis(14)), Presence::Waiting);
        assert_eq!(button.poll(Timestamp::from_millis(15)), Presence::Touched);
        button.end();
        button.begin(t0, &request());
        assert_eq!(
            button.poll(Timestamp::from_millis(1_000_000)),
            Presence::Waiting
        );
        assert_eq!(script.requests().len(), 2);
    }

    #[test]
    fn manual_clock_and_memory_storage() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(30));
        assert_eq!(clock.clone().now(), Timestamp::from_millis(30));
        let storage = MemoryStorage::new();
        let mut handle = storage.clone();
        assert_eq!(handle.load().unwrap(), None);
        handle.store(b"abc").unwrap();
        assert_eq!(storage.blob().as_deref(), Some(&b"abc"[..]));
        storage.fail_stores(true);
        assert!(handle.store(b"def").is_err());
        assert_eq!(storage.stores(), 1);
    }
}
