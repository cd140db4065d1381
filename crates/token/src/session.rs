//! Session tokens: the `SessionToken` of temporary credentials is a JWT (RFC 7519) signed
//! with ECDSA P-256 (`alg` `ES256`, RFC 7518) or Ed25519 (`alg` `EdDSA`, RFC 8037), with the
//! signing key named by `kid` and its public half published as a JWK Set (RFC 7517) at
//! `/.well-known/jwks.json`.
//!
//! The token carries everything needed to authenticate a request made with the temporary
//! credentials — the principal, the temporary access key id, the validity window and the
//! MFA context — so that any replica holding the public keys and the derivation key
//! ([`crate::keys::DerivationKey`]) verifies it without a per-session row (DESIGN.md).
//! Expiry is checked against the `now` the caller passes, never the wall clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::arn::Principal;
use crate::secret::{Secret, constant_time_eq};
use crate::verified::{self, Verified, VerifiedTokens};

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
    /// The session policy passed to AssumeRole (`Policy`, `PolicyArns`), if any. Absent in
    /// tokens issued before role sessions existed (serde default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<SessionPolicy>,
    /// Whether the session was issued to a caller that itself used session credentials:
    /// role chaining, GetSessionToken credentials included (policy.md §5.1, §8.1).
    #[serde(default, skip_serializing_if = "is_false")]
    pub chained: bool,
    /// Session tags and the source identity (AssumeRole's `Tags`, `TransitiveTagKeys`,
    /// `SourceIdentity`, and what the calling session passed on). Absent when empty.
    #[serde(default, skip_serializing_if = "SessionAttributes::is_empty")]
    pub attributes: SessionAttributes,
}

/// What a session carries besides its principal and policies: session tags (policy.md
/// §5.1; `aws:PrincipalTag/…` of the session's requests, overriding the role's own tags of
/// the same key), which of them pass on to sessions this one creates, and the source
/// identity, which once set passes on to every session in the chain unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionAttributes {
    /// Session tags, in order; keys are unique case-insensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<SessionTag>,
    /// The keys of the tags that are transitive (as the tags spell them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive_tag_keys: Vec<String>,
    /// The source identity (`sts:SourceIdentity`, `aws:SourceIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
}

impl SessionAttributes {
    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.transitive_tag_keys.is_empty()
            && self.source_identity.is_none()
    }

    /// The transitive tags: what a session created by this one inherits.
    pub fn transitive_tags(&self) -> impl Iterator<Item = &SessionTag> {
        self.tags.iter().filter(|t| {
            self.transitive_tag_keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&t.key))
        })
    }
}

/// One session tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTag {
    /// The key (case preserved; compared case-insensitively).
    pub key: String,
    /// The value.
    pub value: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A role session's session policies (ADR 0005): the inline document as the caller passed
/// it, and the managed policy ARNs, whose documents are read when a request is authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionPolicy {
    /// The inline `Policy` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// The `PolicyArns.member.N.arn` values, in request order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arns: Vec<String>,
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

/// The signature algorithm of a session-token key.
///
/// `ES256` (ECDSA P-256 with SHA-256, RFC 7518 §3.4) is the default for new keys: every JOSE
/// library verifies it, and ring signs it in ≈ 20 µs against ≈ 30 µs for Ed25519 on the
/// reference machine (docs/benchmarks.md) — the signature is on every login. `EdDSA`
/// (Ed25519, RFC 8037) stays supported; ring alone verifies it ≈ 15% faster, though on the
/// request path the two measured within noise of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenAlgorithm {
    /// ECDSA with P-256 and SHA-256; the signature is `R ‖ S` (RFC 7518 §3.4).
    #[default]
    Es256,
    /// Ed25519 (RFC 8037 §3.1).
    EdDsa,
}

impl TokenAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm named `alg` (exactly as in a JWS header).
    pub fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A session-token public key: the raw key as ring reads it — for ES256 the uncompressed
/// point `04 ‖ x ‖ y` (SEC 1 §2.3.3), for EdDSA the 32-byte key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: TokenAlgorithm,
    raw: Vec<u8>,
}

/// Length of an uncompressed P-256 point: the `04` tag and two 32-byte coordinates.
const P256_POINT_LEN: usize = 65;

