//! COSE_Key public keys: the three kinds a YubiKey 5 and the PIN protocols use.
//!
//! * ES256 credential keys: `{1: 2 (EC2), 3: -7, -1: 1 (P-256), -2: x, -3: y}`
//!   (RFC 9053 §2.1, §7.1.1; WebAuthn L3 §6.5.1.1 example).
//! * EdDSA credential keys: `{1: 1 (OKP), 3: -8, -1: 6 (Ed25519), -2: x}`
//!   (RFC 9053 §2.2, §7.2).
//! * The PIN/UV protocols' key-agreement key: `{1: 2, 3: -25 (ECDH-ES+HKDF-256), -1: 1,
//!   -2: x, -3: y}` (CTAP 2.1 §6.5.6 "getPublicKey()"; RFC 9053 §6.3.1).
//!
//! Parsing is closed and strict: the algorithm must be one of these three, the key type and
//! curve must match it, coordinates must be exactly 32 bytes, and no other labels may be
//! present (WebAuthn L3 §6.5.1.1: the credential public key "MUST contain the alg parameter
//! and MUST NOT contain any other OPTIONAL parameters"). Encoding is CTAP2 canonical, so a
//! key parsed from canonical bytes re-encodes to the same bytes.
//!
//! No cryptography happens here. [`CoseKey::public_key_bytes`] gives the key in the form
//! ring expects, for the verifier to check signatures with.

use crate::Error;
use crate::cbor::{self, FromValue, Map, Value};

/// COSE key common parameter and EC2/OKP parameter labels (RFC 9052 §7.1, RFC 9053 §7).
pub mod label {
    /// `kty`: key type.
    pub const KTY: i64 = 1;
    /// `alg`: algorithm.
    pub const ALG: i64 = 3;
    /// `crv`: curve (EC2 and OKP).
    pub const CRV: i64 = -1;
    /// `x`: x-coordinate (EC2) or public key (OKP).
    pub const X: i64 = -2;
    /// `y`: y-coordinate (EC2).
    pub const Y: i64 = -3;
}

/// COSE key types (RFC 9053 §7).
pub mod kty {
    /// Octet key pair (RFC 9053 §7.2).
    pub const OKP: i64 = 1;
    /// Elliptic curve with x and y coordinates (RFC 9053 §7.1).
    pub const EC2: i64 = 2;
}

/// COSE algorithm identifiers (IANA COSE Algorithms registry; RFC 9053).
pub mod alg {
    /// ECDSA with SHA-256 (RFC 9053 §2.1).
    pub const ES256: i64 = -7;
    /// EdDSA (RFC 9053 §2.2); with Ed25519 in WebAuthn.
    pub const EDDSA: i64 = -8;
    /// ECDH-ES + HKDF-256 (RFC 9053 §6.3.1), the PIN/UV protocols' key agreement.
    pub const ECDH_ES_HKDF_256: i64 = -25;
}

/// COSE elliptic curves (RFC 9053 §7.1).
pub mod curve {
    /// NIST P-256, EC2.
    pub const P256: i64 = 1;
    /// Ed25519, OKP.
    pub const ED25519: i64 = 6;
}

/// Length of a P-256 field element (SEC 1 §2.3.5; RFC 9053 §7.1.1).
pub const P256_COORDINATE_LEN: usize = 32;
/// Length of an Ed25519 public key (RFC 8032 §5.1.5).
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of an uncompressed SEC 1 P-256 point, `0x04 ‖ x ‖ y` (SEC 1 §2.3.3).
pub const P256_UNCOMPRESSED_LEN: usize = 1 + 2 * P256_COORDINATE_LEN;
/// The leading byte of an uncompressed SEC 1 point (SEC 1 §2.3.3).
pub const SEC1_UNCOMPRESSED_TAG: u8 = 0x04;

/// A P-256 public point as two big-endian coordinates. Not checked to be on the curve:
/// that is the crypto library's job when it uses the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct P256Point {
    /// x-coordinate, big-endian.
    pub x: [u8; P256_COORDINATE_LEN],
    /// y-coordinate, big-endian.
    pub y: [u8; P256_COORDINATE_LEN],
}

