//! The I/O edge: everything that touches the operating system.
//!
//! * [`file`](mod@file): the state file — atomic replace + fsync, mode 0600.
//! * [`udp`]: the UDP transport (one 64-byte CTAPHID report per datagram, replies to the
//!   sender) and [`spawn`](udp::spawn), which runs a simulator on a thread.
//! * [`SystemClock`]: milliseconds since the simulator started ("power-up").
//! * [`prompt`]: the `prompt` touch policy, asking on the terminal.
//!
//! The authenticator and firmware modules reach these only through the `env` traits.

pub mod file;
pub mod prompt;
pub mod udp;

use std::time::Instant;

use crate::env::{Clock, Timestamp};

/// A monotonic clock counting from its creation.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock at 0 now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Timestamp::from_millis(ms)
    }
}
