//! The device's persistent state and its file format.
//!
//! The state is what a real key keeps in its secure element: a device secret (from which
//! the credential-wrapping and hmac-secret keys are derived, see `crypto`), the attestation
//! CA and attestation key with their certificates, the one global signature counter, the
//! PIN state and the discoverable credentials. Copying the blob copies the device — a clone
//! with the same secret and counter, which is what clone-detection tests want.
//!
//! # File format (JSON, UTF-8)
//!
//! ```json
//! {
//!   "format": "tokengate-firmware-sim/1",
//!   "device_secret": "<base64, 32 bytes>",
//!   "ca_key": "<base64: nonce ‖ AES-256-GCM(PKCS#8, P-256), key derived from device_secret>",
//!   "ca_certificate": "<base64 DER>",
//!   "attestation_key": "<base64: nonce ‖ AES-256-GCM(PKCS#8, P-256), as ca_key>",
//!   "attestation_certificate": "<base64 DER, issued by the CA>",
//!   "signature_counter": 42,
//!   "pin": null | { "hash": "<base64, LEFT(SHA-256(PIN), 16)>", "code_points": 4,
//!                   "retries": 8 },
//!   "resident_credentials": [ { "credential_id": "<base64>", "rp_id": "example.com",
//!       "rp_name": "Example" | null, "user_id": "<base64, ≤ 64 bytes>",
//!       "user_name": "alice" | null, "user_display_name": "Alice" | null,
//!       "sequence": 7 } ]
//! }
//! ```
//!
//! Private keys of discoverable credentials live only inside their `credential_id`, which
//! is the key wrapped with AES-256-GCM under the device secret (`crypto`); so are the
//! algorithm, credProtect level and hmac-secret flag. `sequence` orders credentials by
//! creation (newest first in GetAssertion). Unknown fields are refused. Every value is
//! checked on load — lengths, keys that ring accepts, credential IDs that open under the
//! device secret — and a bad file is a [`Error::CorruptState`] naming the field, never a
//! panic and never a silently fresh device.
//!
//! What it will not do: no file I/O (the blob goes through `env::Storage`).

use data_encoding::BASE64;
use ring::rand::SecureRandom;
use ring::signature::EcdsaKeyPair;
use serde::{Deserialize, Serialize};
use tokengate_ctap::ctap2::{MAX_USER_ID_LEN, PublicKeyCredentialUserEntity};
use zeroize::Zeroizing;

use crate::Error;
use crate::cert::Pki;
use crate::crypto::{CredentialSecrets, DeviceKeys, load_p256_pkcs8, sha256};
use crate::secret::{Secret, SecretVec};

/// The `format` value this version writes and reads.
pub const STATE_FORMAT: &str = "tokengate-firmware-sim/1";
/// Discoverable credentials a device holds (a YubiKey 5 with firmware 5.7 holds 100).
pub const MAX_RESIDENT_CREDENTIALS: usize = 100;
/// PIN retries after a correct PIN (CTAP 2.1 §6.5.2.2 `maxPINRetries`, 8).
pub const MAX_PIN_RETRIES: u8 = 8;
/// Length of the stored PIN hash, LEFT(SHA-256(PIN), 16) (CTAP 2.1 §6.5.5.5).
pub const PIN_HASH_LEN: usize = 16;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    device_secret: String,
    ca_key: String,
    ca_certificate: String,
    attestation_key: String,
    attestation_certificate: String,
    signature_counter: u32,
    pin: Option<PinFile>,
    resident_credentials: Vec<ResidentFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinFile {
    hash: String,
    code_points: u8,
    retries: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResidentFile {
    credential_id: String,
    rp_id: String,
    rp_name: Option<String>,
    user_id: String,
    user_name: Option<String>,
    user_display_name: Option<String>,
    sequence: u64,
}

/// The PIN as stored.
pub struct PinRecord {
    /// LEFT(SHA-256(PIN), 16).
    pub hash: Secret<PIN_HASH_LEN>,
    /// The PIN's length in Unicode code points.
    pub code_points: u8,
    /// Attempts left before the PIN is blocked for good (0..=8).
    pub retries: u8,
}

/// A discoverable credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resident {
    /// The credential ID (the wrapped private key).
    pub credential_id: Vec<u8>,
    /// The RP ID.
    pub rp_id: String,
    /// The RP's name, if given at creation.
    pub rp_name: Option<String>,
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// The user entity given at creation (or by updateUserInformation).
    pub user: PublicKeyCredentialUserEntity,
    /// Creation order; larger is newer.
    pub sequence: u64,
}

