//! authenticatorData (WebAuthn L3 §6.1 "Authenticator Data"), the structure every FIDO2
//! signature covers.
//!
//! ```text
//! rpIdHash[32] | flags[1] | signCount[4, big-endian]
//!   | attestedCredentialData (iff AT):  aaguid[16] | credentialIdLength[2, BE]
//!                                       | credentialId | credentialPublicKey (COSE_Key)
//!   | extensions (iff ED):              CBOR map
//! ```
//!
//! Parsing is strict: AT and ED must match what is present, the embedded CBOR (COSE key and
//! extension map) must be CTAP2 canonical, and no byte may follow. Because of that, a parsed
//! value re-encodes to exactly the bytes it came from, and the verifier may check signatures
//! over [`AuthenticatorData::to_vec`] or over the received bytes alike. Semantic checks (UP
//! required, BS without BE, counters) are the verifier's.
//!
//! A FIDO U2F authentication's signed data begins with a valid 37-byte authenticatorData
//! (WebAuthn L3 §6.1.2 "FIDO U2F Signature Format Compatibility"); see
//! [`crate::u2f::AuthenticateResponse::to_auth_data`].

use crate::Error;
use crate::cbor::{self, DecodeOptions, Map, Value};
use crate::codec::Reader;
use crate::cose::CoseKey;

/// Length of the RP ID hash (SHA-256; WebAuthn L3 §6.1).
pub const RP_ID_HASH_LEN: usize = 32;
/// Length of an AAGUID (WebAuthn L3 §6.5.1).
pub const AAGUID_LEN: usize = 16;
/// Shortest authenticatorData: rpIdHash, flags and signCount (WebAuthn L3 §6.1).
pub const MIN_LEN: usize = RP_ID_HASH_LEN + 1 + 4;
/// Longest credential ID: "at most 1023 bytes long" (WebAuthn L3 §4 "Credential ID",
/// §6.5.1 credentialIdLength).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// Flag bits (WebAuthn L3 §6.1, table "flags"). Bits 1 and 5 are reserved (RFU).
pub mod flags {
    /// Bit 0, User Present.
    pub const UP: u8 = 0x01;
    /// Bit 2, User Verified.
    pub const UV: u8 = 0x04;
    /// Bit 3, Backup Eligibility.
    pub const BE: u8 = 0x08;
    /// Bit 4, Backup State.
    pub const BS: u8 = 0x10;
    /// Bit 6, Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Bit 7, Extension data included.
    pub const ED: u8 = 0x80;
    /// Bits 1 and 5, reserved for future use; preserved, not interpreted.
    pub const RFU: u8 = 0x22;
}

/// attestedCredentialData (WebAuthn L3 §6.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredentialData {
    /// The authenticator model's AAGUID.
    pub aaguid: [u8; AAGUID_LEN],
    /// The credential ID, at most [`MAX_CREDENTIAL_ID_LEN`] bytes.
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub credential_public_key: CoseKey,
}

/// Parsed authenticatorData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID (or of the U2F AppID).
    pub rp_id_hash: [u8; RP_ID_HASH_LEN],
    /// The flags byte as received. On encode, [`flags::AT`] and [`flags::ED`] are ignored
    /// here and set from `attested_credential_data` and `extensions` instead, so the output
    /// is always self-consistent; all other bits are written as given.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// Present iff AT is set.
    pub attested_credential_data: Option<AttestedCredentialData>,
    /// The authenticator extension outputs, present iff ED is set.
    pub extensions: Option<Map>,
}

impl AuthenticatorData {
    /// Whether the UP flag is set.
    pub fn user_present(&self) -> bool {
        self.flags & flags::UP != 0
    }

    /// Whether the UV flag is set.
    pub fn user_verified(&self) -> bool {
        self.flags & flags::UV != 0
    }

    /// Whether the BE flag is set.
    pub fn backup_eligible(&self) -> bool {
        self.flags & flags::BE != 0
    }

    /// Whether the BS flag is set.
    pub fn backed_up(&self) -> bool {
        self.flags & flags::BS != 0
    }

    /// The flags byte as it is encoded: `flags` with AT and ED derived from the content.
    pub fn encoded_flags(&self) -> u8 {
        let mut f = self.flags & !(flags::AT | flags::ED);
        if self.attested_credential_data.is_some() {
            f |= flags::AT;
        }
        if self.extensions.is_some() {
            f |= flags::ED;
        }
        f
    }

    /// Parses authenticatorData strictly (see the module docs).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let rp_id_hash = r.array("rpIdHash")?;
        let flags = r.u8("flags")?;
        let sign_count = r.u32_be("signCount")?;

