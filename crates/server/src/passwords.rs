//! Console passwords (issue 12, docs/passwords.md): hashing, the account password policy's
//! rules, and [`verify_password`], the one check the sign-in portal calls.
//!
//! - **Hashing**: argon2id (RFC 9106), PHC strings, OWASP's parameters by default
//!   (`m=19456,t=2,p=1`, portal.md §3.5–3.6), a 16-byte salt from ring's RNG. Each hash or
//!   verification runs on a blocking thread, at most `passwords.max_concurrent_hashes` at
//!   once; at most `passwords.max_queued_hashes` wait, and beyond that a request is refused
//!   with `Throttling` — so a flood of sign-ins costs a bounded number of cores and never
//!   the async workers the rest of the API runs on.
//! - **Rehash on use**: the verifier takes the parameters from the stored PHC string, so a
//!   hash made with older parameters still verifies; [`verify_password`] then stores a new
//!   hash with the current ones.
//! - **Never in clear**: a [`Password`] has no `Debug` or `Display` and is wiped on drop;
//!   the only way to its text is [`Password::expose`]. Validation messages never echo it.
//!
//! Families import this module (one floor below them); it imports none of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::http::StatusCode;
use ring::rand::SecureRandom;
use tokengate_store::{LoginProfile, PasswordPolicy, PasswordUse, StoreError};
use tokengate_token::Principal;
use zeroize::Zeroizing;

use crate::auth::Caller;
use crate::common::db;
use crate::config::PasswordConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Salt length in bytes (the `password-hash` crate's recommended length; RFC 9106 §3.1
/// recommends 16).
const SALT_LEN: usize = 16;
/// Hash output length in bytes (RFC 9106 §4 recommends 32 for password hashing).
const OUTPUT_LEN: usize = 32;
/// The largest memory cost a *stored* hash may ask for (1 GiB): the verifier takes its
/// parameters from the hash, and a tampered row must not make one sign-in allocate more.
const MAX_VERIFY_MEMORY_KIB: u32 = 1 << 20;
/// AWS records the first use of a password in each 5-minute span (portal.md §1.5).
pub const LAST_USED_GRANULARITY_SECS: i64 = 300;
/// The non-alphanumeric characters IAM counts as symbols
/// (`UpdateAccountPasswordPolicy.RequireSymbols`, portal.md §3.1).
pub const SYMBOLS: &str = "!@#$%^&*()_+-=[]{}|'";
/// The minimum length of the default policy, used while no policy is set (IAMUG
/// `id_credentials_passwords_account-policy.md`).
pub const DEFAULT_MINIMUM_LENGTH: usize = 8;
/// The character classes of four the default policy asks for.
pub const DEFAULT_CLASSES_REQUIRED: usize = 3;

/// A password in clear, as a request carried it. No `Debug`, no `Display`; wiped on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The password. Every call site is a place where it leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the hash.
    pub matches: bool,
    /// The hash was made with other parameters than the current ones.
    pub needs_rehash: bool,
}

/// The argon2id parameters `config` asks for.
pub fn argon2_params(config: &PasswordConfig) -> Result<Params, String> {
    Params::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        Some(OUTPUT_LEN),
    )
    .map_err(|e| format!("argon2 parameters: {e}"))
}

/// Password hashing for the service: the current parameters and the bound on concurrent
/// hashing (see the module docs).
pub struct PasswordHashing {
    params: Params,
    permits: Arc<tokio::sync::Semaphore>,
    /// Hashes running or waiting.
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    /// A hash of a fixed string with the current parameters, verified against when the
    /// user has no password, so that the answer's timing does not tell.
    dummy: Arc<OnceLock<String>>,
}

