//! Attestation statements and the attestationObject.
//!
//! * `packed` (WebAuthn L3 §8.2): `{alg, sig, x5c?}`; without `x5c` it is self attestation,
//!   signed by the credential key itself.
//! * `fido-u2f` (WebAuthn L3 §8.6): `{sig, x5c: [one certificate]}`.
//! * `none` (WebAuthn L3 §8.7): `{}`.
//! * attestationObject (WebAuthn L3 §6.5.4): `{"fmt", "attStmt", "authData"}`; the CTAP2
//!   MakeCredential response carries the same three under integer keys 1–3
//!   ([`crate::ctap2::MakeCredentialResponse`]).
//!
//! Statements are closed structures: an unknown key is an error, as is any format other than
//! these three (a YubiKey 5 produces `packed` over CTAP2 and `fido-u2f`-convertible
//! registrations over U2F). Certificates and signatures stay opaque DER bytes; the verifier
//! parses and checks them. [`signed_data`] and [`fido_u2f_signed_data`] build the exact
//! bytes each format signs.

use crate::Error;
use crate::auth_data::{AuthenticatorData, RP_ID_HASH_LEN};
use crate::cbor::{self, Map, Value};
use crate::cose::CoseKey;

/// Attestation statement format identifiers (WebAuthn L3 §8, IANA "WebAuthn Attestation
/// Statement Format Identifiers").
pub mod fmt {
    /// WebAuthn L3 §8.2.
    pub const PACKED: &str = "packed";
    /// WebAuthn L3 §8.6.
    pub const FIDO_U2F: &str = "fido-u2f";
    /// WebAuthn L3 §8.7.
    pub const NONE: &str = "none";
}

/// Length of the client data hash (SHA-256; WebAuthn L3 §5.8.1, CTAP 2.1 §6.1).
pub const CLIENT_DATA_HASH_LEN: usize = 32;

/// An attestation statement of a supported format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationStatement {
    /// `packed`. An empty `x5c` means the key was absent: self attestation.
    Packed {
        /// COSE algorithm of the attestation signature.
        alg: i64,
        /// The signature over `authData ‖ clientDataHash`, DER for ECDSA.
        sig: Vec<u8>,
        /// Attestation certificate first, then CA certificates, each DER; empty for self
        /// attestation. Never encoded as an empty array (WebAuthn L3 §8.2 syntax).
        x5c: Vec<Vec<u8>>,
    },
    /// `fido-u2f`.
    FidoU2f {
        /// The signature over [`fido_u2f_signed_data`], DER ECDSA.
        sig: Vec<u8>,
        /// The single attestation certificate (DER); `x5c` on the wire.
        certificate: Vec<u8>,
    },
    /// `none`.
    None,
}

impl AttestationStatement {
    /// The format identifier ([`fmt`]).
    pub fn format(&self) -> &'static str {
        match self {
            Self::Packed { .. } => fmt::PACKED,
            Self::FidoU2f { .. } => fmt::FIDO_U2F,
            Self::None => fmt::NONE,
        }
    }

    /// Whether this is `packed` self attestation (no certificate chain).
    pub fn is_self_attestation(&self) -> bool {
        matches!(self, Self::Packed { x5c, .. } if x5c.is_empty())
    }

    /// Parses the `attStmt` value for the format `format`.
    pub fn from_value(format: &str, value: &Value) -> Result<Self, Error> {
        let map = value.as_map().ok_or(Error::UnexpectedType("attStmt"))?;
        let allowed: &[&str] = match format {
            fmt::PACKED => &["alg", "sig", "x5c"],
            fmt::FIDO_U2F => &["sig", "x5c"],
            fmt::NONE => &[],
            _ => return Err(Error::UnsupportedFormat),
        };
        let unknown = map
            .iter()
            .any(|(k, _)| !k.as_text().is_some_and(|k| allowed.contains(&k)));
        if unknown {
            return Err(Error::UnknownField("attStmt"));
        }
        match format {
            fmt::PACKED => {
                let x5c: Option<Vec<Vec<u8>>> = map
                    .get("x5c")
                    .map(|v| cbor::array_of(v, "x5c"))
                    .transpose()?;
                if x5c.as_ref().is_some_and(Vec::is_empty) {
                    return Err(Error::InvalidLength("x5c"));
                }
                Ok(Self::Packed {
                    alg: map.required("alg", "alg")?,
                    sig: map.required("sig", "sig")?,
                    x5c: x5c.unwrap_or_default(),
                })
            }
            fmt::FIDO_U2F => {
                let x5c: Vec<Vec<u8>> =
                    cbor::array_of(map.get("x5c").ok_or(Error::MissingField("x5c"))?, "x5c")?;
                let [certificate] =
                    <[Vec<u8>; 1]>::try_from(x5c).map_err(|_| Error::InvalidLength("x5c"))?;
                Ok(Self::FidoU2f {
                    sig: map.required("sig", "sig")?,
                    certificate,
                })
            }
            _ => Ok(Self::None),
        }
    }

    /// The `attStmt` map.
    pub fn to_value(&self) -> Value {
        let certs = |certs: &[Vec<u8>]| {
            Value::Array(certs.iter().map(|c| Value::Bytes(c.clone())).collect())
        };
        let map = match self {
            Self::Packed { alg, sig, x5c } => Map::new()
                .with("alg", *alg)
                .with("sig", sig.clone())
                .with_optional("x5c", (!x5c.is_empty()).then(|| certs(x5c))),
            Self::FidoU2f { sig, certificate } => Map::new()
                .with("sig", sig.clone())
                .with("x5c", certs(std::slice::from_ref(certificate))),
            Self::None => Map::new(),
        };
        Value::Map(map)
    }
}

