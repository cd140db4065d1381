//! The simulator's attestation PKI: a self-signed CA created on first run and the
//! attestation certificate it issues, both P-256 / ecdsa-with-SHA256, written as DER by
//! hand (`der`). The CA is exported as PEM for relying parties' trust stores.
//!
//! The attestation certificate follows WebAuthn L3 §8.2.1 "Certificate Requirements for
//! Packed Attestation Statements": X.509 v3; subject C, O, OU = "Authenticator Attestation",
//! CN; Basic Constraints CA = FALSE; the non-critical id-fido-gen-ce-aaguid extension
//! (1.3.6.1.4.1.45724.1.1.4, the AAGUID as an OCTET STRING inside the extension's OCTET
//! STRING). Like a real YubiKey 5 leaf (fido.md §4) it also carries the FIDO U2F
//! transports extension (USB) and is issued directly by the root. The same leaf signs U2F
//! registrations (`fido-u2f`).
//!
//! Why hand-written DER rather than rcgen: two fixed certificate shapes need ~150 lines of
//! encoder, whereas rcgen would bring `yasna`, `pem` and `time` for features we do not use,
//! and the exact bytes (OU, extension encodings) are easier to audit here.
//!
//! What it will not do: no parsing, no chain validation (relying parties do that), no
//! clock — validity is fixed (2024-01-01 to 9999-12-31, RFC 5280 §4.1.2.5 "no well-defined
//! expiration").

use data_encoding::BASE64;
use ring::rand::SecureRandom;
use ring::signature::{EcdsaKeyPair, KeyPair};

use crate::Error;
use crate::crypto::{generate_p256_pkcs8, load_p256_pkcs8, sha256};
use crate::der;
use crate::secret::SecretVec;

/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// id-ecPublicKey (RFC 5480 §2.1.1).
const ID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
/// secp256r1 / prime256v1 (RFC 5480 §2.1.1.1).
const SECP256R1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
/// X.520 attribute types.
const COUNTRY: &[u64] = &[2, 5, 4, 6];
const ORGANIZATION: &[u64] = &[2, 5, 4, 10];
const ORGANIZATIONAL_UNIT: &[u64] = &[2, 5, 4, 11];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
/// RFC 5280 §4.2.1 extensions.
const SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];
const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const AUTHORITY_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 35];
/// id-fido-gen-ce-aaguid (WebAuthn L3 §8.2.1).
const FIDO_GEN_CE_AAGUID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];
/// FIDO U2F transports extension (FIDO U2F Authenticator Transports Extension v1.2).
const FIDO_U2F_TRANSPORTS: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 2, 1, 1];

/// The subject OU the packed attestation requirements demand.
pub const ATTESTATION_OU: &str = "Authenticator Attestation";
/// Country of both subjects (PrintableString).
const COUNTRY_CODE: &str = "US";
/// Organization of both subjects.
const ORGANIZATION_NAME: &str = "tokengate";

/// A freshly issued CA and attestation certificate with their PKCS#8 keys.
pub struct Pki {
    /// The CA's private key (PKCS#8).
    pub ca_key: SecretVec,
    /// The CA certificate (DER).
    pub ca_cert: Vec<u8>,
    /// The attestation private key (PKCS#8).
    pub attestation_key: SecretVec,
    /// The attestation certificate (DER), issued by the CA.
    pub attestation_cert: Vec<u8>,
}

