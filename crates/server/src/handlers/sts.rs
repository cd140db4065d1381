//! STS actions (API version 2011-06-15): GetCallerIdentity, GetAccessKeyInfo,
//! GetSessionToken. Semantics and texts from sts-iam.md §1.
//!
//! Every handler here runs for a caller the chokepoint has already authorized
//! ([`crate::authz`]). What stays here are STS's protocol rules, which hold whatever a
//! policy says: GetSessionToken refuses session credentials, and with `mfa.required` it
//! issues nothing without a verified second factor.

use std::sync::Arc;

use tokengate_token::session::MfaContext;

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::credentials::{self, SESSION_MAX_SECS, SESSION_MIN_SECS};
use crate::error::ApiError;
use crate::mfa::{self, MFA_INVALID_CODE, MFA_INVALID_SERIAL, SERIAL_NUMBER};
use crate::params::{self, Params, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// `TokenCode` (tokenCodeType): exactly 6, `[\d]*`.
pub const TOKEN_CODE: Rule = Rule {
    name: "TokenCode",
    min: 6,
    max: 6,
    pattern: Some(params::DIGITS),
};

/// tokengate's text when `mfa.required` is set and no MFA was given (AWS has no such mode).
pub const MFA_REQUIRED: &str = "MultiFactorAuthentication is required: this tokengate issues \
     session credentials only with SerialNumber and TokenCode (mfa.required = true).";

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
