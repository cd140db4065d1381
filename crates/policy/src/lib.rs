//! IAM policy documents for tokengate: parsing, validation with AWS's exact
//! `MalformedPolicyDocument` messages, and a compiled evaluator for identity, permissions
//! boundary, session and resource-based (trust) policies, with conditions and policy
//! variables. The reference is `policy.md` (§1 evaluation logic, §2 grammar, §3 condition
//! keys, §4.9 messages, §4.11 AWS managed policies).
//!
//! Policies are data, compiled once: [`PolicyDocument::parse`] validates and compiles the
//! text into matchers (split wildcard patterns, tokenized variables, parsed numbers, dates
//! and networks), and [`evaluate`] is a pure function of the compiled policies and a
//! [`Request`], returning the [`Decision`] *and* what explains it ([`Evaluation`]), so the
//! policy simulator, `AccessDenied` messages and the audit trail agree.
//!
//! What it does not do: no I/O, no wall clock, no randomness, no async. The caller builds
//! the request [`Context`] (including `aws:CurrentTime`, `aws:SourceIp`, MFA keys, …), looks
//! up the policies that apply, sums per-entity inline-policy sizes against the
//! `*_INLINE_MAX_SIZE` constants, short-circuits the root user and `sts:GetCallerIdentity`
//! (§1.4), and checks that principals named in trust policies exist (§1.3). Service control
//! policies and cross-account access are out of scope.

mod aws_managed;
mod condition;
mod context;
mod document;
mod error;
mod eval;
mod json;
mod pattern;
mod request;
mod scalar;
mod validate;

pub use aws_managed::{AwsManagedPolicy, aws_managed_policies, aws_managed_policy};
pub use context::{Context, ContextValue};
pub use document::{PolicyDocument, PolicyKind};
pub use error::PolicyError;
pub use eval::{Decision, DenyReason, Evaluation, MatchedStatement, evaluate};
pub use pattern::{action_matches, resource_matches};
pub use request::{Policy, PolicySet, PrincipalKind, Request, RequestPrincipal, SourceType};

/// Customer managed policy size limit, in characters not counting white space
/// (`Cannot exceed quota for PolicySize: 6144`, §4.9).
pub const MANAGED_POLICY_MAX_SIZE: usize = 6144;
/// Aggregate size of one user's inline policies (§4.9).
pub const USER_INLINE_MAX_SIZE: usize = 2048;
/// Aggregate size of one group's inline policies (§4.9).
pub const GROUP_INLINE_MAX_SIZE: usize = 5120;
/// Aggregate size of one role's inline policies (§4.9).
pub const ROLE_INLINE_MAX_SIZE: usize = 10240;
/// Role trust policy size, the default `ACLSizePerRole` quota (§4.9).
pub const TRUST_POLICY_MAX_SIZE: usize = 2048;
/// Session policy size, in plain-text characters (§5, §8.7).
pub const SESSION_POLICY_MAX_SIZE: usize = 2048;

/// A policy's size as IAM counts it against its quotas: characters, not counting white
/// space ("IAM does not count white space when calculating the size of a policy", §4.9).
/// White space is what `char::is_whitespace` says, inside strings too.
pub fn policy_size(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}
