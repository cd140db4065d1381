//! TOTP (RFC 6238) verification with replay refusal and lockout.
//!
//! - A code is accepted for the current time step ±[`WINDOW`] (RFC 6238 §5.2 recommends at
//!   most one step of network delay), shifted by the device's stored drift.
//! - A step at or below the device's last accepted step is refused (RFC 6238 §5.2: "the
//!   verifier MUST NOT accept the second attempt of the same OTP").
//! - After [`LockoutPolicy::max_failures`] consecutive failures every code is refused for a
//!   period that starts at [`LockoutPolicy::base_secs`] and doubles with each lockout
//!   (RFC 4226 §7.3 throttling); a success resets both counters.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};

/// Steps accepted either side of the current one.
pub const WINDOW: u64 = 1;
/// Steps searched either side of "now" for the two consecutive codes of EnableMFADevice
/// (codes may be typed a few minutes after they were shown; AWS documents that a late
/// enable leaves the device "out of sync").
pub const ENABLE_RADIUS: u64 = 10;
/// Steps searched either side of "now" for ResyncMFADevice (±50 minutes at 30 s).
pub const RESYNC_RADIUS: u64 = 100;

/// The HMAC of a TOTP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default of every authenticator app, and AWS's).
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    /// The otpauth / storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses a storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// A device's TOTP parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// HMAC algorithm.
    pub algorithm: TotpAlgorithm,
    /// Code length: 6 or 8 (RFC 4226 §5.3).
    pub digits: u8,
    /// Step length in seconds.
    pub period: u64,
}

/// Parameters that do not describe a usable device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TOTP devices have 6 or 8 digits and a period of 1 to 300 seconds")]
pub struct InvalidParams;

impl TotpParams {
    /// AWS's virtual MFA devices: SHA-1, 6 digits, 30 s.
    pub const AWS: Self = Self {
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
    };

    /// Checked parameters.
    pub fn new(algorithm: TotpAlgorithm, digits: u8, period: u64) -> Result<Self, InvalidParams> {
        if (digits == 6 || digits == 8) && (1..=300).contains(&period) {
            Ok(Self {
                algorithm,
                digits,
                period,
            })
        } else {
            Err(InvalidParams)
        }
    }

    /// The step that contains Unix time `now` (seconds; times before 1970 are step 0).
    pub fn step_at(&self, now: i64) -> u64 {
        u64::try_from(now).unwrap_or(0) / self.period
    }
}

/// A TOTP generator for one seed.
pub struct Generator {
    totp: Totp,
    params: TotpParams,
}

impl Generator {
    /// A generator for `seed` (the raw key bytes) with `params`.
    pub fn new(seed: &[u8], params: TotpParams) -> Self {
        let algorithm = match params.algorithm {
            TotpAlgorithm::Sha1 => Algorithm::SHA1,
            TotpAlgorithm::Sha256 => Algorithm::SHA256,
            TotpAlgorithm::Sha512 => Algorithm::SHA512,
        };
        // `build_noncompliant` skips totp-rs's 128-bit minimum: hardware fobs with 80-bit
        // seeds exist, and the seed length was checked where the device was created.
        let totp = Builder::new()
            .with_algorithm(algorithm)
            .with_digits(params.digits)
            .with_step_duration(params.period)
            .with_skew(0)
            .with_secret(seed.to_vec())
            .build_noncompliant();
        Self { totp, params }
    }

    /// The code for time step `step`.
    pub fn code(&self, step: u64) -> String {
        self.totp
            .generate(step.saturating_mul(self.params.period))
            .to_string()
    }

    /// Whether `code` is the code of `step`, compared in constant time.
    pub fn matches(&self, code: &str, step: u64) -> bool {
        let expected = self.code(step);
        expected.len() == code.len() && bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
    }
}

/// The durable state of one TOTP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotpState {
    /// The last accepted step; no step at or below it is accepted again.
    pub last_step: Option<u64>,
    /// Steps to add to the server's step (from ResyncMFADevice).
    pub drift: i64,
    /// Consecutive failures since the last success or lockout.
    pub failures: u32,
    /// Refuse everything until this Unix time.
    pub locked_until: Option<i64>,
    /// Lockouts since the last success (the next lockout lasts `base · 2^lockouts`).
    pub lockouts: u32,
}

/// Lockout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that start a lockout.
    pub max_failures: u32,
    /// The first lockout, in seconds.
    pub base_secs: i64,
    /// No lockout lasts longer than this.
    pub max_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            base_secs: 60,
            max_secs: 86_400,
        }
    }
}

