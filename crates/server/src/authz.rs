//! Authorization: may this caller perform this action on this resource? Asked once per
//! request, by the chokepoint ([`crate::chokepoint`]), before any handler runs; handlers
//! never ask. It builds the request context of policy.md §3 for the caller, asks
//! crates/policy, and answers in AWS's words (§4.10).
//!
//! Rules before policies, each written down in docs/policies.md:
//! - `sts:GetCallerIdentity` is always allowed, even against an explicit deny (§1.4).
//! - GetSessionToken credentials without MFA cannot call IAM: AWS answers
//!   `InvalidClientTokenId` (§5.4, §8.2), before any policy is read. Role sessions may: their
//!   role's policies decide. Session credentials cannot call
//!   GetAccessKeyInfo (§5.4: "You cannot call any AWS STS API except AssumeRole or
//!   GetCallerIdentity").
//! - The root user may do everything in its account (AWS managed policies stay read-only:
//!   their handlers refuse changes for everyone with `UnmodifiableEntity`).
//! - `sts:GetSessionToken` needs no Allow (AWS's self-manage-MFA examples rely on that:
//!   they exempt it from their Deny and never allow it) but an explicit Deny refuses it.
//!   tokengate's security-key login actions are authorized *as* `sts:GetSessionToken`
//!   ([`crate::registry`]), so that policies written for AWS treat both logins alike.
//! - While the account password policy has `AllowUsersToChangePassword`, an IAM user's
//!   `iam:ChangePassword` on their own user and `iam:GetAccountPasswordPolicy` need no
//!   Allow (portal.md §3.1); an explicit Deny still refuses them.
//! - Everything else by an IAM user is evaluated against the user's identity policies
//!   (inline, attached, and its groups'), bounded by its permissions boundary; by a role
//!   session against its role's policies and boundary and the session policies.
//! - `sts:AssumeRole` adds the target role's trust policy as the resource policy (§1.3):
//!   naming the caller allows without an identity Allow, naming the account needs one. The
//!   root user may not assume roles. When the new session will carry session tags (passed or
//!   inherited) or a source identity, `sts:TagSession` / `sts:SetSourceIdentity` on the role
//!   are evaluated too, by the same policies.
//! - Federated-user sessions (GetFederationToken) may call nothing but GetCallerIdentity. Its second factor was verified by the chokepoint
//!   before this runs ([`crate::assume`]).
//!
//! What is *not* here: STS's protocol rules, which no policy can lift, stay with their
//! handlers — GetSessionToken, GetSecurityKeyChallenge and GetSessionTokenWithSecurityKey
//! refuse session credentials ("Cannot call … with session credentials"), and with
//! `mfa.required` no session is issued without a verified second factor.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use time::format_description::well_known::Rfc3339;
use tokengate_policy::{
    Context, ContextValue, Decision, Policy, PolicyKind, PolicySet, PrincipalKind, Request,
    RequestPrincipal, SourceType, aws_managed_policy, evaluate,
};
use tokengate_store::{StoreError, Tag};
use tokengate_token::Principal;
use tokengate_token::session::MfaMethod;

use crate::assume::{ASSUME_ROLE, FEDERATION_TOKEN, SET_SOURCE_IDENTITY, TAG_SESSION, target_role};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Params;
use crate::principals::{RoleAuthz, UserAuthz};
use crate::registry::{ActionKey, ActionSpec, Api};
use crate::state::AppState;

/// What the chokepoint learnt about the request besides the caller.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// The client's address, when the transport knows it.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (never, today: tokengate serves plain HTTP).
    pub secure_transport: bool,
}

/// Who the policies are of: a user, or the role behind a role session.
#[derive(Clone)]
pub enum Subject {
    /// An IAM user (long-term key or GetSessionToken session).
    User(Arc<UserAuthz>),
    /// A role session's role.
    Role(Arc<RoleAuthz>),
}

