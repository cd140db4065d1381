//! U2F / FIDO2 security keys as MFA devices: the registration and login ceremonies, as
//! SigV4-authenticated actions in the AWS style (docs/security-keys.md).
//!
//! * IAM `CreateSecurityKeyRegistrationChallenge` → `EnableSecurityKey`: root registers a
//!   key for a user; the key becomes an MFA device `arn:aws:iam::ACCOUNT:u2f/user/USER/
//!   NAME-SUFFIX`, listed, counted and deactivated like the TOTP devices.
//! * IAM `GetMFADevice`: a security key's registration facts, counter and clone flag.
//! * STS `GetSecurityKeyChallenge` → `GetSessionTokenWithSecurityKey`: the key's user signs
//!   the challenge with the key and gets credentials minted exactly as GetSessionToken with
//!   MFA mints them.
//!
//! Challenges are 32 random bytes, stored (any replica can complete a ceremony), single use
//! (consumed with a compare-and-set), short-lived (`security_keys.challenge_ttl_secs`, at most
//! 120 s) and bound to the principal they were issued to, the device and the ceremony.
//! Verification is `tokengate_verifier::fido`, always over the clientDataJSON the client
//! sends ([`ClientData::Json`]): the client — tokengate's CLI, python-fido2, a browser —
//! built it and the key signed its hash.
//!
//! Every refused login answers with AWS's MFA text; the reason goes to the `audit` log target.
//! A signature counter that did not increase flags the key as possibly cloned: it is refused
//! from then on, until it is deactivated and registered again.

use std::sync::Arc;

use axum::http::StatusCode;
use ring::rand::SecureRandom;
use tokengate_ctap::cose::CoseKey;
use tokengate_ctap::u2f::RegisterResponse;
use tokengate_store::{
    CeremonyKind, Challenge, Entity, KeyOwner, KeyProtocol, KeyUse, KeyUseOutcome, MAX_MFA_DEVICES,
    SecurityKey, StoreError,
};
use tokengate_token::arn;
use tokengate_token::secret::constant_time_eq;
use tokengate_token::session::{MfaContext, MfaMethod};
use tokengate_verifier::fido::{
    AssertionInput, AttestationResult, ClientData, MAX_CLIENT_DATA_JSON_LEN, RegistrationInput,
    StoredCredential, verify_assertion, verify_registration,
};

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{EXISTING_USER_NAME, db, iso8601, no_such_user, owner_of};
use crate::credentials::{self, SESSION_MAX_SECS, SESSION_MIN_SECS};
use crate::error::ApiError;
use crate::mfa::{MFA_INVALID_CODE, MFA_INVALID_SERIAL, SERIAL_NUMBER};
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// Challenge length: 32 random bytes (WebAuthn L3 §13.4.3 asks for at least 16).
pub const CHALLENGE_LEN: usize = 32;
/// Random bytes in a challenge id (hex on the wire: 32 characters).
pub const CHALLENGE_ID_LEN: usize = 16;
/// Live challenges one principal may hold at once.
pub const MAX_LIVE_CHALLENGES: usize = 16;
/// Random bytes in a serial's suffix (base32: 26 characters, like AWS's example
/// `fidokeyname-EXAMPLEBN5FHTECLFG7EXAMPLE`).
pub const SERIAL_SUFFIX_LEN: usize = 16;

/// The text of a refused registration (EnableMFADevice's, for wrong codes).
pub const REGISTRATION_REFUSED: &str = "Authentication code for device is not valid.";

