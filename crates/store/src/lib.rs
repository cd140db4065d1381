//! Persistence for tokengate behind one trait, [`Store`].
//!
//! Every write is a compare-and-set: it states what it expects (a name that is free, a
//! count under a quota, a row that still exists) and fails with a typed [`StoreError`]
//! when the expectation no longer holds, inside one transaction. Nothing above this crate
//! reads-then-writes, so a PostgreSQL implementation can serve several replicas without
//! changes above it.
//!
//! Secrets (secret access keys, service keys, later TOTP seeds) are sealed with
//! AES-256-GCM under the master key before they reach the database ([`seal`]); the
//! database file never holds them in clear.
//!
//! The trait is synchronous: the SQLite implementation is, and the server calls it from
//! blocking tasks.

pub mod master_key;
pub mod seal;
mod sqlite;

pub use sqlite::SqliteStore;
use tokengate_token::Secret;
use tokengate_verifier::totp::{self, LockoutPolicy, Refusal, TotpParams, TotpState, Verdict};

/// What a store operation could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The entity does not exist.
    #[error("{0} not found")]
    NotFound(Entity),
    /// An entity with that name or id exists already.
    #[error("{0} already exists")]
    AlreadyExists(Entity),
    /// The write would exceed a quota (e.g. two access keys per user).
    #[error("quota exceeded for {0}")]
    LimitExceeded(Entity),
    /// The entity still has dependents (a user with access keys).
    #[error("{entity} still has {dependents}")]
    DeleteConflict {
        /// What was to be deleted.
        entity: Entity,
        /// What is still attached to it.
        dependents: Entity,
    },
    /// A sealed value did not open: wrong master key or a tampered database.
    #[error("a sealed value could not be opened (wrong master key or tampered store)")]
    Unseal,
    /// The database is in use by another process (or another store in this one): an
    /// embedded store serves one process at a time.
    #[error(
        "the database {0} is in use by another process (another tokengate serve on this \
         data dir?)"
    )]
    Busy(String),
    /// The backend failed (I/O, corruption, a bug).
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Kinds of stored entities, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// The account.
    Account,
    /// An IAM user.
    User,
    /// An access key.
    AccessKey,
    /// An MFA device (TOTP or security key).
    MfaDevice,
    /// A security-key ceremony challenge.
    Challenge,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Account => "account",
            Self::User => "user",
            Self::AccessKey => "access key",
            Self::MfaDevice => "MFA device",
            Self::Challenge => "challenge",
        })
    }
}

/// The account this store belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// 12-digit account id.
    pub account_id: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Unique id, `AIDA…`.
    pub user_id: String,
    /// User name, unique in the account ignoring case (as IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

/// Who owns an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// The account's root user.
    Root,
    /// An IAM user, by name.
    User(String),
}

/// Whether an access key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Refused at authentication.
    Inactive,
}

impl KeyStatus {
    /// The IAM wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
        }
    }
}

/// A long-term access key with its (unsealed) secret.
pub struct AccessKey {
    /// `AKIA…`.
    pub access_key_id: String,
    /// The owner.
    pub owner: KeyOwner,
    /// Active or inactive.
    pub status: KeyStatus,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// The secret access key.
    pub secret: Secret,
}

/// A session-token signing key as stored.
pub struct StoredSigningKey {
    /// The key id (JWK thumbprint).
    pub kid: String,
    /// The PKCS#8 document of the P-256 or Ed25519 key (sealed at rest).
    pub pkcs8: Secret,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// When it stopped signing, if it has; it still verifies until every token it signed
    /// has expired.
    pub retired: Option<i64>,
}

/// Everything the first start creates, written in one transaction.
pub struct Bootstrap {
    /// The account.
    pub account: Account,
    /// The root user's first access key.
    pub root_key: AccessKey,
    /// The key temporary secrets are derived from (32 bytes).
    pub derivation_key: Secret,
    /// The first session-token signing key.
    pub signing_key: StoredSigningKey,
}

/// What kind of second factor a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaKind {
    /// A virtual TOTP device created with CreateVirtualMFADevice (an authenticator app).
    Virtual,
    /// A hardware OATH-TOTP fob imported with its vendor serial and seed.
    Hardware,
}