impl Subject {
    fn identity(&self) -> &[Policy] {
        match self {
            Subject::User(u) => &u.identity,
            Subject::Role(r) => &r.identity,
        }
    }

    fn boundary(&self) -> Option<&Policy> {
        match self {
            Subject::User(u) => u.boundary.as_ref(),
            Subject::Role(r) => r.boundary.as_ref(),
        }
    }

    fn tags(&self) -> &[Tag] {
        match self {
            Subject::User(u) => &u.tags,
            Subject::Role(r) => &r.tags,
        }
    }
}

/// Allows the request or answers with AWS's refusal.
pub fn authorize(
    state: &Arc<AppState>,
    caller: &Caller,
    spec: &ActionSpec,
    resource: &str,
    params: &Params,
    facts: RequestFacts,
) -> Result<(), ApiError> {
    let action = spec.iam_action();
    if action == "sts:GetCallerIdentity" {
        return Ok(());
    }
    if matches!(caller.principal, Principal::FederatedUser { .. }) {
        return Err(federated_refusal(caller, &action, resource));
    }
    let role_session = matches!(caller.principal, Principal::AssumedRole { .. });
    if spec.api == Api::Iam && caller.is_session() && !caller.mfa_present() && !role_session {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid",
        ));
    }
    if spec.api == Api::Sts && spec.name == "GetAccessKeyInfo" && caller.is_session() {
        return Err(ApiError::not_authorized(
            &caller.principal.arn(),
            &action,
            resource,
        ));
    }
    let assume = action == ASSUME_ROLE;
    let (subject, kind, unique_id, entity_arn) = match &caller.principal {
        Principal::Root { .. } if assume => {
            return Err(ApiError::access_denied(
                "Roles may not be assumed by root accounts.",
            ));
        }
        Principal::Root { .. } => return Ok(()),
        Principal::FederatedUser { .. } => {
            return Err(federated_refusal(caller, &action, resource));
        }
        Principal::User { user_id, .. } => {
            let authz = state
                .policies
                .user(state.store.as_ref(), user_id)?
                .ok_or_else(ApiError::unknown_key)?;
            (
                Subject::User(authz),
                PrincipalKind::User,
                user_id.clone(),
                None,
            )
        }
        Principal::AssumedRole { role_id, .. } => {
            let authz = state
                .policies
                .role(state.store.as_ref(), role_id)?
                .ok_or_else(ApiError::unknown_key)?;
            (
                Subject::Role(authz),
                PrincipalKind::AssumedRole,
                caller.principal.user_id(),
                caller.principal.role_arn(),
            )
        }
    };
    let arn = caller.principal.arn();
    // sts:AssumeRole: the role's trust policy is the resource policy (§1.3). A role that
    // does not exist (or an ARN that is not exactly its ARN) is refused like a refusal.
    let target = if assume {
        match params
            .get("RoleArn")
            .map(|a| target_role(state, a))
            .transpose()?
        {
            Some(Some(role)) => Some(role),
            _ => {
                return Err(ApiError::access_denied(format!(
                    "User: {arn} is not authorized to perform: {action} on resource: {resource}"
                )));
            }
        }
    } else {
        None
    };
    let login = action == "sts:GetSessionToken";
    let context = request_context(state, caller, &subject, spec, params, facts)?;
    let session = session_policies(state, caller)?;
    let request = Request {
        principal: RequestPrincipal {
            kind,
            arn: &arn,
            account: &state.account_id,
            unique_id: &unique_id,
            entity_arn: entity_arn.as_deref(),
        },
        action: &action,
        resource,
        context: &context,
    };
    let set = PolicySet {
        identity: subject.identity(),
        boundary: subject.boundary(),
        session: session.as_deref(),
        resource: target.as_ref().map(|r| &r.trust),
    };
    // An implicit deny allows GetSessionToken, and — while the account password policy has
    // AllowUsersToChangePassword — a user's own ChangePassword and GetAccountPasswordPolicy
    // (crate::passwords::allowed_by_password_policy: what IAMUserChangePassword grants).
    let implicit_allows =
        login || crate::passwords::allowed_by_password_policy(state, caller, &action, resource)?;
    decide(&set, &request, implicit_allows)?;
    // Passing (or inheriting) session tags and setting (or carrying on) a source identity
    // are authorized as their own actions, by the same policies (policy.md §5.1).
    let mut extra = Vec::new();
    if session_tags_follow(caller, spec, params) {
        extra.push(TAG_SESSION);
    }
    if source_identity_follows(caller, spec, params) {
        extra.push(SET_SOURCE_IDENTITY);
    }
    for action in extra {
        decide(&set, &Request { action, ..request }, false)?;
    }
    Ok(())
}

