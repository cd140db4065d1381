//! Attestation certificates and the trust anchors they must lead to.
//!
//! * Packed attestation certificate requirements (WebAuthn L3 §8.2.1): X.509 v3; subject C,
//!   O, CN present and OU exactly "Authenticator Attestation"; Basic Constraints present
//!   with CA false; id-fido-gen-ce-aaguid (1.3.6.1.4.1.45724.1.1.4), if present, not
//!   critical and equal to the authData AAGUID.
//! * `fido-u2f` (WebAuthn L3 §8.6 step 2, U2F Raw Message Formats §4.3): one certificate
//!   whose key is EC P-256.
//! * The path (RFC 5280 §6.1, reduced to what attestation needs): `x5c` is leaf first, each
//!   certificate issued by the next (issuer name equals subject, signature verifies, the
//!   issuer is a CA that may sign certificates, within its path length); the path ends at a
//!   configured [`TrustAnchor`] — either one of its certificates *is* an anchor (direct
//!   trust, e.g. a simulator's attestation certificate), or the anchor issued the last one.
//!   Certificates carrying a critical extension other than Basic Constraints and Key Usage
//!   are refused (RFC 5280 §4.2). Validity periods are checked at a time the caller passes.
//!
//! Certificate signatures go to ring through an explicit allow-list: ECDSA with SHA-256 or
//! SHA-384 on P-256 or P-384, RSA PKCS #1 v1.5 with SHA-256/384/512 (2048–8192-bit keys),
//! and Ed25519. SHA-1 and RSA-PSS are refused.

use std::borrow::Cow;
use std::fmt;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use tokengate_ctap::auth_data::AAGUID_LEN;
use tokengate_ctap::cose::alg;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::prelude::{ASN1Time, FromDer, SubjectPublicKeyInfo, X509Version};

use super::Rejection;

/// The Yubico U2F Root CA (serial 457200631), which issues YubiKey attestation certificates.
/// PEM with a header naming its source; parse with [`TrustAnchor::from_pem`].
pub const YUBICO_U2F_ROOT_CA_PEM: &str = include_str!("yubico-u2f-root-ca.pem");

/// Most certificates accepted in `x5c`. WebAuthn sets no bound; YubiKeys send one, other
/// authenticators one intermediate at most, so four is tokengate's limit on the work.
pub const MAX_CERTIFICATE_CHAIN_LEN: usize = 4;

/// DER contents of the OID id-fido-gen-ce-aaguid, 1.3.6.1.4.1.45724.1.1.4 (WebAuthn L3
/// §8.2.1; FIDO Metadata Service).
const ID_FIDO_GEN_CE_AAGUID: [u8; 11] = [
    0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xe5, 0x1c, 0x01, 0x01, 0x04,
];

/// The Subject OU every packed attestation certificate carries (WebAuthn L3 §8.2.1).
const ATTESTATION_OU: &str = "Authenticator Attestation";