impl PublicKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.algorithm
    }

    /// The raw key bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The public JWK members that RFC 7638 §3.2 puts in the thumbprint, in its
    /// lexicographic order (`crv`, `kty`, `x`[, `y`]).
    fn jwk_members(&self) -> Vec<(&'static str, String)> {
        let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
        match self.algorithm {
            TokenAlgorithm::Es256 => {
                // An uncompressed point from ring: 65 bytes (checked where it is made).
                let (x, y) = self
                    .raw
                    .get(1..P256_POINT_LEN)
                    .map_or((&[][..], &[][..]), |xy| xy.split_at(32));
                vec![
                    ("crv", "P-256".into()),
                    ("kty", "EC".into()),
                    ("x", b64(x)),
                    ("y", b64(y)),
                ]
            }
            TokenAlgorithm::EdDsa => vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64(&self.raw)),
            ],
        }
    }

    /// The key as a JWK (RFC 7517) with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk: serde_json::Map<String, serde_json::Value> = self
            .jwk_members()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        jwk.insert("kid".into(), jwk_thumbprint(self).into());
        jwk.insert("alg".into(), self.algorithm.as_str().into());
        jwk.insert("use".into(), "sig".into());
        jwk.into()
    }
}

/// A signing key with its `kid`. The PKCS#8 document is secret.
pub struct SigningKey {
    kid: String,
    pkcs8: Secret,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh key for `algorithm` from `rng`.
    pub fn generate(algorithm: TokenAlgorithm, rng: &dyn SecureRandom) -> Result<Self, KeyError> {
        let doc = match algorithm {
            TokenAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(ES256_SIGNING, rng)
                .map_err(|_| KeyError("rng".into()))?,
            TokenAlgorithm::EdDsa => {
                Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| KeyError("rng".into()))?
            }
        };
        Self::from_pkcs8(Secret::new(doc.as_ref().to_vec()))
    }

    /// A key from its PKCS#8 document (as stored, encrypted, in the store): a P-256 key
    /// (RFC 5915 inside PKCS#8) or an Ed25519 one (PKCS#8 v2, RFC 5958); the document says
    /// which.
    pub fn from_pkcs8(pkcs8: Secret) -> Result<Self, KeyError> {
        let public = match KeyPair::from_pkcs8(pkcs8.expose())? {
            KeyPair::P256(pair) => PublicKey {
                algorithm: TokenAlgorithm::Es256,
                raw: pair.public_key().as_ref().to_vec(),
            },
            KeyPair::Ed25519(pair) => PublicKey {
                algorithm: TokenAlgorithm::EdDsa,
                raw: pair.public_key().as_ref().to_vec(),
            },
        };
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

    /// The key's algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.public.algorithm
    }

    /// The PKCS#8 document, for encrypted storage.
    pub fn pkcs8(&self) -> &Secret {
        &self.pkcs8
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// ring's P-256 signing algorithm with the JWS signature encoding (`R ‖ S`, not DER).
static ES256_SIGNING: &ring::signature::EcdsaSigningAlgorithm =
    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;

/// A parsed private key of either algorithm.
enum KeyPair {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl KeyPair {
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        // ring checks the key against its public half; the RNG is only for blinding.
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(ES256_SIGNING, pkcs8, &SystemRandom::new()) {
            return Ok(Self::P256(pair));
        }
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(Self::Ed25519)
            .map_err(|e| KeyError(format!("neither a P-256 nor an Ed25519 PKCS#8 key: {e}")))
    }
}

/// The RFC 7638 thumbprint of a public key: base64url(SHA-256 of its canonical JWK, e.g.
/// `{"crv":"Ed25519","kty":"OKP","x":"…"}` or `{"crv":"P-256","kty":"EC","x":"…","y":"…"}`).
pub fn jwk_thumbprint(key: &PublicKey) -> String {
    let members: Vec<String> = key
        .jwk_members()
        .iter()
        .map(|(k, v)| format!(r#""{k}":"{v}""#))
        .collect();
    let canonical = format!("{{{}}}", members.join(","));
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(digest.as_ref())
}

/// Signs session tokens with the current key.
///
/// Signing is done here with ring directly (a compact JWS, RFC 7515 §7.1): jsonwebtoken's
/// `encode` re-parses the PKCS#8 document and re-derives the public key on every call,
/// which cost more than the signature itself on the login path (docs/benchmarks.md). The
/// encoded header is fixed per key and computed once; tests check that jsonwebtoken
/// verifies the output (and, for the deterministic Ed25519, that it is byte-for-byte
/// jsonwebtoken's). Verification stays with jsonwebtoken.
pub struct TokenSigner {
    kid: String,
    pair: KeyPair,
    rng: SystemRandom,
    encoded_header: String,
}

impl TokenSigner {
    /// A signer for `key`.
    pub fn new(key: &SigningKey) -> Result<Self, KeyError> {
        let pair = KeyPair::from_pkcs8(key.pkcs8.expose())?;
        let mut header = Header::new(key.algorithm().jwt());
        header.kid = Some(key.kid.clone());
        let json = serde_json::to_vec(&header).map_err(|e| KeyError(e.to_string()))?;
        let encoded_header = data_encoding::BASE64URL_NOPAD.encode(&json);
        Ok(Self {
            kid: key.kid.clone(),
            pair,
            rng: SystemRandom::new(),
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
        let signature = match &self.pair {
            KeyPair::P256(pair) => pair
                .sign(&self.rng, token.as_bytes())
                .map_err(|_| KeyError("ECDSA signing failed".into()))?,
            KeyPair::Ed25519(pair) => pair.sign(token.as_bytes()),
        };
        token.push('.');
        data_encoding::BASE64URL_NOPAD.encode_append(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// The verifying key of public key `k`, by `kid`.
fn verifying_key(k: &PublicKey) -> (String, Arc<VerifyingKey>) {
    // jsonwebtoken 9 hands these bytes to ring as they are: the raw key.
    let decoding = match k.algorithm {
        TokenAlgorithm::Es256 => DecodingKey::from_ec_der(&k.raw),
        TokenAlgorithm::EdDsa => DecodingKey::from_ed_der(&k.raw),
    };
    let mut validation = Validation::new(k.algorithm.jwt());
    // Expiry is checked against the caller's `now` in `verify`, not the clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[ISSUER]);
    let kid = jwk_thumbprint(k);
    let key = VerifyingKey {
        kid: kid.as_str().into(),
        public: k.clone(),
        decoding,
        validation,
    };
    (kid, Arc::new(key))
}

/// Verifies session tokens against every known public key (current and retired), through
/// the verified-token cache ([`crate::verified`]).
pub struct TokenVerifier {
    /// Each key by `kid`, with its decoding key and the validation for its algorithm
    /// (jsonwebtoken refuses a validation that names an algorithm of another key family).
    keys: RwLock<HashMap<String, Arc<VerifyingKey>>>,
    /// Tokens verified before, by digest.
    cache: VerifiedTokens,
    /// When [`TokenVerifier::reload_due`] last said yes (seconds since the Unix epoch).
    last_reload: AtomicI64,
}

/// At most one reload of the key set per this many seconds ([`TokenVerifier::reload_due`]).
pub const KEY_RELOAD_INTERVAL_SECS: i64 = 1;

struct VerifyingKey {
    kid: Arc<str>,
    public: PublicKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for the public keys `keys`, with a cache of
    /// [`verified::DEFAULT_CAPACITY`] tokens ([`verified::DEFAULT_HOT_CAPACITY`] with claims).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> Self {
        Self::with_cache_capacity(
            keys,
            verified::DEFAULT_CAPACITY,
            verified::DEFAULT_HOT_CAPACITY,
        )
    }

    /// A verifier for `keys` whose cache holds at most `capacity` tokens, `hot` of them with
    /// their parsed claims (`0`: no cache).
    pub fn with_cache_capacity<'a>(
        keys: impl IntoIterator<Item = &'a PublicKey>,
        capacity: usize,
        hot: usize,
    ) -> Self {
        let keys = keys.into_iter().map(verifying_key).collect();
        Self {
            keys: RwLock::new(keys),
            cache: VerifiedTokens::new(capacity, hot),
            last_reload: AtomicI64::new(i64::MIN),
        }
    }

    /// Trusts one more public key — one that another replica sharing the store rotated in.
    /// Returns whether it was new.
    pub fn add_key(&self, key: &PublicKey) -> bool {
        let (kid, key) = verifying_key(key);
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.contains_key(&kid) {
            return false;
        }
        keys.insert(kid, key);
        true
    }

    /// Whether the caller may reload the key set from the store now (after a token this
    /// verifier could not verify): yes at most once per [`KEY_RELOAD_INTERVAL_SECS`], so that
    /// forged tokens cannot turn into a store read each.
    pub fn reload_due(&self, now: i64) -> bool {
        let last = self.last_reload.load(Ordering::Acquire);
        now.saturating_sub(last) >= KEY_RELOAD_INTERVAL_SECS
            && self
                .last_reload
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Verifies `token` for temporary access key `access_key_id` at time `now`
    /// (seconds since the Unix epoch). Tampering, unknown keys, an `alg` that is not the
    /// key's and a token that belongs to another access key are all
    /// [`SessionTokenError::Invalid`].
    ///
    /// A token verified before is found in the cache by the SHA-256 of the whole token, and
    /// its signature is not checked again; its claims are read from it again and checked
    /// against the request as on the first time, and its key must still be known (see
    /// [`crate::verified`]).
    pub fn verify(
        &self,
        token: &str,
        access_key_id: &str,
        now: i64,
    ) -> Result<Arc<SessionClaims>, SessionTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionTokenError::Invalid);
        }
        let digest = verified::digest(token);
        if let Some(hit) = self.cache.get(&digest) {
            if !self.knows(&hit.verified.kid) {
                // Its key was removed since (and `remove_key` raced this lookup).
                self.cache.remove(&digest);
                return Err(SessionTokenError::Invalid);
            }
            let claims = match hit.claims {
                Some(claims) => claims,
                None => {
                    // The very bytes that verified: their claims parse as they did then.
                    let claims = danger_claims_of_verified_token(token).inspect_err(|_| {
                        self.cache.remove(&digest);
                    })?;
                    let claims = Arc::new(claims);
                    self.cache.keep_claims(digest, Arc::clone(&claims));
                    claims
                }
            };
            let checked = check_claims(&claims, access_key_id, now);
            if checked == Err(SessionTokenError::Expired) {
                self.cache.remove(&digest);
            }
            return checked.map(|()| claims);
        }
        let (kid, claims) = self.verify_uncached(token)?;
        check_claims(&claims, access_key_id, now)?;
        let claims = Arc::new(claims);
        // Only now, every check passed: garbage never enters the cache.
        let verified = Verified {
            kid,
            exp: claims.exp,
        };
        self.cache.insert(digest, verified, Arc::clone(&claims));
        Ok(claims)
    }

    /// The signature check and claim parsing alone, without the cache or the request's
    /// checks (access key id, expiry): the `kid` and the claims of an authentic token.
    pub fn verify_uncached(
        &self,
        token: &str,
    ) -> Result<(Arc<str>, SessionClaims), SessionTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionTokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| SessionTokenError::Invalid)?;
        let kid = header.kid.ok_or(SessionTokenError::Invalid)?;
        let key = self.key(&kid).ok_or(SessionTokenError::Invalid)?;
        // The key decides the algorithm, never the header (RFC 8725 §3.1).
        if header.alg != key.public.algorithm.jwt() {
            return Err(SessionTokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &key.validation)
            .map_err(|_| SessionTokenError::Invalid)?;
        Ok((Arc::clone(&key.kid), data.claims))
    }

    /// Stops trusting key `kid`: its tokens are refused from the next request on, cached or
    /// not. Returns whether the key was known.
    pub fn remove_key(&self, kid: &str) -> bool {
        let removed = self
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(kid)
            .is_some();
        // After the key is gone: a concurrent verification that inserts later is refused
        // on its next hit by `knows`.
        self.cache.remove_kid(kid);
        removed
    }

    /// The `kid` of every trusted key.
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The verified-token cache (its size, for metrics and tests).
    pub fn cache(&self) -> &VerifiedTokens {
        &self.cache
    }

    fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    fn knows(&self, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(kid)
    }

    /// The JWK Set of the public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<_> = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|k| k.public.jwk())
            .collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::json!({ "keys": keys })
    }
}

/// The claims of `token` read without checking its signature: only for a token whose very
/// bytes (SHA-256 of the whole token) verified before. Decoded as jsonwebtoken decodes them
/// (strict base64url without padding, then serde), so they are the claims that verified.
fn danger_claims_of_verified_token(token: &str) -> Result<SessionClaims, SessionTokenError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionTokenError::Invalid);
    };
    let json = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .map_err(|_| SessionTokenError::Invalid)?;
    serde_json::from_slice(&json).map_err(|_| SessionTokenError::Invalid)
}

