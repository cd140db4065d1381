//! What an evaluation is asked: the policies that apply and the request (policy.md §1).

use std::sync::Arc;

use crate::context::Context;
use crate::document::PolicyDocument;

/// Where a policy came from, as the simulator reports it (`SourcePolicyType`, §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// A user's inline policy.
    User,
    /// A group's inline policy.
    Group,
    /// A role's inline policy.
    Role,
    /// An AWS managed policy.
    AwsManaged,
    /// A customer managed policy.
    UserManaged,
    /// A resource-based policy (a trust policy included).
    Resource,
    /// A permissions boundary whose origin the caller does not give. Prefer `AwsManaged` /
    /// `UserManaged`: the simulator reports a boundary by the type of its policy.
    Boundary,
    /// A session policy. Reported as `none` (the simulator has no type for it).
    Session,
    /// Anything else, such as a simulator `PolicyInputList` entry.
    None,
}

impl SourceType {
    /// The simulator's `SourcePolicyType` string: `user`, `group`, `role`, `aws-managed`,
    /// `user-managed`, `resource`, `none`. Decision: `Boundary` → `user-managed`,
    /// `Session` → `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::User => "user",
            SourceType::Group => "group",
            SourceType::Role => "role",
            SourceType::AwsManaged => "aws-managed",
            SourceType::UserManaged | SourceType::Boundary => "user-managed",
            SourceType::Resource => "resource",
            SourceType::Session | SourceType::None => "none",
        }
    }
}

/// A policy document with the name the simulator reports it by.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `SourcePolicyId`: an inline policy's `entity-name` form, a policy ARN, or
    /// `PolicyInputList.1`.
    pub id: String,
    /// Where it came from.
    pub source: SourceType,
    /// The compiled document.
    pub document: Arc<PolicyDocument>,
}

/// What kind of principal makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The account root user. The crate evaluates it like anyone else; the caller
    /// short-circuits root (§1.4).
    Root,
    /// An IAM user with long-term or GetSessionToken credentials.
    User,
    /// A role session (AssumeRole).
    AssumedRole,
    /// A GetFederationToken session.
    FederatedUser,
}

/// Who makes the request, as resource-based policies name it (§1.1 step 3, §1.3).
#[derive(Debug, Clone, Copy)]
pub struct RequestPrincipal<'a> {
    /// Its kind.
    pub kind: PrincipalKind,
    /// The user ARN, the session ARN (`arn:aws:sts::ACCT:assumed-role/R/S`,
    /// `…:federated-user/N`) or the root ARN.
    pub arn: &'a str,
    /// The account ID.
    pub account: &'a str,
    /// `aws:userid`: `AIDA…` for a user, `AROA…:session` for a role session.
    pub unique_id: &'a str,
    /// For a role session the role ARN; for a federated user the ARN of the IAM user who
    /// called GetFederationToken. A resource policy naming it grants only within the
    /// boundary and session policies (§1.1 step 3).
    pub entity_arn: Option<&'a str>,
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller.
    pub principal: RequestPrincipal<'a>,
    /// `service:Action`, e.g. `iam:CreateUser`.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without a resource type.
    pub resource: &'a str,
    /// Condition keys.
    pub context: &'a Context,
}

/// The policies that apply to a request (§1.2).
#[derive(Debug, Clone, Copy)]
pub struct PolicySet<'a> {
    /// Identity-based policies: the user's inline and attached ones and its groups', or
    /// the role's.
    pub identity: &'a [Policy],
    /// The permissions boundary, if any.
    pub boundary: Option<&'a Policy>,
    /// `Some` for sessions that carry session policies; `Some(&[])` for a
    /// GetFederationToken session without any, which then has no permissions from
    /// identity policies (§1.1 step 6). `None` for users and for role sessions without
    /// session policies.
    pub session: Option<&'a [Policy]>,
    /// A resource-based policy: a trust policy (kind `Trust`) or another.
    pub resource: Option<&'a Policy>,
}
