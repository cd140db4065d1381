//! Account ids, principals and their ARNs (IAM User Guide, "IAM identifiers").

use std::fmt;

/// Error for identifiers that do not have AWS's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIdentifier(&'static str);

/// A 12-digit AWS account id (`000000000000` by default in tokengate).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// Parses a 12-digit account id.
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidIdentifier("an account id is exactly 12 digits"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who made a request, as STS reports it in `GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    /// The account's root user: `arn:aws:iam::ACCOUNT:root`, UserId = the account id.
    Root {
        /// The account.
        account: String,
    },
    /// An IAM user: `arn:aws:iam::ACCOUNT:user/PATHNAME`, UserId `AIDA…`.
    User {
        /// The account.
        account: String,
        /// The user's path, `/` or `/division/…/`.
        path: String,
        /// The user name.
        name: String,
        /// The user's unique id (`AIDA…`).
        user_id: String,
    },
    /// A role session (AssumeRole): `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` (no
    /// path, IAM User Guide "IAM identifiers"), UserId `AROA…:SESSION` (policy.md §3.1).
    AssumedRole {
        /// The account.
        account: String,
        /// The role name.
        role_name: String,
        /// The role's path, `/` or `/division/…/`.
        role_path: String,
        /// The role's unique id (`AROA…`).
        role_id: String,
        /// The caller-chosen `RoleSessionName`.
        session_name: String,
    },
    /// A federated user (GetFederationToken): `arn:aws:sts::ACCOUNT:federated-user/NAME`,
    /// UserId `ACCOUNT:NAME` (policy.md §5.2). The session belongs to the IAM user who
    /// asked for it; `user_id` is that user's unique id, so that the session ends with the
    /// user.
    FederatedUser {
        /// The account.
        account: String,
        /// The caller-chosen `Name`.
        name: String,
        /// The unique id (`AIDA…`) of the IAM user whose long-term key minted the session.
        user_id: String,
    },
}

impl Principal {
    /// The principal's ARN.
    pub fn arn(&self) -> String {
        match self {
            Self::Root { account } => format!("arn:aws:iam::{account}:root"),
            Self::User {
                account,
                path,
                name,
                ..
            } => user_arn(account, path, name),
            Self::AssumedRole {
                account,
                role_name,
                session_name,
                ..
            } => format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"),
            Self::FederatedUser { account, name, .. } => {
                format!("arn:aws:sts::{account}:federated-user/{name}")
            }
        }
    }

    /// The `UserId` that GetCallerIdentity returns (and `aws:userid`): the account id for
    /// root, `AIDA…` for a user, `AROA…:SESSION` for a role session (policy.md §3.1).
    pub fn user_id(&self) -> String {
        match self {
            Self::Root { account } => account.clone(),
            Self::User { user_id, .. } => user_id.clone(),
            Self::AssumedRole {
                role_id,
                session_name,
                ..
            } => format!("{role_id}:{session_name}"),
            Self::FederatedUser { account, name, .. } => format!("{account}:{name}"),
        }
    }

    /// The account this principal belongs to.
    pub fn account(&self) -> &str {
        match self {
            Self::Root { account }
            | Self::User { account, .. }
            | Self::AssumedRole { account, .. }
            | Self::FederatedUser { account, .. } => account,
        }
    }

    /// For a role session, the role's ARN with its path (`aws:PrincipalArn`, policy.md
    /// §3.1); `None` for anyone else.
    pub fn role_arn(&self) -> Option<String> {
        match self {
            Self::AssumedRole {
                account,
                role_name,
                role_path,
                ..
            } => Some(role_arn(account, role_path, role_name)),
            Self::Root { .. } | Self::User { .. } | Self::FederatedUser { .. } => None,
        }
    }

    /// Whether this is the account's root user.
    pub fn is_root(&self) -> bool {
        matches!(self, Self::Root { .. })
    }

    /// The IAM user name, for users.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Self::Root { .. } | Self::AssumedRole { .. } | Self::FederatedUser { .. } => None,
            Self::User { name, .. } => Some(name),
        }
    }
}

/// `arn:aws:iam::ACCOUNT:user{path}{name}`; `path` starts and ends with `/`.
pub fn user_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user{path}{name}")
}

/// `arn:aws:iam::ACCOUNT:role{path}{name}`; `path` starts and ends with `/`.
pub fn role_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role{path}{name}")
}

/// Whether an MFA serial number names a security key (`arn:PARTITION:iam::ACCOUNT:u2f/…`,
/// the form AWS gives U2F/FIDO devices) rather than a virtual or hardware TOTP device
/// (`…:mfa/…` or a fob's serial). Clients use it to ask for a touch instead of a code.
pub fn is_security_key_serial(serial: &str) -> bool {
    serial
        .split(':')
        .nth(5)
        .is_some_and(|resource| resource.starts_with("u2f/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn security_key_serials() {
        assert!(is_security_key_serial(
            "arn:aws:iam::000000000000:u2f/user/alice/key-ABC"
        ));
        assert!(!is_security_key_serial(
            "arn:aws:iam::000000000000:mfa/alice"
        ));
        assert!(!is_security_key_serial("GAHT12345678"));
        assert!(!is_security_key_serial("u2f/user/alice"));
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("000000000000").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("1234567890123").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
    }

    #[test]
    fn arns() {
        let root = Principal::Root {
            account: "000000000000".into(),
        };
        assert_eq!(root.arn(), "arn:aws:iam::000000000000:root");
        assert_eq!(root.user_id(), "000000000000");
        let alice = Principal::User {
            account: "000000000000".into(),
            path: "/".into(),
            name: "alice".into(),
            user_id: "AIDAEXAMPLE".into(),
        };
        assert_eq!(alice.arn(), "arn:aws:iam::000000000000:user/alice");
        assert_eq!(
            user_arn("123456789012", "/ops/", "bob"),
            "arn:aws:iam::123456789012:user/ops/bob"
        );
    }

    #[test]
    fn role_session_arns_have_no_path_and_the_role_arn_has() {
        let session = Principal::AssumedRole {
            account: "000000000000".into(),
            role_name: "deploy".into(),
            role_path: "/ops/".into(),
            role_id: "AROAEXAMPLE".into(),
            session_name: "s1".into(),
        };
        assert_eq!(
            session.arn(),
            "arn:aws:sts::000000000000:assumed-role/deploy/s1"
        );
        assert_eq!(session.user_id(), "AROAEXAMPLE:s1");
        assert_eq!(
            session.role_arn().as_deref(),
            Some("arn:aws:iam::000000000000:role/ops/deploy")
        );
        assert_eq!(session.user_name(), None);
        assert!(!session.is_root());
        // The claims' JSON form is tagged like the other principals.
        let json = serde_json::to_value(&session).unwrap();
        assert_eq!(json["type"], "assumed_role");
        assert_eq!(serde_json::from_value::<Principal>(json).unwrap(), session);
    }

    #[test]
    fn federated_users_are_sts_principals_named_by_account_and_name() {
        let fed = Principal::FederatedUser {
            account: "000000000000".into(),
            name: "bob@ci".into(),
            user_id: "AIDAEXAMPLE".into(),
        };
        assert_eq!(fed.arn(), "arn:aws:sts::000000000000:federated-user/bob@ci");
        assert_eq!(fed.user_id(), "000000000000:bob@ci");
        assert_eq!(fed.role_arn(), None);
        assert_eq!(fed.user_name(), None);
        let json = serde_json::to_value(&fed).unwrap();
        assert_eq!(json["type"], "federated_user");
        assert_eq!(serde_json::from_value::<Principal>(json).unwrap(), fed);
    }
}
