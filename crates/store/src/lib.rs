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

mod audit;
mod hygiene;
pub mod master_key;
pub mod observe;
mod portal;
mod postgres;
pub mod seal;
mod sqlite;

pub use hygiene::{AdvisorJob, EntityUse, UsageBatch};
pub use hygiene::{
    CredentialInventory, KeyLastUsed, KeySummary, LoginProfile, LoginProfileUpdate,
    MAX_PASSWORD_HISTORY, NewPassword, PasswordPolicy, PasswordUse, PrincipalCredentials,
    StoredReport,
};

pub use audit::{AuditAttribute, AuditEvent, AuditPage, AuditQuery};
pub use portal::{PortalSession, PortalStage};
pub use postgres::{
    DEFAULT_OPERATION_TIMEOUT, DEFAULT_POOL_SIZE, IAM_CHANNEL, PgOptions, PostgresStore,
};
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
    /// The entity changed since the caller read it: a compare-and-set lost a race (e.g.
    /// two password changes at once). Trying again may succeed.
    #[error("{0} changed meanwhile")]
    Changed(Entity),
    /// The backend failed (I/O, corruption, a bug).
    #[error("store backend error: {0}")]
    Backend(String),
    /// The database cannot be reached now: the connection was refused, lost or timed out
    /// (PostgreSQL down, restarting or unreachable). Trying again later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
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
    /// A U2F / FIDO2 security key (an MFA device too; AWS's DeleteUser message calls it
    /// one).
    SecurityKey,
    /// An IAM group.
    Group,
    /// An IAM role.
    Role,
    /// A customer managed policy.
    Policy,
    /// A version of a managed policy.
    PolicyVersion,
    /// An inline policy of a user or group.
    InlinePolicy,
    /// A managed policy attached to a user or group.
    AttachedPolicy,
    /// A user's membership in a group.
    GroupMembership,
    /// A tag on a user or policy.
    Tag,
    /// A user's permissions boundary.
    PermissionsBoundary,
    /// A user's login profile (console password).
    LoginProfile,
    /// The account password policy.
    PasswordPolicy,
    /// The stored credential report.
    CredentialReport,
    /// An access-advisor job (GenerateServiceLastAccessedDetails).
    AdvisorJob,
    /// The account alias.
    AccountAlias,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Account => "account",
            Self::User => "user",
            Self::AccessKey => "access key",
            Self::MfaDevice => "MFA device",
            Self::Challenge => "challenge",
            Self::SecurityKey => "security key",
            Self::Group => "group",
            Self::Role => "role",
            Self::Policy => "policy",
            Self::PolicyVersion => "policy version",
            Self::InlinePolicy => "inline policy",
            Self::AttachedPolicy => "attached policy",
            Self::GroupMembership => "group membership",
            Self::Tag => "tag",
            Self::PermissionsBoundary => "permissions boundary",
            Self::LoginProfile => "login profile",
            Self::PasswordPolicy => "password policy",
            Self::CredentialReport => "credential report",
            Self::AdvisorJob => "access advisor job",
            Self::AccountAlias => "account alias",
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

/// An IAM group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Unique id, `AGPA…`.
    pub group_id: String,
    /// Group name, unique in the account ignoring case (as IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

/// An IAM role (policy.md §4.5). Its trust policy is stored as given; the caller validates
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Unique id, `AROA…`.
    pub role_id: String,
    /// Role name, unique in the account ignoring case (as IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// The trust policy (`AssumeRolePolicyDocument`), as given.
    pub assume_role_policy: String,
    /// Free text, possibly empty.
    pub description: String,
    /// Longest session the role grants, in seconds (3600..43200).
    pub max_session_duration: u32,
    /// When the role was last assumed, seconds since the Unix epoch.
    pub last_used: Option<i64>,
    /// The region that last AssumeRole was signed for.
    pub last_used_region: Option<String>,
    /// The users and roles the trust policy named when it was stored, with their unique ids
    /// then (policy.md §8.5).
    pub trust_principals: Vec<PrincipalBinding>,
}

