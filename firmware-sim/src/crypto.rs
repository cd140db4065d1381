//! Credential keys and the credential-ID format: how a key is generated, signs, and travels
//! wrapped inside its own credential ID.
//!
//! A credential ID (also a U2F key handle) is the credential's private key, encrypted with
//! AES-256-GCM under a key derived from the device secret, with the rpIdHash (U2F:
//! application parameter) as associated data — so an ID works only on the device that made
//! it and only for the RP it was made for, as on a real key:
//!
//! ```text
//! version[1] = 0x01 | nonce[12] | AES-256-GCM( alg[1] | flags[1] | key material ) | tag[16]
//!   alg:   0x01 ES256 (material: P-256 scalar[32] | public x[32] | y[32]), 0x02 EdDSA (seed[32])
//!   flags: bit 0 discoverable, bit 1 hmac-secret, bits 2–3 credProtect level (1..=3)
//! ```
//!
//! ES256 IDs are 127 bytes (within the 128 a YubiKey 5 advertises), EdDSA IDs 63. The
//! public key travels with the scalar because ring cannot derive it from a raw scalar.
//!
//! What it will not do: no storage, no clock. Randomness comes from the caller's ring
//! `SecureRandom`. ring's ECDSA signing is randomised, so signatures are checked by
//! verification in tests, never compared as bytes.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use ring::{hkdf, hmac};
use tokengate_ctap::cose::{CoseKey, P256Point, alg};

use crate::Error;
use crate::secret::{Secret, SecretVec};

/// Version byte of the credential-ID format above.
pub const CREDENTIAL_ID_VERSION: u8 = 0x01;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Length of an ES256 credential ID.
pub const ES256_CREDENTIAL_ID_LEN: usize = 1 + NONCE_LEN + 2 + 32 + 64 + TAG_LEN;
/// Length of an EdDSA credential ID.
pub const EDDSA_CREDENTIAL_ID_LEN: usize = 1 + NONCE_LEN + 2 + 32 + TAG_LEN;
/// The longest credential ID this device makes (GetInfo `maxCredentialIdLength`).
pub const MAX_CREDENTIAL_ID_LEN: usize = ES256_CREDENTIAL_ID_LEN;

/// ring's PKCS#8 v1 document for a generated P-256 key is this prefix, the 32-byte scalar,
/// [`P256_PKCS8_MIDDLE`] and the 65-byte uncompressed public key (ring
/// `ec/suite_b/ecPublicKey_p256_pkcs8_v1_template.der`).
const P256_PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02,
    0x01, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x04, 0x6D, 0x30, 0x6B, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
const P256_PKCS8_MIDDLE: [u8; 5] = [0xA1, 0x44, 0x03, 0x42, 0x00];

/// The credential algorithms a YubiKey 5 offers (GetInfo `algorithms`: −7 then −8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256, COSE −7.
    Es256,
    /// Ed25519, COSE −8.
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm, in order of preference.
    pub const ALL: [Self; 2] = [Self::Es256, Self::EdDsa];

    /// The COSE algorithm identifier.
    pub fn cose(self) -> i64 {
        match self {
            Self::Es256 => alg::ES256,
            Self::EdDsa => alg::EDDSA,
        }
    }

    /// The algorithm for a COSE identifier, if supported.
    pub fn from_cose(value: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.cose() == value)
    }

    fn tag(self) -> u8 {
        match self {
            Self::Es256 => 0x01,
            Self::EdDsa => 0x02,
        }
    }
}

/// The credProtect extension's levels (CTAP 2.1 §12.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum CredProtect {
    /// `userVerificationOptional` (1), the default.
    #[default]
    Optional,
    /// `userVerificationOptionalWithCredentialIDList` (2): not discoverable without UV.
    OptionalWithCredentialIdList,
    /// `userVerificationRequired` (3): never usable without UV.
    Required,
}

impl CredProtect {
    /// The level number on the wire.
    pub fn level(self) -> u64 {
        match self {
            Self::Optional => 1,
            Self::OptionalWithCredentialIdList => 2,
            Self::Required => 3,
        }
    }

    /// The level for a wire number.
    pub fn from_level(level: u64) -> Option<Self> {
        match level {
            1 => Some(Self::Optional),
            2 => Some(Self::OptionalWithCredentialIdList),
            3 => Some(Self::Required),
            _ => None,
        }
    }
}

/// A credential's private key.
pub enum CredentialKey {
    /// P-256 scalar and its public point.
    Es256 {
        /// The scalar.
        private: Secret<32>,
        /// The public point.
        public: P256Point,
    },
    /// Ed25519 seed and public key.
    EdDsa {
        /// The RFC 8032 seed.
        seed: Secret<32>,
        /// The public key.
        public: [u8; 32],
    },
}

