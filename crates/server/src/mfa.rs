//! Verification of a second factor named by `SerialNumber` + `TokenCode`.
//!
//! No MFA devices exist yet (virtual TOTP devices come with their own issue), so every
//! serial is unknown and answered with AWS's serial text.

use std::sync::Arc;

use tokengate_token::session::MfaContext;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::sts::MFA_INVALID_SERIAL;

/// Verifies `code` for device `serial` of `caller`; the MFA context on success.
pub async fn verify_code(
    _state: &Arc<AppState>,
    _caller: &Caller,
    _serial: &str,
    _code: &str,
) -> Result<MfaContext, ApiError> {
    Err(ApiError::access_denied(MFA_INVALID_SERIAL))
}