/// A trust anchor configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trust anchor: {0}")]
pub struct InvalidTrustAnchor(&'static str);

/// A certificate whose key the relying party trusts to vouch for authenticators: a vendor
/// root such as [`YUBICO_U2F_ROOT_CA_PEM`], a simulator's CA, or an attestation certificate
/// trusted directly.
#[derive(Clone)]
pub struct TrustAnchor {
    der: Vec<u8>,
    subject: String,
    subject_raw: Vec<u8>,
    key: OwnedKey,
    /// Basic Constraints CA and Key Usage (if present) allow signing certificates.
    may_issue: bool,
    path_len: Option<u32>,
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl TrustAnchor {
    /// A trust anchor from one DER certificate (nothing may follow it).
    pub fn from_der(der: &[u8]) -> Result<Self, InvalidTrustAnchor> {
        let cert = parse(der).map_err(|_| InvalidTrustAnchor("not one DER certificate"))?;
        let (kind, bytes) =
            key_of(cert.public_key()).map_err(|_| InvalidTrustAnchor("unsupported key"))?;
        let (may_issue, path_len) = match ca_constraints(&cert) {
            Ok(path_len) => (true, path_len),
            Err(_) => (false, None),
        };
        Ok(Self {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            subject_raw: cert.subject().as_raw().to_vec(),
            key: OwnedKey {
                kind,
                bytes: bytes.to_vec(),
            },
            may_issue,
            path_len,
        })
    }

    /// Every `CERTIFICATE` block of a PEM text (RFC 7468), at least one. Text outside the
    /// blocks is ignored; any other block label is an error.
    pub fn from_pem(pem: &str) -> Result<Vec<Self>, InvalidTrustAnchor> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let mut anchors = Vec::new();
        let mut body: Option<String> = None;
        for line in pem.lines().map(str::trim) {
            match &mut body {
                None if line == BEGIN => body = Some(String::new()),
                None if line.starts_with("-----") => {
                    return Err(InvalidTrustAnchor("PEM block is not a CERTIFICATE"));
                }
                None => {}
                Some(text) if line == END => {
                    let der = data_encoding::BASE64
                        .decode(text.as_bytes())
                        .map_err(|_| InvalidTrustAnchor("PEM body is not base64"))?;
                    anchors.push(Self::from_der(&der)?);
                    body = None;
                }
                Some(_) if line.starts_with("-----") => {
                    return Err(InvalidTrustAnchor("PEM block is not terminated"));
                }
                Some(text) => text.push_str(line),
            }
        }
        if body.is_some() {
            return Err(InvalidTrustAnchor("PEM block is not terminated"));
        }
        if anchors.is_empty() {
            return Err(InvalidTrustAnchor("no CERTIFICATE block in PEM"));
        }
        Ok(anchors)
    }

    /// The subject name, RFC 4514 style (`CN=…, O=…`): what registrations record.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Public key algorithms accepted in certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// id-ecPublicKey on prime256v1 (RFC 5480).
    P256,
    /// id-ecPublicKey on secp384r1 (RFC 5480).
    P384,
    /// id-Ed25519 (RFC 8410).
    Ed25519,
    /// rsaEncryption (RFC 8017).
    Rsa,
}

impl KeyKind {
    /// The COSE algorithm a signature by such a key would carry (for messages).
    fn cose_alg(self) -> i64 {
        match self {
            Self::P256 => alg::ES256,
            Self::P384 => -35,
            Self::Ed25519 => alg::EDDSA,
            Self::Rsa => -257,
        }
    }
}

#[derive(Debug, Clone)]
struct OwnedKey {
    kind: KeyKind,
    bytes: Vec<u8>,
}

/// Parses one DER certificate with nothing after it.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Rejection> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Rejection::UntrustedAttestation(
            "bytes after the certificate",
        )),
        Err(_) => Err(Rejection::UntrustedAttestation(
            "certificate does not parse",
        )),
    }
}

/// The key kind and the key bytes as ring takes them.
pub(crate) fn key_of<'c>(
    spki: &'c SubjectPublicKeyInfo<'_>,
) -> Result<(KeyKind, &'c [u8]), Rejection> {
    let algorithm = &spki.algorithm.algorithm;
    let kind = if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => KeyKind::P256,
            Some(c) if c == OID_NIST_EC_P384 => KeyKind::P384,
            _ => return Err(Rejection::UntrustedAttestation("unsupported EC curve")),
        }
    } else if *algorithm == OID_SIG_ED25519 {
        KeyKind::Ed25519
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        KeyKind::Rsa
    } else {
        return Err(Rejection::UntrustedAttestation(
            "unsupported public key algorithm",
        ));
    };
    if spki.subject_public_key.unused_bits != 0 {
        return Err(Rejection::UntrustedAttestation(
            "public key is not whole bytes",
        ));
    }
    Ok((kind, &spki.subject_public_key.data))
}

