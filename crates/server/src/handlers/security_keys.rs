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
use tokengate_ctap::u2f::RegisterResponse;
use tokengate_store::{
    CeremonyKind, Challenge, Entity, KeyOwner, KeyProtocol, MAX_MFA_DEVICES, SecurityKey,
    StoreError,
};
use tokengate_token::arn;
use tokengate_verifier::fido::{
    AttestationResult, ClientData, RegistrationInput, verify_registration,
};

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{EXISTING_USER_NAME, db, iso8601, no_such_user, owner_of};
use crate::credentials::{self, SESSION_MAX_SECS, SESSION_MIN_SECS};
use crate::error::ApiError;
use crate::mfa::{MFA_INVALID_CODE, SERIAL_NUMBER};
use crate::params::{self, Params, Rule, Validator};
use crate::state::AppState;
use crate::touch::{
    self, CHALLENGE_ID, CLIENT_DATA_JSON, blob, callers_key, new_challenge, optional_blob, random,
    required_blob, store_challenge,
};
use crate::xml::Xml;

/// Random bytes in a serial's suffix (base32: 26 characters, like AWS's example
/// `fidokeyname-EXAMPLEBN5FHTECLFG7EXAMPLE`).
pub const SERIAL_SUFFIX_LEN: usize = 16;

/// The text of a refused registration (EnableMFADevice's, for wrong codes).
pub const REGISTRATION_REFUSED: &str = "Authentication code for device is not valid.";

const DEVICE_NAME: Rule = Rule {
    name: "DeviceName",
    min: 1,
    max: 64,
    pattern: Some(params::NAME),
};
const ATTESTATION_OBJECT: Rule = blob("AttestationObject", 16 * 1024);
const REGISTRATION_DATA: Rule = blob("RegistrationData", 4 * 1024);
// ---- Parameters ----

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

fn limit_exceeded() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "LimitExceeded",
        format!("Cannot exceed quota for MFADevicesPerUser: {MAX_MFA_DEVICES}"),
    )
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

/// The `UserName` of a device's owner: the user's name, the account id for root.
fn user_name(owner: &KeyOwner, account: &str) -> String {
    match owner {
        KeyOwner::User(name) => name.clone(),
        KeyOwner::Root => account.to_owned(),
    }
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
    let (key, totp) = db(state, move |s| {
        Ok((s.security_key(&lookup)?, s.mfa_device(&lookup)?))
    })
    .await??;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            format!("MFA device with serial number {serial} does not exist."),
        )
    };
    let Some(key) = key.filter(|k| k.owner == owner) else {
        // A TOTP device (virtual or a fob) enabled for the user: AWS's members, and its last
        // use — the step of the last accepted code, recorded by the replay check anyway.
        let device = totp
            .filter(|d| d.owner.as_ref() == Some(&owner))
            .ok_or_else(missing)?;
        let mut x = Xml::fragment();
        x.text("UserName", &user_name(&owner, &state.account_id));
        x.text("SerialNumber", &device.serial);
        x.opt_text("EnableDate", device.enabled_at.map(iso8601).as_deref());
        let last_used = device.state.last_step.and_then(|step| {
            let step = i64::try_from(step).ok()?.checked_sub(device.state.drift)?;
            step.checked_mul(i64::try_from(device.params.period).ok()?)
        });
        x.opt_text("LastUsedDate", last_used.map(iso8601).as_deref());
        return Ok(x.finish());
    };
    let mut x = Xml::fragment();
    x.text("UserName", &user_name(&key.owner, &state.account_id));
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

pub(crate) async fn session_token(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let params = touch::read_assertion(&mut v, p);
    let duration = v.integer(p, "DurationSeconds", SESSION_MIN_SECS, SESSION_MAX_SECS);
    v.finish()?;
    let params = params.ok_or_else(|| ApiError::internal("validated parameter missing"))?;
    refuse_sessions(caller, "GetSessionTokenWithSecurityKey")?;
    let duration = credentials::session_duration(caller, duration);
    let mfa = touch::verify_login(state, caller, &params).await?;
    let creds = credentials::mint(state, caller, duration, mfa)?;
    let mut x = Xml::fragment();
    credentials::credentials_xml(&mut x, &creds)?;
    Ok(x.finish())
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
        assert_eq!(crate::touch::CREDENTIAL_ID.max, 1364);
        assert_eq!(CHALLENGE_ID.min, 32);
    }
}
