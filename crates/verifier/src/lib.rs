//! MFA checks for tokengate, as pure functions over device state.
//!
//! Each check takes the device's stored state, the submitted proof and the current time,
//! and returns a verdict plus the state to store — it never reads a clock, a file or a
//! socket, and never writes anything itself. The store makes the returned state durable
//! with a compare-and-set, so that two requests racing with one code yield one success.
//!
//! Verdicts say *that* a check failed; the reason is for the log, never for the client:
//! every MFA failure looks the same on the wire.
//!
//! [`fido`] checks FIDO2 (WebAuthn L3) registrations and assertions and raw U2F messages.

pub mod fido;
pub mod totp;