impl MfaKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Hardware => "hardware",
        }
    }
}

/// A TOTP MFA device with its (unsealed) seed and durable verification state.
pub struct MfaDevice {
    /// Serial number: `arn:aws:iam::ACCOUNT:mfa/PATHNAME`, or a vendor serial.
    pub serial: String,
    /// Virtual or hardware.
    pub kind: MfaKind,
    /// The user it is enabled for, if any.
    pub owner: Option<KeyOwner>,
    /// When it was enabled, seconds since the Unix epoch.
    pub enabled_at: Option<i64>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// The TOTP seed (raw key bytes), sealed at rest.
    pub seed: Secret,
    /// Algorithm, digits and period.
    pub params: TotpParams,
    /// Last accepted step, drift and lockout counters.
    pub state: TotpState,
}

/// How a security key is spoken to at login: the protocol its credential was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProtocol {
    /// CTAP2 / WebAuthn (MakeCredential, GetAssertion).
    Fido2,
    /// U2F / CTAP1 (REGISTER, AUTHENTICATE).
    U2f,
}

impl KeyProtocol {
    /// Storage and wire name: `fido2` or `u2f`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fido2 => "fido2",
            Self::U2f => "u2f",
        }
    }

    /// The protocol named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fido2" => Some(Self::Fido2),
            "u2f" => Some(Self::U2f),
            _ => None,
        }
    }
}

/// A U2F / FIDO2 security key registered as an MFA device. Only public data: the
/// credential's private key never leaves the authenticator, so nothing here is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityKey {
    /// `arn:aws:iam::ACCOUNT:u2f/user/USER/NAME-SUFFIX`.
    pub serial: String,
    /// The user it authenticates.
    pub owner: KeyOwner,
    /// The device name given at registration.
    pub name: String,
    /// CTAP2 or U2F.
    pub protocol: KeyProtocol,
    /// The credential ID (U2F: the key handle); unique across the store.
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE_Key bytes.
    pub public_key_cose: Vec<u8>,
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// BE at registration (WebAuthn L3 §6.1.3): it may not change afterwards.
    pub backup_eligible: bool,
    /// The authenticator model (zero for U2F).
    pub aaguid: [u8; 16],
    /// `packed`, `fido-u2f` or `none`.
    pub attestation_format: String,
    /// What vouched for the key at registration, e.g. `trusted: CN=…`, `self`, `none`.
    pub attestation: String,
    /// The user handle sent to the key at registration (CTAP2 `user.id`).
    pub user_handle: Vec<u8>,
    /// When it was registered, seconds since the Unix epoch.
    pub enabled_at: i64,
    /// The last successful login with it.
    pub last_used: Option<i64>,
    /// When an assertion with a signature counter that did not increase was seen: the key
    /// may be cloned, and it is refused from then on.
    pub possibly_cloned_at: Option<i64>,
    /// The lockout counters (`failures`, `locked_until`, `lockouts`), kept and advanced as
    /// for TOTP devices; the step fields of [`TotpState`] are unused.
    pub lockout: TotpState,
}

/// Which ceremony a challenge belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a new security key (IAM EnableSecurityKey).
    Register,
    /// Logging in with one (STS GetSessionTokenWithSecurityKey).
    Authenticate,
}

impl CeremonyKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Authenticate => "authenticate",
        }
    }
}

/// A security-key challenge: random bytes the key must sign, single use, short-lived, and
/// bound to the principal it was issued to, the device and the ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Random identifier the client echoes.
    pub id: String,
    /// The ceremony.
    pub ceremony: CeremonyKind,
    /// ARN of the principal the challenge was issued to; only it may complete it.
    pub requester: String,
    /// The user whose key it is (registration: the user the key is for).
    pub owner: KeyOwner,
    /// The key's serial (registration: the serial the new key will get).
    pub serial: String,
    /// The protocol the client is to use.
    pub protocol: KeyProtocol,
    /// The device name (registration); the key's name (authentication).
    pub device_name: String,
    /// The challenge bytes.
    pub challenge: Vec<u8>,
    /// When it was issued, seconds since the Unix epoch.
    pub created: i64,
    /// It cannot be used at or after this time.
    pub expires: i64,
}

