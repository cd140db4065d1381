//! Rows the store tests share.

use tokengate_token::Secret;
use tokengate_verifier::totp::{TotpParams, TotpState};

use crate::{
    AccessKey, Account, Bootstrap, CeremonyKind, Challenge, KeyOwner, KeyProtocol, KeyStatus,
    MfaDevice, MfaKind, SecurityKey, StoredSigningKey, User,
};

pub(crate) fn master() -> Secret {
    Secret::new(vec![9u8; 32])
}

pub(crate) fn key(id: &str, owner: KeyOwner) -> AccessKey {
    AccessKey {
        access_key_id: id.into(),
        owner,
        status: KeyStatus::Active,
        created: 1,
        secret: Secret::from(format!("secret-of-{id}")),
    }
}

pub(crate) fn user(name: &str) -> User {
    User {
        user_id: format!("AIDA{name}"),
        name: name.into(),
        path: "/".into(),
        created: 1,
    }
}

pub(crate) fn bootstrap() -> Bootstrap {
    Bootstrap {
        account: Account {
            account_id: "000000000000".into(),
            created: 1,
        },
        root_key: key("AKIAROOT", KeyOwner::Root),
        derivation_key: Secret::new(vec![1; 32]),
        signing_key: StoredSigningKey {
            kid: "kid1".into(),
            pkcs8: Secret::new(vec![2; 10]),
            created: 1,
            retired: None,
        },
    }
}

pub(crate) fn device(serial: &str) -> MfaDevice {
    MfaDevice {
        serial: serial.into(),
        kind: MfaKind::Virtual,
        owner: None,
        enabled_at: None,
        created: 1,
        seed: Secret::new(b"seed-bytes-of-a-device".to_vec()),
        params: TotpParams::AWS,
        state: TotpState::default(),
    }
}

pub(crate) fn security_key(serial: &str, owner: KeyOwner, credential_id: &[u8]) -> SecurityKey {
    SecurityKey {
        serial: serial.into(),
        owner,
        name: "yubikey".into(),
        protocol: KeyProtocol::Fido2,
        credential_id: credential_id.to_vec(),
        public_key_cose: vec![0xa5, 1, 2],
        sign_count: 7,
        backup_eligible: false,
        aaguid: [3; 16],
        attestation_format: "packed".into(),
        attestation: "trusted: CN=Test CA".into(),
        user_handle: b"AIDAalice".to_vec(),
        enabled_at: 100,
        last_used: None,
        possibly_cloned_at: None,
        lockout: TotpState::default(),
    }
}

pub(crate) fn challenge(
    id: &str,
    ceremony: CeremonyKind,
    owner: KeyOwner,
    serial: &str,
) -> Challenge {
    Challenge {
        id: id.into(),
        ceremony,
        requester: "arn:aws:iam::000000000000:root".into(),
        owner,
        serial: serial.into(),
        protocol: KeyProtocol::Fido2,
        device_name: "yubikey".into(),
        challenge: vec![0x42; 32],
        created: 100,
        expires: 220,
    }
}
