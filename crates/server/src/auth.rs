//! Who is calling: SigV4 verification of the request against a long-term key from the store
//! or against temporary credentials (session token + derived secret), in AWS's error order
//! (sts-iam.md §2 item 7): structure, date, scope, session token, access key, signature.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_store::{KeyOwner, KeyStatus};
use tokengate_token::keys::{KeyKind, key_kind};
use tokengate_token::session::{MfaContext, SessionClaims};
use tokengate_token::sigv4::{self, HttpRequest, SigV4Error};
use tokengate_token::{Principal, Secret};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The access key id the request was signed with.
    pub access_key_id: String,
    /// The session, when the request used temporary credentials.
    pub session: Option<SessionClaims>,
    /// A second factor verified with this very request (AssumeRole's `SerialNumber` and
    /// `TokenCode`, checked by the chokepoint before authorization).
    pub request_mfa: Option<MfaContext>,
    /// The region the request was signed for (its credential scope).
    pub region: String,
}

impl Caller {
    /// Whether the request was made with temporary credentials.
    pub fn is_session(&self) -> bool {
        self.session.is_some()
    }

    /// Whether the caller's session was created with a verified second factor.
    pub fn mfa_present(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.mfa.present)
    }

    /// The MFA context this request carries: a factor verified with the request itself,
    /// else the session's when it has one; `None` for long-term keys without one.
    pub fn mfa(&self) -> Option<&MfaContext> {
        self.request_mfa
            .as_ref()
            .or_else(|| self.session.as_ref().map(|s| &s.mfa))
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        ApiError::new(status, e.aws_code(), e.to_string())
    }
}

/// Authenticates `req`; returns the caller and the credential scope's service.
pub async fn authenticate(
    state: &Arc<AppState>,
    req: &HttpRequest<'_>,
) -> Result<(Caller, String), ApiError> {
    let now = state.clock.now();
    let auth = sigv4::parse_authorization(req, now)?;
    let access_key_id = auth.scope.access_key_id.clone();
    let (caller, secret) = match key_kind(&access_key_id) {
        Some(KeyKind::Temporary) => {
            let token = auth
                .security_token
                .as_deref()
                .ok_or_else(ApiError::unknown_key)?;
            let claims = state
                .verifier
                .verify(token, &access_key_id, now.unix_timestamp())
                .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.aws_code(), e.to_string()))?;
            let secret = state.derivation.temporary_secret(&access_key_id);
            let principal = current_principal(state, &claims.principal)?;
            let caller = Caller {
                principal,
                access_key_id: access_key_id.clone(),
                session: Some(claims),
                request_mfa: None,
                region: String::new(),
            };
            (caller, secret)
        }
        Some(KeyKind::LongTerm) => {
            if auth.security_token.is_some() {
                // A session token with a long-term key is not a valid pairing.
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid",
                ));
            }
            long_term(state, &access_key_id).await?
        }
        None => return Err(ApiError::unknown_key()),
    };
    sigv4::verify_signature(req, &auth, secret.expose())?;
    let caller = Caller {
        region: auth.scope.region,
        ..caller
    };
    Ok((caller, auth.scope.service))
}

/// The session's principal as it is now, found by its unique id: a session outlives
/// nothing it was issued to. A deleted user's sessions — also once a user of the same name
/// exists again, which has another id — are refused like a token that is not ours.
fn current_principal(state: &AppState, principal: &Principal) -> Result<Principal, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid",
        )
    };
    let user_id = match principal {
        Principal::Root { .. } => return Ok(principal.clone()),
        Principal::User { user_id, .. } => user_id,
        // A federated user's session lives as long as the IAM user who asked for it.
        Principal::FederatedUser { name, user_id, .. } => {
            state
                .policies
                .user(state.store.as_ref(), user_id)?
                .ok_or_else(invalid)?;
            return Ok(Principal::FederatedUser {
                account: state.account_id.clone(),
                name: name.clone(),
                user_id: user_id.clone(),
            });
        }
        // A role session lives as long as its role: found by the role's unique id, so a
        // deleted role's sessions (and a role re-created under the name) are refused.
        Principal::AssumedRole {
            role_id,
            session_name,
            ..
        } => {
            let role = state
                .policies
                .role(state.store.as_ref(), role_id)?
                .ok_or_else(invalid)?;
            return Ok(Principal::AssumedRole {
                account: state.account_id.clone(),
                role_name: role.role.name.clone(),
                role_path: role.role.path.clone(),
                role_id: role.role.role_id.clone(),
                session_name: session_name.clone(),
            });
        }
    };
    let user = state
        .policies
        .user(state.store.as_ref(), user_id)?
        .ok_or_else(invalid)?;
    Ok(Principal::User {
        account: state.account_id.clone(),
        path: user.user.path.clone(),
        name: user.user.name.clone(),
        user_id: user.user.user_id.clone(),
    })
}

async fn long_term(
    state: &Arc<AppState>,
    access_key_id: &str,
) -> Result<(Caller, Secret), ApiError> {
    // A point read, inline on the worker: handing it to the blocking pool costs more in
    // thread hand-offs than the read itself (ADR 0003).
    let key = state
        .store
        .access_key(access_key_id)?
        .ok_or_else(ApiError::unknown_key)?;
    if key.status != KeyStatus::Active {
        return Err(ApiError::unknown_key());
    }
    let principal = match &key.owner {
        KeyOwner::Root => Principal::Root {
            account: state.account_id.clone(),
        },
        KeyOwner::User(name) => {
            let user = state.store.user(name)?.ok_or_else(ApiError::unknown_key)?;
            Principal::User {
                account: state.account_id.clone(),
                path: user.path,
                name: user.name,
                user_id: user.user_id,
            }
        }
    };
    Ok((
        Caller {
            principal,
            access_key_id: key.access_key_id,
            session: None,
            request_mfa: None,
            region: String::new(),
        },
        key.secret,
    ))
}
