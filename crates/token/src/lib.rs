//! The STS core of tokengate: ARNs and principals, access keys, SigV4 verification,
//! temporary-credential minting and session tokens.
//!
//! This crate does no I/O. It never reads the wall clock (callers pass `now`), never
//! touches files or sockets, and takes randomness through [`ring::rand::SecureRandom`],
//! so every function here is deterministic under test.

pub mod arn;
pub mod bounded;
pub mod keys;
pub mod query;
pub mod secret;
pub mod session;
pub mod sigv4;
pub mod verified;

pub use arn::{AccountId, Principal};
pub use secret::Secret;