/// An attestationObject (WebAuthn L3 §6.5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationObject {
    /// The authenticator data; with attested credential data for a registration.
    pub auth_data: AuthenticatorData,
    /// The attestation statement (its format is `fmt` on the wire).
    pub statement: AttestationStatement,
}

impl AttestationObject {
    /// Parses an attestationObject with text keys, CTAP2 canonical, nothing after it.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let value = cbor::decode(bytes)?;
        let map = value
            .as_map()
            .ok_or(Error::UnexpectedType("attestationObject"))?;
        let known = ["fmt", "attStmt", "authData"];
        if map
            .iter()
            .any(|(k, _)| !k.as_text().is_some_and(|k| known.contains(&k)))
        {
            return Err(Error::UnknownField("attestationObject"));
        }
        Self::from_parts(
            &map.required::<String>("fmt", "fmt")?,
            map.get("attStmt").ok_or(Error::MissingField("attStmt"))?,
            &map.required::<Vec<u8>>("authData", "authData")?,
        )
    }

    /// Builds the object from its three wire fields (shared with the CTAP2 response).
    pub fn from_parts(format: &str, att_stmt: &Value, auth_data: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            statement: AttestationStatement::from_value(format, att_stmt)?,
            auth_data: AuthenticatorData::decode(auth_data)?,
        })
    }

    /// The object as a CBOR map with text keys.
    pub fn to_value(&self) -> Value {
        Value::Map(
            Map::new()
                .with("fmt", self.statement.format())
                .with("attStmt", self.statement.to_value())
                .with("authData", self.auth_data.to_vec()),
        )
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_value().encode(out);
    }

    /// The canonical encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.to_value().to_vec()
    }
}

