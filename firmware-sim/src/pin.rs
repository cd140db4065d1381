//! PIN/UV auth protocols 1 and 2 from the authenticator's side (CTAP 2.1 §6.5.6 "PIN/UV
//! Auth Protocol One", §6.5.7 "PIN/UV Auth Protocol Two"; fido.md §2.5).
//!
//! * [`KeyAgreement`]: the authenticator's P-256 key-agreement key, one per protocol,
//!   generated at power-up and regenerated after a PIN mismatch and on reset (§6.5.5.1
//!   `regenerate()`). It is a `p256` key, not a ring one: ring only offers
//!   `EphemeralPrivateKey`, consumed by its first agreement, but the spec keeps the key
//!   until regenerated and clients rely on that — python-fido2 2.2.1 fetches the key once
//!   for the prf/hmac-secret extension, then gets a PIN token (same key), then sends
//!   GetAssertion with the extension input made under that first fetch. The same `p256`
//!   key with ring would fail that GetAssertion.
//! * [`SharedSecret`]: ECDH x-coordinate through the protocol's KDF (v1: SHA-256; v2:
//!   HKDF-SHA-256 into an HMAC key and an AES key), then `encrypt` / `decrypt`
//!   (AES-256-CBC: v1 IV = 0, v2 random IV prepended), `authenticate` / `verify` (HMAC-SHA-256,
//!   v1 truncated to 16 bytes).
//! * [`PinProtocol::verify_token`]: checks a pinUvAuthParam made with the pinUvAuthToken.
//!
//! What it will not do: no PIN policy, retry counting or token permissions (the
//! authenticator's ClientPIN handler owns those), no I/O.

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use ring::hkdf;
use ring::rand::SecureRandom;
use tokengate_ctap::cose::{CoseKey, P256Point};

use crate::Error;
use crate::crypto::{hmac_sha256, sha256};
use crate::secret::{Secret, SecretVec, ct_eq};

/// Length of the pinUvAuthToken (CTAP 2.1 §6.5.2.1: 32 bytes).
pub const PIN_TOKEN_LEN: usize = 32;
/// AES block length.
const BLOCK: usize = 16;
/// Protocol 1 truncates HMAC outputs to this many bytes (§6.5.6 `authenticate`).
const V1_MAC_LEN: usize = 16;
/// HKDF salt of protocol 2: 32 zero bytes (§6.5.7 `kdf`).
const V2_HKDF_SALT: [u8; 32] = [0; 32];

/// A PIN/UV auth protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinProtocol {
    /// Protocol 1.
    V1,
    /// Protocol 2.
    V2,
}

