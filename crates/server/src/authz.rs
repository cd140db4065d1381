//! Authorization: may this caller perform this action on this resource? Asked once per
//! request, by the chokepoint ([`crate::chokepoint`]), before any handler runs; handlers
//! never ask. It builds the request context of policy.md §3 for the caller, asks
//! crates/policy, and answers in AWS's words (§4.10).
//!
//! Rules before policies, each written down in docs/policies.md:
//! - `sts:GetCallerIdentity` is always allowed, even against an explicit deny (§1.4).
//! - Session credentials without MFA cannot call IAM: AWS answers `InvalidClientTokenId`
//!   (§5.4, §8.2), before any policy is read. Session credentials cannot call
//!   GetAccessKeyInfo (§5.4: "You cannot call any AWS STS API except AssumeRole or
//!   GetCallerIdentity").
//! - The root user may do everything in its account (AWS managed policies stay read-only:
//!   their handlers refuse changes for everyone with `UnmodifiableEntity`).
//! - `sts:GetSessionToken` needs no Allow (AWS's self-manage-MFA examples rely on that:
//!   they exempt it from their Deny and never allow it) but an explicit Deny refuses it.
//!   tokengate's security-key login actions are authorized *as* `sts:GetSessionToken`
//!   ([`crate::registry`]), so that policies written for AWS treat both logins alike.
//! - Everything else by an IAM user is evaluated against the user's identity policies
//!   (inline, attached, and its groups'), bounded by its permissions boundary.
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
    Context, ContextValue, Decision, PolicySet, PrincipalKind, Request, RequestPrincipal, evaluate,
};
use tokengate_store::StoreError;
use tokengate_token::Principal;
use tokengate_token::session::MfaMethod;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Params;
use crate::principals::UserAuthz;
use crate::registry::{ActionSpec, Api};
use crate::state::AppState;

/// What the chokepoint learnt about the request besides the caller.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// The client's address, when the transport knows it.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (never, today: tokengate serves plain HTTP).
    pub secure_transport: bool,
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
    if spec.api == Api::Iam && caller.is_session() && !caller.mfa_present() {
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
    let user_id = match &caller.principal {
        Principal::Root { .. } => return Ok(()),
        Principal::User { user_id, .. } => user_id,
        // Role sessions are not issued yet; should one appear, it may do nothing.
        Principal::AssumedRole { .. } => {
            return Err(ApiError::not_authorized(
                &caller.principal.arn(),
                &action,
                resource,
            ));
        }
    };
    let authz = state
        .policies
        .user(state.store.as_ref(), user_id)?
        .ok_or_else(ApiError::unknown_key)?;
    let login = action == "sts:GetSessionToken";
    let context = request_context(state, caller, &authz, spec, params, facts)?;
    let arn = caller.principal.arn();
    let request = Request {
        principal: RequestPrincipal {
            kind: PrincipalKind::User,
            arn: &arn,
            account: &state.account_id,
            unique_id: user_id,
            entity_arn: None,
        },
        action: &action,
        resource,
        context: &context,
    };
    let set = PolicySet {
        identity: &authz.identity,
        boundary: authz.boundary.as_ref(),
        session: None,
        resource: None,
    };
    let evaluation = evaluate(&set, &request);
    let allowed = match evaluation.decision {
        Decision::Allowed => true,
        Decision::ImplicitDeny => login,
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
        .map(|r| r.message_suffix(&action))
        .unwrap_or_else(|| format!("because no identity-based policy allows the {action} action"));
    let message =
        format!("User: {arn} is not authorized to perform: {action} on resource: {resource}");
    Err(ApiError::access_denied(if suffix.is_empty() {
        message
    } else {
        format!("{message} {suffix}")
    }))
}

/// The request context of policy.md §3 for a user (long-term key or session).
pub fn request_context(
    state: &AppState,
    caller: &Caller,
    authz: &UserAuthz,
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
    c.insert("aws:PrincipalArn", string(&caller.principal.arn()));
    c.insert("aws:PrincipalAccount", string(&state.account_id));
    c.insert("aws:PrincipalType", string("User"));
    c.insert("aws:userid", string(&authz.user.user_id));
    c.insert("aws:username", string(&authz.user.name));
    for t in &authz.tags {
        c.insert(&format!("aws:PrincipalTag/{}", t.key), string(&t.value));
    }
    if let Some(session) = &caller.session {
        // Absent for long-term keys, as in AWS (§3.2): that is what makes
        // `BoolIfExists` and `Bool` differ.
        c.insert("aws:MultiFactorAuthPresent", flag(session.mfa.present));
        c.insert(
            "aws:TokenIssueTime",
            ContextValue::Single(crate::iso8601(session.iat)),
        );
        if session.mfa.present {
            if let Some(at) = session.mfa.auth_time {
                let age = (now.unix_timestamp() - at).max(0);
                c.insert(
                    "aws:MultiFactorAuthAge",
                    ContextValue::Single(age.to_string()),
                );
            }
            if let Some(method) = session.mfa.method {
                c.insert("tokengate:MfaMethod", string(mfa_method(method)));
            }
            if let Some(device) = &session.mfa.device {
                c.insert("tokengate:MfaDevice", string(device));
            }
        }
    }
    request_keys(&mut c, spec, params);
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
    let attaches = spec.name.starts_with("Attach") || spec.name.starts_with("Detach");
    if let (true, Some(arn)) = (attaches, params.get("PolicyArn")) {
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
    const USER_PERMISSION_ACTIONS: [&str; 5] = [
        "AttachUserPolicy",
        "DetachUserPolicy",
        "PutUserPolicy",
        "DeleteUserPolicy",
        "DeleteUserPermissionsBoundary",
    ];
    const ROLE_PERMISSION_ACTIONS: [&str; 5] = [
        "AttachRolePolicy",
        "DetachRolePolicy",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "DeleteRolePermissionsBoundary",
    ];
    const SETS_BOUNDARY: [&str; 3] = [
        "PutUserPermissionsBoundary",
        "PutRolePermissionsBoundary",
        "CreateRole",
    ];
    if spec.api != Api::Iam {
        return Ok(None);
    }
    if SETS_BOUNDARY.contains(&spec.name) {
        return Ok(params.get("PermissionsBoundary").map(str::to_owned));
    }
    let current = if USER_PERMISSION_ACTIONS.contains(&spec.name) {
        let Some(user) = params.get("UserName") else {
            return Ok(None);
        };
        state.store.user_permissions_boundary(user)
    } else if ROLE_PERMISSION_ACTIONS.contains(&spec.name) {
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