/// Verifies a signature made by a certificate's key for an attestation statement whose COSE
/// `alg` is `statement_alg` (ES256 or EdDSA; the key must be of the matching kind).
pub(crate) fn verify_with_certificate_key(
    cert: &X509Certificate<'_>,
    statement_alg: i64,
    message: &[u8],
    sig: &[u8],
) -> Result<(), Rejection> {
    let (kind, key) = key_of(cert.public_key())?;
    let algorithm: &dyn VerificationAlgorithm = match (statement_alg, kind) {
        (alg::ES256, KeyKind::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        (alg::EDDSA, KeyKind::Ed25519) => &signature::ED25519,
        (alg::ES256 | alg::EDDSA, other) => {
            return Err(Rejection::AlgorithmMismatch {
                statement: statement_alg,
                key: other.cose_alg(),
            });
        }
        (other, _) => return Err(Rejection::UnsupportedAlgorithm(other)),
    };
    UnparsedPublicKey::new(algorithm, key)
        .verify(message, sig)
        .map_err(|_| Rejection::BadSignature)
}

/// WebAuthn L3 §8.2.1: the requirements on a `packed` attestation certificate.
pub(crate) fn check_packed_certificate(
    cert: &X509Certificate<'_>,
    aaguid: &[u8; AAGUID_LEN],
) -> Result<(), Rejection> {
    let fail = Rejection::UntrustedAttestation;
    if cert.version() != X509Version::V3 {
        return Err(fail("attestation certificate is not X.509 v3"));
    }
    let subject = cert.subject();
    if subject.iter_country().next().is_none()
        || subject.iter_organization().next().is_none()
        || subject.iter_common_name().next().is_none()
    {
        return Err(fail("attestation certificate subject lacks C, O or CN"));
    }
    let mut units = subject.iter_organizational_unit();
    let ou_ok = matches!(
        (units.next().map(|ou| ou.as_str()), units.next()),
        (Some(Ok(ATTESTATION_OU)), None)
    );
    if !ou_ok {
        return Err(fail(
            "attestation certificate subject OU is not \"Authenticator Attestation\"",
        ));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if !bc.value.ca => {}
        Ok(Some(_)) => return Err(fail("attestation certificate is a CA")),
        Ok(None) => return Err(fail("attestation certificate lacks Basic Constraints")),
        Err(_) => return Err(fail("attestation certificate Basic Constraints invalid")),
    }
    let mut aaguid_extensions = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.as_bytes() == ID_FIDO_GEN_CE_AAGUID);
    match (aaguid_extensions.next(), aaguid_extensions.next()) {
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(fail("id-fido-gen-ce-aaguid appears twice")),
        (Some(ext), None) if ext.critical => Err(fail("id-fido-gen-ce-aaguid is critical")),
        (Some(ext), None) => {
            // extnValue holds an OCTET STRING of the 16-byte AAGUID: 04 10 <aaguid>.
            let inner = ext
                .value
                .strip_prefix(&[0x04, 0x10])
                .ok_or(fail("id-fido-gen-ce-aaguid is not a 16-byte OCTET STRING"))?;
            if inner.len() != AAGUID_LEN {
                return Err(fail("id-fido-gen-ce-aaguid is not a 16-byte OCTET STRING"));
            }
            if inner == aaguid {
                Ok(())
            } else {
                Err(Rejection::AaguidMismatch)
            }
        }
    }
}

/// WebAuthn L3 §8.6 step 2: a `fido-u2f` (and U2F) attestation key is EC P-256.
pub(crate) fn check_u2f_certificate(cert: &X509Certificate<'_>) -> Result<(), Rejection> {
    match key_of(cert.public_key())? {
        (KeyKind::P256, _) => Ok(()),
        _ => Err(Rejection::UntrustedAttestation(
            "U2F attestation key is not EC P-256",
        )),
    }
}