impl PinProtocol {
    /// The protocol for its wire number.
    pub fn from_wire(version: u64) -> Option<Self> {
        match version {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    /// `verify(pinUvAuthToken, message, signature)`: HMAC-SHA-256 with the token as key,
    /// compared in constant time on 16 (v1) or 32 (v2) bytes.
    pub fn verify_token(self, token: &Secret<PIN_TOKEN_LEN>, message: &[u8], param: &[u8]) -> bool {
        let mac = hmac_sha256(token.expose(), message);
        ct_eq(self.truncate(&mac), param)
    }

    /// `authenticate(pinUvAuthToken, message)`, the platform's side of `verify_token`.
    #[cfg(test)]
    pub fn authenticate_with_token(self, token: &[u8], message: &[u8]) -> Vec<u8> {
        self.truncate(&hmac_sha256(token, message)).to_vec()
    }

    fn truncate(self, mac: &[u8; 32]) -> &[u8] {
        match self {
            Self::V1 => mac.get(..V1_MAC_LEN).unwrap_or(mac),
            Self::V2 => mac,
        }
    }
}

/// The authenticator's key-agreement key for one protocol.
pub struct KeyAgreement {
    secret: p256::SecretKey,
}

impl KeyAgreement {
    /// A fresh key (`initialize()` / `regenerate()`).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        // A uniformly random 32-byte string is a valid scalar except with probability
        // about 2^-32; retry a few times rather than bias it.
        for _ in 0..8 {
            let candidate = Secret::<32>::random(rng)?;
            if let Ok(secret) = p256::SecretKey::from_slice(candidate.expose()) {
                return Ok(Self { secret });
            }
        }
        Err(Error::Internal(
            "no valid P-256 scalar from the random source",
        ))
    }

    /// `getPublicKey()`: the COSE key `{1: 2, 3: -25, -1: 1, -2: x, -3: y}`.
    pub fn public_cose(&self) -> Result<CoseKey, Error> {
        let point = p256::Sec1Point::from(self.secret.public_key());
        let point = P256Point::from_sec1_uncompressed(point.as_bytes())
            .map_err(|_| Error::Internal("P-256 public key encoding"))?;
        Ok(CoseKey::EcdhEsHkdf256(point))
    }

    /// `decapsulate(peerCoseKey)` followed by the protocol's `kdf`. `None` if the peer's
    /// key is not a P-256 point.
    pub fn shared_secret(&self, protocol: PinProtocol, peer: &CoseKey) -> Option<SharedSecret> {
        let point = match peer {
            CoseKey::EcdhEsHkdf256(point) | CoseKey::Es256(point) => point,
            CoseKey::Ed25519(_) => return None,
        };
        let public = p256::PublicKey::from_sec1_bytes(&point.to_sec1_uncompressed()).ok()?;
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), public.as_affine());
        let z = shared.raw_secret_bytes();
        Some(match protocol {
            PinProtocol::V1 => {
                let key = sha256(z);
                SharedSecret {
                    protocol,
                    hmac_key: Secret::new(key),
                    aes_key: Secret::new(key),
                }
            }
            PinProtocol::V2 => SharedSecret {
                protocol,
                hmac_key: hkdf_32(z, b"CTAP2 HMAC key")?,
                aes_key: hkdf_32(z, b"CTAP2 AES key")?,
            },
        })
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn hkdf_32(ikm: &[u8], info: &[u8]) -> Option<Secret<32>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &V2_HKDF_SALT).extract(ikm);
    let infos = [info];
    let okm = prk.expand(&infos, Len32).ok()?;
    let mut out = [0u8; 32];
    okm.fill(&mut out).ok()?;
    Some(Secret::new(out))
}

/// The secret shared with the platform for one command.
pub struct SharedSecret {
    protocol: PinProtocol,
    hmac_key: Secret<32>,
    aes_key: Secret<32>,
}

/// Why a ciphertext was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCiphertext;

impl SharedSecret {
    /// `encrypt(key, plaintext)`; `plaintext` must be whole AES blocks.
    pub fn encrypt(&self, rng: &dyn SecureRandom, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        if !plaintext.len().is_multiple_of(BLOCK) {
            return Err(Error::Internal(
                "PIN protocol plaintext is not whole blocks",
            ));
        }
        let iv = match self.protocol {
            PinProtocol::V1 => [0u8; BLOCK],
            PinProtocol::V2 => {
                let mut iv = [0u8; BLOCK];
                rng.fill(&mut iv)
                    .map_err(|_| Error::Internal("random source failed"))?;
                iv
            }
        };
        let mut buffer = plaintext.to_vec();
        let len = buffer.len();
        cbc::Encryptor::<Aes256>::new_from_slices(self.aes_key.expose(), &iv)
            .map_err(|_| Error::Internal("AES-CBC key length"))?
            .encrypt_padded::<NoPadding>(&mut buffer, len)
            .map_err(|_| Error::Internal("AES-CBC encryption"))?;
        Ok(match self.protocol {
            PinProtocol::V1 => buffer,
            PinProtocol::V2 => [&iv[..], &buffer].concat(),
        })
    }

