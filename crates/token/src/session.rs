//! Session tokens: the `SessionToken` of temporary credentials is a JWT (RFC 7519) signed
//! with Ed25519 (`alg` `EdDSA`, RFC 8037), with the signing key named by `kid` and its public
//! half published as a JWK Set (RFC 7517) at `/.well-known/jwks.json`.
//!
//! The token carries everything needed to authenticate a request made with the temporary
//! credentials — the principal, the temporary access key id, the validity window and the
//! MFA context — so that any replica holding the public keys and the derivation key
//! ([`crate::keys::DerivationKey`]) verifies it without a per-session row (DESIGN.md).
//! Expiry is checked against the `now` the caller passes, never the wall clock.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use ring::rand::SecureRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::arn::Principal;
use crate::secret::{Secret, constant_time_eq};

/// The `iss` claim of every tokengate session token.
pub const ISSUER: &str = "tokengate";
/// Session tokens longer than this are refused before any parsing (the longest token we
/// issue is a few hundred bytes; AWS's model gives no maximum).
pub const MAX_TOKEN_LEN: usize = 8192;

/// How the second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaMethod {
    /// A TOTP code (virtual or hardware OATH device).
    Totp,
    /// A FIDO2 (CTAP2 / WebAuthn) assertion.
    Fido2,
    /// A U2F (CTAP1) authentication.
    U2f,
}

/// The MFA context of a session (the source of `aws:MultiFactorAuthPresent` and
/// `aws:MultiFactorAuthAge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MfaContext {
    /// Whether a second factor was verified when the session was created.
    pub present: bool,
    /// How, when present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method: Option<MfaMethod>,
    /// The device serial number, when present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<String>,
    /// When the factor was verified (seconds since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
}

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The principal's ARN.
    pub sub: String,
    /// The temporary access key id (`ASIA…`) the token belongs to.
    pub akid: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: i64,
    /// The principal, structured.
    pub principal: Principal,
    /// The long-term access key id the session was created with.
    pub src: String,
    /// The MFA context.
    pub mfa: MfaContext,
}

/// Why a session token was refused; maps to AWS's two answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionTokenError {
    /// Malformed, tampered, signed by a key we do not know, or for another access key:
    /// AWS `InvalidClientTokenId`.
    #[error("The security token included in the request is invalid")]
    Invalid,
    /// Well-formed and authentic, but past its expiry: AWS `ExpiredToken`.
    #[error("The security token included in the request is expired")]
    Expired,
}

impl SessionTokenError {
    /// The AWS error code.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::Invalid => "InvalidClientTokenId",
            Self::Expired => "ExpiredToken",
        }
    }
}

/// Signing or key handling failed: an internal error, never the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session token key error: {0}")]
pub struct KeyError(String);

/// An Ed25519 signing key with its `kid`. The PKCS#8 document is secret.
pub struct SigningKey {
    kid: String,
    pkcs8: Secret,
    public: Vec<u8>,
}

