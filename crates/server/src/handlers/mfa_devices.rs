//! IAM MFA device actions (sts-iam.md §3): CreateVirtualMFADevice, EnableMFADevice,
//! ResyncMFADevice, DeactivateMFADevice, DeleteVirtualMFADevice, ListMFADevices,
//! ListVirtualMFADevices — and tokengate's own ImportHardwareMFADevice, which AWS lacks:
//! it registers a hardware OATH-TOTP fob under its vendor serial (e.g. `GAHT12345678`) with
//! the seed from the vendor's seed file.
//!
//! Every handler here runs for a caller the chokepoint has already authorized
//! ([`crate::authz`]); none checks permissions itself.

use std::sync::Arc;

use axum::http::StatusCode;
use ring::rand::SecureRandom;
use tokengate_store::{Entity, KeyOwner, MAX_MFA_DEVICES, MfaDevice, MfaKind, StoreError};
use tokengate_token::{Principal, Secret, arn};
use tokengate_verifier::totp::{self, TotpAlgorithm, TotpParams, TotpState};

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{
    EXISTING_USER_NAME, MARKER, db, iso8601, no_such_user, owner_of, path_rule, valid_path,
};
use crate::error::ApiError;
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::relying_party::is_security_key_serial;
use crate::state::AppState;
use crate::xml::Xml;

/// Seed length of new virtual devices: 160 bits (RFC 4226 §4 recommends it).
pub const SEED_LEN: usize = 20;
/// Shortest imported hardware seed: 80 bits (RFC 4226 §4 R6 minimum is 128; fobs with
/// 80-bit seeds exist, and they are the vendor's choice, not ours).
pub const MIN_IMPORTED_SEED_LEN: usize = 10;

/// `virtualMFADeviceName`: 1..226, `[\w+=,.@-]+`.
const DEVICE_NAME: Rule = Rule {
    name: "VirtualMFADeviceName",
    min: 1,
    max: 226,
    pattern: Some(params::NAME),
};
/// `serialNumberType` (IAM): 9..256, `[\w+=/:,.@-]+`.
const SERIAL: Rule = Rule {
    name: "SerialNumber",
    min: 9,
    max: 256,
    pattern: Some(Pattern {
        text: r"[\w+=/:,.@-]+",
        ..params::SERIAL
    }),
};
/// `authenticationCodeType`: exactly 6, `[\d]+`.
const CODE1: Rule = Rule {
    name: "AuthenticationCode1",
    min: 6,
    max: 6,
    pattern: Some(Pattern {
        text: r"[\d]+",
        ..params::DIGITS
    }),
};
const CODE2: Rule = Rule {
    name: "AuthenticationCode2",
    ..CODE1
};
/// Base32 seed of an imported fob (RFC 4648 alphabet, padding allowed).
const SEED: Rule = Rule {
    name: "Base32StringSeed",
    min: 16,
    max: 256,
    pattern: Some(Pattern {
        text: "[A-Z2-7=]+",
        allows: |c| c.is_ascii_uppercase() || ('2'..='7').contains(&c) || c == '=',
        _plus: true,
    }),
};

/// ListVirtualMFADevices' resource: `arn:aws:iam::ACCOUNT:mfa/`.
pub(crate) fn list_virtual_resource(input: &ResourceInput<'_>) -> String {
    format!("arn:aws:iam::{}:mfa/", input.account())
}

fn no_such_device(serial: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        format!("MFA device with serial number {serial} does not exist."),
    )
}

fn invalid_codes() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "InvalidAuthenticationCode",
        "Authentication code for device is not valid.",
    )
}

fn device_exists() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "EntityAlreadyExists",
        "MFA device already exists.",
    )
}