        let attested_credential_data = if flags & flags::AT != 0 {
            let aaguid = r.array("aaguid")?;
            let id_len = usize::from(r.u16_be("credentialIdLength")?);
            if id_len > MAX_CREDENTIAL_ID_LEN {
                return Err(Error::LimitExceeded("credentialIdLength"));
            }
            let credential_id = r.take(id_len, "credentialId")?.to_vec();
            let key = embedded_cbor(&mut r, "credentialPublicKey")?;
            Some(AttestedCredentialData {
                aaguid,
                credential_id,
                credential_public_key: CoseKey::from_value(&key)?,
            })
        } else {
            None
        };

        let extensions = if flags & flags::ED != 0 {
            let value = embedded_cbor(&mut r, "extensions")?;
            match value {
                Value::Map(map) => Some(map),
                _ => return Err(Error::UnexpectedType("extensions")),
            }
        } else {
            None
        };

        if !r.is_empty() {
            // Bytes left: either a structure whose flag is clear, or plain garbage.
            return Err(
                match (attested_credential_data.is_some(), extensions.is_some()) {
                    (false, false) if looks_like_attested_data(r.rest()) => {
                        Error::InconsistentFlags("AT")
                    }
                    (_, false) if cbor::decode(r.rest()).is_ok_and(|v| v.as_map().is_some()) => {
                        Error::InconsistentFlags("ED")
                    }
                    _ => Error::TrailingBytes(r.rest().len()),
                },
            );
        }
        r.finish()?;
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential_data,
            extensions,
        })
    }

    /// Appends the encoding (see [`AuthenticatorData::flags`] for AT/ED).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rp_id_hash);
        out.push(self.encoded_flags());
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(acd) = &self.attested_credential_data {
            out.extend_from_slice(&acd.aaguid);
            // A longer ID cannot be represented; the length is clamped and the decoder of
            // the output will refuse it. Construct IDs within MAX_CREDENTIAL_ID_LEN.
            let len = u16::try_from(acd.credential_id.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&acd.credential_id);
            acd.credential_public_key.encode(out);
        }
        if let Some(ext) = &self.extensions {
            Value::Map(ext.clone()).encode(out);
        }
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// One canonical CBOR item from the front of the reader.
fn embedded_cbor(r: &mut Reader<'_>, what: &'static str) -> Result<Value, Error> {
    let (value, used) = cbor::decode_prefix(r.rest(), DecodeOptions::CTAP2).map_err(|e| {
        if e == cbor::CborError::Truncated {
            Error::Truncated(what)
        } else {
            Error::Cbor(e)
        }
    })?;
    r.advance(used, what)?;
    Ok(value)
}