/// `[A-Za-z0-9+/=]+`: a blob (base64) on the query wire.
const BASE64: Pattern = Pattern {
    text: "[A-Za-z0-9+/=]+",
    allows: |c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=',
    _plus: true,
};
const DEVICE_NAME: Rule = Rule {
    name: "DeviceName",
    min: 1,
    max: 64,
    pattern: Some(params::NAME),
};
const CHALLENGE_ID: Rule = Rule {
    name: "ChallengeId",
    min: 2 * CHALLENGE_ID_LEN,
    max: 2 * CHALLENGE_ID_LEN,
    pattern: Some(params::WORD_PLUS),
};
/// Base64 of at most `bytes` bytes.
const fn blob(name: &'static str, bytes: usize) -> Rule {
    Rule {
        name,
        min: 4,
        max: bytes.div_ceil(3) * 4,
        pattern: Some(BASE64),
    }
}
const ATTESTATION_OBJECT: Rule = blob("AttestationObject", 16 * 1024);
const REGISTRATION_DATA: Rule = blob("RegistrationData", 4 * 1024);
const CLIENT_DATA_JSON: Rule = blob("ClientDataJSON", MAX_CLIENT_DATA_JSON_LEN);
const CREDENTIAL_ID: Rule = blob("CredentialId", 1023);
const AUTHENTICATOR_DATA: Rule = blob("AuthenticatorData", 2 * 1024);
const SIGNATURE: Rule = blob("Signature", 512);

// ---- Parameters ----

/// A required blob parameter, decoded.
fn required_blob(v: &mut Validator, p: &Params, rule: Rule) -> Option<Vec<u8>> {
    let text = v.required(p, rule)?;
    decode_blob(v, &text, rule)
}

/// An optional blob parameter, decoded.
fn optional_blob(v: &mut Validator, p: &Params, rule: Rule) -> Option<Vec<u8>> {
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

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// An AAGUID as a UUID string.
pub fn uuid(aaguid: &[u8; 16]) -> String {
    // 16 bytes are always 32 hex digits: the slices below are in bounds.
    let h = data_encoding::HEXLOWER.encode(aaguid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random(state: &AppState, len: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = vec![0u8; len];
    state
        .rng
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("rng failed"))?;
    Ok(bytes)
}

fn limit_exceeded() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "LimitExceeded",
        format!("Cannot exceed quota for MFADevicesPerUser: {MAX_MFA_DEVICES}"),
    )
}