/// The checks of an authentic token against the request: it belongs to `access_key_id`
/// (compared in constant time), `iat` ≤ `exp`, and it has not expired at `now`.
fn check_claims(
    claims: &SessionClaims,
    access_key_id: &str,
    now: i64,
) -> Result<(), SessionTokenError> {
    let same_key = constant_time_eq(claims.akid.as_bytes(), access_key_id.as_bytes());
    if !same_key || claims.iat > claims.exp {
        return Err(SessionTokenError::Invalid);
    }
    if now >= claims.exp {
        return Err(SessionTokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
            session_policy: None,
            chained: false,
            attributes: SessionAttributes::default(),
        }
    }

    fn role_claims(now: i64) -> SessionClaims {
        SessionClaims {
            sub: "arn:aws:sts::000000000000:assumed-role/deploy/s1".into(),
            principal: Principal::AssumedRole {
                account: "000000000000".into(),
                role_name: "deploy".into(),
                role_path: "/ops/".into(),
                role_id: "AROAAAAAAAAAAAAAAAAA".into(),
                session_name: "s1".into(),
            },
            session_policy: Some(SessionPolicy {
                inline: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
                arns: vec!["arn:aws:iam::aws:policy/IAMReadOnlyAccess".into()],
            }),
            chained: true,
            attributes: SessionAttributes {
                tags: vec![SessionTag {
                    key: "Project".into(),
                    value: "apollo".into(),
                }],
                transitive_tag_keys: vec!["Project".into()],
                source_identity: Some("alice@example.com".into()),
            },
            ..claims(now)
        }
    }

    #[test]
    fn role_session_claims_round_trip() {
        let key = key(TokenAlgorithm::Es256);
        let signer = TokenSigner::new(&key).unwrap();
        let verifier = TokenVerifier::new([key.public_key()]);
        let c = role_claims(1_000_000);
        let token = signer.sign(&c).unwrap();
        assert_eq!(*verifier.verify(&token, &c.akid, 1_000_000).unwrap(), c);
        // Without a session policy or chaining, the claims are the old shape exactly.
        let plain = serde_json::to_value(claims(1)).unwrap();
        assert!(plain.get("session_policy").is_none() && plain.get("chained").is_none());
        assert!(plain.get("attributes").is_none());
    }

    #[test]
    fn tokens_issued_before_role_sessions_still_verify() {
        // The claims as tokengate wrote them before `session_policy` and `chained` existed.
        let key = key(TokenAlgorithm::EdDsa);
        let old = serde_json::json!({
            "iss": "tokengate", "sub": "arn:aws:iam::000000000000:user/alice",
            "akid": "ASIAAAAAAAAAAAAAAAAA", "iat": 1_000_000, "exp": 1_000_900,
            "principal": {"type": "user", "account": "000000000000", "path": "/",
                          "name": "alice", "user_id": "AIDAAAAAAAAAAAAAAAAAA"},
            "src": "AKIAAAAAAAAAAAAAAAAA",
            "mfa": {"present": true, "method": "totp",
                    "device": "arn:aws:iam::000000000000:mfa/alice", "auth_time": 1_000_000}
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &old,
            &jsonwebtoken::EncodingKey::from_ed_der(key.pkcs8().expose()),
        )
        .unwrap();
        let verifier = TokenVerifier::new([key.public_key()]);
        let verified = verifier
            .verify(&token, "ASIAAAAAAAAAAAAAAAAA", 1_000_000)
            .unwrap();
        assert_eq!(*verified, claims(1_000_000));
    }

    const BOTH: [TokenAlgorithm; 2] = [TokenAlgorithm::Es256, TokenAlgorithm::EdDsa];

    fn key(algorithm: TokenAlgorithm) -> SigningKey {
        SigningKey::generate(algorithm, &SystemRandom::new()).unwrap()
    }

    #[test]
    fn sign_verify_round_trip_and_expiry() {
        for alg in BOTH {
            let key = key(alg);
            assert_eq!(key.algorithm(), alg);
            let signer = TokenSigner::new(&key).unwrap();
            let verifier = TokenVerifier::new([key.public_key()]);
            let c = claims(1_000_000);
            let token = signer.sign(&c).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.jwt());
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(*verifier.verify(&token, &c.akid, 1_000_000).unwrap(), c);
            assert_eq!(*verifier.verify(&token, &c.akid, 1_000_899).unwrap(), c);
            assert_eq!(
                verifier.verify(&token, &c.akid, 1_000_900),
                Err(SessionTokenError::Expired)
            );
            assert_eq!(
                verifier.verify(&token, "ASIAAAAAAAAAAAAAAAAB", 1_000_000),
                Err(SessionTokenError::Invalid)
            );
        }
    }

    #[test]
    fn our_signature_is_byte_for_byte_jsonwebtokens() {
        // Ed25519 is deterministic: the hand-built JWS must equal the library's encoding.
        let key = key(TokenAlgorithm::EdDsa);
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
    fn es256_tokens_have_the_jws_shape_and_jsonwebtoken_signs_alike() {
        // ECDSA is randomised, so compare shapes: the same header and payload as
        // jsonwebtoken's encoding, and a 64-byte R ‖ S signature (RFC 7518 §3.4) that
        // verifies against the key's JWK as a JOSE consumer would read it.
        let key = key(TokenAlgorithm::Es256);
        let c = claims(1_000_000);
        let ours = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid().to_owned());
        let theirs = jsonwebtoken::encode(
            &header,
            &c,
            &jsonwebtoken::EncodingKey::from_ec_der(key.pkcs8().expose()),
        )
        .unwrap();
        let (ours_signed, ours_sig) = ours.rsplit_once('.').unwrap();
        let (theirs_signed, _) = theirs.rsplit_once('.').unwrap();
        assert_eq!(ours_signed, theirs_signed);
        let sig = data_encoding::BASE64URL_NOPAD
            .decode(ours_sig.as_bytes())
            .unwrap();
        assert_eq!(sig.len(), 64);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_key().jwk()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        for token in [&ours, &theirs] {
            let data = jsonwebtoken::decode::<SessionClaims>(token, &decoding, &validation);
            assert_eq!(data.unwrap().claims, c);
        }
    }

    #[test]
    fn the_jwks_is_what_jose_libraries_read() {
        let (es, ed) = (key(TokenAlgorithm::Es256), key(TokenAlgorithm::EdDsa));
        let verifier = TokenVerifier::new([es.public_key(), ed.public_key()]);
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(verifier.jwks()).unwrap();
        assert_eq!(set.keys.len(), 2);
        for key in [&es, &ed] {
            let jwk = set.find(key.kid()).unwrap();
            let c = claims(1_000_000);
            let token = TokenSigner::new(key).unwrap().sign(&c).unwrap();
            let mut validation = Validation::new(key.algorithm().jwt());
            validation.validate_exp = false;
            validation.required_spec_claims.clear();
            let decoding = DecodingKey::from_jwk(jwk).unwrap();
            let data = jsonwebtoken::decode::<SessionClaims>(&token, &decoding, &validation);
            assert_eq!(data.unwrap().claims, c);
        }
        let es = verifier.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == "EC")
            .cloned()
            .unwrap();
        assert_eq!(
            (es["crv"].as_str(), es["alg"].as_str()),
            (Some("P-256"), Some("ES256"))
        );
    }

    #[test]
    fn the_key_decides_the_algorithm_not_the_header() {
        for alg in BOTH {
            let key = key(alg);
            let verifier = TokenVerifier::new([key.public_key()]);
            let c = claims(1_000_000);
            let token = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
            let (_, rest) = token.split_once('.').unwrap();
            let other = match alg {
                TokenAlgorithm::Es256 => "EdDSA",
                TokenAlgorithm::EdDsa => "ES256",
            };
            for forged_alg in [other, "HS256", "none"] {
                let header = format!(
                    r#"{{"typ":"JWT","alg":"{forged_alg}","kid":"{}"}}"#,
                    key.kid()
                );
                let forged = format!(
                    "{}.{rest}",
                    data_encoding::BASE64URL_NOPAD.encode(header.as_bytes())
                );
                assert_eq!(
                    verifier.verify(&forged, &c.akid, 1_000_000),
                    Err(SessionTokenError::Invalid),
                    "{alg:?} key, header alg {forged_alg}"
                );
            }
        }
    }

    #[test]
    fn tampered_and_foreign_tokens_are_invalid() {
        for alg in BOTH {
            let key = key(alg);
            let other = self::key(alg);
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
                    "{alg:?} tampered at {pos}"
                );
            }
            let foreign = TokenSigner::new(&other).unwrap().sign(&c).unwrap();
            assert_eq!(
                verifier.verify(&foreign, &c.akid, 1_000_000),
                Err(SessionTokenError::Invalid)
            );
        }
        let verifier = TokenVerifier::new([key(TokenAlgorithm::Es256).public_key()]);
        for junk in ["", "a.b.c", "..", "e30.e30.e30"] {
            assert_eq!(
                verifier.verify(junk, "ASIAAAAAAAAAAAAAAAAA", 0),
                Err(SessionTokenError::Invalid)
            );
        }
    }

    /// Flips one character of `token` at `pos` (to another base64url character).
    fn one_byte_off(token: &str, pos: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_token_one_byte_off_a_cached_one_is_verified_in_full_and_refused() {
        for alg in BOTH {
            let key = key(alg);
            let verifier = TokenVerifier::new([key.public_key()]);
            let c = claims(1_000_000);
            let token = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
            assert!(verifier.verify(&token, &c.akid, 1_000_000).is_ok());
            assert_eq!(verifier.cache().len(), 1);
            // Every position: header, claims, signature, first and last byte.
            let positions = [0, token.len() / 2, token.len() - 1];
            let dots: Vec<usize> = token.match_indices('.').map(|(i, _)| i).collect();
            for pos in positions.into_iter().chain([dots[0] + 1, dots[1] + 1]) {
                let tampered = one_byte_off(&token, pos);
                assert_eq!(
                    verifier.verify(&tampered, &c.akid, 1_000_000),
                    Err(SessionTokenError::Invalid),
                    "{alg:?} tampered at {pos}"
                );
            }
            // A prefix or an extension of the cached token is another token, too.
            for other in [&token[..token.len() - 1], &format!("{token}A")] {
                assert_eq!(
                    verifier.verify(other, &c.akid, 1_000_000),
                    Err(SessionTokenError::Invalid)
                );
            }
            // None of them entered the cache; the original still verifies from it.
            assert_eq!(verifier.cache().len(), 1);
            assert_eq!(*verifier.verify(&token, &c.akid, 1_000_001).unwrap(), c);
        }
    }

    #[test]
    fn a_cached_token_is_checked_against_the_request_every_time() {
        let key = key(TokenAlgorithm::Es256);
        let verifier = TokenVerifier::new([key.public_key()]);
        let c = claims(1_000_000);
        let token = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
        assert!(verifier.verify(&token, &c.akid, 1_000_000).is_ok());
        // Another access key: refused, from the cache as without it.
        assert_eq!(
            verifier.verify(&token, "ASIAAAAAAAAAAAAAAAAB", 1_000_000),
            Err(SessionTokenError::Invalid)
        );
        // Expired while cached: refused on the very next request, and gone from the cache.
        assert_eq!(
            verifier.verify(&token, &c.akid, 1_000_900),
            Err(SessionTokenError::Expired)
        );
        assert!(verifier.cache().is_empty());
        assert_eq!(
            verifier.verify(&token, &c.akid, 1_000_900),
            Err(SessionTokenError::Expired)
        );
        assert!(verifier.cache().is_empty());
    }

    #[test]
    fn a_removed_key_takes_its_cached_tokens_with_it() {
        let (a, b) = (key(TokenAlgorithm::Es256), key(TokenAlgorithm::EdDsa));
        let verifier = TokenVerifier::new([a.public_key(), b.public_key()]);
        let c = claims(1_000_000);
        let by_a = TokenSigner::new(&a).unwrap().sign(&c).unwrap();
        let by_b = TokenSigner::new(&b).unwrap().sign(&c).unwrap();
        assert!(verifier.verify(&by_a, &c.akid, 1_000_000).is_ok());
        assert!(verifier.verify(&by_b, &c.akid, 1_000_000).is_ok());
        assert_eq!(verifier.cache().len(), 2);
        assert!(verifier.remove_key(a.kid()));
        assert_eq!(verifier.cache().len(), 1);
        assert_eq!(
            verifier.verify(&by_a, &c.akid, 1_000_001),
            Err(SessionTokenError::Invalid)
        );
        assert!(verifier.verify(&by_b, &c.akid, 1_000_001).is_ok());
        assert_eq!(verifier.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_token_cached_without_its_claims_reads_them_again_and_is_checked() {
        let key = key(TokenAlgorithm::Es256);
        // Two tokens fit, one set of claims.
        let verifier = TokenVerifier::with_cache_capacity([key.public_key()], 4, 2);
        let signer = TokenSigner::new(&key).unwrap();
        let c = claims(1_000_000);
        let tokens: Vec<String> = (0..2)
            .map(|i| {
                signer
                    .sign(&SessionClaims {
                        iat: 1_000_000 - i,
                        ..c.clone()
                    })
                    .unwrap()
            })
            .collect();
        for t in &tokens {
            assert!(verifier.verify(t, &c.akid, 1_000_000).is_ok());
        }
        for t in &tokens {
            let claims = verifier.verify(t, &c.akid, 1_000_001).unwrap();
            assert_eq!(claims.akid, c.akid);
            assert_eq!(
                verifier.verify(t, "ASIAAAAAAAAAAAAAAAAB", 1_000_001),
                Err(SessionTokenError::Invalid)
            );
        }
        assert_eq!(
            verifier.verify(&tokens[0], &c.akid, 1_000_900),
            Err(SessionTokenError::Expired)
        );
        assert_eq!(verifier.cache().len(), 1);
    }

    #[test]
    fn garbage_never_enters_the_cache() {
        let key = key(TokenAlgorithm::Es256);
        let verifier = TokenVerifier::with_cache_capacity([key.public_key()], 10, 10);
        let c = claims(1_000_000);
        let token = TokenSigner::new(&key).unwrap().sign(&c).unwrap();
        let expired = TokenSigner::new(&key)
            .unwrap()
            .sign(&claims(1_000_000 - 10_000))
            .unwrap();
        for i in 0..1_000 {
            let junk = format!("{token}{i}");
            assert!(verifier.verify(&junk, &c.akid, 1_000_000).is_err());
        }
        assert!(verifier.verify(&expired, &c.akid, 1_000_000).is_err());
        assert!(
            verifier
                .verify(&token, "ASIAAAAAAAAAAAAAAAAB", 1_000_000)
                .is_err()
        );
        assert!(verifier.cache().is_empty());
    }

    #[test]
    fn rotation_across_algorithms_keeps_old_tokens_valid() {
        let old = key(TokenAlgorithm::EdDsa);
        let new = key(TokenAlgorithm::Es256);
        let c = claims(1_000_000);
        let old_token = TokenSigner::new(&old).unwrap().sign(&c).unwrap();
        let new_token = TokenSigner::new(&new).unwrap().sign(&c).unwrap();
        let verifier = TokenVerifier::new([old.public_key(), new.public_key()]);
        assert!(verifier.verify(&old_token, &c.akid, 1_000_000).is_ok());
        assert!(verifier.verify(&new_token, &c.akid, 1_000_000).is_ok());
        let jwks = verifier.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn reloaded_keys_keep_their_algorithm_and_kid() {
        for alg in BOTH {
            let key = key(alg);
            let again = SigningKey::from_pkcs8(key.pkcs8().clone()).unwrap();
            assert_eq!(key.kid(), again.kid());
            assert_eq!(again.algorithm(), alg);
            assert_eq!(key.kid().len(), 43);
        }
        assert!(SigningKey::from_pkcs8(Secret::new(vec![0x30, 0x03, 0x02, 0x01, 0x00])).is_err());
    }

    #[test]
    fn thumbprint_matches_rfc_8037_appendix_a_3() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let key = PublicKey {
            algorithm: TokenAlgorithm::EdDsa,
            raw: data_encoding::BASE64URL_NOPAD.decode(x.as_bytes()).unwrap(),
        };
        assert_eq!(
            jwk_thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // Tampered: one bit of the key, another thumbprint.
        let mut raw = key.raw.clone();
        raw[0] ^= 1;
        let tampered = PublicKey { raw, ..key };
        assert_ne!(
            jwk_thumbprint(&tampered),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