/// A principal ARN of a trust policy and the unique id of the entity it named when the
/// policy was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalBinding {
    /// The ARN as the policy writes it.
    pub arn: String,
    /// `AIDA…` or `AROA…`.
    pub unique_id: String,
}

/// Roles' `RoleLastUsed` moves at most this often (seconds): AssumeRole records a use only
/// when the last recorded one is older, so a burst of AssumeRoles writes once.
pub const ROLE_USE_GRANULARITY_SECS: i64 = 60;

/// What a policy is attached to or embedded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    /// An IAM user, by name.
    User(String),
    /// An IAM group, by name.
    Group(String),
    /// An IAM role, by name.
    Role(String),
}

/// A customer managed policy, with its live use counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// Unique id, `ANPA…`.
    pub policy_id: String,
    /// Policy name, unique in the account ignoring case (as IAM).
    pub name: String,
    /// Path, `/` by default.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
    pub arn: String,
    /// Free text, possibly empty.
    pub description: String,
    /// The id of the default (operative) version, e.g. `v1`.
    pub default_version: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// When the default version last changed, seconds since the Unix epoch.
    pub updated: i64,
    /// Users, groups and roles it is attached to.
    pub attachment_count: u32,
    /// Users and roles it is the permissions boundary of.
    pub boundary_usage_count: u32,
}

/// A customer managed policy to create, with its first version's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewManagedPolicy {
    /// Unique id, `ANPA…`.
    pub policy_id: String,
    /// Policy name.
    pub name: String,
    /// Path.
    pub path: String,
    /// The policy's ARN.
    pub arn: String,
    /// Free text, possibly empty.
    pub description: String,
    /// The document of version `v1`, the default.
    pub document: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Tags, stored with the policy.
    pub tags: Vec<Tag>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// `v1`, `v2`, …: increasing, never reused.
    pub version_id: String,
    /// The policy document, as given.
    pub document: String,
    /// Whether it is the operative version.
    pub is_default: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

/// A tag on a user or policy. Keys are unique per resource ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The key, in the case last written.
    pub key: String,
    /// The value, possibly empty.
    pub value: String,
}

/// A managed policy attached to a user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// The policy's name (for an AWS managed policy, the last segment of its ARN).
    pub name: String,
    /// The policy's ARN.
    pub arn: String,
}

/// An inline policy: a document embedded in one user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    /// Its name, unique (ignoring case) within its user or group.
    pub name: String,
    /// The policy document.
    pub document: String,
}

/// Everything authorization needs for one user, read in ONE read transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicies {
    /// The user.
    pub user: User,
    /// The user's tags (`aws:PrincipalTag/…`), ordered by key.
    pub tags: Vec<Tag>,
    /// The user's inline policies, ordered by name.
    pub inline: Vec<InlinePolicy>,
    /// The managed policies attached to the user, ordered by ARN.
    pub attached: Vec<AttachedPolicyDocument>,
    /// The user's groups with their policies, ordered by group name.
    pub groups: Vec<GroupPolicies>,
    /// The user's permissions boundary.
    pub boundary: Option<AttachedPolicyDocument>,
}

/// Everything authorization needs of one role, read in one transaction
/// ([`Store::role_policies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicies {
    /// The role (its trust policy included).
    pub role: Role,
    /// The role's tags (`aws:PrincipalTag/…` for its sessions), ordered by key.
    pub tags: Vec<Tag>,
    /// The role's inline policies, ordered by name.
    pub inline: Vec<InlinePolicy>,
    /// The managed policies attached to the role, ordered by ARN.
    pub attached: Vec<AttachedPolicyDocument>,
    /// The role's permissions boundary.
    pub boundary: Option<AttachedPolicyDocument>,
}

/// A group's policies, as part of [`UserPolicies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPolicies {
    /// The group.
    pub group: Group,
    /// Its inline policies, ordered by name.
    pub inline: Vec<InlinePolicy>,
    /// The managed policies attached to it, ordered by ARN.
    pub attached: Vec<AttachedPolicyDocument>,
}