impl Pki {
    /// Creates a CA and issues the attestation certificate for `aaguid`.
    pub fn create(rng: &dyn SecureRandom, aaguid: &[u8; 16]) -> Result<Self, Error> {
        let ca_key = generate_p256_pkcs8(rng)?;
        let ca_pair = load_p256_pkcs8(ca_key.expose(), rng)
            .ok_or(Error::Internal("fresh CA key rejected"))?;
        let attestation_key = generate_p256_pkcs8(rng)?;
        let attestation_pair = load_p256_pkcs8(attestation_key.expose(), rng)
            .ok_or(Error::Internal("fresh attestation key rejected"))?;

        let ca_serial = serial(rng)?;
        let label: String = ca_serial
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        let ca_name = name(&[
            (COUNTRY, Text::Printable(COUNTRY_CODE)),
            (ORGANIZATION, Text::Utf8(ORGANIZATION_NAME)),
            (ORGANIZATIONAL_UNIT, Text::Utf8("firmware-sim")),
            (
                COMMON_NAME,
                Text::Utf8(&format!("tokengate firmware-sim CA {label}")),
            ),
        ]);
        let ca_public = ca_pair.public_key().as_ref();
        let ca_key_id = key_identifier(ca_public);
        let ca_extensions = [
            extension(
                BASIC_CONSTRAINTS,
                true,
                &der::sequence(&[&der::boolean(true), &der::small_integer(0)]),
            ),
            // keyCertSign (5) and cRLSign (6): one byte 0b0000_0110, one unused bit.
            extension(
                KEY_USAGE,
                true,
                &der::tlv(der::tag::BIT_STRING, &[0x01, 0x06]),
            ),
            extension(
                SUBJECT_KEY_IDENTIFIER,
                false,
                &der::octet_string(&ca_key_id),
            ),
        ];
        let ca_tbs = tbs(&ca_serial, &ca_name, &ca_name, ca_public, &ca_extensions);
        let ca_cert = sign(&ca_tbs, &ca_pair, rng)?;

        let leaf_name = name(&[
            (COUNTRY, Text::Printable(COUNTRY_CODE)),
            (ORGANIZATION, Text::Utf8(ORGANIZATION_NAME)),
            (ORGANIZATIONAL_UNIT, Text::Utf8(ATTESTATION_OU)),
            (
                COMMON_NAME,
                Text::Utf8(&format!("tokengate firmware-sim EE {label}")),
            ),
        ]);
        let leaf_public = attestation_pair.public_key().as_ref();
        let leaf_extensions = [
            extension(BASIC_CONSTRAINTS, true, &der::sequence(&[])),
            extension(
                SUBJECT_KEY_IDENTIFIER,
                false,
                &der::octet_string(&key_identifier(leaf_public)),
            ),
            extension(
                AUTHORITY_KEY_IDENTIFIER,
                false,
                &der::sequence(&[&der::implicit_primitive(0, &ca_key_id)]),
            ),
            // uSB(2): one byte 0b0010_0000, five unused bits.
            extension(
                FIDO_U2F_TRANSPORTS,
                false,
                &der::tlv(der::tag::BIT_STRING, &[0x05, 0x20]),
            ),
            extension(FIDO_GEN_CE_AAGUID, false, &der::octet_string(aaguid)),
        ];
        let leaf_tbs = tbs(
            &serial(rng)?,
            &ca_name,
            &leaf_name,
            leaf_public,
            &leaf_extensions,
        );
        let attestation_cert = sign(&leaf_tbs, &ca_pair, rng)?;

        Ok(Self {
            ca_key,
            ca_cert,
            attestation_key,
            attestation_cert,
        })
    }
}