impl CredentialKey {
    /// A fresh key.
    pub fn generate(algorithm: Algorithm, rng: &dyn SecureRandom) -> Result<Self, Error> {
        match algorithm {
            Algorithm::Es256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
                    .map_err(|_| Error::Internal("P-256 key generation failed"))?;
                let (private, public) = split_p256_pkcs8(pkcs8.as_ref())?;
                Ok(Self::Es256 { private, public })
            }
            Algorithm::EdDsa => {
                let seed = Secret::<32>::random(rng)?;
                let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
                    .map_err(|_| Error::Internal("Ed25519 seed rejected"))?;
                let public = pair
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::Internal("Ed25519 public key length"))?;
                Ok(Self::EdDsa { seed, public })
            }
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Es256 { .. } => Algorithm::Es256,
            Self::EdDsa { .. } => Algorithm::EdDsa,
        }
    }

    /// The public key as a COSE_Key (WebAuthn L3 §6.5.1.1).
    pub fn cose_key(&self) -> CoseKey {
        match self {
            Self::Es256 { public, .. } => CoseKey::Es256(*public),
            Self::EdDsa { public, .. } => CoseKey::Ed25519(*public),
        }
    }

    /// Signs `message`: ASN.1 DER ECDSA for ES256, the 64-byte signature for EdDSA.
    pub fn sign(&self, rng: &dyn SecureRandom, message: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Self::Es256 { private, public } => {
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    private.expose(),
                    &public.to_sec1_uncompressed(),
                    rng,
                )
                .map_err(|_| Error::Internal("stored P-256 key rejected"))?;
                let signature = pair
                    .sign(rng, message)
                    .map_err(|_| Error::Internal("ECDSA signing failed"))?;
                Ok(signature.as_ref().to_vec())
            }
            Self::EdDsa { seed, .. } => {
                let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
                    .map_err(|_| Error::Internal("stored Ed25519 seed rejected"))?;
                Ok(pair.sign(message).as_ref().to_vec())
            }
        }
    }

    fn material(&self) -> SecretVec {
        let mut out = Vec::with_capacity(96);
        match self {
            Self::Es256 { private, public } => {
                out.extend_from_slice(private.expose());
                out.extend_from_slice(&public.x);
                out.extend_from_slice(&public.y);
            }
            Self::EdDsa { seed, .. } => out.extend_from_slice(seed.expose()),
        }
        SecretVec::new(out)
    }

    fn from_material(algorithm: Algorithm, material: &[u8]) -> Option<Self> {
        match algorithm {
            Algorithm::Es256 => {
                let (private, rest) = material.split_first_chunk::<32>()?;
                let (x, y) = rest.split_first_chunk::<32>()?;
                let y: [u8; 32] = y.try_into().ok()?;
                Some(Self::Es256 {
                    private: Secret::new(*private),
                    public: P256Point { x: *x, y },
                })
            }
            Algorithm::EdDsa => {
                let seed = Secret::<32>::from_slice(material)?;
                let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose()).ok()?;
                let public = pair.public_key().as_ref().try_into().ok()?;
                Some(Self::EdDsa { seed, public })
            }
        }
    }
}

/// Splits ring's generated P-256 PKCS#8 document into scalar and public point.
fn split_p256_pkcs8(doc: &[u8]) -> Result<(Secret<32>, P256Point), Error> {
    let layout = || Error::Internal("unexpected P-256 PKCS#8 layout");
    let rest = doc
        .strip_prefix(&P256_PKCS8_PREFIX[..])
        .ok_or_else(layout)?;
    let (private, rest) = rest.split_first_chunk::<32>().ok_or_else(layout)?;
    let public = rest
        .strip_prefix(&P256_PKCS8_MIDDLE[..])
        .ok_or_else(layout)?;
    let point = P256Point::from_sec1_uncompressed(public).map_err(|_| layout())?;
    Ok((Secret::new(*private), point))
}

/// Everything a credential ID carries.
pub struct CredentialSecrets {
    /// The private key.
    pub key: CredentialKey,
    /// Whether the credential is discoverable (its metadata lives in the state file).
    pub discoverable: bool,
    /// Whether hmac-secret was enabled at creation.
    pub hmac_secret: bool,
    /// The credProtect level.
    pub cred_protect: CredProtect,
}

impl CredentialSecrets {
    fn flags(&self) -> u8 {
        let level = self.cred_protect.level() as u8;
        u8::from(self.discoverable) | u8::from(self.hmac_secret) << 1 | level << 2
    }
}

/// Keys derived from the device secret: credential wrapping, sealing of the device's own
/// private keys in the state file, and hmac-secret's CredRandom.
pub struct DeviceKeys {
    wrap: LessSafeKey,
    state_seal: LessSafeKey,
    cred_random: hmac::Key,
}