/// Validates `x5c` (leaf first) up to one of `anchors` and returns that anchor. With
/// `now` (Unix seconds), every certificate in `x5c` must be within its validity period.
pub(crate) fn verify_path<'t>(
    x5c: &[X509Certificate<'_>],
    anchors: &'t [TrustAnchor],
    now: Option<i64>,
) -> Result<&'t TrustAnchor, Rejection> {
    let fail = Rejection::UntrustedAttestation;
    if x5c.is_empty() {
        return Err(fail("no attestation certificate"));
    }
    if x5c.len() > MAX_CERTIFICATE_CHAIN_LEN {
        return Err(fail(
            "certificate chain longer than MAX_CERTIFICATE_CHAIN_LEN",
        ));
    }
    let at = now
        .map(ASN1Time::from_timestamp)
        .transpose()
        .map_err(|_| Rejection::CallerMisuse("time outside the X.509 range"))?;
    for cert in x5c {
        if at.is_some_and(|at| !cert.validity().is_valid_at(at)) {
            return Err(fail("certificate outside its validity period"));
        }
        check_critical_extensions(cert)?;
    }
    for (below, cert) in x5c.iter().enumerate() {
        if let Some(anchor) = anchors.iter().find(|a| a.der == cert.as_raw()) {
            return Ok(anchor);
        }
        // `below` counts the intermediates between the leaf and this certificate's issuer.
        if let Some(issuer) = x5c.get(below + 1) {
            if cert.issuer().as_raw() != issuer.subject().as_raw() {
                return Err(fail("issuer name does not match the next certificate"));
            }
            let path_len = ca_constraints(issuer)?;
            if path_len.is_some_and(|max| usize::try_from(max).is_ok_and(|max| max < below)) {
                return Err(fail("path length constraint exceeded"));
            }
            let (kind, key) = key_of(issuer.public_key())?;
            verify_certificate_signature(cert, kind, key)?;
            continue;
        }
        let issued_by = |anchor: &&TrustAnchor| {
            anchor.subject_raw == cert.issuer().as_raw()
                && anchor.may_issue
                && !anchor
                    .path_len
                    .is_some_and(|max| usize::try_from(max).is_ok_and(|max| max < below))
                && verify_certificate_signature(cert, anchor.key.kind, &anchor.key.bytes).is_ok()
        };
        return anchors
            .iter()
            .find(issued_by)
            .ok_or(fail("no configured trust anchor issued the chain"));
    }
    // The loop returns on its last iteration; `x5c` is not empty.
    Err(fail("no attestation certificate"))
}

/// An issuing certificate must be a v3 CA (Basic Constraints CA true) whose Key Usage, if
/// present, includes keyCertSign (RFC 5280 §4.2.1.3, §4.2.1.9). Returns pathLenConstraint.
fn ca_constraints(cert: &X509Certificate<'_>) -> Result<Option<u32>, Rejection> {
    let fail = Rejection::UntrustedAttestation;
    if cert.version() != X509Version::V3 {
        return Err(fail("issuing certificate is not X.509 v3"));
    }
    let path_len = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => bc.value.path_len_constraint,
        Ok(_) => return Err(fail("issuing certificate is not a CA")),
        Err(_) => return Err(fail("issuing certificate Basic Constraints invalid")),
    };
    match cert.key_usage() {
        Ok(None) => Ok(path_len),
        Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(path_len),
        Ok(Some(_)) => Err(fail("issuing certificate may not sign certificates")),
        Err(_) => Err(fail("issuing certificate Key Usage invalid")),
    }
}

/// RFC 5280 §4.2: a certificate with a critical extension the verifier does not process is
/// refused. Only Basic Constraints and Key Usage are processed here.
fn check_critical_extensions(cert: &X509Certificate<'_>) -> Result<(), Rejection> {
    let unknown_critical = cert.extensions().iter().any(|e| {
        e.critical && e.oid != OID_X509_EXT_BASIC_CONSTRAINTS && e.oid != OID_X509_EXT_KEY_USAGE
    });
    if unknown_critical {
        return Err(Rejection::UntrustedAttestation(
            "certificate has an unsupported critical extension",
        ));
    }
    Ok(())
}

