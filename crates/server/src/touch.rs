//! The security-key second factor: one login assertion verified for a caller — the check
//! that GetSessionTokenWithSecurityKey and AssumeRoleWithSecurityKey share, one floor below
//! their handler families (docs/security-keys.md).
//!
//! The checks, in order: the key is the caller's and usable (not locked out, not flagged as
//! cloned), the challenge is a live login challenge issued to this principal for this key,
//! the credential is the key's, the assertion verifies over the clientDataJSON the client
//! sent, and the counter and the spent challenge are recorded with a compare-and-set before
//! anything is issued. Every refusal answers with AWS's MFA text; the reason goes to the
//! `audit` log target. A failure counts towards the key's lockout.

use std::sync::Arc;

use axum::http::StatusCode;
use ring::rand::SecureRandom;
use tokengate_ctap::cose::CoseKey;
use tokengate_store::{
    CeremonyKind, Challenge, KeyOwner, KeyProtocol, KeyUse, KeyUseOutcome, SecurityKey, StoreError,
};
use tokengate_token::secret::constant_time_eq;
use tokengate_token::session::{MfaContext, MfaMethod};
use tokengate_verifier::fido::{
    AssertionInput, ClientData, MAX_CLIENT_DATA_JSON_LEN, StoredCredential, verify_assertion,
};

use crate::auth::Caller;
use crate::common::{db, owner_of};
use crate::error::ApiError;
use crate::metrics::MfaResult;
use crate::mfa::{MFA_INVALID_CODE, MFA_INVALID_SERIAL, SERIAL_NUMBER};
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::state::AppState;

/// `[A-Za-z0-9+/=]+`: a blob (base64) on the query wire.
pub(crate) const BASE64: Pattern = Pattern {
    text: "[A-Za-z0-9+/=]+",
    allows: |c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=',
    _plus: true,
};

/// Random bytes in a challenge id (hex on the wire: 32 characters).
pub const CHALLENGE_ID_LEN: usize = 16;

pub(crate) const CHALLENGE_ID: Rule = Rule {
    name: "ChallengeId",
    min: 2 * CHALLENGE_ID_LEN,
    max: 2 * CHALLENGE_ID_LEN,
    pattern: Some(params::WORD_PLUS),
};
/// Base64 of at most `bytes` bytes.
pub(crate) const fn blob(name: &'static str, bytes: usize) -> Rule {
    Rule {
        name,
        min: 4,
        max: bytes.div_ceil(3) * 4,
        pattern: Some(BASE64),
    }
}

pub(crate) const CLIENT_DATA_JSON: Rule = blob("ClientDataJSON", MAX_CLIENT_DATA_JSON_LEN);
pub(crate) const CREDENTIAL_ID: Rule = blob("CredentialId", 1023);
const AUTHENTICATOR_DATA: Rule = blob("AuthenticatorData", 2 * 1024);
const SIGNATURE: Rule = blob("Signature", 512);

/// A required blob parameter, decoded.
pub(crate) fn required_blob(v: &mut Validator, p: &Params, rule: Rule) -> Option<Vec<u8>> {
    let text = v.required(p, rule)?;
    decode_blob(v, &text, rule)
}

/// An optional blob parameter, decoded.
pub(crate) fn optional_blob(v: &mut Validator, p: &Params, rule: Rule) -> Option<Vec<u8>> {
    let text = v.optional(p, rule)?;
    decode_blob(v, &text, rule)
}

fn decode_blob(v: &mut Validator, text: &str, rule: Rule) -> Option<Vec<u8>> {
    match data_encoding::BASE64.decode(text.as_bytes()) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            v.pattern_failure(text, rule);
            None
        }
    }
}

/// The caller's key `serial`, or the audited AWS refusal for a serial that is not theirs.
pub(crate) fn callers_key(
    state: &AppState,
    caller: &Caller,
    serial: &str,
) -> Result<SecurityKey, ApiError> {
    let owner = owner_of(&caller.principal)?;
    // A point read on the login path: inline (see auth::long_term).
    match state.store.security_key(serial)? {
        Some(key) if key.owner == owner => Ok(key),
        _ => {
            tracing::warn!(
                target: "audit",
                principal = %caller.principal.arn(),
                serial,
                reason = "no such security key for this principal",
                "MFA refused"
            );
            Err(ApiError::mfa_denied(MFA_INVALID_SERIAL))
        }
    }
}

/// The decoded parameters of GetSessionTokenWithSecurityKey.
pub struct AssertionParams {
    serial: String,
    challenge_id: String,
    credential_id: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    signature: Vec<u8>,
}