/// A managed policy in use, with the document to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicyDocument {
    /// The policy's ARN.
    pub arn: String,
    /// The default version's document for a customer policy; `None` for an AWS managed
    /// policy (`arn:aws:iam::aws:policy/…`), whose documents the caller ships.
    pub document: Option<String>,
}

/// How a managed policy is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyUsage {
    /// Attached as a permissions policy (IAM `PermissionsPolicy`).
    Permissions,
    /// Set as a permissions boundary (IAM `PermissionsBoundary`).
    Boundary,
}

/// Who uses a managed policy ([`Store::policy_entities`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntities {
    /// Users, ordered by name.
    pub users: Vec<User>,
    /// Groups, ordered by name.
    pub groups: Vec<Group>,
    /// Roles, ordered by name.
    pub roles: Vec<Role>,
}

/// How often a managed policy is in use ([`Store::policy_use_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyUseCounts {
    /// Users, groups and roles it is attached to.
    pub attachments: u32,
    /// Users and roles it is the permissions boundary of.
    pub boundary_uses: u32,
}

/// IAM quota: MFA devices in use by one user (or root), of any kind.
pub const MAX_MFA_DEVICES: usize = 8;
/// IAM quota: versions of one managed policy (`UG:reference_iam-quotas`).
pub const MAX_POLICY_VERSIONS: usize = 5;
/// IAM quota: groups a user can be a member of.
pub const MAX_GROUPS_PER_USER: usize = 10;
/// IAM quota: managed policies attached to one user or group.
pub const MAX_ATTACHED_POLICIES: usize = 10;
/// IAM quota: tags on one resource.
pub const MAX_TAGS: usize = 50;
/// IAM quota: aggregate size of a user's inline policies, in characters.
pub const MAX_USER_INLINE_SIZE: usize = 2_048;
/// IAM quota: aggregate size of a group's inline policies, in characters.
pub const MAX_GROUP_INLINE_SIZE: usize = 5_120;
/// IAM quota: aggregate size of a role's inline policies, in characters.
pub const MAX_ROLE_INLINE_SIZE: usize = 10_240;
/// IAM quota: roles per account (the default, 1000).
pub const MAX_ROLES: usize = 1_000;

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
    /// Whether the store can serve now: reachable (one cheap query) and every migration
    /// this build knows applied; `Err` says why not (`GET /readyz`). By default, the
    /// account read.
    fn readiness(&self) -> Result<(), StoreError> {
        self.account().map(|_| ())
    }
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
    /// A user by unique id (`AIDA…`): sessions resolve their principal by it.
    fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError>;
    /// Users whose path starts with `path_prefix`, ordered by name, after `after`,
    /// at most `limit`.
    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;
    /// Deletes a user, with its tags and permissions boundary. `DeleteConflict` names the
    /// first thing that still blocks it, checked in this order: access keys
    /// (`AccessKey`), TOTP devices enabled for it (`MfaDevice`), security keys
    /// (`SecurityKey` — AWS reports both kinds as "MFA device"), inline policies
    /// (`InlinePolicy`), attached policies (`AttachedPolicy`), group memberships
    /// (`GroupMembership`).
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

    /// Bumped after every committed admin write (any write through the store's write
    /// path); authorization caches compare it. Reads leave it alone. (SQLite keeps it in
    /// memory: one process owns the database.)
    fn iam_generation(&self) -> u64;
    /// Like [`Store::iam_generation`], but an error when the generation cannot be read now
    /// (a shared database that is unreachable), so that a caller that must not act on
    /// possibly stale authorization fails closed. By default, never an error.
    fn checked_iam_generation(&self) -> Result<u64, StoreError> {
        Ok(self.iam_generation())
    }

    /// Creates a group if no group has its name (ignoring case) and the account has fewer
    /// than `max_groups` (`LimitExceeded(Group)`).
    fn create_group(&self, g: &Group, max_groups: usize) -> Result<(), StoreError>;
    /// A group by name (ignoring case).
    fn group(&self, name: &str) -> Result<Option<Group>, StoreError>;
    /// Groups whose path starts with `path_prefix`, ordered by name.
    fn list_groups(&self, path_prefix: &str) -> Result<Vec<Group>, StoreError>;
    /// Renames and/or moves a group: `NotFound(Group)`, or `AlreadyExists(Group)` when the
    /// new name is taken by another group.
    fn update_group(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deletes a group that has no members, inline policies or attached policies
    /// (`DeleteConflict { Group, GroupMembership | InlinePolicy | AttachedPolicy }`,
    /// checked in that order).
    fn delete_group(&self, name: &str) -> Result<(), StoreError>;
    /// Adds `user` to `group`; nothing to do if it is a member already. `NotFound(User |
    /// Group)`; `LimitExceeded(GroupMembership)` when the user is in
    /// `max_groups_per_user` groups.
    fn add_user_to_group(
        &self,
        group: &str,
        user: &str,
        max_groups_per_user: usize,
    ) -> Result<(), StoreError>;
    /// Removes `user` from `group`: `NotFound(User | Group | Role)`, `NotFound(GroupMembership)`
    /// when it is not a member.
    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), StoreError>;
    /// The members of `group`, ordered by name (`NotFound(Group)`).
    fn group_members(&self, group: &str) -> Result<Vec<User>, StoreError>;
    /// The groups of `user`, ordered by name (`NotFound(User)`).
    fn groups_for_user(&self, user: &str) -> Result<Vec<Group>, StoreError>;

    /// Creates a customer managed policy with version `v1` as its default, and its tags:
    /// `AlreadyExists(Policy)` when a policy has its name (ignoring case, whatever the
    /// path, as IAM) or ARN, `LimitExceeded(Policy)` when the account has `max_policies`.
    fn create_policy(&self, p: &NewManagedPolicy, max_policies: usize) -> Result<(), StoreError>;
    /// A customer managed policy by ARN, with live use counts.
    fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, StoreError>;
    /// Customer managed policies matching `f`, ordered by name.
    fn list_policies(&self, path_prefix: &str) -> Result<Vec<ManagedPolicy>, StoreError>;
    /// How often the policy `arn` is in use; any ARN, AWS managed ones included.
    fn policy_use_counts(&self, arn: &str) -> Result<PolicyUseCounts, StoreError>;
    /// Deletes a customer managed policy, its default version and its tags:
    /// `DeleteConflict { Policy, AttachedPolicy }` while it is attached or a boundary,
    /// `DeleteConflict { Policy, PolicyVersion }` while it has non-default versions.
    fn delete_policy(&self, arn: &str) -> Result<(), StoreError>;
    /// Adds a version (`vN`, N one more than any version the policy ever had), the default
    /// if `set_default`: `NotFound(Policy)`, `LimitExceeded(PolicyVersion)` when the policy
    /// has `max_versions`.
    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        max_versions: usize,
        now: i64,
    ) -> Result<PolicyVersion, StoreError>;
    /// One version of a customer managed policy.
    fn policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError>;
    /// The versions of a customer managed policy, newest first (`NotFound(Policy)`).
    fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, StoreError>;
    /// Deletes a non-default version: `NotFound(Policy | PolicyVersion)`,
    /// `DeleteConflict { PolicyVersion, PolicyVersion }` for the default.
    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), StoreError>;
    /// Makes `version_id` the default: `NotFound(Policy | PolicyVersion)`.
    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Attaches the managed policy `arn` to `target`; nothing to do if it is attached
    /// already. `NotFound(User | Group | Role)`; `NotFound(Policy)` for a customer policy that does
    /// not exist (`aws_managed`: no customer policy row is needed);
    /// `LimitExceeded(AttachedPolicy)` when the target has `max_attached`.
    fn attach_policy(
        &self,
        target: &PolicyTarget,
        arn: &str,
        aws_managed: bool,
        max_attached: usize,
    ) -> Result<(), StoreError>;
    /// Detaches `arn` from `target`: `NotFound(User | Group | Role)`, `NotFound(AttachedPolicy)`
    /// when it is not attached.
    fn detach_policy(&self, target: &PolicyTarget, arn: &str) -> Result<(), StoreError>;
    /// The managed policies attached to `target`, ordered by ARN.
    fn attached_policies(&self, target: &PolicyTarget) -> Result<Vec<AttachedPolicy>, StoreError>;
    /// The users, groups and roles using `arn`: attached (`Permissions`), as a boundary
    /// (`Boundary`), or either (`None`).
    fn policy_entities(
        &self,
        arn: &str,
        usage: Option<PolicyUsage>,
    ) -> Result<PolicyEntities, StoreError>;

    /// Creates or replaces `target`'s inline policy `name` (matched ignoring case; the
    /// name's case is replaced too). `size` is the document's size as the quota counts it;
    /// `LimitExceeded(InlinePolicy)` when the sizes of the target's other inline policies
    /// plus `size` exceed `max_aggregate_size`.
    fn put_inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
        document: &str,
        size: usize,
        max_aggregate_size: usize,
    ) -> Result<(), StoreError>;
    /// The document of `target`'s inline policy `name` (`NotFound(User | Group | Role)`).
    fn inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The names of `target`'s inline policies, ordered.
    fn inline_policy_names(&self, target: &PolicyTarget) -> Result<Vec<String>, StoreError>;
    /// Deletes `target`'s inline policy `name` (`NotFound(InlinePolicy)`).
    fn delete_inline_policy(&self, target: &PolicyTarget, name: &str) -> Result<(), StoreError>;

    /// Sets (`Some`) or removes (`None`, idempotent as AWS's
    /// DeleteUserPermissionsBoundary) `user`'s permissions boundary. A customer policy must
    /// exist (`NotFound(Policy)`) unless `aws_managed`.
    fn set_user_permissions_boundary(
        &self,
        user: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError>;
    /// `user`'s permissions boundary ARN (`NotFound(User)`).
    fn user_permissions_boundary(&self, user: &str) -> Result<Option<String>, StoreError>;

    /// Adds or replaces tags on `user`, keys matched ignoring case (the key's case is
    /// replaced too): `LimitExceeded(Tag)` when the user would have more than `max_tags`.
    fn tag_user(&self, user: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError>;
    /// Removes the tags with these keys (ignoring case) from `user`; absent keys are fine.
    fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), StoreError>;
    /// `user`'s tags, ordered by key.
    fn user_tags(&self, user: &str) -> Result<Vec<Tag>, StoreError>;
    /// [`Store::tag_user`] for a customer managed policy.
    fn tag_policy(&self, arn: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError>;
    /// [`Store::untag_user`] for a customer managed policy.
    fn untag_policy(&self, arn: &str, keys: &[String]) -> Result<(), StoreError>;
    /// A customer managed policy's tags, ordered by key.
    fn policy_tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError>;

    /// Everything authorization needs for the user with id `user_id`, read in one read
    /// transaction; `None` when there is no such user.
    fn user_policies(&self, user_id: &str) -> Result<Option<UserPolicies>, StoreError>;
    /// Group `name` (ignoring case) with its inline and attached policies, in one read
    /// transaction (the policy simulator's group source); `None` when there is no such
    /// group.
    fn group_policies(&self, name: &str) -> Result<Option<GroupPolicies>, StoreError>;

    /// Creates a role with its tags and permissions boundary (`Some((arn, aws_managed))`)
    /// in one transaction: `AlreadyExists(Role)` when a role has its name (ignoring case),
    /// `LimitExceeded(Role)` when the account has `max_roles`, `LimitExceeded(Tag)` past
    /// [`MAX_TAGS`] tags, `NotFound(Policy)` for a customer boundary policy that does not
    /// exist. Nothing is created when any of it fails.
    fn create_role(
        &self,
        role: &Role,
        tags: &[Tag],
        boundary: Option<(&str, bool)>,
        max_roles: usize,
    ) -> Result<(), StoreError>;
    /// A role by name (ignoring case).
    fn role(&self, name: &str) -> Result<Option<Role>, StoreError>;
    /// The role with unique id `role_id` (`AROA…`) with its tags, inline and attached
    /// policies and boundary, in one read transaction; `None` when no role has that id.
    fn role_policies(&self, role_id: &str) -> Result<Option<RolePolicies>, StoreError>;
    /// Records that role `role_id` was assumed at `now` by a request signed for `region`,
    /// unless a use less than [`ROLE_USE_GRANULARITY_SECS`] old from the same region is
    /// recorded. Not an IAM change: it leaves the IAM generation (and so every policy
    /// cache) alone. A role that no longer exists is not an error.
    fn record_role_use(&self, role_id: &str, now: i64, region: &str) -> Result<(), StoreError>;
    /// Roles whose path starts with `path_prefix`, ordered by name.
    fn list_roles(&self, path_prefix: &str) -> Result<Vec<Role>, StoreError>;
    /// Changes a role's description and/or maximum session duration (`NotFound(Role)`).
    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Replaces a role's trust policy and its principal bindings (`NotFound(Role)`).
    fn update_assume_role_policy(
        &self,
        name: &str,
        document: &str,
        principals: &[PrincipalBinding],
    ) -> Result<(), StoreError>;
    /// Deletes a role that has no inline or attached policies (`DeleteConflict { Role,
    /// InlinePolicy | AttachedPolicy }`, checked in that order, as AWS's DeleteRole
    /// documents them); its tags and boundary go with it. `NotFound(Role)`.
    fn delete_role(&self, name: &str) -> Result<(), StoreError>;
    /// [`Store::tag_user`] for a role (`NotFound(Role)`).
    fn tag_role(&self, role: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError>;
    /// [`Store::untag_user`] for a role (`NotFound(Role)`).
    fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), StoreError>;
    /// A role's tags, ordered by key (`NotFound(Role)`).
    fn role_tags(&self, role: &str) -> Result<Vec<Tag>, StoreError>;
    /// [`Store::set_user_permissions_boundary`] for a role (`NotFound(Role | Policy)`).
    fn set_role_permissions_boundary(
        &self,
        role: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError>;
    /// A role's permissions boundary ARN (`NotFound(Role)`).
    fn role_permissions_boundary(&self, role: &str) -> Result<Option<String>, StoreError>;

    // Account hygiene (issue 12): password policy, login profiles, credential report.

    /// The account password policy, if one is set.
    fn password_policy(&self) -> Result<Option<PasswordPolicy>, StoreError>;
    /// Sets (replaces whole) the account password policy.
    fn set_password_policy(&self, policy: &PasswordPolicy) -> Result<(), StoreError>;
    /// Deletes the account password policy (`NotFound(PasswordPolicy)` when none is set).
    fn delete_password_policy(&self) -> Result<(), StoreError>;
    /// Creates a user's login profile (`NotFound(User)`, `AlreadyExists(LoginProfile)`);
    /// its hash joins the user's password history.
    fn create_login_profile(
        &self,
        user: &str,
        password: &NewPassword,
        reset_required: bool,
        max_session_duration: Option<u32>,
    ) -> Result<LoginProfile, StoreError>;
    /// A user's login profile (`None` when the user has none; `NotFound(User)` when there
    /// is no such user).
    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>, StoreError>;
    /// The hashes of a user's latest `n` passwords, the current one included, newest
    /// first (`NotFound(User)`).
    fn password_history(&self, user: &str, n: usize) -> Result<Vec<String>, StoreError>;
    /// Changes a login profile (`NotFound(User)`, `NotFound(LoginProfile)`, and
    /// `Changed(LoginProfile)` when `password.expected` is no longer the current hash). A
    /// new password joins the history (the latest [`MAX_PASSWORD_HISTORY`] are kept).
    fn update_login_profile(
        &self,
        user: &str,
        update: &LoginProfileUpdate,
    ) -> Result<(), StoreError>;
    /// Deletes a user's login profile (`NotFound(User)`, `NotFound(LoginProfile)`); the
    /// password history stays with the user.
    fn delete_login_profile(&self, user: &str) -> Result<(), StoreError>;
    /// Records a verified sign-in: `last_used` (at most once per granularity) and the
    /// rehash, each only while the verified hash is still current. Login-path state: it
    /// does not invalidate authorization caches.
    fn record_password_use(&self, password_use: &PasswordUse) -> Result<(), StoreError>;
    /// The stored credential report, if one was generated.
    fn credential_report(&self) -> Result<Option<StoredReport>, StoreError>;
    /// Stores the credential report, replacing the previous one (AWS keeps one).
    fn put_credential_report(&self, report: &StoredReport) -> Result<(), StoreError>;
    /// The root's and every user's credentials, in one snapshot, for the credential report.
    fn credential_inventory(&self) -> Result<CredentialInventory, StoreError>;
    /// **The last-used hook** (issue 12, point 2): records the latest use of access keys,
    /// one row each, in one transaction; a use older than the one stored is ignored, and an
    /// unknown key is skipped. The credential report and GetAccessKeyLastUsed read it. The
    /// caller batches (AWS records at most one use per key per 15 minutes).
    fn record_access_key_last_used(&self, uses: &[(String, KeyLastUsed)])
    -> Result<(), StoreError>;

    // Usage and access advisor (issue 12, points 2 and 3).

    /// Records a batch of uses — access keys' last use and entities' last attempt per
    /// action — in one transaction that leaves the IAM generation alone (usage is no IAM
    /// state). A use older than the one stored is ignored; unknown keys are skipped.
    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError>;
    /// The recorded last use of access key `access_key_id` (`None` when never used or
    /// unknown).
    fn access_key_last_used(&self, access_key_id: &str) -> Result<Option<KeyLastUsed>, StoreError>;
    /// Every recorded action use of the entities with these unique ids.
    fn entity_usage(&self, entity_ids: &[String]) -> Result<Vec<EntityUse>, StoreError>;
    /// Stores an access-advisor job; jobs created before `expire_before` are dropped.
    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<(), StoreError>;
    /// The access-advisor job `job_id`.
    fn advisor_job(&self, job_id: &str) -> Result<Option<AdvisorJob>, StoreError>;
    /// The account alias, if one is set.
    fn account_alias(&self) -> Result<Option<String>, StoreError>;
    /// Sets the account alias, replacing the one there was (one per account).
    fn set_account_alias(&self, alias: &str) -> Result<(), StoreError>;
    /// Deletes the account alias `alias`; `NotFound(AccountAlias)` unless it is the one set.
    fn delete_account_alias(&self, alias: &str) -> Result<(), StoreError>;
    /// **The audit trail** (issue 12 point 5): appends events in one transaction. Audit
    /// rows are no IAM state: caches and the IAM generation stay as they are.
    fn append_audit_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError>;
    /// A page of audit events matching `query`, newest first.
    fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Deletes audit events older than `before` (epoch seconds); returns how many.
    fn purge_audit_events(&self, before: i64) -> Result<usize, StoreError>;
    // Sign-in portal (issue 13): sessions by the hash of their id, and the sign-in
    // throttle. Login-path state: none of it invalidates authorization caches.

    /// Stores a portal session; with `replaces`, deletes that one in the same transaction
    /// (the id rotation at each privilege step). Expired sessions are pruned.
    fn put_portal_session(
        &self,
        replaces: Option<&[u8]>,
        session: &PortalSession,
    ) -> Result<(), StoreError>;
    /// The portal session whose id hashes to `id_hash`, expired or not.
    fn portal_session(&self, id_hash: &[u8]) -> Result<Option<PortalSession>, StoreError>;
    /// Records a request of a portal session (its idle timeout restarts).
    fn touch_portal_session(&self, id_hash: &[u8], now: i64) -> Result<(), StoreError>;
    /// Ends a portal session (sign-out); nothing when there is none.
    fn delete_portal_session(&self, id_hash: &[u8]) -> Result<(), StoreError>;
    /// Failed password sign-ins for user name `name` (any case) after `since`.
    fn portal_signin_failures(&self, name: &str, since: i64) -> Result<u32, StoreError>;
    /// Counts one failed password sign-in for `name`; forgets those older than the window.
    fn record_portal_signin_failure(
        &self,
        name: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<(), StoreError>;
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
