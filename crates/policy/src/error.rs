//! The crate's one error type and the exact `MalformedPolicyDocument` texts (policy.md §4.9).

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Malformed input: the exact `MalformedPolicyDocument` message AWS gives (§4.9).
    #[error("{0}")]
    Malformed(String),
    /// The document has more non-white-space characters than its kind allows (§4.9 size
    /// limits); the caller sends `LimitExceeded` with the quota's own wording.
    #[error("policy size exceeds {limit} characters")]
    TooLarge {
        /// The limit that was exceeded, in characters not counting white space.
        limit: usize,
    },
}

impl PolicyError {
    pub(crate) fn malformed(message: impl Into<String>) -> PolicyError {
        PolicyError::Malformed(message.into())
    }
}

pub(crate) const SYNTAX: &str = "Syntax errors in policy.";
pub(crate) const VERSION: &str = "Policy document must be version 2012-10-17 or greater.";
pub(crate) const LEGACY: &str = "The policy failed legacy parsing";
pub(crate) const NO_ACTIONS: &str = "Policy statement must contain actions.";
pub(crate) const NO_RESOURCES: &str = "Policy statement must contain resources.";
pub(crate) const PROHIBITED_RESOURCE: &str = "Has prohibited field Resource";
pub(crate) const NO_VENDOR: &str =
    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
pub(crate) const ONE_COLON: &str = "Actions/Condition can contain only one colon.";
pub(crate) const RESOURCE_VENDOR: &str =
    "Resource vendor must be fully qualified and cannot contain regexes.";
pub(crate) const IAM_PATH: &str = "IAM resource path must either be \"*\" or start with user/, \
    federated-user/, role/, group/, instance-profile/, mfa/, server-certificate/, policy/, \
    sms-mfa/, saml-provider/, oidc-provider/, report/, access-report/.";
pub(crate) const SID_UNIQUE: &str = "Statement IDs (SID) in a single policy must be unique.";
pub(crate) const SID_CHARSET: &str = "Statement IDs (SID) must be alpha-numeric. Check that \
    your input satisfies the regular expression [0-9A-Za-z]*";
pub(crate) const PRINCIPAL_FORBIDDEN: &str = "Policy document should not specify a principal.";
pub(crate) const NO_PRINCIPALS: &str = "Invalid principal in policy: \
    com.amazon.balsa.error.InvalidPolicyException: \
    The passed in policy has a statement with no principals!";