/// Federated sessions call no IAM action and no STS action but GetCallerIdentity (policy.md
/// §5.2), whatever their session policy says.
fn federated_refusal(caller: &Caller, action: &str, resource: &str) -> ApiError {
    ApiError::access_denied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} because \
         federated user sessions can call no IAM or STS action except sts:GetCallerIdentity",
        caller.principal.arn()
    ))
}

/// Whether the session an AssumeRole or GetFederationToken request creates has session
/// tags: passed with the request, or inherited as the calling session's transitive tags.
fn session_tags_follow(caller: &Caller, spec: &ActionSpec, params: &Params) -> bool {
    creates_session(spec)
        && (params.get("Tags.member.1.Key").is_some()
            || params.get("Tags.member.1.Value").is_some()
            || caller
                .session
                .as_ref()
                .is_some_and(|s| s.attributes.transitive_tags().next().is_some()))
}

/// Whether the session an AssumeRole request creates has a source identity: requested, or
/// the calling session's.
fn source_identity_follows(caller: &Caller, spec: &ActionSpec, params: &Params) -> bool {
    spec.iam_action() == ASSUME_ROLE
        && (params.get("SourceIdentity").is_some()
            || caller
                .session
                .as_ref()
                .is_some_and(|s| s.attributes.source_identity.is_some()))
}

/// AssumeRole (by code or by touch) and GetFederationToken: the actions that mint a session
/// carrying request tags.
fn creates_session(spec: &ActionSpec) -> bool {
    let action = spec.iam_action();
    action == ASSUME_ROLE || action == FEDERATION_TOKEN
}

/// Evaluates one request; `Ok` when allowed (an implicit deny allows when
/// `implicit_allows`), else AWS's AccessDenied text.
fn decide(
    set: &PolicySet<'_>,
    request: &Request<'_>,
    implicit_allows: bool,
) -> Result<(), ApiError> {
    let action = request.action;
    let arn = request.principal.arn;
    let resource = request.resource;
    let evaluation = evaluate(set, request);
    let allowed = match evaluation.decision {
        Decision::Allowed => true,
        Decision::ImplicitDeny => implicit_allows,
        Decision::ExplicitDeny => false,
    };
    tracing::debug!(
        principal = %arn, action = %action, resource, decision = evaluation.decision.as_str(),
        "authorization"
    );
    if allowed {
        return Ok(());
    }
    let suffix = evaluation
        .reason
        .map(|r| r.message_suffix(action))
        .unwrap_or_else(|| format!("because no identity-based policy allows the {action} action"));
    let message =
        format!("User: {arn} is not authorized to perform: {action} on resource: {resource}");
    Err(ApiError::access_denied(if suffix.is_empty() {
        message
    } else {
        format!("{message} {suffix}")
    }))
}