/// `authenticatorData ‖ clientDataHash`: what `packed` attestation and every assertion sign
/// (WebAuthn L3 §6.5.5, §8.2 "Signing procedure"; CTAP 2.1 §6.2.2).
pub fn signed_data(auth_data: &[u8], client_data_hash: &[u8; CLIENT_DATA_HASH_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(auth_data.len() + CLIENT_DATA_HASH_LEN);
    out.extend_from_slice(auth_data);
    out.extend_from_slice(client_data_hash);
    out
}

/// `0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ publicKeyU2F`: what a `fido-u2f`
/// attestation signs (WebAuthn L3 §8.6 verification steps 3–5). The credential must be
/// ES256; publicKeyU2F is its uncompressed point `0x04 ‖ x ‖ y`.
pub fn fido_u2f_signed_data(
    auth_data: &AuthenticatorData,
    client_data_hash: &[u8; CLIENT_DATA_HASH_LEN],
) -> Result<Vec<u8>, Error> {
    let acd = auth_data
        .attested_credential_data
        .as_ref()
        .ok_or(Error::MissingField("attestedCredentialData"))?;
    let CoseKey::Es256(point) = acd.credential_public_key else {
        return Err(Error::UnsupportedAlgorithm(acd.credential_public_key.alg()));
    };
    let mut out = Vec::with_capacity(1 + RP_ID_HASH_LEN + 32 + acd.credential_id.len() + 65);
    out.push(0x00);
    out.extend_from_slice(&auth_data.rp_id_hash);
    out.extend_from_slice(client_data_hash);
    out.extend_from_slice(&acd.credential_id);
    out.extend_from_slice(&point.to_sec1_uncompressed());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::auth_data::tests::{W3C_NONE_ES256_AUTH_DATA, arb_auth_data};
    use crate::test_util::hex;

    fn none_object() -> Vec<u8> {
        let mut out = hex("a3 63666d74 646e6f6e65 6761747453746d74 a0 68 6175746844617461 58a4");
        out.extend_from_slice(&hex(W3C_NONE_ES256_AUTH_DATA));
        out
    }

    #[test]
    fn none_object_round_trips() {
        let bytes = none_object();
        let obj = AttestationObject::decode(&bytes).unwrap();
        assert_eq!(obj.statement, AttestationStatement::None);
        assert_eq!(obj.to_vec(), bytes);
    }

    #[test]
    fn statement_shapes_are_enforced() {
        let sig = Value::Bytes(vec![0x30, 0]);
        let cert = Value::Bytes(vec![0x30, 1]);
        let two = Value::Array(vec![cert.clone(), cert.clone()]);
        let cases: Vec<(&str, Map, Error)> = vec![
            ("tpm", Map::new(), Error::UnsupportedFormat),
            (
                "none",
                Map::new().with("sig", sig.clone()),
                Error::UnknownField("attStmt"),
            ),
            (
                "packed",
                Map::new().with("sig", sig.clone()),
                Error::MissingField("alg"),
            ),
            (
                "packed",
                Map::new()
                    .with("alg", -7)
                    .with("sig", sig.clone())
                    .with("x5c", Vec::<Value>::new()),
                Error::InvalidLength("x5c"),
            ),
            (
                "packed",
                Map::new()
                    .with("alg", -7)
                    .with("sig", sig.clone())
                    .with("ecdaaKeyId", 1),
                Error::UnknownField("attStmt"),
            ),
            (
                "packed",
                Map::new().with("alg", "ES256").with("sig", sig.clone()),
                Error::UnexpectedType("alg"),
            ),
            (
                "fido-u2f",
                Map::new().with("sig", sig.clone()),
                Error::MissingField("x5c"),
            ),
            (
                "fido-u2f",
                Map::new().with("sig", sig.clone()).with("x5c", two),
                Error::InvalidLength("x5c"),
            ),
            (
                "fido-u2f",
                Map::new()
                    .with("sig", sig)
                    .with("x5c", Value::Array(vec![Value::from(1)])),
                Error::UnexpectedType("x5c"),
            ),
        ];
        for (format, map, err) in cases {
            assert_eq!(
                AttestationStatement::from_value(format, &Value::Map(map)),
                Err(err)
            );
        }
    }

    #[test]
    fn fido_u2f_signed_data_layout() {
        let ad = AuthenticatorData::decode(&hex(W3C_NONE_ES256_AUTH_DATA)).unwrap();
        let data = fido_u2f_signed_data(&ad, &[0xcd; 32]).unwrap();
        assert_eq!(data.len(), 1 + 32 + 32 + 32 + 65);
        assert_eq!(data[0], 0);
        assert_eq!(data[1..33], ad.rp_id_hash);
        assert_eq!(data[33..65], [0xcd; 32]);
        assert_eq!(data[97], 0x04);
        let mut no_acd = ad;
        no_acd.attested_credential_data = None;
        assert!(fido_u2f_signed_data(&no_acd, &[0; 32]).is_err());
    }

    fn arb_statement() -> impl Strategy<Value = AttestationStatement> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..24);
        prop_oneof![
            (
                any::<i64>(),
                bytes(),
                proptest::collection::vec(bytes(), 0..3)
            )
                .prop_map(|(alg, sig, x5c)| AttestationStatement::Packed {
                    alg,
                    sig,
                    x5c
                }),
            (bytes(), bytes())
                .prop_map(|(sig, certificate)| AttestationStatement::FidoU2f { sig, certificate }),
            Just(AttestationStatement::None),
        ]
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(statement in arb_statement(), auth_data in arb_auth_data()) {
            let obj = AttestationObject { auth_data, statement };
            let bytes = obj.to_vec();
            prop_assert_eq!(AttestationObject::decode(&bytes), Ok(obj));
        }
    }
}
