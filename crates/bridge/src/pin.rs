//! The platform side of the PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6, §6.5.7;
//! python-fido2 `PinProtocolV1/V2`; fido.md §2.5).
//!
//! * Protocol 1: shared secret = SHA-256(Z); encrypt = AES-256-CBC with a zero IV;
//!   authenticate = the first 16 bytes of HMAC-SHA-256.
//! * Protocol 2: shared secret = HKDF-SHA-256(salt 32×00, Z, "CTAP2 HMAC key") ‖
//!   HKDF-SHA-256(salt 32×00, Z, "CTAP2 AES key"); encrypt = AES-256-CBC with a random IV
//!   prepended; authenticate = HMAC-SHA-256 with the HMAC half of the secret.
//!
//! Z is the x-coordinate of the ECDH P-256 product of an ephemeral platform key (ring
//! `agreement`) and the key's keyAgreement key. ring has ECDH, HKDF, HMAC and SHA-256 but no
//! unauthenticated CBC mode, so AES-256-CBC comes from RustCrypto `aes` + `cbc`.

use aes::Aes256;
use cbc::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{agreement, digest, hkdf, hmac};
use tokengate_ctap::cose::{CoseKey, P256Point};
use zeroize::Zeroizing;

use crate::error::{Error, ProtocolError};

/// AES block size, also the protocol-2 IV length (CTAP 2.1 §6.5.7).
pub const AES_BLOCK_LEN: usize = 16;
/// Protocol 1 truncates HMAC-SHA-256 to 16 bytes (CTAP 2.1 §6.5.6 "authenticate").
pub const PROTOCOL_ONE_AUTH_LEN: usize = 16;
/// The PIN is padded with zeros to 64 bytes before encryption (CTAP 2.1 §6.5.5.5 setPIN).
pub const PADDED_PIN_LEN: usize = 64;
/// Longest PIN in UTF-8 bytes: 63, so that the padded PIN ends in a zero (CTAP 2.1 §6.5.1).
pub const MAX_PIN_BYTES: usize = 63;
/// Shortest PIN in Unicode code points unless the key says more (CTAP 2.1 §6.4
/// minPINLength default).
pub const DEFAULT_MIN_PIN_LENGTH: u64 = 4;
/// pinHash = LEFT(SHA-256(PIN), 16) (CTAP 2.1 §6.5.5.7).
pub const PIN_HASH_LEN: usize = 16;

const HKDF_ZERO_SALT: [u8; 32] = [0; 32];
const HKDF_INFO_HMAC: &[u8] = b"CTAP2 HMAC key";
const HKDF_INFO_AES: &[u8] = b"CTAP2 AES key";
const KEY_LEN: usize = 32;

/// A PIN/UV auth protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinProtocol {
    /// pinUvAuthProtocol 1 (CTAP 2.1 §6.5.6; the only one of CTAP 2.0 keys).
    One,
    /// pinUvAuthProtocol 2 (CTAP 2.1 §6.5.7).
    Two,
}

impl PinProtocol {
    /// The number on the wire.
    pub fn number(self) -> u64 {
        match self {
            Self::One => 1,
            Self::Two => 2,
        }
    }