/// A verified login with a security key, to record with compare-and-set semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key.
    pub serial: String,
    /// The challenge the assertion answered; consumed.
    pub challenge_id: String,
    /// The counter the verification was made against.
    pub expected_sign_count: u32,
    /// The assertion's counter, to store.
    pub sign_count: u32,
    /// Now, seconds since the Unix epoch.
    pub now: i64,
}

/// What recording a [`KeyUse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUseOutcome {
    /// The challenge was consumed and the counter stored: the login stands.
    Recorded,
    /// The challenge was used already, expired or is gone: a replay.
    ChallengeSpent,
    /// The key's counter moved (another login won), or the key was flagged, deactivated
    /// or replaced meanwhile.
    KeyChanged,
}

/// IAM quota: MFA devices in use by one user (or root), of any kind.
pub const MAX_MFA_DEVICES: usize = 8;

/// Name of the service secret from which temporary secrets are derived.
pub const DERIVATION_KEY: &str = "temporary-secret-derivation";

/// A callback that receives the result of a write once it is durable.
pub type Completion<T> = Box<dyn FnOnce(Result<T, StoreError>) + Send>;

/// A TOTP login check, as [`Store::check_totp_then`] runs it: the code, whose device, and
/// the policy for counting a failure. Its `Debug` leaves the code out.
#[derive(Clone)]
pub struct TotpCheck {
    /// The device's serial number.
    pub serial: String,
    /// Who must own the (enabled) device.
    pub owner: KeyOwner,
    /// The code presented. Never logged.
    pub code: String,
    /// Now, seconds since the Unix epoch.
    pub now: i64,
    /// How failures lock the device out.
    pub policy: LockoutPolicy,
}

impl std::fmt::Debug for TotpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCheck")
            .field("serial", &self.serial)
            .field("owner", &self.owner)
            .field("code", &"<redacted>")
            .field("now", &self.now)
            .field("policy", &self.policy)
            .finish()
    }
}

/// What [`Store::check_totp_then`] found and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpOutcome {
    /// No device with that serial is enabled for the owner; nothing was written.
    NotAssigned,
    /// The code was accepted and its step recorded as used (the replay mark).
    Accepted {
        /// The step now recorded as the device's last accepted step.
        step: u64,
    },
    /// The code was refused; a wrong or replayed code was counted as a failure (a lockout
    /// counts nothing).
    Refused {
        /// Why.
        refusal: Refusal,
        /// The device's lockout counters after the failure.
        state: TotpState,
    },
}