/// A role session's session policies (ADR 0005): `None` without any; else the inline
/// document and each managed policy ARN's current default version. An ARN whose policy no
/// longer exists contributes nothing, which only narrows the session (fail closed).
pub fn session_policies(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<Vec<Policy>>, ApiError> {
    let Some(sp) = caller
        .session
        .as_ref()
        .and_then(|s| s.session_policy.as_ref())
    else {
        return Ok(None);
    };
    let store = state.store.as_ref();
    let mut policies = Vec::new();
    if let Some(text) = &sp.inline {
        policies.push(Policy {
            id: "Policy".to_owned(),
            source: SourceType::Session,
            document: state.policies.document(store, text, PolicyKind::Session)?,
        });
    }
    for arn in &sp.arns {
        let document = if let Some(aws) = aws_managed_policy(arn) {
            Some(
                state
                    .policies
                    .document(store, aws.document, PolicyKind::AwsManaged)?,
            )
        } else if let Some(p) = store.managed_policy(arn)? {
            match store.policy_version(arn, &p.default_version)? {
                Some(v) => Some(state.policies.document(
                    store,
                    &v.document,
                    PolicyKind::Managed,
                )?),
                None => None,
            }
        } else {
            None
        };
        if let Some(document) = document {
            policies.push(Policy {
                id: arn.clone(),
                source: SourceType::Session,
                document,
            });
        }
    }
    Ok(Some(policies))
}

/// The request context of policy.md §3 for a user or a role session (long-term key or
/// session).
pub fn request_context(
    state: &AppState,
    caller: &Caller,
    subject: &Subject,
    spec: &ActionSpec,
    params: &Params,
    facts: RequestFacts,
) -> Result<Context, ApiError> {
    let now = state.clock.now();
    let mut c = Context::new();
    let string = |s: &str| ContextValue::Single(s.to_owned());
    c.insert(
        "aws:CurrentTime",
        ContextValue::Single(now.format(&Rfc3339).unwrap_or_default()),
    );
    c.insert(
        "aws:EpochTime",
        ContextValue::Single(now.unix_timestamp().to_string()),
    );
    if let Some(ip) = facts.source_ip {
        c.insert("aws:SourceIp", ContextValue::Single(ip.to_string()));
    }
    c.insert("aws:SecureTransport", flag(facts.secure_transport));
    c.insert("aws:ViaAWSService", flag(false));
    c.insert("aws:PrincipalAccount", string(&state.account_id));
    match subject {
        Subject::User(u) => {
            c.insert("aws:PrincipalArn", string(&caller.principal.arn()));
            c.insert("aws:PrincipalType", string("User"));
            c.insert("aws:userid", string(&u.user.user_id));
            c.insert("aws:username", string(&u.user.name));
        }
        // §3.1: the role's ARN, not the session's; no aws:username.
        Subject::Role(_) => {
            let role_arn = caller.principal.role_arn().unwrap_or_default();
            c.insert("aws:PrincipalArn", string(&role_arn));
            c.insert("aws:PrincipalType", string("AssumedRole"));
            c.insert("aws:userid", string(&caller.principal.user_id()));
        }
    }
    for t in subject.tags() {
        c.insert(&format!("aws:PrincipalTag/{}", t.key), string(&t.value));
    }
    if let Some(session) = &caller.session {
        c.insert(
            "aws:TokenIssueTime",
            ContextValue::Single(crate::iso8601(session.iat)),
        );
        // Session tags override the principal's own tags of the same key (keys are
        // compared case-insensitively: the context replaces them).
        for t in &session.attributes.tags {
            c.insert(&format!("aws:PrincipalTag/{}", t.key), string(&t.value));
        }
        if let Some(si) = &session.attributes.source_identity {
            c.insert("aws:SourceIdentity", string(si));
        }
    }
    // Absent for long-term keys without a factor in the request, as in AWS (§3.2): that
    // is what makes `BoolIfExists` and `Bool` differ.
    if let Some(mfa) = caller.mfa() {
        c.insert("aws:MultiFactorAuthPresent", flag(mfa.present));
        if mfa.present {
            if let Some(at) = mfa.auth_time {
                let age = (now.unix_timestamp() - at).max(0);
                c.insert(
                    "aws:MultiFactorAuthAge",
                    ContextValue::Single(age.to_string()),
                );
            }
            if let Some(method) = mfa.method {
                c.insert("tokengate:MfaMethod", string(mfa_method(method)));
            }
            if let Some(device) = &mfa.device {
                c.insert("tokengate:MfaDevice", string(device));
            }
        }
    }
    request_keys(&mut c, spec, params);
    if spec.iam_action() == ASSUME_ROLE {
        for (key, param) in [
            ("sts:ExternalId", "ExternalId"),
            ("sts:RoleSessionName", "RoleSessionName"),
        ] {
            if let Some(value) = params.get(param) {
                c.insert(key, string(value));
            }
        }
        // The source identity the new session will carry: requested, else inherited.
        let inherited = caller
            .session
            .as_ref()
            .and_then(|s| s.attributes.source_identity.as_deref());
        if let Some(si) = params.get("SourceIdentity").or(inherited) {
            c.insert("sts:SourceIdentity", string(si));
        }
    }
    if creates_session(spec) {
        let transitive = params.list("TransitiveTagKeys");
        if !transitive.is_empty() {
            c.insert("sts:TransitiveTagKeys", ContextValue::Multi(transitive));
        }
    }
    if let Some(arn) = target_boundary(state, spec, params)? {
        c.insert("iam:PermissionsBoundary", ContextValue::Single(arn));
    }
    Ok(c)
}

/// A boolean context value (`Bool` compares the text, case-insensitively).
fn flag(value: bool) -> ContextValue {
    ContextValue::Single(if value { "true" } else { "false" }.to_owned())
}

/// `tokengate:MfaMethod`'s value.
pub fn mfa_method(m: MfaMethod) -> &'static str {
    match m {
        MfaMethod::Totp => "totp",
        MfaMethod::Fido2 => "fido2",
        MfaMethod::U2f => "u2f",
    }
}

