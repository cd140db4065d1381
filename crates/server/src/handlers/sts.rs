//! STS actions (API version 2011-06-15): GetCallerIdentity, GetAccessKeyInfo,
//! GetSessionToken, AssumeRole, GetFederationToken. Semantics and texts from sts-iam.md §1 and policy.md §5.1.
//!
//! Every handler here runs for a caller the chokepoint has already authorized
//! ([`crate::authz`]). What stays here are STS's protocol rules, which hold whatever a
//! policy says: GetSessionToken refuses session credentials, and with `mfa.required` it
//! issues nothing without a verified second factor.

use std::sync::Arc;

use tokengate_token::Principal;
use tokengate_token::session::{MfaContext, SessionAttributes};

use crate::action::ResourceInput;
use crate::assume::{
    self, ASSUME_ROLE, AssumeRoleRequest, CHAINED_MAX_SECS, EXCEEDS_CHAINING_LIMIT,
    EXCEEDS_MAX_SESSION, ROLE_DURATION_DEFAULT_SECS,
};
use crate::auth::Caller;
use crate::credentials::{self, NewSession, SESSION_MAX_SECS, SESSION_MIN_SECS};
use crate::error::ApiError;
use crate::mfa::{
    self, MFA_INVALID_CODE, MFA_INVALID_SERIAL, MFA_REQUIRED, SERIAL_NUMBER, TOKEN_CODE,
};
use crate::params::{self, Params, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// AssumeRole's resource: the role, as `RoleArn` names it (`*` without it).
pub(crate) fn role_arn_resource(input: &ResourceInput<'_>) -> String {
    input.params.get("RoleArn").unwrap_or("*").to_owned()
}

/// The resource of STS's caller-scoped actions: the caller's own ARN.
pub(crate) fn caller_resource(input: &ResourceInput<'_>) -> String {
    input.caller.principal.arn()
}

pub(crate) async fn get_caller_identity(
    _state: &Arc<AppState>,
    caller: &Caller,
    _params: &Params,
) -> Result<String, ApiError> {
    let mut x = Xml::fragment();
    x.text("Arn", &caller.principal.arn());
    x.text("UserId", &caller.principal.user_id());
    x.text("Account", caller.principal.account());
    Ok(x.finish())
}

pub(crate) async fn get_access_key_info(
    state: &Arc<AppState>,
    _caller: &Caller,
    params: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let rule = Rule {
        name: "AccessKeyId",
        min: 16,
        max: 128,
        pattern: Some(params::WORD),
    };
    v.required(params, rule);
    v.finish()?;
    // The account of every key this service issues is its one account; like AWS, the
    // answer says nothing about whether the key exists or is active.
    let mut x = Xml::fragment();
    x.text("Account", &state.account_id);
    Ok(x.finish())
}

pub(crate) async fn get_session_token(
    state: &Arc<AppState>,
    caller: &Caller,
    params: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let duration = v.integer(
        params,
        "DurationSeconds",
        SESSION_MIN_SECS,
        SESSION_MAX_SECS,
    );
    let serial = v.optional(params, SERIAL_NUMBER);
    let code = v.optional(params, TOKEN_CODE);
    v.finish()?;
    if caller.is_session() {
        return Err(ApiError::access_denied(
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let duration = credentials::session_duration(caller, duration);
    let mfa = match (serial, code) {
        (Some(serial), Some(code)) => mfa::verify_code(state, caller, &serial, &code).await?,
        (Some(_), None) => return Err(ApiError::access_denied(MFA_INVALID_CODE)),
        (None, Some(_)) => return Err(ApiError::access_denied(MFA_INVALID_SERIAL)),
        (None, None) if state.config.mfa.required => {
            return Err(ApiError::access_denied(MFA_REQUIRED));
        }
        (None, None) => MfaContext::default(),
    };
    let creds = credentials::mint(state, caller, duration, mfa)?;
    let mut x = Xml::fragment();
    credentials::credentials_xml(&mut x, &creds)?;
    Ok(x.finish())
}

/// AssumeRole for an authorized caller (the chokepoint verified its second factor and the
/// trust policy): checks the duration against the role and role chaining, and mints a role
/// session.
pub(crate) async fn assume_role(
    state: &Arc<AppState>,
    caller: &Caller,
    params: &Params,
) -> Result<String, ApiError> {
    let request = AssumeRoleRequest::parse(params)?;
    // Authorized a moment ago; deleted since, it is refused like a role that never was.
    let role = assume::target_role(state, &request.role_arn)?.ok_or_else(|| {
        ApiError::access_denied(format!(
            "User: {} is not authorized to perform: {ASSUME_ROLE} on resource: {}",
            caller.principal.arn(),
            request.role_arn
        ))
    })?;
    let duration = request.duration.unwrap_or(ROLE_DURATION_DEFAULT_SECS);
    if duration > i64::from(role.role.max_session_duration) {
        return Err(ApiError::validation(EXCEEDS_MAX_SESSION));
    }
    // Role chaining — and, as AWS observes it, GetSessionToken credentials (§8.1).
    let chained = caller.is_session();
    if chained && duration > CHAINED_MAX_SECS {
        return Err(ApiError::validation(EXCEEDS_CHAINING_LIMIT));
    }
    assume::check_policy_arns(state, request.session_policy.as_ref())?;
    let attributes = request.session_attributes(caller)?;
    let principal = Principal::AssumedRole {
        account: state.account_id.clone(),
        role_name: role.role.name.clone(),
        role_path: role.role.path.clone(),
        role_id: role.role.role_id.clone(),
        session_name: request.session_name.clone(),
    };
    let src = caller
        .session
        .as_ref()
        .map_or_else(|| caller.access_key_id.clone(), |s| s.src.clone());
    let creds = credentials::mint_session(
        state,
        NewSession {
            principal: principal.clone(),
            src,
            duration,
            // The factor verified with this request, else the caller's session's (the
            // aws-vault pattern: GetSessionToken with MFA, then AssumeRole).
            mfa: caller.mfa().cloned().unwrap_or_default(),
            session_policy: request.session_policy,
            chained,
            attributes: attributes.clone(),
        },
    )?;
    record_role_use(state, &role.role.role_id, &caller.region);
    let mut x = Xml::fragment();
    credentials::credentials_xml(&mut x, &creds)?;
    x.elem("AssumedRoleUser", |x| {
        x.text("AssumedRoleId", &principal.user_id());
        x.text("Arn", &principal.arn());
    });
    if let Some(percent) = request.packed_percent {
        x.text("PackedPolicySize", &percent.to_string());
    }
    if let Some(si) = &attributes.source_identity {
        x.text("SourceIdentity", si);
    }
    Ok(x.finish())
}

/// Records `RoleLastUsed` off the request path: the credentials do not wait for it, and a
/// failure to record is logged, never answered.
fn record_role_use(state: &Arc<AppState>, role_id: &str, region: &str) {
    let store = Arc::clone(&state.store);
    let (role_id, region) = (role_id.to_owned(), region.to_owned());
    let now = state.clock.now().unix_timestamp();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.record_role_use(&role_id, now, &region) {
            tracing::warn!(role_id, error = %e, "could not record the role's last use");
        }
    });
}

/// GetFederationToken's `Name` (userNameType): 2..32, `[\w+=,.@-]*`.
const FEDERATED_NAME: Rule = Rule {
    name: "Name",
    min: 2,
    max: 32,
    pattern: Some(params::NAME),
};

/// GetFederationToken's `Policy` (sessionPolicyDocumentType): 1..2048.
const FEDERATION_POLICY: Rule = Rule {
    name: "Policy",
    min: 1,
    max: 2048,
    pattern: Some(crate::entities::DOCUMENT_CHARS),
};

/// GetFederationToken (policy.md §5.2): a federated-user session for an IAM user's (or
/// root's) long-term key. Without a session policy the session may do nothing; with one,
/// the user's policies ∩ the session policies — though, as in AWS, federated sessions call
/// no IAM action and no STS action but GetCallerIdentity ([`crate::authz`]). With
/// `mfa.required` it is refused: the API has no MFA parameters, and no temporary
/// credentials are issued without a verified second factor.
pub(crate) async fn get_federation_token(
    state: &Arc<AppState>,
    caller: &Caller,
    params: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.required(params, FEDERATED_NAME);
    let duration = v.integer(
        params,
        "DurationSeconds",
        SESSION_MIN_SECS,
        SESSION_MAX_SECS,
    );
    let inputs = assume::SessionInputs::read(&mut v, params, FEDERATION_POLICY);
    v.finish()?;
    let name = name.ok_or_else(|| ApiError::validation("Name is required"))?;
    let (session_policy, packed_percent, tags) = inputs.check(&[])?;
    if caller.is_session() {
        return Err(ApiError::access_denied(
            "Cannot call GetFederationToken with session credentials",
        ));
    }
    if state.config.mfa.required {
        return Err(ApiError::access_denied(FEDERATION_MFA_REQUIRED));
    }
    assume::check_policy_arns(state, session_policy.as_ref())?;
    let user_id = match &caller.principal {
        Principal::User { user_id, .. } => user_id.clone(),
        // Root's federated sessions belong to the account (§5.2: possible, not advised).
        Principal::Root { account } => account.clone(),
        Principal::AssumedRole { .. } | Principal::FederatedUser { .. } => {
            return Err(ApiError::access_denied(
                "Cannot call GetFederationToken with session credentials",
            ));
        }
    };
    // Root is clamped to an hour rather than refused (§8.8).
    let duration = credentials::session_duration(caller, duration);
    let principal = Principal::FederatedUser {
        account: state.account_id.clone(),
        name,
        user_id,
    };
    let creds = credentials::mint_session(
        state,
        NewSession {
            principal: principal.clone(),
            src: caller.access_key_id.clone(),
            duration,
            mfa: MfaContext::default(),
            // No session policy: no permissions (an empty inline policy says exactly that).
            session_policy: Some(session_policy.unwrap_or_default()),
            chained: false,
            attributes: SessionAttributes {
                tags,
                ..SessionAttributes::default()
            },
        },
    )?;
    let mut x = Xml::fragment();
    credentials::credentials_xml(&mut x, &creds)?;
    x.elem("FederatedUser", |x| {
        x.text("FederatedUserId", &principal.user_id());
        x.text("Arn", &principal.arn());
    });
    x.text("PackedPolicySize", &packed_percent.unwrap_or(0).to_string());
    Ok(x.finish())
}

/// GetFederationToken under `mfa.required`: the API carries no second factor.
pub const FEDERATION_MFA_REQUIRED: &str = "MultiFactorAuthentication is required: this \
     tokengate issues session credentials only after a verified second factor \
     (mfa.required = true), and GetFederationToken carries none. Use GetSessionToken with \
     SerialNumber and TokenCode, or AssumeRole.";