/// The HKDF salt for every key derived from the device secret.
const HKDF_SALT: &[u8] = b"tokengate firmware-sim device keys v1";

impl DeviceKeys {
    /// Derives the keys (HKDF-SHA-256, one info string per key).
    pub fn derive(device_secret: &Secret<32>) -> Result<Self, Error> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(device_secret.expose());
        let wrap_info = [&b"credential-id wrapping"[..]];
        let okm = prk
            .expand(&wrap_info, &AES_256_GCM)
            .map_err(|_| Error::Internal("HKDF expand failed"))?;
        let wrap = LessSafeKey::new(UnboundKey::from(okm));
        let seal_info = [&b"state-file key sealing"[..]];
        let okm = prk
            .expand(&seal_info, &AES_256_GCM)
            .map_err(|_| Error::Internal("HKDF expand failed"))?;
        let state_seal = LessSafeKey::new(UnboundKey::from(okm));
        let random_info = [&b"hmac-secret CredRandom"[..]];
        let okm = prk
            .expand(&random_info, hmac::HMAC_SHA256)
            .map_err(|_| Error::Internal("HKDF expand failed"))?;
        Ok(Self {
            wrap,
            state_seal,
            cred_random: hmac::Key::from(okm),
        })
    }

    /// Seals a private key of the device (PKCS#8) for the state file: AES-256-GCM under a key
    /// derived from the device secret, bound to `field` (so keys cannot be swapped between
    /// fields). Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal_state_key(
        &self,
        rng: &dyn SecureRandom,
        field: &str,
        pkcs8: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| Error::Internal("random source failed"))?;
        let mut sealed = pkcs8.to_vec();
        self.state_seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(field.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Internal("AES-GCM seal failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`DeviceKeys::seal_state_key`] sealed for `field`; `None` if it does not
    /// open (another device secret, another field, tampered).
    pub fn open_state_key(&self, field: &str, sealed: &[u8]) -> Option<SecretVec> {
        let (nonce, ciphertext) = sealed.split_first_chunk::<NONCE_LEN>()?;
        let mut buffer = SecretVec::new(ciphertext.to_vec());
        let len = self
            .state_seal
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(field.as_bytes()),
                buffer.expose_mut(),
            )
            .ok()?
            .len();
        Some(SecretVec::new(buffer.expose().get(..len)?.to_vec()))
    }

    /// Wraps `secrets` into a credential ID bound to `rp_id_hash`.
    pub fn wrap(
        &self,
        rng: &dyn SecureRandom,
        rp_id_hash: &[u8; 32],
        secrets: &CredentialSecrets,
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| Error::Internal("random source failed"))?;
        let material = secrets.key.material();
        let mut sealed = Vec::with_capacity(2 + material.expose().len() + TAG_LEN);
        sealed.push(secrets.key.algorithm().tag());
        sealed.push(secrets.flags());
        sealed.extend_from_slice(material.expose());
        self.wrap
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(rp_id_hash),
                &mut sealed,
            )
            .map_err(|_| Error::Internal("AES-GCM seal failed"))?;
        let mut id = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        id.push(CREDENTIAL_ID_VERSION);
        id.extend_from_slice(&nonce);
        id.extend_from_slice(&sealed);
        Ok(id)
    }

    /// Opens a credential ID made by this device for `rp_id_hash`; `None` for anything else
    /// (another device, another RP, a tampered or foreign ID).
    pub fn unwrap(&self, rp_id_hash: &[u8; 32], id: &[u8]) -> Option<CredentialSecrets> {
        if id.len() != ES256_CREDENTIAL_ID_LEN && id.len() != EDDSA_CREDENTIAL_ID_LEN {
            return None;
        }
        let (&version, rest) = id.split_first()?;
        if version != CREDENTIAL_ID_VERSION {
            return None;
        }
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let mut buffer = SecretVec::new(sealed.to_vec());
        let plain = self
            .wrap
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(rp_id_hash),
                buffer.expose_mut(),
            )
            .ok()?;
        let (&[alg_tag, flags], material) = plain.split_first_chunk::<2>()?;
        let algorithm = Algorithm::ALL.into_iter().find(|a| a.tag() == alg_tag)?;
        let expected = match algorithm {
            Algorithm::Es256 => 96,
            Algorithm::EdDsa => 32,
        };
        if material.len() != expected || flags & !0x0F != 0 {
            return None;
        }
        Some(CredentialSecrets {
            key: CredentialKey::from_material(algorithm, material)?,
            discoverable: flags & 0x01 != 0,
            hmac_secret: flags & 0x02 != 0,
            cred_protect: CredProtect::from_level(u64::from(flags >> 2))?,
        })
    }

    /// hmac-secret's CredRandomWithUV / CredRandomWithoutUV for a credential (CTAP 2.1
    /// §12.5), derived from its ID so that non-discoverable credentials need no storage.
    pub fn cred_random(&self, credential_id: &[u8], uv: bool) -> Secret<32> {
        let mut context = hmac::Context::with_key(&self.cred_random);
        context.update(if uv { b"with-uv" } else { b"without-uv" });
        context.update(credential_id);
        let tag = context.sign();
        let mut out = [0u8; 32];
        for (slot, byte) in out.iter_mut().zip(tag.as_ref()) {
            *slot = *byte;
        }
        Secret::new(out)
    }
}

