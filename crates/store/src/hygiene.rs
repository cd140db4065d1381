//! The rows of account hygiene (issue 12): the account password policy, login profiles
//! (console passwords, stored only as argon2id PHC strings), the stored credential report,
//! and the credential inventory that report is written from.

/// The most password hashes kept per user: PasswordReusePrevention's maximum
/// (botocore-iam `passwordReusePreventionType`, 1–24).
pub const MAX_PASSWORD_HISTORY: usize = 24;

/// The account password policy as UpdateAccountPasswordPolicy set it (portal.md §3.1).
/// Optional members are `None` when the request left them out: GetAccountPasswordPolicy
/// then omits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// `MinimumPasswordLength`, 6–128.
    pub minimum_length: u32,
    /// `RequireSymbols`.
    pub require_symbols: bool,
    /// `RequireNumbers`.
    pub require_numbers: bool,
    /// `RequireUppercaseCharacters`.
    pub require_uppercase: bool,
    /// `RequireLowercaseCharacters`.
    pub require_lowercase: bool,
    /// `AllowUsersToChangePassword`.
    pub allow_users_to_change: bool,
    /// `MaxPasswordAge` in days, 1–1095; `None`: passwords never expire.
    pub max_age_days: Option<u32>,
    /// `PasswordReusePrevention`, 1–24; `None`: reuse allowed.
    pub reuse_prevention: Option<u32>,
    /// `HardExpiry`.
    pub hard_expiry: Option<bool>,
}

/// A user's login profile. The password is only ever here as its hash; the hash is left
/// out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginProfile {
    /// The user's name.
    pub user_name: String,
    /// The password's argon2id PHC string.
    pub password_hash: String,
    /// When the profile was created, seconds since the Unix epoch.
    pub created: i64,
    /// When the password was last set (created, reset or changed).
    pub password_changed: i64,
    /// `PasswordResetRequired`: a new password must be set at the next sign-in.
    pub reset_required: bool,
    /// The last sign-in with the password (first use in each 5-minute span).
    pub last_used: Option<i64>,
    /// `MaxSigninSessionDuration`, seconds.
    pub max_session_duration: Option<u32>,
}

impl std::fmt::Debug for LoginProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginProfile")
            .field("user_name", &self.user_name)
            .field("password_hash", &"<redacted>")
            .field("created", &self.created)
            .field("password_changed", &self.password_changed)
            .field("reset_required", &self.reset_required)
            .field("last_used", &self.last_used)
            .field("max_session_duration", &self.max_session_duration)
            .finish()
    }
}

/// A new password to store: its hash and when it was set.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword {
    /// The argon2id PHC string.
    pub hash: String,
    /// Now, seconds since the Unix epoch.
    pub at: i64,
    /// For a change by the user: the hash the old password was verified against. The
    /// write happens only while it is still the current one (`Changed(LoginProfile)` if
    /// not), so two changes racing cannot both win.
    pub expected: Option<String>,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// What UpdateLoginProfile (or ChangePassword) changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginProfileUpdate {
    /// A new password.
    pub password: Option<NewPassword>,
    /// `PasswordResetRequired`.
    pub reset_required: Option<bool>,
    /// `MaxSigninSessionDuration` (`Some(None)` resets it).
    pub max_session_duration: Option<Option<u32>>,
}

/// A verified sign-in with a password, to record (Store::record_password_use).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordUse {
    /// The user.
    pub user_name: String,
    /// The hash the password was verified against; nothing is written if it changed.
    pub verified_hash: String,
    /// Now, seconds since the Unix epoch.
    pub now: i64,
    /// `last_used` is written only when it is older than this many seconds (AWS records
    /// the first use in each 5-minute span).
    pub granularity_secs: i64,
    /// The password hashed again with the current parameters, when the stored hash used
    /// others.
    pub rehash: Option<String>,
}

impl std::fmt::Debug for PasswordUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordUse")
            .field("user_name", &self.user_name)
            .field("now", &self.now)
            .field("rehash", &self.rehash.is_some())
            .finish_non_exhaustive()
    }
}

/// The one stored credential report of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// When it was generated, seconds since the Unix epoch.
    pub generated: i64,
    /// The CSV.
    pub content: Vec<u8>,
}

/// The last recorded use of an access key (GetAccessKeyLastUsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLastUsed {
    /// When, seconds since the Unix epoch.
    pub at: i64,
    /// The service namespace, `sts` or `iam`.
    pub service: String,
    /// The region the request was signed for.
    pub region: String,
}

/// One access key in the credential inventory (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// `AKIA…`.
    pub access_key_id: String,
    /// Whether it is `Active`.
    pub active: bool,
    /// When it was created.
    pub created: i64,
    /// Its last recorded use, if any.
    pub last_used: Option<KeyLastUsed>,
}

/// The credentials of one principal (root or a user), as the credential report shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalCredentials {
    /// The login profile, if the principal has a password.
    pub login_profile: Option<LoginProfile>,
    /// Access keys, oldest first.
    pub keys: Vec<KeySummary>,
    /// Enabled MFA devices of every kind: TOTP devices (virtual and hardware) and security
    /// keys.
    pub mfa_devices: usize,
}

/// Everything the credential report is written from, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInventory {
    /// The account (its creation time is the root row's `user_creation_time`).
    pub account: crate::Account,
    /// The root user's credentials (never a login profile in tokengate).
    pub root: PrincipalCredentials,
    /// Every user, by name, with their credentials.
    pub users: Vec<(crate::User, PrincipalCredentials)>,
}

/// One entity's attempt at one action, as the access advisor records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityUse {
    /// The user's or role's unique id (`AIDA…`, `AROA…`).
    pub entity_id: String,
    /// The entity's ARN when it was used (`LastAuthenticatedEntity`).
    pub entity_arn: String,
    /// The service namespace, `iam` or `sts`.
    pub service: String,
    /// The action name without its prefix, e.g. `GetUser`.
    pub action: String,
    /// When, seconds since the Unix epoch.
    pub at: i64,
    /// The region the request was signed for.
    pub region: String,
}

/// Uses collected in memory and written together ([`crate::Store::record_usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// Access keys: id and use.
    pub keys: Vec<(String, KeyLastUsed)>,
    /// Entities' action attempts.
    pub entities: Vec<EntityUse>,
}

impl UsageBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.entities.is_empty()
    }
}

/// A GenerateServiceLastAccessedDetails job, with its result as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisorJob {
    /// The 36-character job id.
    pub job_id: String,
    /// The ARN of who generated it (only they may read it).
    pub requester: String,
    /// Created, seconds since the Unix epoch.
    pub created: i64,
    /// Completed, seconds since the Unix epoch.
    pub completed: i64,
    /// `SERVICE_LEVEL` or `ACTION_LEVEL`.
    pub granularity: String,
    /// The result, serialized by the server (opaque to the store).
    pub result: String,
}