impl AssertionParams {
    /// The key's serial (`SerialNumber`).
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

/// Reads and decodes the assertion's parameters (`SerialNumber`, `ChallengeId`,
/// `CredentialId`, `AuthenticatorData`, `ClientDataJSON`, `Signature`) into `v`.
pub fn read_assertion(v: &mut Validator, p: &Params) -> Option<AssertionParams> {
    let serial = v.required(p, SERIAL_NUMBER);
    let challenge_id = v.required(p, CHALLENGE_ID);
    let credential_id = required_blob(v, p, CREDENTIAL_ID);
    let authenticator_data = required_blob(v, p, AUTHENTICATOR_DATA);
    let client_data_json = required_blob(v, p, CLIENT_DATA_JSON);
    let signature = required_blob(v, p, SIGNATURE);
    match (
        serial,
        challenge_id,
        credential_id,
        authenticator_data,
        client_data_json,
        signature,
    ) {
        (Some(serial), Some(challenge_id), Some(c), Some(a), Some(j), Some(s)) => {
            Some(AssertionParams {
                serial,
                challenge_id,
                credential_id: c,
                authenticator_data: a,
                client_data_json: j,
                signature: s,
            })
        }
        // Each missing or malformed one is recorded in `v`.
        _ => None,
    }
}

/// Challenge length: 32 random bytes (WebAuthn L3 §13.4.3 asks for at least 16).
pub const CHALLENGE_LEN: usize = 32;
/// Live challenges one principal may hold at once.
pub const MAX_LIVE_CHALLENGES: usize = 16;
pub(crate) fn random(state: &AppState, len: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = vec![0u8; len];
    state
        .rng
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("rng failed"))?;
    Ok(bytes)
}