/// Generates a P-256 signing key (CA or attestation) as a PKCS#8 document.
pub fn generate_p256_pkcs8(rng: &dyn SecureRandom) -> Result<SecretVec, Error> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
        .map_err(|_| Error::Internal("P-256 key generation failed"))?;
    Ok(SecretVec::new(doc.as_ref().to_vec()))
}

/// Loads a P-256 signing key from PKCS#8.
pub fn load_p256_pkcs8(pkcs8: &[u8], rng: &dyn SecureRandom) -> Option<EcdsaKeyPair> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, rng).ok()
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    for (slot, byte) in out.iter_mut().zip(digest.as_ref()) {
        *slot = *byte;
    }
    out
}

/// HMAC-SHA-256.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    for (slot, byte) in out.iter_mut().zip(tag.as_ref()) {
        *slot = *byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};

    use super::*;

    fn verify(key: &CredentialKey, message: &[u8], signature: &[u8]) -> bool {
        match key.cose_key() {
            CoseKey::Es256(p) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, p.to_sec1_uncompressed())
                    .verify(message, signature)
                    .is_ok()
            }
            CoseKey::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
            CoseKey::EcdhEsHkdf256(_) => false,
        }
    }

    #[test]
    fn keys_sign_verifiably() {
        let rng = SystemRandom::new();
        for algorithm in Algorithm::ALL {
            let key = CredentialKey::generate(algorithm, &rng).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(key.cose_key().alg(), algorithm.cose());
            let sig = key.sign(&rng, b"message").unwrap();
            assert!(verify(&key, b"message", &sig));
            assert!(!verify(&key, b"massage", &sig));
        }
    }

    #[test]
    fn credential_ids_round_trip_and_bind_to_rp_and_device() {
        let rng = SystemRandom::new();
        let keys = DeviceKeys::derive(&Secret::new([1; 32])).unwrap();
        let other_device = DeviceKeys::derive(&Secret::new([2; 32])).unwrap();
        let rp = sha256(b"example.com");
        for (algorithm, len) in [
            (Algorithm::Es256, ES256_CREDENTIAL_ID_LEN),
            (Algorithm::EdDsa, EDDSA_CREDENTIAL_ID_LEN),
        ] {
            let secrets = CredentialSecrets {
                key: CredentialKey::generate(algorithm, &rng).unwrap(),
                discoverable: true,
                hmac_secret: true,
                cred_protect: CredProtect::Required,
            };
            let id = keys.wrap(&rng, &rp, &secrets).unwrap();
            assert_eq!(id.len(), len);
            assert!(id.len() <= MAX_CREDENTIAL_ID_LEN);
            let back = keys.unwrap(&rp, &id).unwrap();
            assert!(back.discoverable && back.hmac_secret);
            assert_eq!(back.cred_protect, CredProtect::Required);
            assert_eq!(back.key.cose_key(), secrets.key.cose_key());
            let sig = back.key.sign(&rng, b"m").unwrap();
            assert!(verify(&secrets.key, b"m", &sig));

            assert!(keys.unwrap(&sha256(b"evil.example"), &id).is_none());
            assert!(other_device.unwrap(&rp, &id).is_none());
            let mut tampered = id.clone();
            tampered[20] ^= 1;
            assert!(keys.unwrap(&rp, &tampered).is_none());
            assert!(keys.unwrap(&rp, &id[..id.len() - 1]).is_none());
            assert!(keys.unwrap(&rp, &[]).is_none());
        }
    }

    #[test]
    fn cred_random_depends_on_id_and_uv() {
        let keys = DeviceKeys::derive(&Secret::new([1; 32])).unwrap();
        let a = keys.cred_random(b"id-a", true);
        assert!(a.ct_eq(keys.cred_random(b"id-a", true).expose()));
        assert!(!a.ct_eq(keys.cred_random(b"id-a", false).expose()));
        assert!(!a.ct_eq(keys.cred_random(b"id-b", true).expose()));
    }

    #[test]
    fn signing_keys_load_from_pkcs8() {
        let rng = SystemRandom::new();
        let doc = generate_p256_pkcs8(&rng).unwrap();
        assert!(load_p256_pkcs8(doc.expose(), &rng).is_some());
        assert!(load_p256_pkcs8(&doc.expose()[1..], &rng).is_none());
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