/// Decrements the pending count when a hashing job ends (or its request goes away).
struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn hasher(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHashing {
    /// Hashing with `config`'s parameters and bounds.
    pub fn new(config: &PasswordConfig) -> Result<Self, String> {
        let permits = usize::try_from(config.max_concurrent_hashes.max(1)).unwrap_or(1);
        let queued = usize::try_from(config.max_queued_hashes).unwrap_or(usize::MAX);
        Ok(Self {
            params: argon2_params(config)?,
            permits: Arc::new(tokio::sync::Semaphore::new(permits)),
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending: permits.saturating_add(queued),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// Runs `job` on a blocking thread once a permit is free. The permit moves into the
    /// job, so a request that goes away does not free it while the job still runs.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("password hashing queue full; request throttled");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Throttling",
                "Rate exceeded",
            ));
        }
        let slot = PendingSlot(Arc::clone(&self.pending));
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let out = job();
            drop(permit);
            drop(slot);
            out
        })
        .await
        .map_err(ApiError::internal)
    }

    /// A new PHC string for `password` with the current parameters and a fresh salt.
    pub async fn hash(
        &self,
        rng: &(dyn SecureRandom + Sync),
        password: &Password,
    ) -> Result<String, ApiError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)
            .map_err(|_| ApiError::internal("the system RNG failed"))?;
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || {
            hasher(params)
                .hash_password_with_salt(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await?
        .map_err(ApiError::internal)
    }

    /// Whether `password` matches `phc` (constant-time comparison inside argon2), and
    /// whether `phc` should be redone with the current parameters.
    pub async fn verify(&self, password: &Password, phc: &str) -> Result<Verification, ApiError> {
        let current = self.params.clone();
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move || verify_blocking(&current, &password, &phc))
            .await
    }

    /// Whether `password` matches any of `hashes` (all are checked, so the time does not
    /// tell which).
    pub async fn matches_any(
        &self,
        password: &Password,
        hashes: Vec<String>,
    ) -> Result<bool, ApiError> {
        if hashes.is_empty() {
            return Ok(false);
        }
        let current = self.params.clone();
        let password = password.clone();
        self.run(move || {
            hashes
                .iter()
                .map(|h| verify_blocking(&current, &password, h).matches)
                .fold(false, |any, m| any | m)
        })
        .await
    }

    /// Spends the time of one verification and answers "no match": for a user with no
    /// password, so that sign-in timing does not reveal who has one.
    pub async fn verify_nothing(&self, password: &Password) -> Result<(), ApiError> {
        let current = self.params.clone();
        let password = password.clone();
        let dummy = Arc::clone(&self.dummy);
        self.run(move || {
            let phc = dummy.get_or_init(|| {
                hasher(current.clone())
                    .hash_password_with_salt(b"tokengate: no password", b"tokengate-dummy!")
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            });
            let _ = verify_blocking(&current, &password, phc);
        })
        .await
    }
}

/// The verification itself (blocking): parse, bound, verify, compare parameters.
fn verify_blocking(current: &Params, password: &Password, phc: &str) -> Verification {
    let no = Verification {
        matches: false,
        needs_rehash: false,
    };
    let Ok(hash) = PasswordHash::new(phc) else {
        tracing::error!("a stored password hash is not a PHC string");
        return no;
    };
    let Ok(params) = Params::try_from(&hash) else {
        tracing::error!("a stored password hash has unusable parameters");
        return no;
    };
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB {
        tracing::error!(
            m_cost = params.m_cost(),
            "a stored password hash asks for too much memory; refused"
        );
        return no;
    }
    let matches = Argon2::default()
        .verify_password(password.expose().as_bytes(), &hash)
        .is_ok();
    let needs_rehash = hash.algorithm.as_str() != Algorithm::Argon2id.ident().as_str()
        || hash.version != Some(Version::V0x13.into())
        || params.m_cost() != current.m_cost()
        || params.t_cost() != current.t_cost()
        || params.p_cost() != current.p_cost()
        || hash.hash.as_ref().map(|h| h.len()) != Some(OUTPUT_LEN);
    Verification {
        matches,
        needs_rehash,
    }
}

/// 400 `PasswordPolicyViolation`.
pub fn policy_violation(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "PasswordPolicyViolation", message)
}

/// The reuse refusal (PasswordReusePrevention). AWS's text is not published; this is an
/// IAM-compatible service's (portal.md §3.3 lists it as unverified).
pub const REUSE_MESSAGE: &str =
    "Policy constraint violation with password reuse prevention during password change.";

/// Whether a character belongs to a class.
type CharClass = fn(char) -> bool;

/// The four character classes, in the order messages list them.
const CLASSES: [(&str, CharClass); 4] = [
    ("uppercase letter", |c| c.is_ascii_uppercase()),
    ("lowercase letter", |c| c.is_ascii_lowercase()),
    ("number", |c| c.is_ascii_digit()),
    ("symbol", |c| SYMBOLS.contains(c)),
];