/// Stores `challenge`; too many live ones is `LimitExceeded`.
pub(crate) async fn store_challenge(
    state: &Arc<AppState>,
    challenge: Challenge,
) -> Result<(), ApiError> {
    match db(state, move |s| {
        s.create_challenge(&challenge, MAX_LIVE_CHALLENGES)
    })
    .await?
    {
        Ok(()) => Ok(()),
        Err(StoreError::LimitExceeded(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "LimitExceeded",
            format!(
                "Cannot exceed {MAX_LIVE_CHALLENGES} open security-key challenges; complete \
                 one or let it expire."
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A new challenge of `ceremony` issued to `caller` for the key `serial`.
pub(crate) fn new_challenge(
    state: &AppState,
    ceremony: CeremonyKind,
    caller: &Caller,
    owner: KeyOwner,
    serial: String,
    protocol: KeyProtocol,
    device_name: String,
) -> Result<Challenge, ApiError> {
    let now = state.clock.now().unix_timestamp();
    Ok(Challenge {
        id: data_encoding::HEXLOWER.encode(&random(state, CHALLENGE_ID_LEN)?),
        ceremony,
        requester: caller.principal.arn(),
        owner,
        serial,
        protocol,
        device_name,
        challenge: random(state, CHALLENGE_LEN)?,
        created: now,
        expires: now + state.security_keys.challenge_ttl,
    })
}

/// Why a login was refused, for the audit log; `spend` drops the challenge with it.
struct Refusal {
    reason: String,
    spend_challenge: bool,
    possible_clone: bool,
    /// A challenge or counter used again (counted as a replay in the metrics).
    replayed: bool,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            spend_challenge: true,
            possible_clone: false,
            replayed: false,
        }
    }

    fn replay(reason: &str) -> Self {
        Self {
            replayed: true,
            ..Self::new(reason)
        }
    }
}

/// Verifies the assertion of `params` for the caller's key; the MFA context on success.
pub async fn verify_login(
    state: &Arc<AppState>,
    caller: &Caller,
    params: &AssertionParams,
) -> Result<MfaContext, ApiError> {
    let serial = params.serial.as_str();
    let key = callers_key(state, caller, serial)?;
    let method = match key.protocol {
        KeyProtocol::Fido2 => MfaMethod::Fido2,
        KeyProtocol::U2f => MfaMethod::U2f,
    };
    let metrics = &state.metrics;
    let now = state.clock.now().unix_timestamp();
    if let Some(until) = key.lockout.locked_at(now) {
        metrics.mfa(method, MfaResult::Failure);
        tracing::warn!(
            target: "audit",
            principal = %caller.principal.arn(),
            serial,
            locked_until = until,
            reason = "locked out",
            "MFA refused"
        );
        return Err(ApiError::mfa_denied(MFA_INVALID_CODE));
    }
    let refusal = match check_assertion(state, caller, &key, params, now).await? {
        Ok(method) => {
            metrics.mfa(method, MfaResult::Success);
            tracing::info!(
                target: "audit",
                principal = %caller.principal.arn(),
                serial,
                "MFA accepted"
            );
            return Ok(MfaContext {
                present: true,
                method: Some(method),
                device: Some(serial.to_owned()),
                auth_time: Some(now),
            });
        }
        Err(refusal) => refusal,
    };
    metrics.mfa(method, MfaResult::Failure);
    if refusal.replayed {
        metrics.replay(method);
    }
    let s = serial.to_owned();
    let challenge = refusal.spend_challenge.then(|| params.challenge_id.clone());
    let policy = state.config.mfa.lockout_policy();
    let clone = refusal.possible_clone;
    let after = db(state, move |st| {
        st.record_security_key_failure(&s, challenge.as_deref(), &policy, now, clone)
    })
    .await?;
    match after {
        Ok(after) => {
            if let Some(until) = after.locked_until.filter(|&u| u > now) {
                metrics.lockout(method);
                tracing::warn!(
                    target: "audit",
                    principal = %caller.principal.arn(),
                    serial,
                    locked_until = until,
                    "MFA device locked out after repeated failures"
                );
            }
        }
        // Deactivated meanwhile: nothing left to count on.
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if clone {
        metrics.clone_flag();
        tracing::error!(
            target: "audit",
            principal = %caller.principal.arn(),
            serial,
            reason = %refusal.reason,
            "security key flagged as possibly cloned; it is refused until registered again"
        );
    }
    tracing::warn!(
        target: "audit",
        principal = %caller.principal.arn(),
        serial,
        reason = %refusal.reason,
        "MFA refused"
    );
    Err(ApiError::mfa_denied(MFA_INVALID_CODE))
}

/// The checks of one login, in order: the key is usable, the challenge is this ceremony's,
/// the credential is the key's, the assertion verifies, and the counter and the challenge
/// are recorded with a compare-and-set before anything is issued.
async fn check_assertion(
    state: &Arc<AppState>,
    caller: &Caller,
    key: &SecurityKey,
    params: &AssertionParams,
    now: i64,
) -> Result<Result<MfaMethod, Refusal>, ApiError> {
    if key.possibly_cloned_at.is_some() {
        return Ok(Err(Refusal::new("the key is flagged as possibly cloned")));
    }
    let challenge = state
        .store
        .challenge(&params.challenge_id)?
        .filter(|c| c.ceremony == CeremonyKind::Authenticate)
        .filter(|c| c.serial == key.serial && c.requester == caller.principal.arn());
    let Some(challenge) = challenge else {
        return Ok(Err(Refusal {
            spend_challenge: false,
            ..Refusal::new("no such login challenge for this key and principal (used?)")
        }));
    };
    if now >= challenge.expires {
        return Ok(Err(Refusal::new("challenge expired")));
    }
    if !constant_time_eq(&params.credential_id, &key.credential_id) {
        return Ok(Err(Refusal::new("not the key's credential")));
    }
    let public_key = CoseKey::decode(&key.public_key_cose)
        .map_err(|e| ApiError::internal(format!("stored key {}: {e}", key.serial)))?;
    let stored = StoredCredential {
        public_key,
        sign_count: key.sign_count,
        backup_eligible: key.backup_eligible,
    };
    let settings = &state.security_keys;
    let input = AssertionInput {
        authenticator_data: &params.authenticator_data,
        client_data: ClientData::Json(&params.client_data_json),
        signature: &params.signature,
        challenge: &challenge.challenge,
        origin: &settings.origin,
        rp_id: &settings.rp_id,
        require_user_verification: false,
    };
    let outcome = match verify_assertion(&stored, &input) {
        Ok(outcome) => outcome,
        Err(rejection) => {
            return Ok(Err(Refusal {
                possible_clone: rejection.is_possible_clone(),
                ..Refusal::new(format!("{}: {rejection}", rejection.code()))
            }));
        }
    };
    // The group commit answers once the challenge is spent and the counter is on disk.
    let key_use = KeyUse {
        serial: key.serial.clone(),
        challenge_id: challenge.id.clone(),
        expected_sign_count: key.sign_count,
        sign_count: outcome.sign_count,
        now,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.store.record_security_key_use_then(
        &key_use,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    let recorded = rx
        .await
        .map_err(|_| ApiError::internal("the store dropped a write"))??;
    Ok(match recorded {
        KeyUseOutcome::Recorded => Ok(match key.protocol {
            KeyProtocol::Fido2 => MfaMethod::Fido2,
            KeyProtocol::U2f => MfaMethod::U2f,
        }),
        KeyUseOutcome::ChallengeSpent => Err(Refusal::replay("replayed: the challenge was spent")),
        KeyUseOutcome::KeyChanged => Err(Refusal::replay(
            "replayed: the counter moved or the key changed meanwhile",
        )),
    })
}