    /// The protocol for a wire number this crate implements.
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            1 => Some(Self::One),
            2 => Some(Self::Two),
            _ => None,
        }
    }

    /// The first protocol in the key's list (its order of preference, CTAP 2.1 §6.4) that
    /// this crate implements; protocol 1 when the key lists none.
    pub fn negotiate(supported: Option<&[u64]>) -> Option<Self> {
        match supported {
            None => Some(Self::One),
            Some(list) => list.iter().copied().find_map(Self::from_number),
        }
    }

    /// encapsulate(peerCoseKey): an ephemeral key pair, ECDH with the key's keyAgreement,
    /// and the KDF. Returns the platform's keyAgreement for the request and the secret.
    pub(crate) fn encapsulate(
        self,
        peer: &CoseKey,
        rng: &SystemRandom,
    ) -> Result<(CoseKey, SharedSecret), Error> {
        let peer_point = match peer {
            CoseKey::EcdhEsHkdf256(point) | CoseKey::Es256(point) => point,
            CoseKey::Ed25519(_) => {
                return Err(Error::unexpected("a keyAgreement key that is not P-256"));
            }
        };
        let crypto = |_| Error::unexpected("the PIN key agreement failed");
        let private =
            agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng).map_err(crypto)?;
        let public = private.compute_public_key().map_err(crypto)?;
        let platform = P256Point::from_sec1_uncompressed(public.as_ref())?;
        let peer_public = agreement::UnparsedPublicKey::new(
            &agreement::ECDH_P256,
            peer_point.to_sec1_uncompressed(),
        );
        let secret = agreement::agree_ephemeral(private, &peer_public, |z| self.kdf(z))
            .map_err(|_| Error::unexpected("the key's keyAgreement point is not on P-256"))?;
        Ok((CoseKey::EcdhEsHkdf256(platform), secret))
    }

    /// kdf(Z) (CTAP 2.1 §6.5.6, §6.5.7).
    pub(crate) fn kdf(self, z: &[u8]) -> SharedSecret {
        let bytes = match self {
            Self::One => Zeroizing::new(digest::digest(&digest::SHA256, z).as_ref().to_vec()),
            Self::Two => {
                let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &HKDF_ZERO_SALT).extract(z);
                let mut out = Zeroizing::new(vec![0u8; 2 * KEY_LEN]);
                let (hmac_key, aes_key) = out.split_at_mut(KEY_LEN);
                for (info, slot) in [(HKDF_INFO_HMAC, hmac_key), (HKDF_INFO_AES, aes_key)] {
                    // HKDF-SHA-256 can expand to 255 × 32 bytes; 32 always succeeds.
                    if let Ok(okm) = prk.expand(&[info], hkdf::HKDF_SHA256) {
                        let _ = okm.fill(slot);
                    }
                }
                out
            }
        };
        SharedSecret {
            protocol: self,
            bytes,
        }
    }

    /// encrypt(sharedSecret, plaintext); `plaintext` must be whole AES blocks.
    pub(crate) fn encrypt(
        self,
        secret: &SharedSecret,
        plaintext: &[u8],
        rng: &SystemRandom,
    ) -> Result<Vec<u8>, Error> {
        let mut iv = [0u8; AES_BLOCK_LEN];
        if self == Self::Two {
            rng.fill(&mut iv)
                .map_err(|_| Error::unexpected("the system random source failed"))?;
        }
        self.encrypt_with_iv(secret, &iv, plaintext)
    }

    fn encrypt_with_iv(
        self,
        secret: &SharedSecret,
        iv: &[u8; AES_BLOCK_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        if !plaintext.len().is_multiple_of(AES_BLOCK_LEN) {
            return Err(Error::InvalidRequest(
                "PIN protocol plaintext is not whole AES blocks".into(),
            ));
        }
        let mut cipher = cbc::Encryptor::<Aes256>::new_from_slices(secret.aes_key(), iv)
            .map_err(|_| Error::unexpected("AES key length"))?;
        let mut out = Vec::with_capacity(AES_BLOCK_LEN + plaintext.len());
        if self == Self::Two {
            out.extend_from_slice(iv);
        }
        let start = out.len();
        out.extend_from_slice(plaintext);
        let (blocks, _) = Block::<Aes256>::slice_as_chunks_mut(&mut out[start..]);
        cipher.encrypt_blocks(blocks);
        Ok(out)
    }

    /// decrypt(sharedSecret, ciphertext); the result is wiped on drop (it may be a token).
    pub(crate) fn decrypt(
        self,
        secret: &SharedSecret,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let malformed = || ProtocolError::Unexpected("an encrypted field that is not AES blocks");
        let (iv, body) = match self {
            Self::One => ([0u8; AES_BLOCK_LEN], ciphertext),
            Self::Two => {
                let (iv, body) = ciphertext
                    .split_first_chunk::<AES_BLOCK_LEN>()
                    .ok_or_else(malformed)?;
                (*iv, body)
            }
        };
        if !body.len().is_multiple_of(AES_BLOCK_LEN) {
            return Err(malformed().into());
        }
        let mut cipher = cbc::Decryptor::<Aes256>::new_from_slices(secret.aes_key(), &iv)
            .map_err(|_| Error::unexpected("AES key length"))?;
        let mut out = Zeroizing::new(body.to_vec());
        let (blocks, _) = Block::<Aes256>::slice_as_chunks_mut(&mut out);
        cipher.decrypt_blocks(blocks);
        Ok(out)
    }

    /// authenticate(key, message) with a raw key (a pinUvAuthToken).
    fn authenticate_with_key(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
        // An HMAC-SHA-256 tag is 32 bytes, so the 16-byte prefix exists.
        match self {
            Self::One => tag.as_ref()[..PROTOCOL_ONE_AUTH_LEN].to_vec(),
            Self::Two => tag.as_ref().to_vec(),
        }
    }

    /// authenticate(sharedSecret, message): protocol 2 uses the HMAC half of the secret.
    pub(crate) fn authenticate(self, secret: &SharedSecret, message: &[u8]) -> Vec<u8> {
        self.authenticate_with_key(secret.hmac_key(), message)
    }

    /// Checks a decrypted pinUvAuthToken's length: 16 or 32 bytes for protocol 1, 32 for
    /// protocol 2 (python-fido2 `validate_token`).
    fn check_token(self, token: &[u8]) -> Result<(), Error> {
        match (self, token.len()) {
            (Self::One, 16 | 32) | (Self::Two, 32) => Ok(()),
            _ => Err(Error::unexpected("a pinUvAuthToken of the wrong length")),
        }
    }
}