/// What is wrong with `password` under `policy` (the default policy when `None`), in
/// AWS's words (portal.md §3.3), or `None` when it complies.
///
/// AWS's texts are known for two cases: `Password should have a minimum length of N` and,
/// under the default policy, `Password should meet N more of the following requirements:
/// Password should have at least one uppercase letter, …`. With a policy that requires
/// classes, each missing class is a `Password should have at least one …` sentence;
/// several failures are joined with `; ` (tokengate's choice: AWS's is not published).
pub fn violation(policy: Option<&PasswordPolicy>, password: &Password) -> Option<String> {
    let text = password.expose();
    let length = text.chars().count();
    let has = |class: CharClass| text.chars().any(class);
    let sentence = |name: &str| format!("Password should have at least one {name}");
    let mut failures = Vec::new();
    match policy {
        Some(p) => {
            let minimum = usize::try_from(p.minimum_length).unwrap_or(usize::MAX);
            if length < minimum {
                failures.push(format!(
                    "Password should have a minimum length of {minimum}"
                ));
            }
            let required = [
                p.require_uppercase,
                p.require_lowercase,
                p.require_numbers,
                p.require_symbols,
            ];
            for ((name, class), required) in CLASSES.iter().zip(required) {
                if required && !has(*class) {
                    failures.push(sentence(name));
                }
            }
        }
        None => {
            if length < DEFAULT_MINIMUM_LENGTH {
                failures.push(format!(
                    "Password should have a minimum length of {DEFAULT_MINIMUM_LENGTH}"
                ));
            }
            let missing: Vec<String> = CLASSES
                .iter()
                .filter(|(_, class)| !has(*class))
                .map(|(name, _)| sentence(name))
                .collect();
            let present = CLASSES.len() - missing.len();
            if present < DEFAULT_CLASSES_REQUIRED {
                failures.push(format!(
                    "Password should meet {} more of the following requirements: {}",
                    DEFAULT_CLASSES_REQUIRED - present,
                    missing.join(", ")
                ));
            }
        }
    }
    (!failures.is_empty()).then(|| failures.join("; "))
}

/// When the password of `profile` expires under `policy` (`MaxPasswordAge`), if it does.
pub fn expires_at(policy: Option<&PasswordPolicy>, profile: &LoginProfile) -> Option<i64> {
    let days = policy?.max_age_days?;
    Some(profile.password_changed + i64::from(days) * 86_400)
}

