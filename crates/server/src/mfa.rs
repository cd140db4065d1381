//! Verification of a second factor named by `SerialNumber` + `TokenCode` (GetSessionToken).
//!
//! The device must be enabled for the caller; the code must be that of the current step
//! ±1 (after the device's drift) and above the last accepted step, recorded with a
//! compare-and-set so that one code yields exactly one session even when requests race
//! (on one server or several sharing a store). Failures are counted durably; past
//! `mfa.max_failures` the device is locked out. Every refusal answers with AWS's text; the
//! reason goes to the audit log only.

use std::sync::Arc;

use tokengate_store::{KeyOwner, MfaDevice, Store, StoreError};
use tokengate_token::Principal;
use tokengate_token::session::{MfaContext, MfaMethod};
use tokengate_verifier::totp::{self, Refusal, Verdict};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::sts::{MFA_INVALID_CODE, MFA_INVALID_SERIAL};

/// The store owner that `principal` is.
pub fn owner_of(principal: &Principal) -> KeyOwner {
    match principal {
        Principal::Root { .. } => KeyOwner::Root,
        Principal::User { name, .. } => KeyOwner::User(name.clone()),
    }
}

/// Runs a store call on the blocking pool.
pub async fn db<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(ApiError::internal)
}

/// Verifies `code` for device `serial` of `caller`; the MFA context on success.
pub async fn verify_code(
    state: &Arc<AppState>,
    caller: &Caller,
    serial: &str,
    code: &str,
) -> Result<MfaContext, ApiError> {
    let owner = owner_of(&caller.principal);
    // A point read: inline (see auth::long_term). The replay mark below waits for an fsync
    // and goes to the blocking pool.
    let device: Option<MfaDevice> = state.store.mfa_device(serial)?;
    let Some(device) = device.filter(|d| d.owner.as_ref() == Some(&owner)) else {
        tracing::warn!(
            target: "audit",
            principal = %caller.principal.arn(),
            serial,
            reason = "no such device for this principal",
            "MFA refused"
        );
        return Err(ApiError::access_denied(MFA_INVALID_SERIAL));
    };
    let now = state.clock.now().unix_timestamp();
    let verdict = totp::verify(
        device.seed.expose(),
        &device.params,
        &device.state,
        code,
        now,
    );
    let refusal = match verdict {
        Verdict::Accepted { step } => {
            // The group commit answers once the replay mark is on disk; no thread waits.
            let (tx, rx) = tokio::sync::oneshot::channel();
            state.store.record_totp_success_then(
                serial,
                step,
                Box::new(move |result| {
                    let _ = tx.send(result);
                }),
            );
            let won = rx
                .await
                .map_err(|_| ApiError::internal("the store dropped a write"))??;
            if won {
                tracing::info!(
                    target: "audit",
                    principal = %caller.principal.arn(),
                    serial,
                    "MFA accepted"
                );
                return Ok(MfaContext {
                    present: true,
                    method: Some(MfaMethod::Totp),
                    device: Some(serial.to_owned()),
                    auth_time: Some(now),
                });
            }
            // Another request used this step first.
            Refusal::Replayed
        }
        Verdict::Refused(refusal) => refusal,
    };
    if !matches!(refusal, Refusal::LockedOut(_)) {
        let s = serial.to_owned();
        let policy = state.config.mfa.lockout_policy();
        let after = db(state, move |st| st.record_totp_failure(&s, &policy, now)).await??;
        if let Some(until) = after.locked_until.filter(|&u| u > now) {
            tracing::warn!(
                target: "audit",
                principal = %caller.principal.arn(),
                serial,
                locked_until = until,
                "MFA device locked out after repeated failures"
            );
        }
    }
    tracing::warn!(
        target: "audit",
        principal = %caller.principal.arn(),
        serial,
        reason = ?refusal,
        "MFA refused"
    );
    Err(ApiError::access_denied(MFA_INVALID_CODE))
}