/// The decoded, checked device state.
pub struct DeviceState {
    device_secret: Secret<32>,
    keys: DeviceKeys,
    ca_key: SecretVec,
    /// `ca_key` sealed under the device secret, as written to the file.
    sealed_ca_key: Vec<u8>,
    ca_cert: Vec<u8>,
    attestation_pkcs8: SecretVec,
    /// `attestation_pkcs8` sealed under the device secret, as written to the file.
    sealed_attestation_key: Vec<u8>,
    attestation_key: EcdsaKeyPair,
    attestation_cert: Vec<u8>,
    /// The global signature counter: the last value used in a signature.
    pub counter: u32,
    /// The PIN, once set.
    pub pin: Option<PinRecord>,
    /// Discoverable credentials, in no particular order.
    pub residents: Vec<Resident>,
}

impl DeviceState {
    /// A new device: fresh secret, CA and attestation certificate, counter 0, no PIN.
    pub fn create(rng: &dyn SecureRandom, aaguid: &[u8; 16]) -> Result<Self, Error> {
        let pki = Pki::create(rng, aaguid)?;
        let device_secret = Secret::<32>::random(rng)?;
        let attestation_key = load_p256_pkcs8(pki.attestation_key.expose(), rng)
            .ok_or(Error::Internal("fresh attestation key rejected"))?;
        let keys = DeviceKeys::derive(&device_secret)?;
        let sealed_ca_key = keys.seal_state_key(rng, "ca_key", pki.ca_key.expose())?;
        let sealed_attestation_key =
            keys.seal_state_key(rng, "attestation_key", pki.attestation_key.expose())?;
        Ok(Self {
            keys,
            device_secret,
            ca_key: pki.ca_key,
            sealed_ca_key,
            ca_cert: pki.ca_cert,
            attestation_pkcs8: pki.attestation_key,
            sealed_attestation_key,
            attestation_key,
            attestation_cert: pki.attestation_cert,
            counter: 0,
            pin: None,
            residents: Vec::new(),
        })
    }

    /// Decodes and checks a stored blob.
    pub fn decode(blob: &[u8], rng: &dyn SecureRandom) -> Result<Self, Error> {
        let file: StateFile = serde_json::from_slice(blob)
            .map_err(|e| Error::CorruptState(format!("not a state file: {e}")))?;
        if file.format != STATE_FORMAT {
            return Err(Error::CorruptState(format!(
                "format {:?} is not {STATE_FORMAT:?}",
                file.format
            )));
        }
        let secret_bytes = Zeroizing::new(base64(&file.device_secret, "device_secret")?);
        let device_secret = Secret::<32>::from_slice(&secret_bytes)
            .ok_or_else(|| corrupt("device_secret must be 32 bytes"))?;
        let keys = DeviceKeys::derive(&device_secret)?;
        let sealed_ca_key = base64(&file.ca_key, "ca_key")?;
        let ca_key = keys
            .open_state_key("ca_key", &sealed_ca_key)
            .ok_or_else(|| corrupt("ca_key does not open under device_secret"))?;
        if load_p256_pkcs8(ca_key.expose(), rng).is_none() {
            return Err(corrupt("ca_key is not a P-256 PKCS#8 key"));
        }
        let sealed_attestation_key = base64(&file.attestation_key, "attestation_key")?;
        let attestation_pkcs8 = keys
            .open_state_key("attestation_key", &sealed_attestation_key)
            .ok_or_else(|| corrupt("attestation_key does not open under device_secret"))?;
        let attestation_key = load_p256_pkcs8(attestation_pkcs8.expose(), rng)
            .ok_or_else(|| corrupt("attestation_key is not a P-256 PKCS#8 key"))?;
        let ca_cert = certificate(&file.ca_certificate, "ca_certificate")?;
        let attestation_cert =
            certificate(&file.attestation_certificate, "attestation_certificate")?;
        let pin = file.pin.map(|p| decode_pin(&p)).transpose()?;
        let residents = file
            .resident_credentials
            .iter()
            .map(|r| decode_resident(r, &keys))
            .collect::<Result<Vec<_>, _>>()?;
        if residents.len() > MAX_RESIDENT_CREDENTIALS {
            return Err(corrupt("more resident_credentials than the device holds"));
        }
        Ok(Self {
            device_secret,
            keys,
            ca_key,
            sealed_ca_key,
            ca_cert,
            attestation_pkcs8,
            sealed_attestation_key,
            attestation_key,
            attestation_cert,
            counter: file.signature_counter,
            pin,
            residents,
        })
    }

