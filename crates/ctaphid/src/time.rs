//! Time as a value: the caller reads its own monotonic clock and passes the reading in.
//!
//! Nothing in this crate reads a clock or sleeps. A [`Timestamp`] is a count of milliseconds
//! since an epoch the caller picks (process start, say); only differences between two
//! timestamps from the same clock mean anything.

use core::time::Duration;

/// How long a request being reassembled may wait for its next packet before the device
/// answers `ERR_MSG_TIMEOUT` and drops it (CTAP 2.1 §11.2.5.2 "Transaction timeout").
///
/// CTAP 2.1 gives no number (fido.md §1.5). 500 ms is the U2FHID `U2FHID_FRAME_TIMEOUT`
/// and what Google's HIDTest `test_Timeout` accepts (between 0.4 s and 1.0 s).
pub const FRAME_TIMEOUT: Duration = Duration::from_millis(500);

/// A reading of the caller's monotonic clock, in milliseconds since an arbitrary epoch.
///
/// Build it with [`Timestamp::from_millis`], e.g. from `Instant::elapsed` of a start instant
/// in the I/O layer. Arithmetic saturates: a clock that appears to run backwards makes no time
/// pass, it never panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch of the caller's clock.
    pub const ZERO: Self = Self(0);

    /// A reading `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `duration`, saturating at the end of time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(500)).as_millis(),
            1_500
        );
        assert_eq!(
            Timestamp::from_millis(u64::MAX)
                .saturating_add(FRAME_TIMEOUT)
                .as_millis(),
            u64::MAX
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(400)),
            Duration::from_millis(600)
        );
        assert_eq!(Timestamp::ZERO.saturating_duration_since(t), Duration::ZERO);
    }
}
