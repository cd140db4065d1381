//! Authorization: may this caller perform this action on this resource? Asked once per
//! request, by the chokepoint ([`crate::chokepoint`]), before any handler runs; handlers
//! never ask.
//!
//! Until identity policies exist (crates/policy), the decision is tokengate's fixed rule set,
//! exactly as the handlers applied it before the registry:
//!
//! * **IAM actions** are for the account's root: with its long-term key, or with a root
//!   session created with MFA (AWS: "You cannot call any IAM API operations unless MFA
//!   authentication information is included"). Every other caller — IAM users, and root
//!   sessions without MFA — is refused with AWS's identity-policy `AccessDenied` text naming
//!   the action and the resource.
//! * **STS actions** are open to every authenticated caller, except `GetAccessKeyInfo`,
//!   which temporary credentials may not call (the same `AccessDenied` text, the resource
//!   being the caller).
//!
//! What is *not* here: STS's protocol rules, which no policy can lift, stay with their
//! handlers — GetSessionToken, GetSecurityKeyChallenge and GetSessionTokenWithSecurityKey
//! refuse session credentials ("Cannot call … with session credentials"), and with
//! `mfa.required` no session is issued without a verified second factor. Neither are the
//! MFA checks themselves (a wrong code is `AccessDenied` too, but it is authentication).

use std::sync::Arc;

use crate::action::{ActionSpec, Api};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// Decides whether `caller` may perform `spec` on `resource`: `Ok` to go on, else the
/// `AccessDenied` to answer. `state` and `params` are the context a policy evaluation needs
/// (the store, condition keys); today's rules read neither.
pub async fn authorize(
    state: &Arc<AppState>,
    caller: &Caller,
    spec: &ActionSpec,
    resource: &str,
    params: &Params,
) -> Result<(), ApiError> {
    let _ = (state, params);
    let allowed = match spec.api {
        Api::Iam => caller.principal.is_root() && (!caller.is_session() || caller.mfa_present()),
        Api::Sts => !(spec.name == "GetAccessKeyInfo" && caller.is_session()),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::not_authorized(
            &caller.principal.arn(),
            &spec.iam_action(),
            resource,
        ))
    }
}