impl P256Point {
    /// Parses an uncompressed SEC 1 point `0x04 ‖ x ‖ y` (65 bytes), e.g. a U2F user
    /// public key (U2F Raw Message Formats §4.3).
    pub fn from_sec1_uncompressed(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; P256_UNCOMPRESSED_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidLength("P-256 public key"))?;
        let (tag, coordinates) = bytes.split_at(1);
        if tag != [SEC1_UNCOMPRESSED_TAG] {
            return Err(Error::InvalidValue("P-256 public key"));
        }
        let (x, y) = coordinates.split_at(P256_COORDINATE_LEN);
        Ok(Self {
            x: x.try_into().map_err(|_| Error::InvalidLength("x"))?,
            y: y.try_into().map_err(|_| Error::InvalidLength("y"))?,
        })
    }

    /// The uncompressed SEC 1 encoding `0x04 ‖ x ‖ y`, which is what
    /// `ring::signature::ECDSA_P256_SHA256_ASN1` and `ring::agreement::ECDH_P256` take.
    pub fn to_sec1_uncompressed(&self) -> [u8; P256_UNCOMPRESSED_LEN] {
        let mut out = [0u8; P256_UNCOMPRESSED_LEN];
        let (tag, rest) = out.split_at_mut(1);
        let (x, y) = rest.split_at_mut(P256_COORDINATE_LEN);
        tag.copy_from_slice(&[SEC1_UNCOMPRESSED_TAG]);
        x.copy_from_slice(&self.x);
        y.copy_from_slice(&self.y);
        out
    }
}

/// A COSE_Key of one of the supported kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseKey {
    /// An ES256 credential public key (alg -7, EC2, P-256).
    Es256(P256Point),
    /// An EdDSA credential public key (alg -8, OKP, Ed25519).
    Ed25519([u8; ED25519_PUBLIC_KEY_LEN]),
    /// A PIN/UV protocol key-agreement key (alg -25, EC2, P-256).
    EcdhEsHkdf256(P256Point),
}

impl CoseKey {
    /// The COSE algorithm identifier ([`alg`]).
    pub fn alg(&self) -> i64 {
        match self {
            Self::Es256(_) => alg::ES256,
            Self::Ed25519(_) => alg::EDDSA,
            Self::EcdhEsHkdf256(_) => alg::ECDH_ES_HKDF_256,
        }
    }

    /// The raw public key as ring takes it: uncompressed SEC 1 `0x04 ‖ x ‖ y` (65 bytes)
    /// for the P-256 keys, the 32-byte public key for Ed25519
    /// (`ring::signature::ED25519`).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            Self::Es256(p) | Self::EcdhEsHkdf256(p) => p.to_sec1_uncompressed().to_vec(),
            Self::Ed25519(x) => x.to_vec(),
        }
    }

    /// Parses a COSE_Key from CTAP2 canonical CBOR bytes, with nothing after it.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_value(&cbor::decode(bytes)?)
    }

    /// Parses a COSE_Key from a decoded CBOR value.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let map = value.as_map().ok_or(Error::UnexpectedType("COSE_Key"))?;
        // The algorithm decides which other labels must be there, so it is read first: an
        // RSA or Ed448 key fails here with the algorithm, not with its foreign parameters.
        let alg: i64 = map.required(label::ALG, "alg")?;
        let (want_kty, want_crv, labels) = match alg {
            alg::ES256 | alg::ECDH_ES_HKDF_256 => (kty::EC2, curve::P256, 5),
            alg::EDDSA => (kty::OKP, curve::ED25519, 4),
            other => return Err(Error::UnsupportedAlgorithm(other)),
        };
        if map.required::<i64>(label::KTY, "kty")? != want_kty {
            return Err(Error::InvalidValue("kty"));
        }
        let crv: i64 = map.required(label::CRV, "crv")?;
        if crv != want_crv {
            return Err(Error::UnsupportedAlgorithm(crv));
        }
        if map.len() != labels {
            return Err(Error::UnknownField("COSE_Key"));
        }
        let x: [u8; 32] = map.required(label::X, "x")?;
        if alg == alg::EDDSA {
            return Ok(Self::Ed25519(x));
        }
        let point = P256Point {
            x,
            y: map.required(label::Y, "y")?,
        };
        Ok(if alg == alg::ES256 {
            Self::Es256(point)
        } else {
            Self::EcdhEsHkdf256(point)
        })
    }

    /// The key as a CBOR map.
    pub fn to_value(&self) -> Value {
        let map = match self {
            Self::Es256(p) | Self::EcdhEsHkdf256(p) => Map::new()
                .with(label::KTY, kty::EC2)
                .with(label::CRV, curve::P256)
                .with(label::X, p.x)
                .with(label::Y, p.y),
            Self::Ed25519(x) => Map::new()
                .with(label::KTY, kty::OKP)
                .with(label::CRV, curve::ED25519)
                .with(label::X, *x),
        };
        Value::Map(map.with(label::ALG, self.alg()))
    }

    /// Appends the CTAP2 canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_value().encode(out);
    }

    /// The CTAP2 canonical encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.to_value().to_vec()
    }
}