/// The persistence interface. Every write is conditional (see the crate docs).
pub trait Store: Send + Sync {
    /// The account, if the store has been bootstrapped.
    fn account(&self) -> Result<Option<Account>, StoreError>;
    /// Creates the account, the root key, and the service keys, all or nothing.
    /// Fails with `AlreadyExists(Account)` when the store is bootstrapped.
    fn bootstrap(&self, b: &Bootstrap) -> Result<(), StoreError>;
    /// A named service secret (e.g. [`DERIVATION_KEY`]).
    fn service_secret(&self, name: &str) -> Result<Option<Secret>, StoreError>;
    /// Every signing key, newest first.
    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Adds `key` and retires every other unretired key at `key.created`, provided the
    /// newest key is still `expected_current` (so that two replicas rotating at once
    /// yield one new key).
    fn rotate_signing_key(
        &self,
        expected_current: &str,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError>;

    /// Creates a user if no user has that name (ignoring case).
    fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// A user by name (ignoring case).
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// Users whose path starts with `path_prefix`, ordered by name, after `after`,
    /// at most `limit`.
    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;
    /// Deletes a user that has no access keys left.
    fn delete_user(&self, name: &str) -> Result<(), StoreError>;

    /// Creates an access key if its owner exists and has fewer than `max_per_owner` keys.
    fn create_access_key(&self, key: &AccessKey, max_per_owner: usize) -> Result<(), StoreError>;
    /// An access key by id, with its secret.
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;
    /// The keys of `owner`, oldest first.
    fn access_keys_of(&self, owner: &KeyOwner) -> Result<Vec<AccessKey>, StoreError>;
    /// Sets the status of `owner`'s key `access_key_id`.
    fn set_access_key_status(
        &self,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> Result<(), StoreError>;
    /// Deletes `owner`'s key `access_key_id`.
    fn delete_access_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), StoreError>;

    /// Creates an (unassigned) MFA device if no device has its serial.
    fn create_mfa_device(&self, device: &MfaDevice) -> Result<(), StoreError>;
    /// A device by serial number.
    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDevice>, StoreError>;
    /// The devices enabled for `owner`, oldest first.
    fn mfa_devices_of(&self, owner: &KeyOwner) -> Result<Vec<MfaDevice>, StoreError>;
    /// Every device, ordered by serial; `assigned` filters on whether it is enabled.
    fn list_mfa_devices(&self, assigned: Option<bool>) -> Result<Vec<MfaDevice>, StoreError>;
    /// Enables an unassigned device for `owner` with `state`, if `owner` has fewer than
    /// `max_per_owner` devices. `AlreadyExists` when the device is in use.
    fn enable_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        enabled_at: i64,
        state: &TotpState,
        max_per_owner: usize,
    ) -> Result<(), StoreError>;
    /// Unassigns `owner`'s device `serial`.
    fn deactivate_mfa_device(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError>;
    /// Deletes an unassigned device (`DeleteConflict` while it is enabled).
    fn delete_mfa_device(&self, serial: &str) -> Result<(), StoreError>;
    /// Records a successful code at `step`: only if `step` is above the device's last
    /// accepted step (the replay compare-and-set). Returns false when another request
    /// already used this or a later step.
    fn record_totp_success(&self, serial: &str, step: u64) -> Result<bool, StoreError>;
    /// Checks `check.code` against the device `check.serial` enabled for `check.owner`
    /// and records the outcome: for an accepted code the replay compare-and-set
    /// ([`Store::record_totp_success`]), for a wrong or replayed one a failure
    /// ([`Store::record_totp_failure`]). `done` gets the outcome once it is durable,
    /// possibly from another thread, so that an async caller need not park a thread on the
    /// commit.
    ///
    /// The default reads the device, verifies with [`totp::verify`] and writes with the two
    /// methods above, inline; the compare-and-set keeps it correct when requests race. A
    /// store may instead run the read, the check and the write as one transaction (the
    /// SQLite store does, in its group commit).
    fn check_totp_then(&self, check: TotpCheck, done: Completion<TotpOutcome>) {
        done(check_totp_by_parts(self, &check));
    }
    /// Records a failed code at `now` under `policy`; returns the new state.
    fn record_totp_failure(
        &self,
        serial: &str,
        policy: &LockoutPolicy,
        now: i64,
    ) -> Result<TotpState, StoreError>;
    /// Replaces `owner`'s device state (resync), provided its last accepted step is still
    /// `expected_last_step`.
    fn resync_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        expected_last_step: Option<u64>,
        state: &TotpState,
    ) -> Result<(), StoreError>;

