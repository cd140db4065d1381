//! Verification of a second factor named by `SerialNumber` + `TokenCode` (GetSessionToken),
//! and the MFA refusal texts every login path answers with — shared by the families that
//! issue sessions, one floor below them.
//!
//! The device must be enabled for the caller; the code must be that of the current step
//! ±1 (after the device's drift) and above the last accepted step, recorded with a
//! compare-and-set so that one code yields exactly one session even when requests race
//! (on one server or several sharing a store). Failures are counted durably; past
//! `mfa.max_failures` the device is locked out. Every refusal answers with AWS's text; the
//! reason goes to the audit log only. The check itself is
//! [`tokengate_store::Store::check_totp_then`].

use std::sync::Arc;

use tokengate_store::{TotpCheck, TotpOutcome};
use tokengate_token::session::{MfaContext, MfaMethod};
use tokengate_verifier::totp::Refusal;

use crate::auth::Caller;
use crate::common::owner_of;
use crate::error::ApiError;
use crate::metrics::MfaResult;
use crate::params::{self, Rule};
use crate::state::AppState;

/// `SerialNumber` (serialNumberType, STS): 9..256, `[\w+=/:,.@-]*`.
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

/// tokengate's text when `mfa.required` is set and no MFA was given (AWS has no such mode).
pub const MFA_REQUIRED: &str = "MultiFactorAuthentication is required: this tokengate issues \
     session credentials only with SerialNumber and TokenCode (mfa.required = true).";

/// AWS's text for a wrong (or reused) code.
pub const MFA_INVALID_CODE: &str =
    "MultiFactorAuthentication failed with invalid MFA one time pass code.";
/// AWS's text for a serial that is not the caller's (two spaces, as AWS).
pub const MFA_INVALID_SERIAL: &str = "MultiFactorAuthentication failed, unable to validate MFA \
     code.  Please verify your MFA serial number is valid and associated with this user.";

/// Verifies `code` for device `serial` of `caller`; the MFA context on success.
///
/// The store reads the device, checks the code and records the outcome in one step (for
/// SQLite, one transaction of the group commit); this task waits for it without holding a
/// thread, and answers only once the replay mark or the failure is durable.
pub async fn verify_code(
    state: &Arc<AppState>,
    caller: &Caller,
    serial: &str,
    code: &str,
) -> Result<MfaContext, ApiError> {
    check_code(state, caller, serial, code)
        .await?
        .map_err(CodeRefusal::error)
}

/// Why [`check_code`] refused a code. The client is told only [`CodeRefusal::error`];
/// the reason is for the audit trail (the portal's `ConsoleLogin` failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// The serial is no device of the caller's.
    NotAssigned,
    /// No step in the window has this code.
    WrongCode,
    /// The code's step was already used.
    Replayed,
    /// The device is locked out.
    LockedOut,
}

impl CodeRefusal {
    /// The AWS error answered for it.
    pub fn error(self) -> ApiError {
        match self {
            CodeRefusal::NotAssigned => ApiError::mfa_denied(MFA_INVALID_SERIAL),
            CodeRefusal::WrongCode | CodeRefusal::Replayed | CodeRefusal::LockedOut => {
                ApiError::mfa_denied(MFA_INVALID_CODE)
            }
        }
    }
}

/// [`verify_code`], telling why a code was refused: `Ok(Err(refusal))`. `Err` is left for
/// the store's failures and for a caller that can own no device (a role session).
pub async fn check_code(
    state: &Arc<AppState>,
    caller: &Caller,
    serial: &str,
    code: &str,
) -> Result<Result<MfaContext, CodeRefusal>, ApiError> {
    let now = state.clock.now().unix_timestamp();
    // A role session has no devices: the serial is not the caller's (answered, not
    // counted as a refused factor, as before).
    let owner =
        owner_of(&caller.principal).map_err(|_| ApiError::access_denied(MFA_INVALID_SERIAL))?;
    let check = TotpCheck {
        serial: serial.to_owned(),
        owner,
        code: code.to_owned(),
        now,
        policy: state.config.mfa.lockout_policy(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.store.check_totp_then(
        check,
        Box::new(move |result| {
            // The receiver is gone only if the client went away; nothing to tell it then.
            let _ = tx.send(result);
        }),
    );
    let outcome = rx
        .await
        .map_err(|_| ApiError::internal("the store dropped a write"))??;
    // Formatted only for an event that is enabled (the macros evaluate fields lazily).
    let principal = || caller.principal.arn();
    let metrics = &state.metrics;
    let result = if matches!(outcome, TotpOutcome::Accepted { .. }) {
        MfaResult::Success
    } else {
        MfaResult::Failure
    };
    metrics.mfa(MfaMethod::Totp, result);
    match outcome {
        TotpOutcome::Accepted { .. } => {
            tracing::info!(target: "audit", principal = %principal(), serial, "MFA accepted");
            Ok(Ok(MfaContext {
                present: true,
                method: Some(MfaMethod::Totp),
                device: Some(serial.to_owned()),
                auth_time: Some(now),
            }))
        }
        TotpOutcome::NotAssigned => {
            tracing::warn!(
                target: "audit",
                principal = %principal(),
                serial,
                reason = "no such device for this principal",
                "MFA refused"
            );
            Ok(Err(CodeRefusal::NotAssigned))
        }
        TotpOutcome::Refused { refusal, state } => {
            if refusal == Refusal::Replayed {
                metrics.replay(MfaMethod::Totp);
            }
            if !matches!(refusal, Refusal::LockedOut(_))
                && let Some(until) = state.locked_at(now)
            {
                metrics.lockout(MfaMethod::Totp);
                tracing::warn!(
                    target: "audit",
                    principal = %principal(),
                    serial,
                    locked_until = until,
                    "MFA device locked out after repeated failures"
                );
            }
            tracing::warn!(
                target: "audit",
                principal = %principal(),
                serial,
                reason = ?refusal,
                "MFA refused"
            );
            Ok(Err(match refusal {
                Refusal::WrongCode => CodeRefusal::WrongCode,
                Refusal::Replayed => CodeRefusal::Replayed,
                Refusal::LockedOut(_) => CodeRefusal::LockedOut,
            }))
        }
    }
}