/// Why a code was refused (for the log; the client sees one message for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No step in the window has this code.
    WrongCode,
    /// The code belongs to a step already used.
    Replayed,
    /// The device is locked out until the given Unix time.
    LockedOut(i64),
}

/// The outcome of one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted for this step; store [`TotpState::accepted`] with a compare-and-set on it.
    Accepted {
        /// The step to record as the last accepted.
        step: u64,
    },
    /// Refused; store [`TotpState::failed`] (except for a lockout, which changes nothing).
    Refused(Refusal),
}

impl TotpState {
    /// Whether the device refuses everything at `now`.
    pub fn locked_at(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|&until| now < until)
    }

    /// The state after a success at `step`.
    pub fn accepted(&self, step: u64) -> Self {
        Self {
            last_step: Some(step),
            drift: self.drift,
            failures: 0,
            locked_until: None,
            lockouts: 0,
        }
    }

    /// The state after a failure at `now`.
    pub fn failed(&self, policy: &LockoutPolicy, now: i64) -> Self {
        let failures = self.failures.saturating_add(1);
        if failures < policy.max_failures {
            return Self { failures, ..*self };
        }
        let factor = 1i64.checked_shl(self.lockouts.min(32)).unwrap_or(i64::MAX);
        let period = policy.base_secs.saturating_mul(factor).min(policy.max_secs);
        Self {
            failures: 0,
            locked_until: Some(now.saturating_add(period)),
            lockouts: self.lockouts.saturating_add(1),
            ..*self
        }
    }

    fn current_step(&self, params: &TotpParams, now: i64) -> u64 {
        let step = params.step_at(now);
        if self.drift >= 0 {
            step.saturating_add(self.drift.unsigned_abs())
        } else {
            step.saturating_sub(self.drift.unsigned_abs())
        }
    }
}

/// Checks `code` for a device with `seed`, `params` and `state` at Unix time `now`.
pub fn verify(
    seed: &[u8],
    params: &TotpParams,
    state: &TotpState,
    code: &str,
    now: i64,
) -> Verdict {
    if let Some(until) = state.locked_at(now) {
        return Verdict::Refused(Refusal::LockedOut(until));
    }
    let generator = Generator::new(seed, *params);
    let current = state.current_step(params, now);
    let mut replayed = false;
    for step in current.saturating_sub(WINDOW)..=current.saturating_add(WINDOW) {
        if generator.matches(code, step) {
            if state.last_step.is_some_and(|last| step <= last) {
                replayed = true;
            } else {
                return Verdict::Accepted { step };
            }
        }
    }
    Verdict::Refused(if replayed {
        Refusal::Replayed
    } else {
        Refusal::WrongCode
    })
}

/// Finds `code1`, `code2` as the codes of two consecutive steps within `radius` steps of
/// the device's current step at `now`; returns the step of `code2`. Steps at or below
/// `state.last_step` are not considered, so an enable or resync cannot replay codes.
pub fn find_consecutive(
    seed: &[u8],
    params: &TotpParams,
    state: &TotpState,
    code1: &str,
    code2: &str,
    now: i64,
    radius: u64,
) -> Option<u64> {
    let generator = Generator::new(seed, *params);
    let current = state.current_step(params, now);
    let floor = state.last_step.map_or(0, |s| s.saturating_add(1));
    let start = current.saturating_sub(radius).max(floor);
    (start..=current.saturating_add(radius))
        .find(|&step| generator.matches(code1, step) && generator.matches(code2, step + 1))
        .map(|step| step + 1)
}

/// The drift (in steps) that makes `step` the current step at `now`.
pub fn drift_for(params: &TotpParams, step: u64, now: i64) -> i64 {
    let current = params.step_at(now);
    i64::try_from(step)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(current).unwrap_or(0))
}