    /// Stores a new challenge, after dropping every expired one, if its requester has fewer
    /// than `max_per_requester` live challenges (`LimitExceeded(Challenge)` otherwise).
    fn create_challenge(&self, c: &Challenge, max_per_requester: usize) -> Result<(), StoreError>;
    /// A challenge by id (expired ones too, until they are dropped).
    fn challenge(&self, id: &str) -> Result<Option<Challenge>, StoreError>;
    /// Drops a challenge (a failed ceremony spends it). No error when it is gone already.
    fn discard_challenge(&self, id: &str) -> Result<(), StoreError>;
    /// Registers `key`, consuming registration challenge `challenge_id` (unexpired at `now`,
    /// for `key.serial`) in the same transaction: `NotFound(Challenge)` when it is spent,
    /// `LimitExceeded(MfaDevice)` when the owner has `max_devices` MFA devices of any kind,
    /// `AlreadyExists(MfaDevice)` when the credential ID is registered already.
    fn enable_security_key(
        &self,
        challenge_id: &str,
        now: i64,
        key: &SecurityKey,
        max_devices: usize,
    ) -> Result<(), StoreError>;
    /// A security key by serial.
    fn security_key(&self, serial: &str) -> Result<Option<SecurityKey>, StoreError>;
    /// The security keys of `owner`, oldest first.
    fn security_keys_of(&self, owner: &KeyOwner) -> Result<Vec<SecurityKey>, StoreError>;
    /// Removes `owner`'s key `serial` and its challenges (DeactivateMFADevice: a security
    /// key has no unassigned state; using it again means registering it again).
    fn delete_security_key(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError>;
    /// Records a verified login: consumes the challenge, then stores the new counter only
    /// if the key's counter is still the one verified against and the key is not flagged
    /// (compare-and-set). Durable before it returns.
    fn record_security_key_use(&self, key_use: &KeyUse) -> Result<KeyUseOutcome, StoreError>;
    /// [`Store::record_security_key_use`] that calls `done` once the write is durable,
    /// possibly from another thread. The default calls it inline.
    fn record_security_key_use_then(&self, key_use: &KeyUse, done: Completion<KeyUseOutcome>) {
        done(self.record_security_key_use(key_use));
    }
    /// Records a refused login at `now` under `policy`: drops `challenge_id` if given,
    /// counts the failure, and with `possible_clone` flags the key (first time only).
    /// Returns the new lockout counters.
    fn record_security_key_failure(
        &self,
        serial: &str,
        challenge_id: Option<&str>,
        policy: &LockoutPolicy,
        now: i64,
        possible_clone: bool,
    ) -> Result<TotpState, StoreError>;
}

/// [`Store::check_totp_then`] from the read, the verification and the two writes.
pub(crate) fn check_totp_by_parts<S: Store + ?Sized>(
    store: &S,
    check: &TotpCheck,
) -> Result<TotpOutcome, StoreError> {
    settle_totp_check(
        store.mfa_device(&check.serial)?.as_ref(),
        check,
        |step| store.record_totp_success(&check.serial, step),
        || store.record_totp_failure(&check.serial, &check.policy, check.now),
    )
}

/// Decides a TOTP check against `device` as read: refuses a device that is not the owner's
/// (nothing written), verifies the code, then records the step with `mark_step` (the
/// replay compare-and-set: false when another request used it first) or counts a wrong or
/// replayed code with `count_failure` (a lockout counts nothing). Every store's
/// [`Store::check_totp_then`] goes through here; they differ only in how they write.
pub(crate) fn settle_totp_check(
    device: Option<&MfaDevice>,
    check: &TotpCheck,
    mark_step: impl FnOnce(u64) -> Result<bool, StoreError>,
    count_failure: impl FnOnce() -> Result<TotpState, StoreError>,
) -> Result<TotpOutcome, StoreError> {
    let Some(device) = device.filter(|d| d.owner.as_ref() == Some(&check.owner)) else {
        return Ok(TotpOutcome::NotAssigned);
    };
    let verdict = totp::verify(
        device.seed.expose(),
        &device.params,
        &device.state,
        &check.code,
        check.now,
    );
    let refusal = match verdict {
        Verdict::Accepted { step } => {
            if mark_step(step)? {
                return Ok(TotpOutcome::Accepted { step });
            }
            // Another request used this step first.
            Refusal::Replayed
        }
        Verdict::Refused(refusal @ Refusal::LockedOut(_)) => {
            return Ok(TotpOutcome::Refused {
                refusal,
                state: device.state,
            });
        }
        Verdict::Refused(refusal) => refusal,
    };
    let state = count_failure()?;
    Ok(TotpOutcome::Refused { refusal, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_check_never_shows_its_code() {
        let check = TotpCheck {
            serial: "SERIAL0009".into(),
            owner: KeyOwner::Root,
            code: "314159".into(),
            now: 1,
            policy: LockoutPolicy::default(),
        };
        let shown = format!("{check:?}");
        assert!(
            shown.contains("SERIAL0009") && !shown.contains("314159"),
            "{shown}"
        );
    }
}
