//! The vocabulary of the action registry: what one API action is ([`ActionSpec`]), how its
//! resource ARN is built ([`ResourceSpec`], policy.md §4.8) and what its handler receives
//! ([`Call`]).
//!
//! The table itself is [`crate::registry`], which re-exports everything here. These types
//! live one floor below it so that handler families may name them (a [`Call`], a
//! [`ResourceInput`] for a custom resource builder) without importing the table that
//! imports them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokengate_token::arn;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// The API an action belongs to: it selects the version, the XML namespace and the
/// credential scope's service (sts-iam.md §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// IAM, version 2010-05-08.
    Iam,
    /// STS, version 2011-06-15.
    Sts,
}

impl Api {
    /// Both APIs.
    pub const ALL: [Api; 2] = [Api::Iam, Api::Sts];

    /// The API version a request must name.
    pub fn version(self) -> &'static str {
        match self {
            Api::Iam => "2010-05-08",
            Api::Sts => "2011-06-15",
        }
    }

    /// The XML namespace of responses.
    pub fn namespace(self) -> &'static str {
        match self {
            Api::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            Api::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
        }
    }

    /// The service name: the SigV4 credential scope's, and the prefix of policy actions.
    pub fn service(self) -> &'static str {
        match self {
            Api::Iam => "iam",
            Api::Sts => "sts",
        }
    }

    /// The API whose service name is `service` (a credential scope's).
    pub fn from_service(service: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.service() == service)
    }
}

/// A family of handlers: one module under [`crate::handlers`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Users and access keys ([`crate::handlers::users`]).
    UsersAndKeys,
    /// TOTP MFA devices ([`crate::handlers::mfa_devices`]).
    MfaDevices,
    /// U2F / FIDO2 security keys ([`crate::handlers::security_keys`]).
    SecurityKeys,
    /// Groups and memberships.
    Groups,
    /// IAM roles (their policies are the policies family's).
    Roles,
    /// Managed and inline policies.
    Policies,
    /// The policy simulator.
    Simulator,
    /// STS: identity and session credentials ([`crate::handlers::sts`]).
    Sts,
    /// Console passwords: the account password policy, login profiles, ChangePassword
    /// ([`crate::handlers::passwords`]).
    Passwords,
    /// Account reports: the credential report ([`crate::handlers::reports`]).
    Reports,
    /// Account advisor: key last use, access advisor, account summary and authorization
    /// details, the account alias ([`crate::handlers::advisor`]).
    Advisor,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 11] = [
        Family::UsersAndKeys,
        Family::MfaDevices,
        Family::SecurityKeys,
        Family::Groups,
        Family::Roles,
        Family::Policies,
        Family::Simulator,
        Family::Sts,
        Family::Passwords,
        Family::Reports,
        Family::Advisor,
    ];

    /// The name of the family's module under `src/handlers/`.
    pub fn module(self) -> &'static str {
        match self {
            Family::UsersAndKeys => "users",
            Family::MfaDevices => "mfa_devices",
            Family::SecurityKeys => "security_keys",
            Family::Groups => "groups",
            Family::Roles => "roles",
            Family::Policies => "policies",
            Family::Simulator => "simulator",
            Family::Sts => "sts",
            Family::Passwords => "passwords",
            Family::Reports => "reports",
            Family::Advisor => "advisor",
        }
    }
}

/// An action's access level, as the AWS service authorization reference classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    /// Reads one resource.
    Read,
    /// Lists resources.
    List,
    /// Creates, changes or deletes.
    Write,
    /// Changes who may do what.
    PermissionsManagement,
    /// Changes tags only.
    Tagging,
}

/// An action-specific condition key (policy.md §4.8) that an action's request context
/// carries; the registry says which actions carry which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKey {
    /// `iam:PolicyARN`: the `PolicyArn` parameter (the policy attached or detached).
    PolicyArn,
    /// `iam:PermissionsBoundary`: the `PermissionsBoundary` parameter (the boundary set).
    BoundaryParam,
    /// `iam:PermissionsBoundary`: the current boundary of the user `UserName` names.
    UserBoundary,
    /// `iam:PermissionsBoundary`: the current boundary of the role `RoleName` names.
    RoleBoundary,
}

/// What a custom resource builder may look at.
pub struct ResourceInput<'a> {
    /// The service state (a builder may do a point read of the store).
    pub state: &'a AppState,
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// The request parameters, not yet validated.
    pub params: &'a Params,
}

impl ResourceInput<'_> {
    /// The account id.
    pub fn account(&self) -> &str {
        &self.state.account_id
    }

    /// `arn:aws:iam::ACCOUNT:user{path}{name}`, the path read from the store (an unknown
    /// user has path `/`).
    pub fn user_arn(&self, name: &str) -> Result<String, ApiError> {
        // A point read, inline on the worker (ADR 0003).
        let path = self
            .state
            .store
            .user(name)?
            .map_or_else(|| "/".to_owned(), |u| u.path);
        Ok(arn::user_arn(self.account(), &path, name))
    }

    /// The caller's own user: the root ARN for root, else the caller's user ARN.
    pub fn own_user_arn(&self) -> Result<String, ApiError> {
        match self.caller.principal.user_name() {
            Some(name) => self.user_arn(name),
            None => Ok(self.caller.principal.arn()),
        }
    }
}