    /// Encodes the state as the JSON file above.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let file = StateFile {
            format: STATE_FORMAT.to_owned(),
            device_secret: BASE64.encode(self.device_secret.expose()),
            ca_key: BASE64.encode(&self.sealed_ca_key),
            ca_certificate: BASE64.encode(&self.ca_cert),
            attestation_key: BASE64.encode(&self.sealed_attestation_key),
            attestation_certificate: BASE64.encode(&self.attestation_cert),
            signature_counter: self.counter,
            pin: self.pin.as_ref().map(|p| PinFile {
                hash: BASE64.encode(p.hash.expose()),
                code_points: p.code_points,
                retries: p.retries,
            }),
            resident_credentials: self
                .residents
                .iter()
                .map(|r| ResidentFile {
                    credential_id: BASE64.encode(&r.credential_id),
                    rp_id: r.rp_id.clone(),
                    rp_name: r.rp_name.clone(),
                    user_id: BASE64.encode(&r.user.id),
                    user_name: r.user.name.clone(),
                    user_display_name: r.user.display_name.clone(),
                    sequence: r.sequence,
                })
                .collect(),
        };
        let mut out = Zeroizing::new(Vec::new());
        serde_json::to_writer_pretty(&mut *out, &file)
            .map_err(|_| Error::Internal("state serialisation failed"))?;
        out.push(b'\n');
        // The JSON strings holding secrets are dropped here; the blob goes to storage.
        Ok(std::mem::take(&mut *out))
    }

    /// Keys derived from the device secret.
    pub fn keys(&self) -> &DeviceKeys {
        &self.keys
    }

    /// The attestation key.
    pub fn attestation_key(&self) -> &EcdsaKeyPair {
        &self.attestation_key
    }

    /// The attestation certificate (DER).
    pub fn attestation_cert(&self) -> &[u8] {
        &self.attestation_cert
    }

    /// The CA certificate (DER).
    pub fn ca_cert(&self) -> &[u8] {
        &self.ca_cert
    }

    /// The next creation sequence number.
    pub fn next_sequence(&self) -> u64 {
        self.residents
            .iter()
            .map(|r| r.sequence)
            .max()
            .map_or(1, |s| s.saturating_add(1))
    }

    /// authenticatorReset: a new device secret (every credential ID made so far stops
    /// working), no discoverable credentials, no PIN. The attestation PKI and the signature
    /// counter stay: the counter must never go back.
    pub fn reset(&mut self, rng: &dyn SecureRandom) -> Result<(), Error> {
        let device_secret = Secret::<32>::random(rng)?;
        self.keys = DeviceKeys::derive(&device_secret)?;
        self.device_secret = device_secret;
        // The attestation PKI survives a reset: re-seal it under the new secret.
        self.sealed_ca_key = self
            .keys
            .seal_state_key(rng, "ca_key", self.ca_key.expose())?;
        self.sealed_attestation_key =
            self.keys
                .seal_state_key(rng, "attestation_key", self.attestation_pkcs8.expose())?;
        self.residents.clear();
        self.pin = None;
        Ok(())
    }
}