/// Stores `challenge`; too many live ones is `LimitExceeded`.
async fn store_challenge(state: &Arc<AppState>, challenge: Challenge) -> Result<(), ApiError> {
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

fn new_challenge(
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

/// The part of a challenge response both ceremonies share.
fn challenge_xml(x: &mut Xml, state: &AppState, c: &Challenge) {
    x.text("ChallengeId", &c.id);
    x.text("Challenge", &b64(&c.challenge));
    x.text("RpId", &state.security_keys.rp_id);
    x.text("Origin", &state.security_keys.origin);
    x.text("Protocol", c.protocol.as_str());
    x.text("Expiration", &iso8601(c.expires));
}

// ---- Registration (IAM) ----

/// EnableSecurityKey's resource: the user whose key the caller's registration challenge
/// enrols (the ceremony enables an MFA device for that user), `user/*` when the challenge
/// is not the caller's or does not exist (the handler then refuses the registration).
pub(crate) fn enable_resource(input: &ResourceInput<'_>) -> String {
    let challenge = match input.params.get(CHALLENGE_ID.name) {
        // A point read (see auth::long_term); the handler reads the challenge again.
        Some(id) => input.state.store.challenge(id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not read a challenge to authorize");
            None
        }),
        None => None,
    };
    let user = challenge
        .filter(|c| c.ceremony == CeremonyKind::Register)
        .filter(|c| c.requester == input.caller.principal.arn())
        .and_then(|c| match c.owner {
            KeyOwner::User(name) => Some(name),
            KeyOwner::Root => None,
        });
    match user {
        Some(name) => input
            .user_arn(&name)
            .unwrap_or_else(|_| arn::user_arn(input.account(), "/", &name)),
        None => arn::user_arn(input.account(), "/", "*"),
    }
}

pub(crate) async fn registration_challenge(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let user = v.required(p, EXISTING_USER_NAME).unwrap_or_default();
    let name = v.required(p, DEVICE_NAME).unwrap_or_default();
    let protocol = v.one_of(p, "Protocol", &["fido2", "u2f"], false);
    v.finish()?;
    let protocol = protocol
        .and_then(KeyProtocol::parse)
        .unwrap_or(KeyProtocol::Fido2);
    let lookup = user.clone();
    let record = db(state, move |s| s.user(&lookup))
        .await??
        .ok_or_else(|| no_such_user(&user))?;
    let owner = KeyOwner::User(record.name.clone());
    let o = owner.clone();
    let (totp, keys) = db(state, move |s| {
        Ok((s.mfa_devices_of(&o)?.len(), s.security_keys_of(&o)?))
    })
    .await??;
    if totp + keys.len() >= MAX_MFA_DEVICES {
        return Err(limit_exceeded());
    }
    let suffix = data_encoding::BASE32_NOPAD.encode(&random(state, SERIAL_SUFFIX_LEN)?);
    let serial = format!(
        "arn:aws:iam::{}:u2f/user/{}/{name}-{suffix}",
        state.account_id, record.name
    );
    let challenge = new_challenge(
        state,
        CeremonyKind::Register,
        caller,
        owner,
        serial,
        protocol,
        name.clone(),
    )?;
    let mut x = Xml::fragment();
    challenge_xml(&mut x, state, &challenge);
    x.text("UserName", &record.name);
    x.text("UserId", &b64(record.user_id.as_bytes()));
    x.text("DeviceName", &name);
    x.elem("ExcludeCredentials", |x| {
        for k in &keys {
            x.text("member", &b64(&k.credential_id));
        }
    });
    store_challenge(state, challenge).await?;
    tracing::info!(
        target: "audit",
        by = %caller.principal.arn(),
        user = %record.name,
        device = %name,
        "security-key registration challenge issued"
    );
    Ok(x.finish())
}

/// A refused registration: the challenge is spent, the reason audited, one text answered.
async fn refuse_registration(
    state: &Arc<AppState>,
    caller: &Caller,
    challenge_id: &str,
    reason: &str,
) -> ApiError {
    let id = challenge_id.to_owned();
    match db(state, move |s| s.discard_challenge(&id)).await {
        Ok(Ok(())) => {}
        // It still expires within the TTL; the refusal stands either way.
        Ok(Err(e)) => tracing::error!(error = %e, "could not discard a challenge"),
        Err(e) => tracing::error!(error = %e.message, "could not discard a challenge"),
    }
    tracing::warn!(
        target: "audit",
        principal = %caller.principal.arn(),
        challenge = challenge_id,
        reason,
        "security-key registration refused"
    );
    ApiError::new(
        StatusCode::FORBIDDEN,
        "InvalidAuthenticationCode",
        REGISTRATION_REFUSED,
    )
}

pub(crate) async fn enable(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let challenge_id = v.required(p, CHALLENGE_ID).unwrap_or_default();
    let client_data_json = required_blob(&mut v, p, CLIENT_DATA_JSON);
    let attestation_object = optional_blob(&mut v, p, ATTESTATION_OBJECT);
    let registration_data = optional_blob(&mut v, p, REGISTRATION_DATA);
    v.finish()?;
    let client_data_json = client_data_json.unwrap_or_default();
    if attestation_object.is_some() == registration_data.is_some() {
        return Err(ApiError::validation(
            "Exactly one of AttestationObject and RegistrationData must be given.",
        ));
    }
    let now = state.clock.now().unix_timestamp();
    let challenge = state
        .store
        .challenge(&challenge_id)?
        .filter(|c| c.ceremony == CeremonyKind::Register)
        .filter(|c| c.requester == caller.principal.arn());
    let user = match challenge.as_ref().map(|c| &c.owner) {
        Some(KeyOwner::User(name)) => name.clone(),
        Some(KeyOwner::Root) | None => String::from("*"),
    };
    let Some(challenge) = challenge else {
        tracing::warn!(
            target: "audit",
            principal = %caller.principal.arn(),
            challenge = challenge_id,
            reason = "no such registration challenge for this principal",
            "security-key registration refused"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidAuthenticationCode",
            REGISTRATION_REFUSED,
        ));
    };
    let lookup = user.clone();
    let record = db(state, move |s| s.user(&lookup))
        .await??
        .ok_or_else(|| no_such_user(&user))?;
    if now >= challenge.expires {
        return Err(refuse_registration(state, caller, &challenge_id, "challenge expired").await);
    }
    let settings = &state.security_keys;
    let attestation_object = match (attestation_object, registration_data) {
        (Some(object), _) => object,
        (None, Some(raw)) => match RegisterResponse::decode(&raw) {
            // A raw U2F REGISTER response: its fido-u2f attestationObject (WebAuthn L3 §8.6)
            // has the same signed data, so one verification path covers both.
            Ok(response) => {
                let application = rp_id_hash(&settings.rp_id);
                response.to_attestation_object(&application).to_vec()
            }
            Err(e) => {
                let reason = format!("malformed U2F registration data: {e}");
                return Err(refuse_registration(state, caller, &challenge_id, &reason).await);
            }
        },
        (None, None) => return Err(ApiError::internal("validated parameter missing")),
    };
    let input = RegistrationInput {
        attestation_object: &attestation_object,
        client_data: ClientData::Json(&client_data_json),
        challenge: &challenge.challenge,
        origin: &settings.origin,
        rp_id: &settings.rp_id,
        now,
    };
    let registered = match verify_registration(&settings.policy, &input) {
        Ok(r) => r,
        Err(rejection) => {
            let reason = format!("{}: {rejection}", rejection.code());
            return Err(refuse_registration(state, caller, &challenge_id, &reason).await);
        }
    };
    let is_u2f = registered.attestation_format == tokengate_ctap::attestation::fmt::FIDO_U2F;
    if challenge.protocol == KeyProtocol::U2f && !is_u2f {
        let reason = "protocol u2f asked, but the registration is not a U2F one";
        return Err(refuse_registration(state, caller, &challenge_id, reason).await);
    }
    let attestation = match &registered.attestation {
        AttestationResult::Trusted { anchor_subject } => format!("trusted: {anchor_subject}"),
        AttestationResult::SelfAttested => "self".to_owned(),
        AttestationResult::None => "none".to_owned(),
        _ => "other".to_owned(),
    };
    let key = SecurityKey {
        serial: challenge.serial.clone(),
        owner: challenge.owner.clone(),
        name: challenge.device_name.clone(),
        protocol: if is_u2f {
            KeyProtocol::U2f
        } else {
            KeyProtocol::Fido2
        },
        credential_id: registered.credential_id.clone(),
        public_key_cose: registered.public_key_cose.clone(),
        sign_count: registered.sign_count,
        backup_eligible: registered.flags.backup_eligible(),
        aaguid: registered.aaguid,
        attestation_format: registered.attestation_format.to_owned(),
        attestation,
        user_handle: record.user_id.into_bytes(),
        enabled_at: now,
        last_used: None,
        possibly_cloned_at: None,
        lockout: Default::default(),
    };
    let (id, k) = (challenge_id.clone(), key.clone());
    match db(state, move |s| {
        s.enable_security_key(&id, now, &k, MAX_MFA_DEVICES)
    })
    .await?
    {
        Ok(()) => {}
        Err(StoreError::NotFound(Entity::Challenge)) => {
            let reason = "the challenge was used or expired meanwhile";
            return Err(refuse_registration(state, caller, &challenge_id, reason).await);
        }
        Err(StoreError::NotFound(Entity::User)) => return Err(no_such_user(&user)),
        Err(StoreError::LimitExceeded(_)) => return Err(limit_exceeded()),
        Err(StoreError::AlreadyExists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "EntityAlreadyExists",
                "MFA device already exists.",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        target: "audit",
        by = %caller.principal.arn(),
        serial = %key.serial,
        user,
        protocol = key.protocol.as_str(),
        aaguid = %uuid(&key.aaguid),
        attestation = %key.attestation,
        "enabled security key"
    );
    let mut x = Xml::fragment();
    x.text("SerialNumber", &key.serial);
    x.text("UserName", &user);
    x.text("EnableDate", &iso8601(now));
    key_details_xml(&mut x, &key);
    Ok(x.finish())
}

/// SHA-256 of the relying-party ID: the U2F application parameter.
fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, rp_id.as_bytes()).as_ref());
    out
}