/// How an action's resource ARN (policy.md §4.8) is built for authorization. Parameters are
/// read as sent: the chokepoint builds the resource before the handler validates them.
#[derive(Clone, Copy)]
pub enum ResourceSpec {
    /// `*`: the action has no resource.
    Any,
    /// `arn:aws:iam::ACCT:user{path}{name}` of the user named by `param`; without it, the
    /// caller's own user (IAM's implicit-user rule; the root ARN for root). The user's path
    /// is read from the store (an unknown user has path `/`).
    User {
        /// The parameter naming the user.
        param: &'static str,
    },
    /// `arn:aws:iam::ACCT:group{path}{name}` of the group named by `param` (`*` without it);
    /// the path is read from the store (an unknown group has path `/`).
    Group {
        /// The parameter naming the group.
        param: &'static str,
    },
    /// `arn:aws:iam::ACCT:role{path}{name}` of the role named by `param` (`*` without it);
    /// the path is read from the store (an unknown role has path `/`).
    Role {
        /// The parameter naming the role.
        param: &'static str,
    },
    /// The policy ARN that `param` holds (`*` without it).
    Policy {
        /// The parameter holding the ARN.
        param: &'static str,
    },
    /// The MFA device serial (an ARN, or a hardware fob's serial) that `param` holds (`*`
    /// without it).
    Mfa {
        /// The parameter holding the serial.
        param: &'static str,
    },
    /// `arn:aws:iam::ACCT:mfa{path}{name}` of a virtual device about to be created.
    VirtualMfaName {
        /// The parameter holding the device name.
        name_param: &'static str,
        /// The parameter holding the path (default `/`).
        path_param: &'static str,
    },
    /// Built by a function of the request (one that cannot fail: a builder that reads the
    /// store answers `*` when the read fails, and the handler meets the failure again).
    Custom(fn(&ResourceInput<'_>) -> String),
}

impl ResourceSpec {
    /// The resource ARN of a request.
    pub fn build(&self, input: &ResourceInput<'_>) -> Result<String, ApiError> {
        let param = |name: &str| input.params.get(name);
        let account = input.account();
        Ok(match *self {
            ResourceSpec::Any => "*".to_owned(),
            ResourceSpec::User { param: p } => match param(p) {
                Some(name) => input.user_arn(name)?,
                None => input.own_user_arn()?,
            },
            ResourceSpec::Group { param: p } => match param(p) {
                Some(name) => {
                    // A point read, inline on the worker, as for users.
                    let path = input
                        .state
                        .store
                        .group(name)?
                        .map_or_else(|| "/".to_owned(), |g| g.path);
                    format!("arn:aws:iam::{account}:group{path}{name}")
                }
                None => "*".to_owned(),
            },
            ResourceSpec::Role { param: p } => match param(p) {
                Some(name) => {
                    // A point read, inline on the worker, as for users.
                    let path = input
                        .state
                        .store
                        .role(name)?
                        .map_or_else(|| "/".to_owned(), |r| r.path);
                    format!("arn:aws:iam::{account}:role{path}{name}")
                }
                None => "*".to_owned(),
            },
            ResourceSpec::Policy { param: p } | ResourceSpec::Mfa { param: p } => {
                param(p).unwrap_or("*").to_owned()
            }
            ResourceSpec::VirtualMfaName {
                name_param,
                path_param,
            } => {
                let name = param(name_param).unwrap_or_default();
                let path = param(path_param).unwrap_or("/");
                format!("arn:aws:iam::{account}:mfa{path}{name}")
            }
            ResourceSpec::Custom(build) => build(input),
        })
    }
}

impl std::fmt::Debug for ResourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceSpec::Any => f.write_str("Any"),
            ResourceSpec::User { param } => write!(f, "User({param})"),
            ResourceSpec::Group { param } => write!(f, "Group({param})"),
            ResourceSpec::Role { param } => write!(f, "Role({param})"),
            ResourceSpec::Policy { param } => write!(f, "Policy({param})"),
            ResourceSpec::Mfa { param } => write!(f, "Mfa({param})"),
            ResourceSpec::VirtualMfaName {
                name_param,
                path_param,
            } => write!(f, "VirtualMfaName({name_param}, {path_param})"),
            ResourceSpec::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// What a handler returns: the inside of `{Action}Result`, if the action has one.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<String>, ApiError>> + Send>>;

/// One authorized request, as its handler receives it.
pub struct Call {
    /// The service state.
    pub state: Arc<AppState>,
    /// The caller, already authenticated and authorized for this action.
    pub caller: Caller,
    /// The request parameters.
    pub params: Params,
    /// The action's registry entry.
    pub action: &'static ActionSpec,
}

/// One API action: everything routing, authorization and audit need to know about it.
#[derive(Debug)]
pub struct ActionSpec {
    /// The wire name, e.g. `CreateUser` (matched exactly, as AWS does).
    pub name: &'static str,
    /// The API that answers it.
    pub api: Api,
    /// The handler family it belongs to.
    pub family: Family,
    /// Its access level.
    pub access: AccessLevel,
    /// How its resource ARN is built.
    pub resource: ResourceSpec,
    /// Its handler.
    pub handler: fn(Call) -> HandlerFuture,
}

/// What a family's handler function returns: a result body, or nothing.
pub trait Reply {
    /// The inside of `{Action}Result`, if any.
    fn into_reply(self) -> Option<String>;
}

impl Reply for String {
    fn into_reply(self) -> Option<String> {
        Some(self)
    }
}

impl Reply for () {
    fn into_reply(self) -> Option<String> {
        None
    }
}
