//! The person at the key: touch prompts, the PIN, Ctrl-C, and how long to wait.
//!
//! The bridge never talks to a terminal by itself. It calls the closures in an
//! [`Interaction`]; the CLI passes ones that use `/dev/tty` ([`crate::tty`]), library users
//! pass their own.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::Error;

/// What [`Interaction::on_touch`] is called with when the key first asks for a touch in an
/// operation (CTAPHID KEEPALIVE `STATUS_UPNEEDED`, or U2F status 0x6985).
pub const TOUCH_PROMPT: &str = "Touch your security key…";
/// What [`Interaction::on_touch`] is called with when several keys are plugged in and the
/// person must touch the one to use (CTAP 2.1 authenticatorSelection).
pub const SELECT_PROMPT: &str = "Several security keys found: touch the one to use…";
/// The default overall deadline of one operation (touch prompts included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A flag the caller raises to stop the operation in progress: a CBOR request gets
/// `CTAPHID_CANCEL` and ends with [`Error::Cancelled`]. Clones share the flag; a
/// [`CancelToken::child`] is also cancelled by its parent.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    parent: Option<CancelToken>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled by [`CancelToken::cancel`] on itself or on `self`.
    pub fn child(&self) -> Self {
        Self {
            inner: Arc::new(CancelInner {
                cancelled: AtomicBool::new(false),
                parent: Some(self.clone()),
            }),
        }
    }

    /// Raises the flag (from any thread, e.g. a SIGINT handler's thread).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether this token or an ancestor was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
            || self
                .inner
                .parent
                .as_ref()
                .is_some_and(CancelToken::is_cancelled)
    }
}

/// A PIN: no `Debug` or `Display`, wiped on drop; the text only through
/// [`Pin::expose_secret`].
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(Zeroizing::new(pin.into()))
    }

    /// The PIN's text.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// What the PIN closure is told when the key needs its PIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinPrompt {
    /// The key, for the prompt ("PIN for udp:127.0.0.1:8111").
    pub device: String,
    /// Attempts left before the PIN blocks, if the key said (getPINRetries).
    pub retries: Option<u64>,
    /// The key's minimum PIN length in Unicode code points (GetInfo minPINLength, default 4).
    pub min_length: u64,
}

/// Called with [`TOUCH_PROMPT`] or [`SELECT_PROMPT`].
pub type TouchCallback = Arc<dyn Fn(&str) + Send + Sync>;
/// Asked for the PIN; returns it, or an error such as [`Error::Cancelled`].
pub type PinCallback = Arc<dyn Fn(&PinPrompt) -> Result<Pin, Error> + Send + Sync>;

/// How one [`crate::Authenticator`] deals with people and time.
#[derive(Clone)]
pub struct Interaction {
    pub(crate) timeout: Duration,
    pub(crate) cancel: CancelToken,
    pub(crate) on_touch: TouchCallback,
    pub(crate) pin: Option<PinCallback>,
}

impl Interaction {
    /// 30 s per operation, no cancellation, touch prompts dropped, no PIN source (operations
    /// that need the PIN fail with [`Error::PinRequired`]).
    pub fn new() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            cancel: CancelToken::new(),
            on_touch: Arc::new(|_: &str| {}),
            pin: None,
        }
    }

    /// The overall deadline of each operation, touch waits and PIN entry included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The token that cancels operations (wire Ctrl-C to [`CancelToken::cancel`]).
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Called once per operation when the key first waits for a touch.
    pub fn on_touch(mut self, prompt: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_touch = Arc::new(prompt);
        self
    }

    /// Asked for the PIN when an operation needs it.
    pub fn pin_source(
        mut self,
        source: impl Fn(&PinPrompt) -> Result<Pin, Error> + Send + Sync + 'static,
    ) -> Self {
        self.pin = Some(Arc::new(source));
        self
    }

    /// The per-operation deadline.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// The cancellation token.
    pub fn token(&self) -> &CancelToken {
        &self.cancel
    }
}

impl Default for Interaction {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interaction")
            .field("timeout", &self.timeout)
            .field("cancel", &self.cancel)
            .field("pin_source", &self.pin.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_follow_their_parent() {
        let parent = CancelToken::new();
        let child = parent.child();
        let sibling = parent.child();
        assert!(!child.is_cancelled());
        child.cancel();
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled() && !sibling.is_cancelled());
        parent.cancel();
        assert!(sibling.is_cancelled());
    }

    #[test]
    fn pins_do_not_print() {
        let pin = Pin::new("123456");
        assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
        assert_eq!(pin.expose_secret(), "123456");
        let interaction = Interaction::new().pin_source(|_| Ok(Pin::new("123456")));
        assert!(!format!("{interaction:?}").contains("123456"));
    }
}
