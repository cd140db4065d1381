//! Temporary credentials: their lengths (sts-iam.md §1.1), minting and their XML — shared by
//! every family that issues a session (GetSessionToken, the security-key login), one floor
//! below them.

use tokengate_token::Principal;
use tokengate_token::keys;
use tokengate_token::session::{
    ISSUER, MfaContext, SessionAttributes, SessionClaims, SessionPolicy,
};

use crate::auth::Caller;
use crate::common::iso8601;
use crate::error::ApiError;
use crate::state::AppState;
use crate::xml::Xml;

/// GetSessionToken's DurationSeconds range and default (sts-iam.md §1.1).
pub const SESSION_MIN_SECS: i64 = 900;
/// Maximum GetSessionToken duration for IAM users (36 h).
pub const SESSION_MAX_SECS: i64 = 129_600;
/// Default GetSessionToken duration (12 h).
pub const SESSION_DEFAULT_SECS: i64 = 43_200;
/// Root sessions are silently capped at one hour.
pub const ROOT_SESSION_MAX_SECS: i64 = 3_600;

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

/// Mints temporary credentials for `caller` lasting `duration` seconds (GetSessionToken and
/// the security-key login: the caller's own principal, no session policy).
pub fn mint(
    state: &AppState,
    caller: &Caller,
    duration: i64,
    mfa: MfaContext,
) -> Result<Credentials, ApiError> {
    mint_session(
        state,
        NewSession {
            principal: caller.principal.clone(),
            src: caller.access_key_id.clone(),
            duration,
            mfa,
            session_policy: None,
            chained: false,
            attributes: SessionAttributes::default(),
        },
    )
}

/// What a new session is issued for.
pub struct NewSession {
    /// Its principal (a user's own, or an assumed role's).
    pub principal: Principal,
    /// The long-term access key id the chain of sessions started from.
    pub src: String,
    /// Its length in seconds.
    pub duration: i64,
    /// Its MFA context.
    pub mfa: MfaContext,
    /// Its session policies (AssumeRole's `Policy`, `PolicyArns`).
    pub session_policy: Option<SessionPolicy>,
    /// Whether the caller used session credentials (role chaining).
    pub chained: bool,
    /// Its session tags and source identity.
    pub attributes: SessionAttributes,
}

/// Mints temporary credentials for `session`.
pub fn mint_session(state: &AppState, session: NewSession) -> Result<Credentials, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let access_key_id = keys::new_temporary_key_id(&state.rng).map_err(ApiError::internal)?;
    let claims = SessionClaims {
        iss: ISSUER.to_owned(),
        sub: session.principal.arn(),
        akid: access_key_id.clone(),
        iat: now,
        exp: now + session.duration,
        principal: session.principal,
        src: session.src,
        mfa: session.mfa,
        session_policy: session.session_policy,
        chained: session.chained,
        attributes: session.attributes,
    };
    // Signed with the store's current key: another replica may have rotated since.
    state
        .signer
        .refresh(state.store.as_ref(), &state.verifier, now, false)?;
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
        x.text("Expiration", &iso8601(c.expiration));
    });
    Ok(())
}
