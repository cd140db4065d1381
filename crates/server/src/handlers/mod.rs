//! The handler families: one module per family of actions ([`crate::action::Family`]).
//!
//! A handler receives a caller the chokepoint has already authenticated and authorized
//! ([`crate::chokepoint`]); it validates its parameters, does the work and answers with the
//! inside of `{Action}Result`. Families never import each other: what they share lives one
//! floor down ([`crate::common`], [`crate::entities`], [`crate::principals`],
//! [`crate::mfa`], [`crate::credentials`], [`crate::passwords`], [`crate::relying_party`], [`crate::params`],
//! [`crate::xml`]). Which action runs which handler is said once, in [`crate::registry`].

pub mod advisor;
pub mod groups;
pub mod mfa_devices;
pub mod passwords;
pub mod policies;
pub mod reports;
pub mod roles;
pub mod security_keys;
pub mod simulator;
pub mod sts;
pub mod users;
