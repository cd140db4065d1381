//! The hardware-key bridge: how tokengate reaches a security key. It finds keys (USB HID
//! through hidapi, or firmware-sim over UDP), speaks CTAPHID to them with the sans-IO
//! `tokengate-ctaphid` state machines, and runs CTAP2 and U2F operations built from the
//! `tokengate-ctap` codecs — one protocol stack for real keys and the simulator.
//!
//! * [`DeviceAddress`]: `udp:HOST:PORT`, `hid:PATH`, `auto` (`TOKENGATE_DEVICE` sets the
//!   default); [`list`] enumerates FIDO devices on USB HID; [`open`] connects.
//! * [`Transport`]: one 64-byte report out, one in with a deadline ([`UdpTransport`],
//!   [`HidTransport`]).
//! * [`Authenticator`]: the operations — PING, WINK, GetInfo, MakeCredential, GetAssertion,
//!   GetNextAssertion, Selection, ClientPIN (PIN/UV auth protocols 1 and 2), U2F VERSION /
//!   REGISTER / AUTHENTICATE — and for a relying party [`Authenticator::register`] and
//!   [`Authenticator::authenticate`], which use CTAP2 or fall back to U2F.
//! * [`Interaction`]: the person at the key — the touch prompt (called once per operation on
//!   KEEPALIVE UPNEEDED or U2F 0x6985), the PIN source, a [`CancelToken`] for Ctrl-C (sends
//!   CTAPHID_CANCEL), and the overall deadline (30 s by default). [`tty`] provides the
//!   `/dev/tty` versions for command-line tools.
//!
//! What it will not do: verify anything (attestation, signatures, counters are the
//! verifier's), keep state between runs, talk to a terminal unless asked through [`tty`],
//! or print. Built-in user verification (fingerprints), hmac-secret outputs, credential
//! management and reset are not implemented. It blocks the calling thread; run it on a
//! blocking thread from async code.
//!
//! ```no_run
//! use tokengate_bridge::{AssertionRequest, CredentialRequest, DeviceAddress, open, tty};
//!
//! # fn main() -> Result<(), tokengate_bridge::Error> {
//! let address: DeviceAddress = "udp:127.0.0.1:8111".parse()?;
//! let mut key = open(&address, tty::interaction())?;
//! let registration = key.register(&CredentialRequest::new(
//!     [0x11; 32], // SHA-256 of the client data
//!     "tokengate.local",
//!     b"user-handle",
//!     "alice",
//! ))?;
//! let credential_id = registration.credential_id().unwrap_or_default().to_vec();
//! let assertion = key.authenticate(&AssertionRequest::new(
//!     [0x22; 32],
//!     "tokengate.local",
//!     vec![credential_id],
//! ))?;
//! # let _ = assertion;
//! # Ok(())
//! # }
//! ```

mod address;
mod ctap2;
mod device;
mod error;
mod hid;
mod interaction;
mod pin;
mod select;
mod transport;
pub mod tty;
mod u2f;
mod webauthn;

pub use address::{DEFAULT_SIMULATOR, DEVICE_ENV, DeviceAddress};
pub use ctap2::{AssertionRequest, CredentialRequest, PinRetries, UserVerification};
pub use device::{Authenticator, BUSY_RETRY_DELAY, INIT_TIMEOUT, SILENCE_LIMIT};
pub use error::{Error, ProtocolError};
pub use hid::{FIDO_USAGE_CTAPHID, FIDO_USAGE_PAGE, HidKey, HidTransport, list};
pub use interaction::{
    CancelToken, DEFAULT_TIMEOUT, Interaction, Pin, PinCallback, PinPrompt, SELECT_PROMPT,
    TOUCH_PROMPT, TouchCallback,
};
pub use pin::{PinProtocol, PinToken};
pub use select::{open, select_by_touch};
pub use transport::{Transport, UdpTransport};
pub use u2f::U2F_POLL_INTERVAL;
pub use webauthn::{Assertion, Protocol, Registration, rp_id_hash};

/// The protocol cores, re-exported so that callers name the same types.
pub use tokengate_ctap as ctap;
pub use tokengate_ctaphid as ctaphid;