/// A certificate as PEM (RFC 7468 §5): base64 in 64-column lines.
pub fn pem(certificate_der: &[u8]) -> String {
    let body = BASE64.encode(certificate_der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

enum Text<'a> {
    Printable(&'a str),
    Utf8(&'a str),
}

/// A Name: one attribute per RDN, in the order given.
fn name(attributes: &[(&[u64], Text<'_>)]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attributes
        .iter()
        .map(|(oid, text)| {
            let value = match text {
                Text::Printable(s) => der::printable_string(s),
                Text::Utf8(s) => der::utf8_string(s),
            };
            der::set(&[&der::sequence(&[&der::oid(oid), &value])])
        })
        .collect();
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    der::sequence(&parts)
}

/// RFC 5280 §4.2.1.2 method-1 style identifier: the first 20 bytes of SHA-256 of the key.
fn key_identifier(public_key: &[u8]) -> Vec<u8> {
    sha256(public_key).iter().take(20).copied().collect()
}

fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = der::oid(oid);
    let value = der::octet_string(value);
    if critical {
        der::sequence(&[&id, &der::boolean(true), &value])
    } else {
        der::sequence(&[&id, &value])
    }
}

fn signature_algorithm() -> Vec<u8> {
    der::sequence(&[&der::oid(ECDSA_WITH_SHA256)])
}

/// TBSCertificate (RFC 5280 §4.1).
fn tbs(
    serial: &[u8],
    issuer: &[u8],
    subject: &[u8],
    public_key: &[u8],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let version = der::explicit(0, &der::small_integer(2));
    let validity = der::sequence(&[
        &der::time(2024, 1, 1, 0, 0, 0),
        &der::time(9999, 12, 31, 23, 59, 59),
    ]);
    let algorithm = der::sequence(&[&der::oid(ID_EC_PUBLIC_KEY), &der::oid(SECP256R1)]);
    let spki = der::sequence(&[&algorithm, &der::bit_string(public_key)]);
    let parts: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let extensions = der::explicit(3, &der::sequence(&parts));
    der::sequence(&[
        &version,
        &der::unsigned_integer(serial),
        &signature_algorithm(),
        issuer,
        &validity,
        subject,
        &spki,
        &extensions,
    ])
}

fn sign(tbs: &[u8], issuer_key: &EcdsaKeyPair, rng: &dyn SecureRandom) -> Result<Vec<u8>, Error> {
    let signature = issuer_key
        .sign(rng, tbs)
        .map_err(|_| Error::Internal("certificate signing failed"))?;
    Ok(der::sequence(&[
        tbs,
        &signature_algorithm(),
        &der::bit_string(signature.as_ref()),
    ]))
}

/// A positive 16-byte serial number (RFC 5280 §4.1.2.2: at most 20 octets).
fn serial(rng: &dyn SecureRandom) -> Result<[u8; 16], Error> {
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|_| Error::Internal("random source failed"))?;
    serial[0] = (serial[0] & 0x7F) | 0x40;
    Ok(serial)
}

#[cfg(test)]
pub(crate) mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    use super::*;

    /// A minimal DER reader for tests: (tag, content, rest).
    pub(crate) fn read(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (input[1] as usize, 2)
        } else {
            let n = (input[1] & 0x7F) as usize;
            let mut len = 0usize;
            for &b in &input[2..2 + n] {
                len = len << 8 | b as usize;
            }
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }

    /// The raw TBS bytes, the signature and the SubjectPublicKeyInfo point of a certificate.
    pub(crate) fn split_certificate(cert: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (tag, body, rest) = read(cert);
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (_, tbs_content, after_tbs) = read(body);
        let tbs_len = body.len() - after_tbs.len();
        let tbs = body[..tbs_len].to_vec();
        let (_, _alg, after_alg) = read(after_tbs);
        let (tag, sig, rest) = read(after_alg);
        assert_eq!((tag, sig[0], rest.len()), (0x03, 0, 0));
        // version, serial, sigalg, issuer, validity, subject, spki
        let mut fields = tbs_content;
        let mut spki = &[][..];
        for i in 0..7 {
            let (_, content, rest) = read(fields);
            if i == 6 {
                spki = content;
            }
            fields = rest;
        }
        let (_, _algorithm, key) = read(spki);
        let (_, key, _) = read(key);
        (tbs, sig[1..].to_vec(), key[1..].to_vec())
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn certificates_chain_and_carry_the_required_fields() {
        let rng = SystemRandom::new();
        let aaguid = [0xAB; 16];
        let pki = Pki::create(&rng, &aaguid).unwrap();
        let (ca_tbs, ca_sig, ca_key) = split_certificate(&pki.ca_cert);
        let (leaf_tbs, leaf_sig, leaf_key) = split_certificate(&pki.attestation_cert);
        let ca = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &ca_key);
        assert!(ca.verify(&ca_tbs, &ca_sig).is_ok(), "self-signed CA");
        assert!(ca.verify(&leaf_tbs, &leaf_sig).is_ok(), "leaf issued by CA");
        let mut tampered = leaf_tbs.clone();
        tampered[20] ^= 1;
        assert!(ca.verify(&tampered, &leaf_sig).is_err());
        assert_eq!(leaf_key[0], 0x04);

        assert!(contains(&pki.attestation_cert, ATTESTATION_OU.as_bytes()));
        let mut aaguid_ext = der::oid(FIDO_GEN_CE_AAGUID);
        aaguid_ext.extend(der::octet_string(&der::octet_string(&aaguid)));
        assert!(
            contains(&pki.attestation_cert, &aaguid_ext),
            "non-critical AAGUID extension"
        );
        let ca_false = [
            &der::oid(BASIC_CONSTRAINTS)[..],
            &[0x01, 0x01, 0xFF, 0x04, 0x02, 0x30, 0x00],
        ]
        .concat();
        assert!(contains(&pki.attestation_cert, &ca_false));
        assert!(!contains(&pki.ca_cert, ATTESTATION_OU.as_bytes()));

        let pem = pem(&pki.ca_cert);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }
}