fn corrupt(what: &str) -> Error {
    Error::CorruptState(what.to_owned())
}

fn base64(text: &str, field: &str) -> Result<Vec<u8>, Error> {
    BASE64
        .decode(text.as_bytes())
        .map_err(|_| Error::CorruptState(format!("{field} is not base64")))
}

fn certificate(text: &str, field: &str) -> Result<Vec<u8>, Error> {
    let der = base64(text, field)?;
    // A DER SEQUENCE; the certificate is served as-is, relying parties parse it.
    if der.first() != Some(&0x30) || der.len() < 64 {
        return Err(Error::CorruptState(format!(
            "{field} is not a DER certificate"
        )));
    }
    Ok(der)
}

fn decode_pin(pin: &PinFile) -> Result<PinRecord, Error> {
    let hash = Zeroizing::new(base64(&pin.hash, "pin.hash")?);
    let hash = Secret::<PIN_HASH_LEN>::from_slice(&hash)
        .ok_or_else(|| corrupt("pin.hash must be 16 bytes"))?;
    if pin.retries > MAX_PIN_RETRIES {
        return Err(corrupt("pin.retries exceeds 8"));
    }
    if !(4..=63).contains(&pin.code_points) {
        return Err(corrupt("pin.code_points out of range"));
    }
    Ok(PinRecord {
        hash,
        code_points: pin.code_points,
        retries: pin.retries,
    })
}