impl FromValue for CoseKey {
    fn from_value(value: &Value, field: &'static str) -> Result<Self, Error> {
        if value.as_map().is_none() {
            return Err(Error::UnexpectedType(field));
        }
        CoseKey::from_value(value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::test_util::hex;

    /// The ES256 key from the W3C WebAuthn L3 "none.ES256" test vector.
    const W3C_ES256: &str = "a5010203262001215820afefa16f97ca9b2d23eb86ccb64098d20db90856062eb2\
                             49c33a9b672f26df61225820930a56b87a2fca66334b03458abf879717c12cc68e\
                             d73290af2e2664796b9220";

    #[test]
    fn es256_vector_round_trips() {
        let bytes = hex(W3C_ES256);
        let key = CoseKey::decode(&bytes).unwrap();
        let CoseKey::Es256(p) = key else {
            panic!("not ES256: {key:?}");
        };
        assert_eq!(
            p.x,
            hex("afefa16f97ca9b2d23eb86ccb64098d20db90856062eb249c33a9b672f26df61")[..]
        );
        assert_eq!(key.alg(), alg::ES256);
        assert_eq!(key.to_vec(), bytes);
        let raw = key.public_key_bytes();
        assert_eq!(raw.len(), 65);
        assert_eq!(raw[0], 0x04);
        assert_eq!(P256Point::from_sec1_uncompressed(&raw), Ok(p));
    }

    #[test]
    fn canonical_layouts_match_the_spec() {
        // fido.md §2.10: A5 01 02 03 26 20 01 21 58 20 <x> 22 58 20 <y>.
        let p = P256Point {
            x: [0x11; 32],
            y: [0x22; 32],
        };
        let es = CoseKey::Es256(p).to_vec();
        assert_eq!(es[..10], hex("a5 01 02 03 26 20 01 21 58 20")[..]);
        assert_eq!(es[42..45], hex("22 58 20")[..]);
        let ed = CoseKey::Ed25519([0x33; 32]).to_vec();
        assert_eq!(ed[..10], hex("a4 01 01 03 27 20 06 21 58 20")[..]);
        let ka = CoseKey::EcdhEsHkdf256(p).to_vec();
        assert_eq!(ka[..7], hex("a5 01 02 03 38 18 20")[..]);
    }

    #[test]
    fn rejects_malformed_keys() {
        let p = P256Point {
            x: [1; 32],
            y: [2; 32],
        };
        let good = CoseKey::Es256(p).to_value();
        let Value::Map(good) = good else {
            unreachable!()
        };
        let cases: Vec<(Map, Error)> = vec![
            (
                good.clone().with(label::ALG, -35),
                Error::UnsupportedAlgorithm(-35),
            ),
            (
                good.clone().with(label::KTY, kty::OKP),
                Error::InvalidValue("kty"),
            ),
            (
                good.clone().with(label::CRV, 2),
                Error::UnsupportedAlgorithm(2),
            ),
            (
                good.clone().with(label::X, vec![1u8; 31]),
                Error::InvalidLength("x"),
            ),
            (
                good.clone().with(label::Y, true),
                Error::UnexpectedType("y"),
            ),
            (
                good.clone().with(-4, vec![0u8; 32]),
                Error::UnknownField("COSE_Key"),
            ),
            (
                {
                    let mut m = good.clone();
                    m.remove(label::ALG);
                    m
                },
                Error::MissingField("alg"),
            ),
            (
                {
                    let mut m = good.clone();
                    m.remove(label::Y);
                    m.insert(-4, 0);
                    m
                },
                Error::MissingField("y"),
            ),
        ];
        for (map, err) in cases {
            assert_eq!(CoseKey::from_value(&Value::Map(map)), Err(err));
        }
        assert_eq!(
            CoseKey::from_value(&Value::from(1)),
            Err(Error::UnexpectedType("COSE_Key"))
        );
        // Non-canonical key order.
        let mut bytes = hex(W3C_ES256);
        bytes.swap(1, 3);
        bytes.swap(2, 4);
        assert!(matches!(CoseKey::decode(&bytes), Err(Error::Cbor(_))));
        assert_eq!(
            P256Point::from_sec1_uncompressed(&[0x02; 65]),
            Err(Error::InvalidValue("P-256 public key"))
        );
    }

    pub(crate) fn arb_cose_key() -> impl Strategy<Value = CoseKey> {
        let point = (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(x, y)| P256Point { x, y });
        prop_oneof![
            point.clone().prop_map(CoseKey::Es256),
            any::<[u8; 32]>().prop_map(CoseKey::Ed25519),
            point.prop_map(CoseKey::EcdhEsHkdf256),
        ]
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(key in arb_cose_key()) {
            prop_assert_eq!(CoseKey::decode(&key.to_vec()), Ok(key));
        }
    }
}