impl SigningKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, KeyError> {
        let doc = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| KeyError("rng".into()))?;
        Self::from_pkcs8(Secret::new(doc.as_ref().to_vec()))
    }

    /// A key from its PKCS#8 v2 document (as stored, encrypted, in the store).
    pub fn from_pkcs8(pkcs8: Secret) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.expose())
            .map_err(|e| KeyError(format!("invalid Ed25519 PKCS#8 document: {e}")))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: jwk_thumbprint(&public),
            pkcs8,
            public,
        })
    }

    /// The key id: the RFC 7638 JWK thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The PKCS#8 document, for encrypted storage.
    pub fn pkcs8(&self) -> &Secret {
        &self.pkcs8
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: base64url(SHA-256 of the canonical
/// JWK `{"crv":"Ed25519","kty":"OKP","x":"…"}`).
pub fn jwk_thumbprint(public_key: &[u8]) -> String {
    let x = data_encoding::BASE64URL_NOPAD.encode(public_key);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(digest.as_ref())
}

/// Signs session tokens with the current key.
///
/// Signing is done here with ring directly (a compact JWS, RFC 7515 §7.1, `alg` EdDSA):
/// jsonwebtoken's `encode` re-parses the PKCS#8 document and re-derives the public key on
/// every call, which cost more than the signature itself on the login path
/// (docs/benchmarks.md). The encoded header is fixed per key and computed once; a test checks
/// the output is byte-for-byte jsonwebtoken's. Verification stays with jsonwebtoken.
pub struct TokenSigner {
    kid: String,
    pair: Ed25519KeyPair,
    encoded_header: String,
}

impl TokenSigner {
    /// A signer for `key`.
    pub fn new(key: &SigningKey) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8.expose())
            .map_err(|e| KeyError(format!("invalid Ed25519 PKCS#8 document: {e}")))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let json = serde_json::to_vec(&header).map_err(|e| KeyError(e.to_string()))?;
        let encoded_header = data_encoding::BASE64URL_NOPAD.encode(&json);
        Ok(Self {
            kid: key.kid.clone(),
            pair,
            encoded_header,
        })
    }

    /// The `kid` this signer puts in the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &SessionClaims) -> Result<String, KeyError> {
        let json = serde_json::to_vec(claims).map_err(|e| KeyError(e.to_string()))?;
        let mut token = String::with_capacity(self.encoded_header.len() + json.len() * 2 + 90);
        token.push_str(&self.encoded_header);
        token.push('.');
        data_encoding::BASE64URL_NOPAD.encode_append(&json, &mut token);
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        data_encoding::BASE64URL_NOPAD.encode_append(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// Verifies session tokens against every known public key (current and retired).
pub struct TokenVerifier {
    keys: HashMap<String, (Vec<u8>, DecodingKey)>,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for the public keys `keys` (raw 32-byte Ed25519 keys).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Expiry is checked against the caller's `now` in `verify`, not the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[ISSUER]);
        let keys = keys
            .into_iter()
            .map(|k| (jwk_thumbprint(k), (k.to_vec(), DecodingKey::from_ed_der(k))))
            .collect();
        Self { keys, validation }
    }

    /// Verifies `token` for temporary access key `access_key_id` at time `now`
    /// (seconds since the Unix epoch). Tampering, unknown keys and a token that belongs to
    /// another access key are all [`SessionTokenError::Invalid`].
    pub fn verify(
        &self,
        token: &str,
        access_key_id: &str,
        now: i64,
    ) -> Result<SessionClaims, SessionTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionTokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| SessionTokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(SessionTokenError::Invalid);
        }
        let kid = header.kid.ok_or(SessionTokenError::Invalid)?;
        let (_, key) = self.keys.get(&kid).ok_or(SessionTokenError::Invalid)?;
        let data = jsonwebtoken::decode::<SessionClaims>(token, key, &self.validation)
            .map_err(|_| SessionTokenError::Invalid)?;
        let claims = data.claims;
        let same_key = constant_time_eq(claims.akid.as_bytes(), access_key_id.as_bytes());
        if !same_key || claims.iat > claims.exp {
            return Err(SessionTokenError::Invalid);
        }
        if now >= claims.exp {
            return Err(SessionTokenError::Expired);
        }
        Ok(claims)
    }

    /// The JWK Set of the public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .map(|(kid, (public, _))| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": data_encoding::BASE64URL_NOPAD.encode(public),
                    "kid": kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn claims(now: i64) -> SessionClaims {
        SessionClaims {
            iss: ISSUER.into(),
            sub: "arn:aws:iam::000000000000:user/alice".into(),
            akid: "ASIAAAAAAAAAAAAAAAAA".into(),
            iat: now,
            exp: now + 900,
            principal: Principal::User {
                account: "000000000000".into(),
                path: "/".into(),
                name: "alice".into(),
                user_id: "AIDAAAAAAAAAAAAAAAAAA".into(),
            },
            src: "AKIAAAAAAAAAAAAAAAAA".into(),
            mfa: MfaContext {
                present: true,
                method: Some(MfaMethod::Totp),
                device: Some("arn:aws:iam::000000000000:mfa/alice".into()),
                auth_time: Some(now),
            },
        }
    }

    #[test]
    fn sign_verify_round_trip_and_expiry() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let signer = TokenSigner::new(&key).unwrap();
        let verifier = TokenVerifier::new([key.public_key()]);
        let c = claims(1_000_000);
        let token = signer.sign(&c).unwrap();
        assert_eq!(verifier.verify(&token, &c.akid, 1_000_000).unwrap(), c);
        assert_eq!(verifier.verify(&token, &c.akid, 1_000_899).unwrap(), c);
        assert_eq!(
            verifier.verify(&token, &c.akid, 1_000_900),
            Err(SessionTokenError::Expired)
        );
        assert_eq!(
            verifier.verify(&token, "ASIAAAAAAAAAAAAAAAAB", 1_000_000),
            Err(SessionTokenError::Invalid)
        );
    }

    #[test]
    fn our_signature_is_byte_for_byte_jsonwebtokens() {
        // Ed25519 is deterministic: the hand-built JWS must equal the library's encoding.
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let c = claims(1_000_000);
        let ours = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let theirs = jsonwebtoken::encode(
            &header,
            &c,
            &jsonwebtoken::EncodingKey::from_ed_der(key.pkcs8().expose()),
        )
        .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn tampered_and_foreign_tokens_are_invalid() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let other = SigningKey::generate(&rng).unwrap();
        let verifier = TokenVerifier::new([key.public_key()]);
        let c = claims(1_000_000);
        let token = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
        // Flip one character in each of the three parts.
        let dots: Vec<usize> = token.match_indices('.').map(|(i, _)| i).collect();
        for pos in [1, dots[0] + 5, dots[1] + 5] {
            let mut bytes = token.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(
                verifier.verify(&tampered, &c.akid, 1_000_000),
                Err(SessionTokenError::Invalid),
                "tampered at {pos}"
            );
        }
        let foreign = TokenSigner::new(&other).unwrap().sign(&c).unwrap();
        assert_eq!(
            verifier.verify(&foreign, &c.akid, 1_000_000),
            Err(SessionTokenError::Invalid)
        );
        assert_eq!(
            verifier.verify("", &c.akid, 0),
            Err(SessionTokenError::Invalid)
        );
        assert_eq!(
            verifier.verify("a.b.c", &c.akid, 0),
            Err(SessionTokenError::Invalid)
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let rng = SystemRandom::new();
        let old = SigningKey::generate(&rng).unwrap();
        let new = SigningKey::generate(&rng).unwrap();
        let c = claims(1_000_000);
        let old_token = TokenSigner::new(&old).unwrap().sign(&c).unwrap();
        let verifier = TokenVerifier::new([old.public_key(), new.public_key()]);
        assert!(verifier.verify(&old_token, &c.akid, 1_000_000).is_ok());
        let jwks = verifier.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn reloaded_key_has_same_kid() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let again = SigningKey::from_pkcs8(key.pkcs8().clone()).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.kid().len(), 43);
    }
}
