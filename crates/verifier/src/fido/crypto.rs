//! Signature checks with ring, for credential keys and certificate keys.
//!
//! Credential keys (WebAuthn L3 §5.8.5, COSE RFC 9053): ES256 — ECDSA P-256 with SHA-256,
//! ASN.1 DER signatures (WebAuthn L3 §6.5.5 "Signature Formats") — and EdDSA with Ed25519
//! (RFC 8032, 64-byte signatures).

use ring::digest;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
use tokengate_ctap::cose::CoseKey;

use super::Rejection;

/// SHA-256 (FIPS 180-4): clientDataHash, rpIdHash.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    // SHA-256 output is 32 bytes by definition, so the lengths always agree.
    out.copy_from_slice(digest.as_ref());
    out
}

/// Refuses credential keys other than ES256 and EdDSA (the PIN protocols' ECDH key parses
/// as a COSE key too, but it is no credential key).
pub(crate) fn check_credential_key(key: &CoseKey) -> Result<(), Rejection> {
    match key {
        CoseKey::Es256(_) | CoseKey::Ed25519(_) => Ok(()),
        other => Err(Rejection::UnsupportedAlgorithm(other.alg())),
    }
}

/// Verifies `signature` over `message` with a credential public key.
pub(crate) fn verify_credential_signature(
    key: &CoseKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Rejection> {
    let verified = match key {
        CoseKey::Es256(point) => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point.to_sec1_uncompressed())
                .verify(message, signature)
        }
        CoseKey::Ed25519(public) => {
            UnparsedPublicKey::new(&ED25519, public).verify(message, signature)
        }
        other => return Err(Rejection::UnsupportedAlgorithm(other.alg())),
    };
    verified.map_err(|_| Rejection::BadSignature)
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use tokengate_ctap::cose::P256Point;

    use super::*;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            data_encoding::HEXLOWER.encode(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn both_key_kinds_verify_and_refuse() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = P256Point::from_sec1_uncompressed(ec.public_key().as_ref()).unwrap();
        let sig = ec.sign(&rng, b"message").unwrap();
        let key = CoseKey::Es256(point);
        assert_eq!(
            verify_credential_signature(&key, b"message", sig.as_ref()),
            Ok(())
        );
        assert_eq!(
            verify_credential_signature(&key, b"messagE", sig.as_ref()),
            Err(Rejection::BadSignature)
        );

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = CoseKey::Ed25519(ed.public_key().as_ref().try_into().unwrap());
        let sig = ed.sign(b"message");
        assert_eq!(
            verify_credential_signature(&key, b"message", sig.as_ref()),
            Ok(())
        );
        assert_eq!(
            verify_credential_signature(&key, b"message", &sig.as_ref()[1..]),
            Err(Rejection::BadSignature)
        );

        let ecdh = CoseKey::EcdhEsHkdf256(point);
        assert_eq!(
            verify_credential_signature(&ecdh, b"message", sig.as_ref()),
            Err(Rejection::UnsupportedAlgorithm(-25))
        );
        assert_eq!(
            check_credential_key(&ecdh),
            Err(Rejection::UnsupportedAlgorithm(-25))
        );
    }
}