/// tokengate's extra members of a key description (botocore ignores unknown members).
fn key_details_xml(x: &mut Xml, key: &SecurityKey) {
    x.text("DeviceName", &key.name);
    x.text("Protocol", key.protocol.as_str());
    x.text("Aaguid", &uuid(&key.aaguid));
    x.text("AttestationFormat", &key.attestation_format);
    x.text("AttestationResult", &key.attestation);
}

pub(crate) async fn get_mfa_device(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let serial = v.required(p, SERIAL_NUMBER).unwrap_or_default();
    let user = v.optional(p, EXISTING_USER_NAME);
    v.finish()?;
    let owner = match &user {
        Some(name) => {
            let lookup = name.clone();
            let record = db(state, move |s| s.user(&lookup))
                .await??
                .ok_or_else(|| no_such_user(name))?;
            KeyOwner::User(record.name)
        }
        None => owner_of(&caller.principal)?,
    };
    let lookup = serial.clone();
    let key = db(state, move |s| s.security_key(&lookup))
        .await??
        .filter(|k| k.owner == owner)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NoSuchEntity",
                format!("MFA device with serial number {serial} does not exist."),
            )
        })?;
    let mut x = Xml::fragment();
    x.text(
        "UserName",
        match &key.owner {
            KeyOwner::User(name) => name,
            KeyOwner::Root => &state.account_id,
        },
    );
    x.text("SerialNumber", &key.serial);
    x.text("EnableDate", &iso8601(key.enabled_at));
    key_details_xml(&mut x, &key);
    x.text("SignCount", &key.sign_count.to_string());
    x.opt_text("LastUsedDate", key.last_used.map(iso8601).as_deref());
    x.text(
        "PossiblyCloned",
        if key.possibly_cloned_at.is_some() {
            "true"
        } else {
            "false"
        },
    );
    x.opt_text(
        "PossiblyClonedDate",
        key.possibly_cloned_at.map(iso8601).as_deref(),
    );
    Ok(x.finish())
}