/// The secret both sides derive; wiped on drop. Protocol 1: 32 bytes used as both HMAC and
/// AES key. Protocol 2: HMAC key ‖ AES key.
pub(crate) struct SharedSecret {
    protocol: PinProtocol,
    bytes: Zeroizing<Vec<u8>>,
}

// `kdf` makes 32 bytes for protocol 1 and 64 for protocol 2, so these ranges exist.
impl SharedSecret {
    fn hmac_key(&self) -> &[u8] {
        &self.bytes[..KEY_LEN]
    }

    fn aes_key(&self) -> &[u8] {
        match self.protocol {
            PinProtocol::One => &self.bytes[..KEY_LEN],
            PinProtocol::Two => &self.bytes[KEY_LEN..],
        }
    }
}

/// A pinUvAuthToken: proof that the PIN was entered, valid for the permissions it was
/// asked with. No `Debug` of the secret; wiped on drop.
pub struct PinToken {
    protocol: PinProtocol,
    token: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinToken")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl PinToken {
    /// Decrypts the token field of a ClientPIN response.
    pub(crate) fn decrypt(
        protocol: PinProtocol,
        secret: &SharedSecret,
        encrypted: &[u8],
    ) -> Result<Self, Error> {
        let token = protocol.decrypt(secret, encrypted)?;
        protocol.check_token(&token)?;
        Ok(Self { protocol, token })
    }

    /// The protocol the token belongs to (goes into `pinUvAuthProtocol`).
    pub fn protocol(&self) -> PinProtocol {
        self.protocol
    }

    /// `pinUvAuthParam` for a request: authenticate(token, message), where `message` is the
    /// clientDataHash for MakeCredential and GetAssertion (CTAP 2.1 §6.1.2 step 11).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate_with_key(&self.token, message)
    }
}

/// LEFT(SHA-256(PIN), 16).
pub(crate) fn pin_hash(pin: &str) -> Zeroizing<Vec<u8>> {
    let digest = digest::digest(&digest::SHA256, pin.as_bytes());
    // A SHA-256 digest is 32 bytes.
    Zeroizing::new(digest.as_ref()[..PIN_HASH_LEN].to_vec())
}