/// Verifies `cert`'s signature with its issuer's key (through the algorithm allow-list).
fn verify_certificate_signature(
    cert: &X509Certificate<'_>,
    issuer_kind: KeyKind,
    issuer_key: &[u8],
) -> Result<(), Rejection> {
    let fail = Rejection::UntrustedAttestation;
    // RFC 5280 §4.1.1.2: signatureAlgorithm MUST equal the signature field in the TBS.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(fail("certificate signature algorithm fields differ"));
    }
    let oid = &cert.signature_algorithm.algorithm;
    let algorithm: &dyn VerificationAlgorithm = match issuer_kind {
        KeyKind::P256 if *oid == OID_SIG_ECDSA_WITH_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeyKind::P256 if *oid == OID_SIG_ECDSA_WITH_SHA384 => &signature::ECDSA_P256_SHA384_ASN1,
        KeyKind::P384 if *oid == OID_SIG_ECDSA_WITH_SHA256 => &signature::ECDSA_P384_SHA256_ASN1,
        KeyKind::P384 if *oid == OID_SIG_ECDSA_WITH_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        KeyKind::Ed25519 if *oid == OID_SIG_ED25519 => &signature::ED25519,
        KeyKind::Rsa if *oid == OID_PKCS1_SHA256WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA256,
        KeyKind::Rsa if *oid == OID_PKCS1_SHA384WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA384,
        KeyKind::Rsa if *oid == OID_PKCS1_SHA512WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(fail("unsupported certificate signature algorithm")),
    };
    if cert.signature_value.unused_bits != 0 {
        return Err(fail("certificate signature is not whole bytes"));
    }
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let sig: &Cow<'_, [u8]> = &cert.signature_value.data;
    UnparsedPublicKey::new(algorithm, issuer_key)
        .verify(tbs, sig)
        .map_err(|_| fail("certificate signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yubico_root_parses() {
        let anchors = TrustAnchor::from_pem(YUBICO_U2F_ROOT_CA_PEM).unwrap();
        assert_eq!(anchors.len(), 1);
        let root = &anchors[0];
        assert_eq!(root.subject(), "CN=Yubico U2F Root CA Serial 457200631");
        assert_eq!(root.key.kind, KeyKind::Rsa);
        assert!(root.may_issue);
        assert_eq!(root.path_len, Some(0));
        assert_eq!(
            data_encoding::HEXLOWER.encode(&super::super::crypto::sha256(root.der())),
            "0fa1386f80eb8713263ae5c1d84deb455bdf08aea50ab05503cefee82b092d42"
        );
        assert!(format!("{root:?}").contains("Yubico U2F Root CA"));
    }

    #[test]
    fn pem_errors() {
        let body: String = YUBICO_U2F_ROOT_CA_PEM
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            TrustAnchor::from_pem(&format!("{body}\n{body}"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            TrustAnchor::from_pem("").unwrap_err(),
            InvalidTrustAnchor("no CERTIFICATE block in PEM")
        );
        assert!(TrustAnchor::from_pem(&body.replace("END CERTIFICATE-----", "")).is_err());
        assert!(TrustAnchor::from_pem(&body.replace("MIIDHjCC", "MIIDHjC!")).is_err());
        assert!(TrustAnchor::from_pem(&body.replace("CERTIFICATE", "PRIVATE KEY")).is_err());
        assert!(TrustAnchor::from_der(&[0x30, 0x00]).is_err());
        let der = TrustAnchor::from_pem(&body).unwrap()[0].der().to_vec();
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(TrustAnchor::from_der(&trailing).is_err());
        assert!(TrustAnchor::from_der(&der).is_ok());
    }
}
