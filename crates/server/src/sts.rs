//! STS actions (API version 2011-06-15): GetCallerIdentity, GetAccessKeyInfo,
//! GetSessionToken. Semantics and texts from sts-iam.md §1.

use std::sync::Arc;

use tokengate_token::keys;
use tokengate_token::session::{ISSUER, MfaContext, SessionClaims};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{self, Params, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// The STS API version.
pub const VERSION: &str = "2011-06-15";
/// The STS XML namespace.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Every STS action tokengate answers.
pub const ACTIONS: &[&str] = &["GetCallerIdentity", "GetAccessKeyInfo", "GetSessionToken"];

/// GetSessionToken's DurationSeconds range and default (sts-iam.md §1.1).
pub const SESSION_MIN_SECS: i64 = 900;
/// Maximum GetSessionToken duration for IAM users (36 h).
pub const SESSION_MAX_SECS: i64 = 129_600;
/// Default GetSessionToken duration (12 h).
pub const SESSION_DEFAULT_SECS: i64 = 43_200;
/// Root sessions are silently capped at one hour.
pub const ROOT_SESSION_MAX_SECS: i64 = 3_600;

/// `SerialNumber` (serialNumberType): 9..256, `[\w+=/:,.@-]*`.
pub const SERIAL_NUMBER: Rule = Rule {
    name: "SerialNumber",
    min: 9,
    max: 256,
    pattern: Some(params::SERIAL),
};
/// `TokenCode` (tokenCodeType): exactly 6, `[\d]*`.
pub const TOKEN_CODE: Rule = Rule {
    name: "TokenCode",
    min: 6,
    max: 6,
    pattern: Some(params::DIGITS),
};

/// AWS's text for a wrong (or reused) code.
pub const MFA_INVALID_CODE: &str =
    "MultiFactorAuthentication failed with invalid MFA one time pass code.";
/// AWS's text for a serial that is not the caller's (two spaces, as AWS).
pub const MFA_INVALID_SERIAL: &str = "MultiFactorAuthentication failed, unable to validate MFA \
     code.  Please verify your MFA serial number is valid and associated with this user.";
/// tokengate's text when `mfa.required` is set and no MFA was given (AWS has no such mode).
pub const MFA_REQUIRED: &str = "MultiFactorAuthentication is required: this tokengate issues \
     session credentials only with SerialNumber and TokenCode (mfa.required = true).";

/// Runs STS action `action`; returns the inside of `{Action}Result`, if any.
pub async fn dispatch(
    state: &Arc<AppState>,
    caller: &Caller,
    action: &str,
    params: &Params,
) -> Result<Option<String>, ApiError> {
    match action {
        "GetCallerIdentity" => Ok(Some(get_caller_identity(caller))),
        "GetAccessKeyInfo" => get_access_key_info(state, caller, params).map(Some),
        "GetSessionToken" => get_session_token(state, caller, params).await.map(Some),
        _ if crate::security_keys::STS_ACTIONS.contains(&action) => {
            crate::security_keys::dispatch_sts(state, caller, action, params).await
        }
        _ => Err(crate::invalid_action(action, VERSION)),
    }
}

fn get_caller_identity(caller: &Caller) -> String {
    let mut x = Xml::fragment();
    x.text("Arn", &caller.principal.arn());
    x.text("UserId", caller.principal.user_id());
    x.text("Account", caller.principal.account());
    x.finish()
}

fn get_access_key_info(
    state: &Arc<AppState>,
    caller: &Caller,
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
    if caller.is_session() {
        return Err(ApiError::not_authorized(
            &caller.principal.arn(),
            "sts:GetAccessKeyInfo",
            &caller.principal.arn(),
        ));
    }
    // The account of every key this service issues is its one account; like AWS, the
    // answer says nothing about whether the key exists or is active.
    let mut x = Xml::fragment();
    x.text("Account", &state.account_id);
    Ok(x.finish())
}

/// Temporary credentials, as minted for GetSessionToken and security-key logins.
pub struct Credentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The derived secret.
    pub secret_access_key: tokengate_token::Secret,
    /// The signed session token.
    pub session_token: String,
    /// Expiry, seconds since the Unix epoch.
    pub expiration: i64,
}

/// Mints temporary credentials for `caller` lasting `duration` seconds.
pub fn mint(
    state: &AppState,
    caller: &Caller,
    duration: i64,
    mfa: MfaContext,
) -> Result<Credentials, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let access_key_id = keys::new_temporary_key_id(&state.rng).map_err(ApiError::internal)?;
    let claims = SessionClaims {
        iss: ISSUER.to_owned(),
        sub: caller.principal.arn(),
        akid: access_key_id.clone(),
        iat: now,
        exp: now + duration,
        principal: caller.principal.clone(),
        src: caller.access_key_id.clone(),
        mfa,
    };
    let session_token = state.signer.sign(&claims).map_err(ApiError::internal)?;
    let secret_access_key = state.derivation.temporary_secret(&access_key_id);
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration: claims.exp,
    })
}

/// A session's length: `requested` (validated to 900–129600) or the default, silently
/// capped at one hour for root (sts-iam.md §1.1) — for every way to get a session.
pub fn session_duration(caller: &Caller, requested: Option<i64>) -> i64 {
    let duration = requested.unwrap_or(SESSION_DEFAULT_SECS);
    if caller.principal.is_root() {
        duration.min(ROOT_SESSION_MAX_SECS)
    } else {
        duration
    }
}

/// Writes `<Credentials>…</Credentials>`.
pub fn credentials_xml(x: &mut Xml, c: &Credentials) -> Result<(), ApiError> {
    let secret = c
        .secret_access_key
        .expose_str()
        .ok_or_else(|| ApiError::internal("derived secret is not text"))?;
    x.elem("Credentials", |x| {
        x.text("AccessKeyId", &c.access_key_id);
        x.text("SecretAccessKey", secret);
        x.text("SessionToken", &c.session_token);
        x.text("Expiration", &crate::iso8601(c.expiration));
    });
    Ok(())
}

async fn get_session_token(
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
    let duration = session_duration(caller, duration);
    let mfa = match (serial, code) {
        (Some(serial), Some(code)) => {
            crate::mfa::verify_code(state, caller, &serial, &code).await?
        }
        (Some(_), None) => return Err(ApiError::access_denied(MFA_INVALID_CODE)),
        (None, Some(_)) => return Err(ApiError::access_denied(MFA_INVALID_SERIAL)),
        (None, None) if state.config.mfa.required => {
            return Err(ApiError::access_denied(MFA_REQUIRED));
        }
        (None, None) => MfaContext::default(),
    };
    let creds = mint(state, caller, duration, mfa)?;
    let mut x = Xml::fragment();
    credentials_xml(&mut x, &creds)?;
    Ok(x.finish())
}