/// The PIN padded with zeros to 64 bytes, after checking its length against the key's
/// minimum (code points) and the 63-byte maximum (CTAP 2.1 §6.5.5.5).
pub(crate) fn padded_pin(pin: &str, min_length: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    let code_points = u64::try_from(pin.chars().count()).unwrap_or(u64::MAX);
    let min_length = min_length.max(DEFAULT_MIN_PIN_LENGTH);
    if code_points < min_length {
        return Err(Error::PinPolicy(format!(
            "a PIN has at least {min_length} characters"
        )));
    }
    if pin.len() > MAX_PIN_BYTES {
        return Err(Error::PinPolicy(format!(
            "a PIN has at most {MAX_PIN_BYTES} bytes"
        )));
    }
    let mut padded = Zeroizing::new(vec![0u8; PADDED_PIN_LEN]);
    // `pin.len()` ≤ 63 < 64, checked above.
    padded[..pin.len()].copy_from_slice(pin.as_bytes());
    Ok(padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::HEXLOWER;

    fn hex(s: &str) -> Vec<u8> {
        HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    /// Z = 00 01 … 1f. Expected values computed independently with Python `cryptography`
    /// 48 (hashes.SHA256, HKDF(salt=32×00), Cipher(AES(key), CBC(iv)), hmac.HMAC); see
    /// docs/bridge.md "PIN protocol vectors".
    const Z: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn protocol_one_matches_an_independent_implementation() {
        let z = hex(Z);
        let secret = PinProtocol::One.kdf(&z);
        assert_eq!(
            secret.bytes.as_slice(),
            hex("630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd")
        );
        let plaintext = *b"0123456789abcdefPIN-HASH-16BYTES";
        let ct = PinProtocol::One
            .encrypt(&secret, &plaintext, &SystemRandom::new())
            .unwrap();
        assert_eq!(
            ct,
            hex("bdc7c4da533fe73304cf5dce350cb34e\
                 edd14967da223421d97b7d90913cb253")
        );
        assert_eq!(
            PinProtocol::One.decrypt(&secret, &ct).unwrap()[..],
            plaintext
        );
        assert_eq!(
            PinProtocol::One.authenticate(&secret, b"message"),
            hex("0e1ed6c97a5536d6813284ba23672f5a")
        );
    }

    #[test]
    fn protocol_two_matches_an_independent_implementation() {
        let z = hex(Z);
        let secret = PinProtocol::Two.kdf(&z);
        assert_eq!(
            secret.hmac_key(),
            hex("a689b3b92a6ebab91192408da9c4f05c674a2bc5f938d613077716c719a8df39")
        );
        assert_eq!(
            secret.aes_key(),
            hex("0f6ff2ef211829c11638ef2893ea02edf195658c0572393e7680d93bc2b58d44")
        );
        let iv = [0x11u8; 16];
        let plaintext = *b"0123456789abcdefPIN-HASH-16BYTES";
        let ct = PinProtocol::Two
            .encrypt_with_iv(&secret, &iv, &plaintext)
            .unwrap();
        assert_eq!(ct[..16], iv);
        assert_eq!(
            ct[16..],
            hex("4342dd808dd231a721eec4eba25342253a71cd790d38aa344fe71cb335f7284b")
        );
        assert_eq!(
            PinProtocol::Two.decrypt(&secret, &ct).unwrap()[..],
            plaintext
        );
        assert_eq!(
            PinProtocol::Two.authenticate(&secret, b"message"),
            hex("8ed41fb06108031d3e97613e4eb730eb882d7acdd3156b2abf9bc87cd0a9489d")
        );
    }

    #[test]
    fn tampered_vectors_do_not_match() {
        let mut z = hex(Z);
        z[0] ^= 1;
        assert_ne!(
            PinProtocol::One.kdf(&z).bytes.as_slice(),
            hex("630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd")
        );
    }

    #[test]
    fn encapsulation_agrees_with_the_other_side() {
        let rng = SystemRandom::new();
        for protocol in [PinProtocol::One, PinProtocol::Two] {
            // The key's side, with its own ephemeral key.
            let key_private =
                agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
            let key_public = key_private.compute_public_key().unwrap();
            let key_cose = CoseKey::EcdhEsHkdf256(
                P256Point::from_sec1_uncompressed(key_public.as_ref()).unwrap(),
            );
            let (platform_cose, platform_secret) = protocol.encapsulate(&key_cose, &rng).unwrap();
            let platform_public = agreement::UnparsedPublicKey::new(
                &agreement::ECDH_P256,
                platform_cose.public_key_bytes(),
            );
            let key_secret =
                agreement::agree_ephemeral(key_private, &platform_public, |z| protocol.kdf(z))
                    .unwrap();
            assert_eq!(platform_secret.bytes, key_secret.bytes);

            let padded = padded_pin("1234", 4).unwrap();
            let ct = protocol.encrypt(&platform_secret, &padded, &rng).unwrap();
            assert_eq!(protocol.decrypt(&key_secret, &ct).unwrap(), padded);
        }
    }

    #[test]
    fn refuses_bad_points_and_lengths() {
        let rng = SystemRandom::new();
        let off_curve = CoseKey::EcdhEsHkdf256(P256Point {
            x: [1; 32],
            y: [2; 32],
        });
        assert!(PinProtocol::Two.encapsulate(&off_curve, &rng).is_err());
        let secret = PinProtocol::Two.kdf(&[0; 32]);
        assert!(PinProtocol::Two.decrypt(&secret, &[0; 15]).is_err());
        assert!(PinProtocol::Two.decrypt(&secret, &[0; 33]).is_err());
        assert!(PinProtocol::One.decrypt(&secret, &[0; 17]).is_err());
        assert!(PinProtocol::One.encrypt(&secret, &[0; 17], &rng).is_err());
        assert!(PinToken::decrypt(PinProtocol::Two, &secret, &[0; 32]).is_err());
    }

    #[test]
    fn pins_are_checked_and_padded() {
        assert!(matches!(padded_pin("123", 4), Err(Error::PinPolicy(_))));
        assert!(matches!(padded_pin("12345", 6), Err(Error::PinPolicy(_))));
        assert!(matches!(
            padded_pin(&"1".repeat(64), 4),
            Err(Error::PinPolicy(_))
        ));
        // Four code points, eight bytes.
        let padded = padded_pin("ééé€", 4).unwrap();
        assert_eq!(padded.len(), 64);
        assert_eq!(&padded[..9], "ééé€".as_bytes());
        assert!(padded[9..].iter().all(|&b| b == 0));
        assert_eq!(pin_hash("1234").len(), 16);
    }

    #[test]
    fn negotiation_follows_the_keys_order() {
        assert_eq!(
            PinProtocol::negotiate(Some(&[2, 1])),
            Some(PinProtocol::Two)
        );
        assert_eq!(
            PinProtocol::negotiate(Some(&[1, 2])),
            Some(PinProtocol::One)
        );
        assert_eq!(
            PinProtocol::negotiate(Some(&[3, 1])),
            Some(PinProtocol::One)
        );
        assert_eq!(PinProtocol::negotiate(Some(&[3])), None);
        assert_eq!(PinProtocol::negotiate(None), Some(PinProtocol::One));
    }
}