/// Heuristic for a better error only: do the leftovers parse as attestedCredentialData?
fn looks_like_attested_data(rest: &[u8]) -> bool {
    let mut r = Reader::new(rest);
    let parsed = (|| -> Result<(), Error> {
        r.array::<AAGUID_LEN>("aaguid")?;
        let n = usize::from(r.u16_be("credentialIdLength")?);
        r.take(n, "credentialId")?;
        CoseKey::from_value(&embedded_cbor(&mut r, "credentialPublicKey")?).map(|_| ())
    })();
    parsed.is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::cose::tests::arb_cose_key;
    use crate::test_util::hex;

    /// W3C WebAuthn L3 test vector "none.ES256", registration authenticatorData.
    pub(crate) const W3C_NONE_ES256_AUTH_DATA: &str = "\
        bfabc37432958b063360d3ad6461c9c4735ae7f8edd46592a5e0f01452b2e4b5\
        59 00000000 8446ccb9ab1db374750b2367ff6f3a1f 0020\
        f91f391db4c9b2fde0ea70189cba3fb63f579ba6122b33ad94ff3ec330084be4\
        a5010203262001215820afefa16f97ca9b2d23eb86ccb64098d20db90856062eb2\
        49c33a9b672f26df61225820930a56b87a2fca66334b03458abf879717c12cc68e\
        d73290af2e2664796b9220";

    #[test]
    fn parses_registration_auth_data() {
        let bytes = hex(W3C_NONE_ES256_AUTH_DATA);
        let ad = AuthenticatorData::decode(&bytes).unwrap();
        assert_eq!(ad.flags, 0x59);
        assert!(ad.user_present() && !ad.user_verified() && ad.backup_eligible());
        assert!(ad.backed_up());
        assert_eq!(ad.sign_count, 0);
        let acd = ad.attested_credential_data.as_ref().unwrap();
        assert_eq!(acd.aaguid[..], hex("8446ccb9ab1db374750b2367ff6f3a1f")[..]);
        assert_eq!(acd.credential_id.len(), 32);
        assert!(matches!(acd.credential_public_key, CoseKey::Es256(_)));
        assert_eq!(ad.extensions, None);
        assert_eq!(ad.to_vec(), bytes);
    }

    #[test]
    fn tampered_variants_fail() {
        let bytes = hex(W3C_NONE_ES256_AUTH_DATA);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            AuthenticatorData::decode(&trailing),
            Err(Error::TrailingBytes(1))
        );

        for cut in [0, 36, 37, 52, 54, 60, bytes.len() - 1] {
            assert!(
                matches!(
                    AuthenticatorData::decode(&bytes[..cut]),
                    Err(Error::Truncated(_))
                ),
                "cut at {cut}"
            );
        }

        let mut no_at = bytes.clone();
        no_at[32] &= !flags::AT;
        assert_eq!(
            AuthenticatorData::decode(&no_at),
            Err(Error::InconsistentFlags("AT"))
        );

        let mut ed_without_data = bytes.clone();
        ed_without_data[32] |= flags::ED;
        assert_eq!(
            AuthenticatorData::decode(&ed_without_data),
            Err(Error::Truncated("extensions"))
        );

        let mut assertion = bytes[..37].to_vec();
        assertion[32] = flags::UP;
        let mut with_ext = assertion.clone();
        with_ext.extend_from_slice(&hex("a0"));
        assert_eq!(
            AuthenticatorData::decode(&with_ext),
            Err(Error::InconsistentFlags("ED"))
        );
        assertion[32] |= flags::AT;
        assert_eq!(
            AuthenticatorData::decode(&assertion),
            Err(Error::Truncated("aaguid"))
        );

        let mut long_id = bytes.clone();
        long_id[53..55].copy_from_slice(&1024u16.to_be_bytes());
        assert_eq!(
            AuthenticatorData::decode(&long_id),
            Err(Error::LimitExceeded("credentialIdLength"))
        );

        // The key's map header claims 6 entries: non-canonical or truncated CBOR.
        let mut bad_key = bytes.clone();
        bad_key[87] = 0xa6;
        assert!(AuthenticatorData::decode(&bad_key).is_err());
    }

    #[test]
    fn extensions_round_trip() {
        let ad = AuthenticatorData {
            rp_id_hash: [9; 32],
            flags: flags::UP | flags::UV,
            sign_count: 7,
            attested_credential_data: None,
            extensions: Some(Map::new().with("credProtect", 2)),
        };
        let bytes = ad.to_vec();
        assert_eq!(bytes[32], flags::UP | flags::UV | flags::ED);
        let back = AuthenticatorData::decode(&bytes).unwrap();
        assert_eq!(back.flags, flags::UP | flags::UV | flags::ED);
        assert_eq!(back.to_vec(), bytes);
    }

    pub(crate) fn arb_auth_data() -> impl Strategy<Value = AuthenticatorData> {
        let acd = (
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 0..80),
            arb_cose_key(),
        )
            .prop_map(|(aaguid, credential_id, credential_public_key)| {
                AttestedCredentialData {
                    aaguid,
                    credential_id,
                    credential_public_key,
                }
            });
        let ext = proptest::collection::vec(("[a-z-]{1,12}", any::<u8>()), 0..3)
            .prop_map(|entries| entries.into_iter().collect::<Map>());
        (
            any::<[u8; 32]>(),
            any::<u8>(),
            any::<u32>(),
            proptest::option::of(acd),
            proptest::option::of(ext),
        )
            .prop_map(
                |(rp_id_hash, f, sign_count, acd, extensions)| AuthenticatorData {
                    rp_id_hash,
                    // Decoded values always carry AT/ED as the content says.
                    flags: (f & !(flags::AT | flags::ED))
                        | if acd.is_some() { flags::AT } else { 0 }
                        | if extensions.is_some() { flags::ED } else { 0 },
                    sign_count,
                    attested_credential_data: acd,
                    extensions,
                },
            )
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(ad in arb_auth_data()) {
            let bytes = ad.to_vec();
            prop_assert_eq!(AuthenticatorData::decode(&bytes), Ok(ad));
        }

        #[test]
        fn decoded_bytes_re_encode_identically(
            bytes in proptest::collection::vec(any::<u8>(), 37..140)
        ) {
            if let Ok(ad) = AuthenticatorData::decode(&bytes) {
                prop_assert_eq!(ad.to_vec(), bytes);
            }
        }
    }
}