/// The Key URI an authenticator app reads for a new virtual MFA device, as AWS's
/// CreateVirtualMFADevice puts it in `QRCodePNG` (sts-iam.md §3):
/// `otpauth://totp/{name}@{account}?secret={base32}`, the label percent-encoded (RFC 3986
/// unreserved characters and `@` kept), with no algorithm, digits or period parameters, so
/// apps use SHA-1 / 6 digits / 30 s. One function for the service and the client.
pub fn otpauth_uri(device_name: &str, account: &str, base32_seed: &str) -> String {
    let label = format!("{device_name}@{account}");
    let mut encoded = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("otpauth://totp/{encoded}?secret={base32_seed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[u8] = b"12345678901234567890";

    fn gen_code(step: u64) -> String {
        Generator::new(SEED, TotpParams::AWS).code(step)
    }

    #[test]
    fn window_is_one_step_each_side() {
        let now = 1_000_000_000;
        let step = TotpParams::AWS.step_at(now);
        let s = TotpState::default();
        for (delta, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = gen_code(step.saturating_add_signed(delta));
            let v = verify(SEED, &TotpParams::AWS, &s, &code, now);
            assert_eq!(
                matches!(v, Verdict::Accepted { .. }),
                ok,
                "delta {delta}: {v:?}"
            );
        }
    }

    #[test]
    fn replay_and_older_steps_are_refused() {
        let now = 1_000_000_000;
        let step = TotpParams::AWS.step_at(now);
        let s = TotpState::default();
        let code = gen_code(step);
        let Verdict::Accepted { step: got } = verify(SEED, &TotpParams::AWS, &s, &code, now) else {
            panic!("first use must be accepted");
        };
        let s = s.accepted(got);
        assert_eq!(
            verify(SEED, &TotpParams::AWS, &s, &code, now),
            Verdict::Refused(Refusal::Replayed)
        );
        let earlier = gen_code(step - 1);
        assert_eq!(
            verify(SEED, &TotpParams::AWS, &s, &earlier, now),
            Verdict::Refused(Refusal::Replayed)
        );
        let later = gen_code(step + 1);
        assert_eq!(
            verify(SEED, &TotpParams::AWS, &s, &later, now),
            Verdict::Accepted { step: step + 1 }
        );
    }

    #[test]
    fn lockout_doubles_and_success_resets() {
        let p = LockoutPolicy::default();
        let mut s = TotpState::default();
        for _ in 0..4 {
            s = s.failed(&p, 100);
            assert_eq!(s.locked_at(100), None);
        }
        s = s.failed(&p, 100);
        assert_eq!(s.locked_until, Some(160));
        assert_eq!(s.locked_at(159), Some(160));
        assert_eq!(s.locked_at(160), None);
        let code = gen_code(TotpParams::AWS.step_at(150));
        assert_eq!(
            verify(SEED, &TotpParams::AWS, &s, &code, 150),
            Verdict::Refused(Refusal::LockedOut(160))
        );
        for _ in 0..5 {
            s = s.failed(&p, 200);
        }
        assert_eq!(s.locked_until, Some(320), "second lockout lasts 120 s");
        let s = s.accepted(7);
        assert_eq!((s.failures, s.lockouts, s.locked_until), (0, 0, None));
    }

    #[test]
    fn lockout_is_capped() {
        let p = LockoutPolicy::default();
        let s = TotpState {
            lockouts: 40,
            failures: 4,
            ..TotpState::default()
        };
        assert_eq!(s.failed(&p, 0).locked_until, Some(86_400));
    }

    #[test]
    fn consecutive_codes_and_drift() {
        let params = TotpParams::AWS;
        let now = 1_000_000_000;
        let device_step = params.step_at(now) + 40; // a fob running 20 minutes fast
        let (c1, c2) = (gen_code(device_step), gen_code(device_step + 1));
        let s = TotpState::default();
        assert_eq!(
            find_consecutive(SEED, &params, &s, &c1, &c2, now, ENABLE_RADIUS),
            None
        );
        let found = find_consecutive(SEED, &params, &s, &c1, &c2, now, RESYNC_RADIUS);
        assert_eq!(found, Some(device_step + 1));
        assert_eq!(
            find_consecutive(SEED, &params, &s, &c2, &c1, now, RESYNC_RADIUS),
            None
        );
        let drift = drift_for(&params, device_step + 1, now);
        assert_eq!(drift, 41);
        let s = TotpState {
            drift,
            ..TotpState::default()
        }
        .accepted(device_step + 1);
        // With the drift stored, the fob's next code is accepted in the normal window.
        let next = gen_code(device_step + 2);
        assert_eq!(
            verify(SEED, &params, &s, &next, now + 30),
            Verdict::Accepted {
                step: device_step + 2
            }
        );
    }

    #[test]
    fn params_are_checked() {
        assert!(TotpParams::new(TotpAlgorithm::Sha1, 7, 30).is_err());
        assert!(TotpParams::new(TotpAlgorithm::Sha1, 8, 0).is_err());
        assert!(TotpParams::new(TotpAlgorithm::Sha512, 8, 60).is_ok());
        assert_eq!(TotpAlgorithm::parse("SHA256"), Some(TotpAlgorithm::Sha256));
    }

    #[test]
    fn otpauth_uris_percent_encode_the_label() {
        assert_eq!(
            otpauth_uri("alice phone", "000000000000", "JBSWY3DPEHPK3PXP"),
            "otpauth://totp/alice%20phone@000000000000?secret=JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            otpauth_uri("a/b+c", "1", "S"),
            "otpauth://totp/a%2Fb%2Bc@1?secret=S"
        );
    }
}