    /// `decrypt(key, ciphertext)`: refused unless it is whole blocks (after the IV for v2).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretVec, BadCiphertext> {
        let (iv, body) = match self.protocol {
            PinProtocol::V1 => ([0u8; BLOCK], ciphertext),
            PinProtocol::V2 => {
                let (iv, body) = ciphertext
                    .split_first_chunk::<BLOCK>()
                    .ok_or(BadCiphertext)?;
                (*iv, body)
            }
        };
        if body.is_empty() || !body.len().is_multiple_of(BLOCK) {
            return Err(BadCiphertext);
        }
        let mut buffer = SecretVec::new(body.to_vec());
        cbc::Decryptor::<Aes256>::new_from_slices(self.aes_key.expose(), &iv)
            .map_err(|_| BadCiphertext)?
            .decrypt_padded::<NoPadding>(buffer.expose_mut())
            .map_err(|_| BadCiphertext)?;
        Ok(buffer)
    }

    /// `authenticate(key, message)`, the platform's side of `verify`.
    #[cfg(test)]
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol
            .truncate(&hmac_sha256(self.hmac_key.expose(), message))
            .to_vec()
    }

    /// `verify(key, message, signature)`, in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let mac = hmac_sha256(self.hmac_key.expose(), message);
        ct_eq(self.protocol.truncate(&mac), signature)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    /// The platform's half of the handshake: a second key agreeing with the authenticator's.
    pub(crate) fn platform_secret(
        authenticator: &KeyAgreement,
        protocol: PinProtocol,
    ) -> (CoseKey, SharedSecret) {
        let rng = SystemRandom::new();
        let platform = KeyAgreement::generate(&rng).unwrap();
        let secret = platform
            .shared_secret(protocol, &authenticator.public_cose().unwrap())
            .unwrap();
        (platform.public_cose().unwrap(), secret)
    }

    #[test]
    fn both_sides_derive_the_same_secret() {
        let rng = SystemRandom::new();
        let device = KeyAgreement::generate(&rng).unwrap();
        for protocol in [PinProtocol::V1, PinProtocol::V2] {
            let (platform_key, platform) = platform_secret(&device, protocol);
            let ours = device.shared_secret(protocol, &platform_key).unwrap();
            let ciphertext = platform.encrypt(&rng, &[0x42; 64]).unwrap();
            assert_eq!(
                ciphertext.len(),
                if protocol == PinProtocol::V1 { 64 } else { 80 }
            );
            assert_eq!(ours.decrypt(&ciphertext).unwrap().expose(), [0x42; 64]);
            let mac = platform.authenticate(b"message");
            assert_eq!(mac.len(), if protocol == PinProtocol::V1 { 16 } else { 32 });
            assert!(ours.verify(b"message", &mac));
            assert!(!ours.verify(b"massage", &mac));
            assert!(!ours.verify(b"message", &mac[..mac.len() - 1]));
            assert_eq!(
                ours.decrypt(&ciphertext[..ciphertext.len() - 1]).err(),
                Some(BadCiphertext)
            );
            assert!(ours.decrypt(&[]).is_err());
        }
    }

    #[test]
    fn protocol_one_matches_the_spec_construction() {
        // v1: key = SHA-256(Z), IV = 0, MAC = first 16 bytes of HMAC-SHA-256.
        let secret = SharedSecret {
            protocol: PinProtocol::V1,
            hmac_key: Secret::new([1; 32]),
            aes_key: Secret::new([1; 32]),
        };
        assert_eq!(
            secret.authenticate(b"x"),
            hmac_sha256(&[1; 32], b"x")[..16].to_vec()
        );
        let rng = SystemRandom::new();
        let a = secret.encrypt(&rng, &[0; 16]).unwrap();
        assert_eq!(a, secret.encrypt(&rng, &[0; 16]).unwrap(), "IV is zero");
        let token = Secret::new([3; 32]);
        let param = PinProtocol::V1.authenticate_with_token(token.expose(), b"cdh");
        assert!(PinProtocol::V1.verify_token(&token, b"cdh", &param));
        assert!(!PinProtocol::V2.verify_token(&token, b"cdh", &param));
    }

    #[test]
    fn foreign_keys_are_refused() {
        let rng = SystemRandom::new();
        let device = KeyAgreement::generate(&rng).unwrap();
        let off_curve = CoseKey::EcdhEsHkdf256(P256Point {
            x: [1; 32],
            y: [2; 32],
        });
        assert!(device.shared_secret(PinProtocol::V2, &off_curve).is_none());
        assert!(
            device
                .shared_secret(PinProtocol::V2, &CoseKey::Ed25519([0; 32]))
                .is_none()
        );
    }
}