fn decode_resident(r: &ResidentFile, keys: &DeviceKeys) -> Result<Resident, Error> {
    let credential_id = base64(&r.credential_id, "resident_credentials.credential_id")?;
    let rp_id_hash = sha256(r.rp_id.as_bytes());
    let opened: Option<CredentialSecrets> = keys.unwrap(&rp_id_hash, &credential_id);
    if !opened.is_some_and(|s| s.discoverable) {
        return Err(corrupt(
            "a resident credential_id does not open under the device secret for its rp_id",
        ));
    }
    let user_id = base64(&r.user_id, "resident_credentials.user_id")?;
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(corrupt("a resident user_id exceeds 64 bytes"));
    }
    Ok(Resident {
        credential_id,
        rp_id: r.rp_id.clone(),
        rp_name: r.rp_name.clone(),
        rp_id_hash,
        user: PublicKeyCredentialUserEntity {
            id: user_id,
            name: r.user_name.clone(),
            display_name: r.user_display_name.clone(),
        },
        sequence: r.sequence,
    })
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;
    use crate::crypto::{Algorithm, CredProtect, CredentialKey};

    fn state_with_everything(rng: &SystemRandom) -> DeviceState {
        let mut state = DeviceState::create(rng, &[7; 16]).unwrap();
        state.counter = 41;
        state.pin = Some(PinRecord {
            hash: Secret::new([9; 16]),
            code_points: 4,
            retries: 7,
        });
        let rp_id_hash = sha256(b"example.com");
        let secrets = CredentialSecrets {
            key: CredentialKey::generate(Algorithm::EdDsa, rng).unwrap(),
            discoverable: true,
            hmac_secret: false,
            cred_protect: CredProtect::Optional,
        };
        state.residents.push(Resident {
            credential_id: state.keys().wrap(rng, &rp_id_hash, &secrets).unwrap(),
            rp_id: "example.com".into(),
            rp_name: Some("Example".into()),
            rp_id_hash,
            user: PublicKeyCredentialUserEntity {
                id: vec![1, 2, 3],
                name: Some("alice".into()),
                display_name: None,
            },
            sequence: 1,
        });
        state
    }

    #[test]
    fn round_trips() {
        let rng = SystemRandom::new();
        let state = state_with_everything(&rng);
        let blob = state.encode().unwrap();
        let back = DeviceState::decode(&blob, &rng).unwrap();
        assert_eq!(back.counter, 41);
        assert_eq!(back.residents, state.residents);
        assert_eq!(back.pin.as_ref().unwrap().retries, 7);
        assert_eq!(back.ca_cert(), state.ca_cert());
        assert_eq!(back.encode().unwrap(), blob);
        assert_eq!(back.next_sequence(), 2);
    }

    #[test]
    fn corrupt_files_are_refused_with_the_reason() {
        let rng = SystemRandom::new();
        let blob = state_with_everything(&rng).encode().unwrap();
        let text = String::from_utf8(blob.clone()).unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not a state file"),
            (b"{\"format\": 1}".to_vec(), "not a state file"),
            (blob[..blob.len() / 2].to_vec(), "not a state file"),
            (
                text.replace("tokengate-firmware-sim/1", "other/9")
                    .into_bytes(),
                "format",
            ),
            (
                {
                    value["device_secret"] = "AAAA".into();
                    serde_json::to_vec(&value).unwrap()
                },
                "device_secret must be 32 bytes",
            ),
            (
                {
                    let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                    v["attestation_key"] = "!!".into();
                    serde_json::to_vec(&v).unwrap()
                },
                "attestation_key is not base64",
            ),
            (
                {
                    let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                    v["pin"]["retries"] = 9.into();
                    serde_json::to_vec(&v).unwrap()
                },
                "pin.retries",
            ),
            (
                {
                    let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                    v["resident_credentials"][0]["rp_id"] = "evil.example".into();
                    serde_json::to_vec(&v).unwrap()
                },
                "does not open",
            ),
            (
                {
                    let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                    v["extra"] = 1.into();
                    serde_json::to_vec(&v).unwrap()
                },
                "unknown field",
            ),
            (
                {
                    let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                    v["signature_counter"] = (-1).into();
                    serde_json::to_vec(&v).unwrap()
                },
                "not a state file",
            ),
        ];
        for (bytes, reason) in cases {
            match DeviceState::decode(&bytes, &rng) {
                Err(Error::CorruptState(msg)) => assert!(msg.contains(reason), "{msg} / {reason}"),
                Err(other) => panic!("{reason}: unexpected {other}"),
                Ok(_) => panic!("{reason}: accepted"),
            }
        }
    }

    #[test]
    fn private_keys_are_sealed_in_the_file() {
        let rng = ring::rand::SystemRandom::new();
        let state = DeviceState::create(&rng, &[7; 16]).unwrap();
        let blob = state.encode().unwrap();
        let text = String::from_utf8(blob.clone()).unwrap();
        for plain in [state.ca_key.expose(), state.attestation_pkcs8.expose()] {
            assert!(
                !text.contains(&BASE64.encode(plain)),
                "a private key is in clear"
            );
            assert!(!blob.windows(plain.len()).any(|w| w == plain));
        }
        let back = DeviceState::decode(&blob, &rng).unwrap();
        assert_eq!(
            back.attestation_pkcs8.expose(),
            state.attestation_pkcs8.expose()
        );
        // Sealed under another device's secret: refused, not used.
        let other = DeviceState::create(&rng, &[7; 16]).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        let foreign: serde_json::Value = serde_json::from_slice(&other.encode().unwrap()).unwrap();
        v["attestation_key"] = foreign["attestation_key"].clone();
        let err = DeviceState::decode(&serde_json::to_vec(&v).unwrap(), &rng)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("attestation_key does not open"),
            "{err}"
        );
    }

    #[test]
    fn reset_forgets_credentials_but_not_the_counter() {
        let rng = SystemRandom::new();
        let mut state = state_with_everything(&rng);
        let id = state.residents[0].credential_id.clone();
        let ca = state.ca_cert().to_vec();
        state.reset(&rng).unwrap();
        assert!(state.residents.is_empty() && state.pin.is_none());
        assert_eq!(state.counter, 41);
        assert_eq!(state.ca_cert(), ca);
        assert!(state.keys().unwrap(&sha256(b"example.com"), &id).is_none());
    }
}