async fn create_device(state: &Arc<AppState>, device: MfaDevice) -> Result<(), ApiError> {
    match db(state, move |s| s.create_mfa_device(&device)).await? {
        Ok(()) => Ok(()),
        Err(StoreError::AlreadyExists(_)) => Err(device_exists()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn create_virtual(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, DEVICE_NAME).unwrap_or_default();
    let path = v.optional(p, path_rule());
    if let Some(path) = path.as_deref().filter(|p| !valid_path(p)) {
        v.pattern_failure(path, path_rule());
    }
    v.finish()?;
    let path = path.unwrap_or_else(|| "/".to_owned());
    let serial = format!("arn:aws:iam::{}:mfa{path}{name}", state.account_id);
    let mut seed = vec![0u8; SEED_LEN];
    state
        .rng
        .fill(&mut seed)
        .map_err(|_| ApiError::internal("rng failed"))?;
    let seed = Secret::new(seed);
    let base32 = zeroize::Zeroizing::new(data_encoding::BASE32_NOPAD.encode(seed.expose()));
    let uri = zeroize::Zeroizing::new(crate::qr::otpauth_uri(&name, &state.account_id, &base32));
    let png = crate::qr::png(&uri).map_err(ApiError::internal)?;
    create_device(
        state,
        MfaDevice {
            serial: serial.clone(),
            kind: MfaKind::Virtual,
            owner: None,
            enabled_at: None,
            created: state.clock.now().unix_timestamp(),
            seed,
            params: TotpParams::AWS,
            state: TotpState::default(),
        },
    )
    .await?;
    tracing::info!(serial, by = %caller.principal.arn(), "created virtual MFA device");
    let mut x = Xml::fragment();
    x.elem("VirtualMFADevice", |x| {
        x.text("SerialNumber", &serial);
        // Blobs travel base64-encoded; the seed blob is the base32 text itself.
        x.text(
            "Base32StringSeed",
            &data_encoding::BASE64.encode(base32.as_bytes()),
        );
        x.text("QRCodePNG", &data_encoding::BASE64.encode(&png));
    });
    Ok(x.finish())
}

pub(crate) async fn import_hardware(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let serial = v.required(p, SERIAL).unwrap_or_default();
    let seed_text = v.required_secret(p, SEED).unwrap_or_default();
    let algorithm = v.one_of(p, "Algorithm", &["SHA1", "SHA256", "SHA512"], false);
    let digits = v.integer(p, "Digits", 6, 8);
    let period = v.integer(p, "Period", 1, 300);
    v.finish()?;
    if is_security_key_serial(&serial) {
        return Err(ApiError::validation(format!(
            "SerialNumber {serial} has the form of a security key's (u2f/); use the vendor's \
             serial for a hardware fob"
        )));
    }
    let seed = data_encoding::BASE32_NOPAD
        .decode(seed_text.trim_end_matches('=').as_bytes())
        .map_err(|_| ApiError::validation("Base32StringSeed is not valid base32"))?;
    if seed.len() < MIN_IMPORTED_SEED_LEN {
        return Err(ApiError::validation(format!(
            "Base32StringSeed must decode to at least {MIN_IMPORTED_SEED_LEN} bytes"
        )));
    }
    let params = TotpParams::new(
        algorithm
            .and_then(TotpAlgorithm::parse)
            .unwrap_or(TotpAlgorithm::Sha1),
        u8::try_from(digits.unwrap_or(6)).unwrap_or(6),
        u64::try_from(period.unwrap_or(30)).unwrap_or(30),
    )
    .map_err(|e| ApiError::validation(e.to_string()))?;
    create_device(
        state,
        MfaDevice {
            serial: serial.clone(),
            kind: MfaKind::Hardware,
            owner: None,
            enabled_at: None,
            created: state.clock.now().unix_timestamp(),
            seed: Secret::new(seed),
            params,
            state: TotpState::default(),
        },
    )
    .await?;
    tracing::info!(serial, by = %caller.principal.arn(), "imported hardware MFA device");
    let mut x = Xml::fragment();
    x.elem("HardwareMFADevice", |x| x.text("SerialNumber", &serial));
    Ok(x.finish())
}

/// Validates UserName + SerialNumber + two codes (EnableMFADevice, ResyncMFADevice).
fn four_params(p: &Params) -> Result<(String, String, String, String), ApiError> {
    let mut v = Validator::new();
    let user = v.required(p, EXISTING_USER_NAME);
    let serial = v.required(p, SERIAL);
    let c1 = v.required(p, CODE1);
    let c2 = v.required(p, CODE2);
    v.finish()?;
    match (user, serial, c1, c2) {
        (Some(u), Some(s), Some(a), Some(b)) => Ok((u, s, a, b)),
        _ => Err(ApiError::internal("validated parameter missing")),
    }
}

async fn existing_user(state: &Arc<AppState>, name: &str) -> Result<KeyOwner, ApiError> {
    let lookup = name.to_owned();
    let user = db(state, move |s| s.user(&lookup))
        .await??
        .ok_or_else(|| no_such_user(name))?;
    Ok(KeyOwner::User(user.name))
}

pub(crate) async fn enable(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let (user, serial, c1, c2) = four_params(p)?;
    let owner = existing_user(state, &user).await?;
    let lookup = serial.clone();
    let device = db(state, move |s| s.mfa_device(&lookup))
        .await??
        .ok_or_else(|| no_such_device(&serial))?;
    if device.owner.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EntityAlreadyExists",
            "MFA Device is already in use.",
        ));
    }
    let now = state.clock.now().unix_timestamp();
    let step = totp::find_consecutive(
        device.seed.expose(),
        &device.params,
        &device.state,
        &c1,
        &c2,
        now,
        totp::ENABLE_RADIUS,
    )
    .ok_or_else(invalid_codes)?;
    let new_state = TotpState {
        last_step: Some(step),
        ..TotpState::default()
    };
    let (s, o) = (serial.clone(), owner.clone());
    match db(state, move |st| {
        st.enable_mfa_device(&s, &o, now, &new_state, MAX_MFA_DEVICES)
    })
    .await?
    {
        Ok(()) => {
            tracing::info!(target: "audit", serial, user, "enabled MFA device");
            Ok(())
        }
        Err(StoreError::NotFound(Entity::User)) => Err(no_such_user(&user)),
        Err(StoreError::NotFound(_)) => Err(no_such_device(&serial)),
        Err(StoreError::AlreadyExists(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "EntityAlreadyExists",
            "MFA Device is already in use.",
        )),
        Err(StoreError::LimitExceeded(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "LimitExceeded",
            format!("Cannot exceed quota for MFADevicesPerUser: {MAX_MFA_DEVICES}"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn resync(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let (user, serial, c1, c2) = four_params(p)?;
    let owner = existing_user(state, &user).await?;
    let lookup = serial.clone();
    let device = db(state, move |s| s.mfa_device(&lookup))
        .await??
        .filter(|d| d.owner.as_ref() == Some(&owner))
        .ok_or_else(|| no_such_device(&serial))?;
    let now = state.clock.now().unix_timestamp();
    let step = totp::find_consecutive(
        device.seed.expose(),
        &device.params,
        &device.state,
        &c1,
        &c2,
        now,
        totp::RESYNC_RADIUS,
    )
    .ok_or_else(invalid_codes)?;
    let drift = totp::drift_for(&device.params, step, now);
    let new_state = TotpState {
        last_step: Some(step),
        drift,
        ..TotpState::default()
    };
    let expected = device.state.last_step;
    let s = serial.clone();
    match db(state, move |st| {
        st.resync_mfa_device(&s, &owner, expected, &new_state)
    })
    .await?
    {
        Ok(()) => {
            tracing::info!(target: "audit", serial, user, drift, "resynchronised MFA device");
            Ok(())
        }
        // The device was used or resynchronised meanwhile: its codes are stale now.
        Err(StoreError::NotFound(_)) => Err(invalid_codes()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn deactivate(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let user = v.optional(p, EXISTING_USER_NAME);
    let serial = v.required(p, SERIAL).unwrap_or_default();
    v.finish()?;
    let owner = match user {
        Some(name) => existing_user(state, &name).await?,
        None => owner_of(&caller.principal)?,
    };
    if is_security_key_serial(&serial) {
        // A security key has no unassigned state: deactivating it removes it.
        let (s, o) = (serial.clone(), owner.clone());
        match db(state, move |st| st.delete_security_key(&s, &o)).await? {
            Ok(()) => {
                tracing::info!(target: "audit", serial, "deactivated security key");
                return Ok(());
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (s, o) = (serial.clone(), owner.clone());
    match db(state, move |st| st.deactivate_mfa_device(&s, &o)).await? {
        Ok(()) => {
            tracing::info!(target: "audit", serial, "deactivated MFA device");
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Err(no_such_device(&serial)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_virtual(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let serial = v.required(p, SERIAL).unwrap_or_default();
    v.finish()?;
    let s = serial.clone();
    match db(state, move |st| st.delete_mfa_device(&s)).await? {
        Ok(()) => {
            tracing::info!(target: "audit", serial, "deleted MFA device");
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Err(no_such_device(&serial)),
        Err(StoreError::DeleteConflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "DeleteConflict",
            "MFA Device is in use; deactivate it first.",
        )),
        Err(e) => Err(e.into()),
    }
}

fn user_name_of(owner: &KeyOwner, account: &str) -> String {
    match owner {
        KeyOwner::Root => account.to_owned(),
        KeyOwner::User(name) => name.clone(),
    }
}

pub(crate) async fn list_for_user(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let user = v.optional(p, EXISTING_USER_NAME);
    v.optional(p, MARKER);
    v.integer(p, "MaxItems", 1, 1000);
    v.finish()?;
    let owner = match user {
        Some(name) => existing_user(state, &name).await?,
        None => owner_of(&caller.principal)?,
    };
    let o = owner.clone();
    let (devices, keys) = db(state, move |s| {
        Ok((s.mfa_devices_of(&o)?, s.security_keys_of(&o)?))
    })
    .await??;
    // TOTP devices and security keys, each (serial, enable date), by enable date.
    let mut listed: Vec<(&str, Option<i64>)> = devices
        .iter()
        .map(|d| (d.serial.as_str(), d.enabled_at))
        .chain(keys.iter().map(|k| (k.serial.as_str(), Some(k.enabled_at))))
        .collect();
    listed.sort_by_key(|&(serial, enabled)| (enabled, serial));
    let mut x = Xml::fragment();
    x.elem("MFADevices", |x| {
        for (serial, enabled_at) in &listed {
            x.elem("member", |x| {
                x.text("UserName", &user_name_of(&owner, &state.account_id));
                x.text("SerialNumber", serial);
                x.opt_text("EnableDate", enabled_at.map(iso8601).as_deref());
            });
        }
    });
    x.text("IsTruncated", "false");
    Ok(x.finish())
}

pub(crate) async fn list_virtual(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let status = v.one_of(
        p,
        "AssignmentStatus",
        &["Assigned", "Unassigned", "Any"],
        false,
    );
    let marker = v.optional(p, MARKER);
    let max_items = v.integer(p, "MaxItems", 1, 1000);
    v.finish()?;
    let assigned = match status {
        Some("Assigned") => Some(true),
        Some("Unassigned") => Some(false),
        _ => None,
    };
    let devices = db(state, move |s| s.list_mfa_devices(assigned)).await??;
    let limit = usize::try_from(max_items.unwrap_or(100)).unwrap_or(100);
    let mut page: Vec<&MfaDevice> = devices
        .iter()
        .filter(|d| d.kind == MfaKind::Virtual)
        .filter(|d| marker.as_deref().is_none_or(|m| d.serial.as_str() > m))
        .take(limit + 1)
        .collect();
    let truncated = page.len() > limit;
    page.truncate(limit);
    // The owners' user records, for the `User` element.
    let names: Vec<String> = page
        .iter()
        .filter_map(|d| match &d.owner {
            Some(KeyOwner::User(n)) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let users = db(state, move |s| {
        names
            .iter()
            .map(|n| s.user(n))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let mut x = Xml::fragment();
    x.elem("VirtualMFADevices", |x| {
        for d in &page {
            x.elem("member", |x| {
                x.text("SerialNumber", &d.serial);
                match &d.owner {
                    Some(KeyOwner::User(name)) => {
                        if let Some(u) = users.iter().flatten().find(|u| &u.name == name) {
                            x.elem("User", |x| {
                                x.text("Path", &u.path);
                                x.text("UserName", &u.name);
                                x.text("UserId", &u.user_id);
                                x.text("Arn", &arn::user_arn(&state.account_id, &u.path, &u.name));
                                x.text("CreateDate", &iso8601(u.created));
                            });
                        }
                    }
                    Some(KeyOwner::Root) => x.elem("User", |x| {
                        x.text("UserId", &state.account_id);
                        x.text(
                            "Arn",
                            &Principal::Root {
                                account: state.account_id.clone(),
                            }
                            .arn(),
                        );
                    }),
                    None => {}
                }
                x.opt_text("EnableDate", d.enabled_at.map(iso8601).as_deref());
            });
        }
    });
    x.text("IsTruncated", if truncated { "true" } else { "false" });
    if let (true, Some(last)) = (truncated, page.last()) {
        x.text("Marker", &last.serial);
    }
    Ok(x.finish())
}