// ---- Login (STS) ----

/// The caller's key `serial`, or the audited AWS refusal for a serial that is not theirs.
fn callers_key(state: &AppState, caller: &Caller, serial: &str) -> Result<SecurityKey, ApiError> {
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
            Err(ApiError::access_denied(MFA_INVALID_SERIAL))
        }
    }
}

fn refuse_sessions(caller: &Caller, action: &str) -> Result<(), ApiError> {
    if caller.is_session() {
        return Err(ApiError::access_denied(format!(
            "Cannot call {action} with session credentials"
        )));
    }
    Ok(())
}

pub(crate) async fn login_challenge(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let serial = v.required(p, SERIAL_NUMBER).unwrap_or_default();
    v.finish()?;
    refuse_sessions(caller, "GetSecurityKeyChallenge")?;
    let key = callers_key(state, caller, &serial)?;
    let now = state.clock.now().unix_timestamp();
    // Refused keys are refused before anyone touches them; the text is the login's.
    let unusable = if key.possibly_cloned_at.is_some() {
        Some("the key is flagged as possibly cloned")
    } else if key.lockout.locked_at(now).is_some() {
        Some("the key is locked out after repeated failures")
    } else {
        None
    };
    if let Some(reason) = unusable {
        tracing::warn!(
            target: "audit",
            principal = %caller.principal.arn(),
            serial,
            reason,
            "MFA refused"
        );
        return Err(ApiError::access_denied(MFA_INVALID_CODE));
    }
    let challenge = new_challenge(
        state,
        CeremonyKind::Authenticate,
        caller,
        key.owner.clone(),
        key.serial.clone(),
        key.protocol,
        key.name.clone(),
    )?;
    let mut x = Xml::fragment();
    challenge_xml(&mut x, state, &challenge);
    x.elem("AllowCredentials", |x| {
        x.text("member", &b64(&key.credential_id));
    });
    store_challenge(state, challenge).await?;
    Ok(x.finish())
}