/// Keys that come from the request's own parameters (§3.2, §4.8): tags passed in the
/// request and the policy being attached or detached.
fn request_keys(c: &mut Context, spec: &ActionSpec, params: &Params) {
    let mut tag_keys = Vec::new();
    for i in 1.. {
        let Some(key) = params.get(&format!("Tags.member.{i}.Key")) else {
            break;
        };
        let value = params
            .get(&format!("Tags.member.{i}.Value"))
            .unwrap_or_default();
        c.insert(
            &format!("aws:RequestTag/{key}"),
            ContextValue::Single(value.to_owned()),
        );
        tag_keys.push(key.to_owned());
    }
    tag_keys.extend(params.list("TagKeys"));
    if !tag_keys.is_empty() {
        c.insert("aws:TagKeys", ContextValue::Multi(tag_keys));
    }
    if let (true, Some(arn)) = (
        spec.action_keys().contains(&ActionKey::PolicyArn),
        params.get("PolicyArn"),
    ) {
        c.insert("iam:PolicyARN", ContextValue::Single(arn.to_owned()));
    }
}

/// `iam:PermissionsBoundary` (policy.md §4.8): the boundary being set by
/// Put{User,Role}PermissionsBoundary or CreateRole, else the boundary the target user or
/// role has now, for the actions that change its permissions — so that a policy can let an
/// administrator manage only users and roles fenced by a given boundary. A point read,
/// inline like the authentication read.
fn target_boundary(
    state: &AppState,
    spec: &ActionSpec,
    params: &Params,
) -> Result<Option<String>, ApiError> {
    let keys = spec.action_keys();
    let current = if keys.contains(&ActionKey::BoundaryParam) {
        return Ok(params.get("PermissionsBoundary").map(str::to_owned));
    } else if keys.contains(&ActionKey::UserBoundary) {
        let Some(user) = params.get("UserName") else {
            return Ok(None);
        };
        state.store.user_permissions_boundary(user)
    } else if keys.contains(&ActionKey::RoleBoundary) {
        let Some(role) = params.get("RoleName") else {
            return Ok(None);
        };
        state.store.role_permissions_boundary(role)
    } else {
        return Ok(None);
    };
    match current {
        Ok(arn) => Ok(arn),
        // An unknown user or role has no boundary; the handler answers NoSuchEntity for it.
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
