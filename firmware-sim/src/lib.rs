//! `firmware-sim`: a simulated YubiKey 5 — CTAPHID over UDP, CTAP 2.1 and U2F, with
//! persistent state — so that every security-key test runs without hardware.
//!
//! # Layers
//!
//! * The authenticator core, sans-IO ([`Authenticator`]): CTAP2 commands (GetInfo,
//!   MakeCredential, GetAssertion, GetNextAssertion, ClientPIN with PIN/UV auth protocols 2
//!   and 1, Reset, Selection, CredentialManagement, the credProtect and hmac-secret
//!   extensions) and U2F (VERSION, REGISTER, AUTHENTICATE). It reaches the world only
//!   through [`Env`]: a [`Clock`], ring's `SecureRandom`, a [`UserPresence`] button and a
//!   [`Storage`] for the state blob ([`state`] documents the file format). Commands that
//!   need a touch return [`Step::Pending`]; the caller polls until it resolves.
//! * [`Firmware`], sans-IO too: the CTAPHID device of `tokengate-ctaphid` wired to the
//!   authenticator — reports in, reports out — including KEEPALIVE every 80 ms while a
//!   touch is awaited, CANCEL, and the 30 s user-presence timeout.
//! * The I/O edge ([`io`]): a UDP server (one 64-byte report per datagram, replies to the
//!   sender), the state file (atomic replace + fsync, mode 0600), the terminal prompt and
//!   the system clock. [`spawn`] runs it on a thread for other crates' tests; the
//!   `firmware-sim` binary is a thin CLI over the same function.
//!
//! # For other crates' tests
//!
//! ```no_run
//! use firmware_sim::{SimConfig, TouchPolicy};
//!
//! let sim = firmware_sim::spawn(SimConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     state: None, // in memory
//!     touch: TouchPolicy::Auto,
//!     verbose: false,
//! })?;
//! let device = sim.addr(); // send 64-byte CTAPHID reports here
//! let trust_anchor = sim.ca_pem(); // the attestation CA
//! sim.stop();
//! # let _ = (device, trust_anchor);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What it will not do
//!
//! No built-in user verification (PIN only), no largeBlobs, authenticatorConfig, enterprise
//! attestation or bio enrollment; no USB/hidraw (this machine has neither uhid nor USB, see
//! DESIGN.md); no Yubico-signed attestation — its own CA instead, exported as PEM. Two
//! processes sharing one state file are not coordinated.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

mod authenticator;
mod cert;
mod crypto;
mod der;
pub mod env;
mod firmware;
pub mod io;
mod pin;
mod secret;
pub mod state;

pub use authenticator::{
    AAGUID, Authenticator, DEVICE_VERSION, MAX_MSG_SIZE, Pending, RESET_WINDOW, Step,
    USER_PRESENCE_TIMEOUT,
};
pub use cert::pem;
pub use env::{
    Clock, Env, ManualClock, MemoryStorage, PolicyPresence, Presence, PresenceReason,
    PresenceRequest, ScriptedPresence, Storage, Timestamp, Touch, TouchPolicy, UserPresence,
};
pub use firmware::{Firmware, KEEPALIVE_INTERVAL, LogEntry};
pub use io::udp::{RunningSim, SimConfig, spawn};

/// Errors of this crate: a state blob that cannot be used, storage or socket failures, and
/// internal bugs. Protocol errors never appear here — they are CTAP2 status codes and U2F
/// status words on the wire.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- malformed input: the state file ---
    /// The stored state is not a valid state file; the message names the problem.
    #[error("invalid state file: {0}")]
    CorruptState(String),

    // --- the environment failed ---
    /// Loading or storing the state failed.
    #[error("state storage failed: {0}")]
    Storage(String),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    // --- a bug ---
    /// Something that cannot happen with a working crypto library and random source.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io { ref source, .. } => std::io::Error::new(source.kind(), error),
            Error::CorruptState(_) => std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            other => std::io::Error::other(other),
        }
    }
}