/// Checks a new password for `user` against the account's policy — its rules, then
/// PasswordReusePrevention against the user's latest passwords — and answers
/// `PasswordPolicyViolation` when it fails.
pub async fn check_new_password(
    state: &Arc<AppState>,
    user: &str,
    password: &Password,
) -> Result<(), ApiError> {
    let policy = db(state, |s| s.password_policy()).await??;
    if let Some(message) = violation(policy.as_ref(), password) {
        return Err(policy_violation(message));
    }
    let Some(n) = policy.and_then(|p| p.reuse_prevention) else {
        return Ok(());
    };
    let owner = user.to_owned();
    let n = usize::try_from(n).unwrap_or(tokengate_store::MAX_PASSWORD_HISTORY);
    let history = match db(state, move |s| s.password_history(&owner, n)).await? {
        Ok(history) => history,
        Err(StoreError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if state
        .password_hashing
        .matches_any(password, history)
        .await?
    {
        return Err(policy_violation(REUSE_MESSAGE));
    }
    Ok(())
}

/// What [`verify_password`] decided about a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The password is right and current; its use is recorded (and the hash redone with
    /// the current parameters if they changed).
    Accepted {
        /// The user must set a new password before going on (`PasswordResetRequired`).
        reset_required: bool,
        /// `MaxSigninSessionDuration` of the login profile, seconds.
        max_session_duration: Option<u32>,
    },
    /// The password is right but older than `MaxPasswordAge`: no sign-in until it is
    /// changed. Nothing is recorded.
    Expired {
        /// Whether the user may change it themselves (`HardExpiry` is off); with
        /// `HardExpiry` an administrator must reset it.
        may_change: bool,
    },
    /// No such user, no password, or the wrong one: all look the same, and take as long.
    Refused,
}

/// **The password check of the sign-in portal**: verifies `password` for `user_name`
/// (off the async workers, bounded), applies expiry (`MaxPasswordAge`, `HardExpiry`),
/// records the use (first use per 5 minutes) and rehashes with the current parameters
/// when the stored hash used others. Never logs the password.
pub async fn verify_password(
    state: &Arc<AppState>,
    user_name: &str,
    password: &Password,
) -> Result<SignIn, ApiError> {
    let name = user_name.to_owned();
    let profile = match db(state, move |s| s.login_profile(&name)).await? {
        Ok(profile) => profile,
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(profile) = profile else {
        state.password_hashing.verify_nothing(password).await?;
        return Ok(SignIn::Refused);
    };
    let verification = state
        .password_hashing
        .verify(password, &profile.password_hash)
        .await?;
    if !verification.matches {
        tracing::info!(user = %user_name, "password sign-in refused");
        return Ok(SignIn::Refused);
    }
    let policy = db(state, |s| s.password_policy()).await??;
    let now = state.clock.now().unix_timestamp();
    if expires_at(policy.as_ref(), &profile).is_some_and(|at| at <= now) {
        let hard = policy.and_then(|p| p.hard_expiry).unwrap_or(false);
        return Ok(SignIn::Expired { may_change: !hard });
    }
    let rehash = if verification.needs_rehash {
        Some(state.password_hashing.hash(&state.rng, password).await?)
    } else {
        None
    };
    let recorded = PasswordUse {
        user_name: user_name.to_owned(),
        verified_hash: profile.password_hash.clone(),
        now,
        granularity_secs: LAST_USED_GRANULARITY_SECS,
        rehash,
    };
    if recorded.rehash.is_some() {
        tracing::info!(user = %user_name, "password rehashed with the current parameters");
    }
    db(state, move |s| s.record_password_use(&recorded)).await??;
    Ok(SignIn::Accepted {
        reset_required: profile.reset_required,
        max_session_duration: profile.max_session_duration,
    })
}

/// `AllowUsersToChangePassword` (portal.md §3.1): while the account's policy says so, an
/// IAM user may call `iam:ChangePassword` on their own user and
/// `iam:GetAccountPasswordPolicy` without a policy allowing it — what the
/// IAMUserChangePassword managed policy grants. An explicit Deny still refuses (the
/// caller, [`crate::authz`], only asks this about an implicit deny).
pub fn allowed_by_password_policy(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
) -> Result<bool, ApiError> {
    let Principal::User { .. } = &caller.principal else {
        return Ok(false);
    };
    let own = match action {
        "iam:ChangePassword" => resource == caller.principal.arn(),
        "iam:GetAccountPasswordPolicy" => true,
        _ => return Ok(false),
    };
    Ok(own
        && state
            .store
            .password_policy()?
            .is_some_and(|p| p.allow_users_to_change))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::new(s.to_owned())
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            minimum_length: 6,
            require_symbols: false,
            require_numbers: false,
            require_uppercase: false,
            require_lowercase: false,
            allow_users_to_change: false,
            max_age_days: None,
            reuse_prevention: None,
            hard_expiry: None,
        }
    }

    #[test]
    fn the_default_policy_wants_eight_characters_and_three_classes() {
        assert_eq!(
            violation(None, &pw("Ab1!")).as_deref(),
            Some("Password should have a minimum length of 8")
        );
        // AWS's capture: lowercase and a number present, one more of the others needed.
        assert_eq!(
            violation(None, &pw("abcdefg1")).as_deref(),
            Some(
                "Password should meet 1 more of the following requirements: Password should \
                 have at least one uppercase letter, Password should have at least one symbol"
            )
        );
        assert_eq!(
            violation(None, &pw("abcdefgh")).as_deref(),
            Some(
                "Password should meet 2 more of the following requirements: Password should \
                 have at least one uppercase letter, Password should have at least one number, \
                 Password should have at least one symbol"
            )
        );
        assert_eq!(violation(None, &pw("abcdefG1")), None);
        assert_eq!(violation(None, &pw("abcdef1!")), None);
        assert_eq!(violation(None, &pw("ABCDEF1|")), None);
    }

    #[test]
    fn each_rule_of_a_policy_is_checked() {
        let p = PasswordPolicy {
            minimum_length: 10,
            ..policy()
        };
        assert_eq!(
            violation(Some(&p), &pw("123456789")).as_deref(),
            Some("Password should have a minimum length of 10")
        );
        assert_eq!(violation(Some(&p), &pw("1234567890")), None);
        let cases = [
            (
                PasswordPolicy {
                    require_uppercase: true,
                    ..policy()
                },
                "uppercase letter",
                "abcdefgh",
                "abcdefgH",
            ),
            (
                PasswordPolicy {
                    require_lowercase: true,
                    ..policy()
                },
                "lowercase letter",
                "ABCDEFGH",
                "ABCDEFGh",
            ),
            (
                PasswordPolicy {
                    require_numbers: true,
                    ..policy()
                },
                "number",
                "abcdefgh",
                "abcdefg0",
            ),
            (
                PasswordPolicy {
                    require_symbols: true,
                    ..policy()
                },
                "symbol",
                "abcdefg.",
                "abcdefg'",
            ),
        ];
        for (p, name, bad, good) in cases {
            assert_eq!(
                violation(Some(&p), &pw(bad)),
                Some(format!("Password should have at least one {name}")),
                "{name}"
            );
            assert_eq!(violation(Some(&p), &pw(good)), None, "{name}");
        }
        // Every symbol of the documented set counts; nothing else does.
        let symbols = PasswordPolicy {
            require_symbols: true,
            ..policy()
        };
        for c in SYMBOLS.chars() {
            assert_eq!(violation(Some(&symbols), &pw(&format!("abcdef{c}"))), None);
        }
        for c in ['.', '~', '`', '"', ' ', 'é'] {
            assert!(violation(Some(&symbols), &pw(&format!("abcdef{c}"))).is_some());
        }
        let all = PasswordPolicy {
            minimum_length: 12,
            require_symbols: true,
            require_numbers: true,
            require_uppercase: true,
            require_lowercase: true,
            ..policy()
        };
        assert_eq!(
            violation(Some(&all), &pw("short")).as_deref(),
            Some(
                "Password should have a minimum length of 12; Password should have at least \
                 one uppercase letter; Password should have at least one number; Password \
                 should have at least one symbol"
            )
        );
    }

    #[test]
    fn expiry_counts_days_from_the_last_change() {
        let profile = LoginProfile {
            user_name: "alice".into(),
            password_hash: String::new(),
            created: 0,
            password_changed: 1_000,
            reset_required: false,
            last_used: None,
            max_session_duration: None,
        };
        assert_eq!(expires_at(None, &profile), None);
        assert_eq!(expires_at(Some(&policy()), &profile), None);
        let p = PasswordPolicy {
            max_age_days: Some(90),
            ..policy()
        };
        assert_eq!(expires_at(Some(&p), &profile), Some(1_000 + 90 * 86_400));
    }

    fn cheap() -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            ..PasswordConfig::default()
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify_and_rehash_when_parameters_change() {
        let rng = ring::rand::SystemRandom::new();
        let old = PasswordHashing::new(&cheap()).unwrap();
        let phc = old.hash(&rng, &pw("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert_ne!(phc, old.hash(&rng, &pw("correct horse")).await.unwrap());
        let same = old.verify(&pw("correct horse"), &phc).await.unwrap();
        assert_eq!(
            same,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(
            !old.verify(&pw("Correct horse"), &phc)
                .await
                .unwrap()
                .matches
        );
        let new = PasswordHashing::new(&PasswordConfig {
            argon2_iterations: 2,
            ..cheap()
        })
        .unwrap();
        assert_eq!(
            new.verify(&pw("correct horse"), &phc).await.unwrap(),
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        // Not a PHC string, another algorithm, or a memory cost past the bound: no match.
        for stored in [
            "plain text".to_owned(),
            phc.replace("argon2id", "argon2i"),
            phc.replace("m=64", &format!("m={}", MAX_VERIFY_MEMORY_KIB + 1)),
        ] {
            assert!(
                !old.verify(&pw("correct horse"), &stored)
                    .await
                    .unwrap()
                    .matches
            );
        }
        assert!(
            old.matches_any(&pw("correct horse"), vec!["x".into(), phc.clone()])
                .await
                .unwrap()
        );
        assert!(!old.matches_any(&pw("other"), vec![phc]).await.unwrap());
        old.verify_nothing(&pw("anything")).await.unwrap();
    }

    #[test]
    fn the_default_parameters_are_owasps() {
        let p = argon2_params(&PasswordConfig::default()).unwrap();
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (19_456, 2, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_throttled_beyond_the_queue() {
        let hashing = Arc::new(
            PasswordHashing::new(&PasswordConfig {
                max_concurrent_hashes: 1,
                max_queued_hashes: 2,
                ..cheap()
            })
            .unwrap(),
        );
        // Hold the only permit so that every job waits.
        let held = Arc::clone(&hashing.permits).acquire_owned().await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let h = Arc::clone(&hashing);
            waiting.push(tokio::spawn(
                async move { h.verify_nothing(&pw("x")).await },
            ));
        }
        // Let the three reach the semaphore (1 running slot + 2 queued).
        while hashing.pending.load(Ordering::Acquire) < 3 {
            tokio::task::yield_now().await;
        }
        let refused = hashing.verify_nothing(&pw("x")).await.unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            ("Throttling", "Rate exceeded")
        );
        drop(held);
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(hashing.pending.load(Ordering::Acquire), 0);
        hashing.verify_nothing(&pw("x")).await.unwrap();
    }
}
