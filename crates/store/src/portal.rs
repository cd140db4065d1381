//! Sign-in portal sessions (issue 13, docs/portal.md): what the store keeps of a browser
//! session. Only the SHA-256 of a session id is stored; the id lives in the cookie.

/// What a portal session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalStage {
    /// The password was verified but must be changed first (`PasswordResetRequired` or
    /// expired).
    Password,
    /// The password was verified; the second factor is pending.
    Mfa,
    /// Signed in (password and, where required, a second factor).
    SignedIn,
}

impl PortalStage {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Mfa => "mfa",
            Self::SignedIn => "signed_in",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(Self::Password),
            "mfa" => Some(Self::Mfa),
            "signed_in" => Some(Self::SignedIn),
            _ => None,
        }
    }
}

/// A portal session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    /// SHA-256 of the session id (the id itself is never stored).
    pub id_hash: Vec<u8>,
    /// The signed-in user's unique id (`AIDA…`).
    pub user_id: String,
    /// What the session waits for.
    pub stage: PortalStage,
    /// The second factor of the sign-in: method (`totp`), when verified.
    pub mfa_method: Option<String>,
    /// The device (serial) of the second factor.
    pub mfa_device: Option<String>,
    /// When the second factor was verified, seconds since the Unix epoch.
    pub mfa_time: Option<i64>,
    /// When the sign-in started.
    pub created: i64,
    /// The last request seen (the idle timeout counts from it).
    pub last_seen: i64,
    /// The session is void at or after this time (the absolute timeout).
    pub expires: i64,
}