/// The decoded parameters of GetSessionTokenWithSecurityKey.
struct AssertionParams {
    serial: String,
    challenge_id: String,
    credential_id: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    signature: Vec<u8>,
    duration: Option<i64>,
}

fn assertion_params(p: &Params) -> Result<AssertionParams, ApiError> {
    let mut v = Validator::new();
    let serial = v.required(p, SERIAL_NUMBER);
    let challenge_id = v.required(p, CHALLENGE_ID);
    let credential_id = required_blob(&mut v, p, CREDENTIAL_ID);
    let authenticator_data = required_blob(&mut v, p, AUTHENTICATOR_DATA);
    let client_data_json = required_blob(&mut v, p, CLIENT_DATA_JSON);
    let signature = required_blob(&mut v, p, SIGNATURE);
    let duration = v.integer(p, "DurationSeconds", SESSION_MIN_SECS, SESSION_MAX_SECS);
    v.finish()?;
    match (
        serial,
        challenge_id,
        credential_id,
        authenticator_data,
        client_data_json,
        signature,
    ) {
        (Some(serial), Some(challenge_id), Some(c), Some(a), Some(j), Some(s)) => {
            Ok(AssertionParams {
                serial,
                challenge_id,
                credential_id: c,
                authenticator_data: a,
                client_data_json: j,
                signature: s,
                duration,
            })
        }
        _ => Err(ApiError::internal("validated parameter missing")),
    }
}

pub(crate) async fn session_token(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let params = assertion_params(p)?;
    refuse_sessions(caller, "GetSessionTokenWithSecurityKey")?;
    let duration = credentials::session_duration(caller, params.duration);
    let mfa = verify_login(state, caller, &params).await?;
    let creds = credentials::mint(state, caller, duration, mfa)?;
    let mut x = Xml::fragment();
    credentials::credentials_xml(&mut x, &creds)?;
    Ok(x.finish())
}

/// Why a login was refused, for the audit log; `spend` drops the challenge with it.
struct Refusal {
    reason: String,
    spend_challenge: bool,
    possible_clone: bool,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            spend_challenge: true,
            possible_clone: false,
        }
    }
}

/// Verifies the assertion of `params` for the caller's key; the MFA context on success.
async fn verify_login(
    state: &Arc<AppState>,
    caller: &Caller,
    params: &AssertionParams,
) -> Result<MfaContext, ApiError> {
    let serial = params.serial.as_str();
    let key = callers_key(state, caller, serial)?;
    let now = state.clock.now().unix_timestamp();
    if let Some(until) = key.lockout.locked_at(now) {
        tracing::warn!(
            target: "audit",
            principal = %caller.principal.arn(),
            serial,
            locked_until = until,
            reason = "locked out",
            "MFA refused"
        );
        return Err(ApiError::access_denied(MFA_INVALID_CODE));
    }
    let refusal = match check_assertion(state, caller, &key, params, now).await? {
        Ok(method) => {
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
    Err(ApiError::access_denied(MFA_INVALID_CODE))
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
        KeyUseOutcome::ChallengeSpent => Err(Refusal::new("replayed: the challenge was spent")),
        KeyUseOutcome::KeyChanged => Err(Refusal::new(
            "replayed: the counter moved or the key changed meanwhile",
        )),
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::parse_aaguid;

    #[test]
    fn aaguids_print_as_uuids() {
        let a = parse_aaguid("2fc0579f-8113-47ea-b116-bb5a8db9202a").unwrap_or_default();
        assert_eq!(uuid(&a), "2fc0579f-8113-47ea-b116-bb5a8db9202a");
        assert_eq!(uuid(&[0; 16]), "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn blob_limits_cover_the_largest_legal_values() {
        // base64 of the largest clientDataJSON the verifier takes (8 KiB) fits.
        assert_eq!(CLIENT_DATA_JSON.max, 10_924);
        assert_eq!(CREDENTIAL_ID.max, 1364);
        assert_eq!(CHALLENGE_ID.min, 32);
    }
}
