//! AWS Signature Version 4: the server-side check of a signed STS/IAM request, and the
//! client-side signer that `tokengate login`, the tests and the benches use.
//!
//! Specs: IAM User Guide, "Create a signed AWS API request" (canonical request, string to sign,
//! signing key) and "Elements of an AWS API request signature"; AWS General Reference,
//! "Handling dates in Signature Version 4" (scope date = `X-Amz-Date` day); botocore `auth.py`
//! `SigV4Auth` / `SigV4QueryAuth` for the exact canonical forms real clients produce. The
//! project's digest of all of these is `sts-iam.md` §2; §1.4 has the AWS error texts.
//!
//! Checks run in the order AWS runs them (scratchstack, "AWS Auth Error Ordering"; sts-iam.md
//! §2 item 7), so a request with several faults gets AWS's answer:
//!
//! 1. URI path escapes ([`SigV4Error::InvalidUriPath`]), query syntax
//!    ([`SigV4Error::MalformedQueryString`]);
//! 2. an `Authorization` header or an `X-Amz-Algorithm` query parameter, not both;
//! 3. algorithm, `key=value` syntax, required components ([`SigV4Error::UnsupportedAlgorithm`],
//!    [`SigV4Error::IncompleteAuthorizationHeader`], …);
//! 4. `host` signed; date format; clock skew (±[`MAX_SKEW`]); a presigned URL's `X-Amz-Expires`;
//! 5. five-part credential; scope region, service, terminator and date;
//! 6. — the caller's part — session token, then access key lookup;
//! 7. the signature itself, compared in constant time ([`verify_signature`]).
//!
//! [`parse_authorization`] does 1–5 and [`verify_signature`] does 7, so the server can do 6 in
//! between. The `Display` text of every [`SigV4Error`] is the message AWS sends.
//!
//! Sans-IO: no clock (the server passes `now`), no network, no files; bytes in, verdict out.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use ring::{digest, hmac};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::Secret;
use crate::bounded::TwoGenerations;
use crate::query::{self, QueryError};

/// The only signing algorithm SigV4 defines for HMAC (IAM User Guide, "Create a signed AWS API
/// request", step 2).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last element of every credential scope (same section, step 2).
pub const SCOPE_TERMINATOR: &str = "aws4_request";

/// Largest accepted difference between the request time and the server clock. STS and IAM
/// allow 15 minutes either way (sts-iam.md §2 item 6; MinIO `globalMaxSkewTime`, scratchstack
/// `ALLOWED_MISMATCH_MINUTES`); the "15 min." in the skew messages is this value.
pub const MAX_SKEW: Duration = Duration::minutes(15);

/// Longest `X-Amz-Expires` a presigned URL may carry: one week, in seconds (S3 API Reference,
/// "Authenticating Requests: Using Query Parameters"; the signing key is valid seven days).
pub const MAX_PRESIGN_EXPIRES_SECS: u32 = 604_800;

/// Longest region or service name accepted in a credential scope: one DNS label (RFC 1123
/// §2.1), as botocore `utils.validate_region_name` requires of regions.
pub const MAX_SCOPE_LABEL_LEN: usize = 63;

const HEADER_AUTHORIZATION: &str = "authorization";
const HEADER_X_AMZ_DATE: &str = "x-amz-date";
const HEADER_DATE: &str = "date";
const HEADER_SECURITY_TOKEN: &str = "x-amz-security-token";
const HEADER_HOST: &str = "host";

const PARAM_ALGORITHM: &str = "X-Amz-Algorithm";
const PARAM_CREDENTIAL: &str = "X-Amz-Credential";
const PARAM_DATE: &str = "X-Amz-Date";
const PARAM_EXPIRES: &str = "X-Amz-Expires";
const PARAM_SECURITY_TOKEN: &str = "X-Amz-Security-Token";
const PARAM_SIGNATURE: &str = "X-Amz-Signature";
const PARAM_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";

/// `SignatureDoesNotMatch` text (moto `core/exceptions.py`, scratchstack `constants.rs`).
const MSG_SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";

/// One HTTP request as the server received it, borrowed; nothing here is trusted.
#[derive(Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The request method, e.g. `POST`, exactly as received.
    pub method: &'a str,
    /// The raw (still percent-encoded) path, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?`; may be empty.
    pub query: &'a str,
    /// Headers as received: names in any case, repeated names allowed, order kept. Must carry
    /// `Host` (for HTTP/2, the server adds it from `:authority`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
}

/// Where a request carried its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLocation {
    /// The `Authorization` header.
    Header,
    /// `X-Amz-*` query parameters: a presigned URL.
    Query,
}

/// The `Credential` of a signed request: `<key>/<YYYYMMDD>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// Access key id, as presented (`AKIA…` or `ASIA…` for real clients); not yet looked up.
    pub access_key_id: String,
    /// Scope date `YYYYMMDD`; equal to the day of the request time.
    pub date: String,
    /// Region the client signed for; any well-formed name (sts-iam.md §0: with
    /// `--endpoint-url` it is simply the client's configured region).
    pub region: String,
    /// Service the client signed for (`sts`, `iam`); see [`Authorization::require_service`].
    pub service: String,
}

impl CredentialScope {
    /// `<date>/<region>/<service>/aws4_request`, the third line of the string to sign.
    pub fn to_scope_string(&self) -> String {
        format!(
            "{}/{}/{}/{SCOPE_TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// A structurally valid, current SigV4 authorization, not yet verified: what
/// [`parse_authorization`] found. Check the session token and look up the access key, then
/// call [`verify_signature`].
#[derive(Clone)]
pub struct Authorization {
    /// The credential scope.
    pub scope: CredentialScope,
    /// `SignedHeaders`, lower-cased, in the order listed.
    pub signed_headers: Vec<String>,
    /// The presented signature. All zeros when it was not 64 lower-case hex digits; such a
    /// request is refused by [`verify_signature`] (after the key lookup, as AWS orders it).
    pub signature: [u8; 32],
    /// `X-Amz-Date` (or `Date`), in UTC.
    pub request_time: OffsetDateTime,
    /// `X-Amz-Security-Token` header, else query parameter: temporary credentials.
    pub security_token: Option<String>,
    /// Header or presigned URL.
    pub location: AuthLocation,
    /// A presigned URL's `X-Amz-Expires`, already checked against `now`.
    pub expires_secs: Option<u32>,
    signature_well_formed: bool,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The session token is a bearer credential: never in logs.
        f.debug_struct("Authorization")
            .field("scope", &self.scope)
            .field("signed_headers", &self.signed_headers)
            .field(
                "signature",
                &data_encoding::HEXLOWER.encode(&self.signature),
            )
            .field("request_time", &self.request_time)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("location", &self.location)
            .field("expires_secs", &self.expires_secs)
            .field("signature_well_formed", &self.signature_well_formed)
            .finish()
    }
}

impl Authorization {
    /// Whether the presented signature was 64 lower-case hex digits (else [`Self::signature`]
    /// is all zeros and can never verify).
    pub fn has_well_formed_signature(&self) -> bool {
        self.signature_well_formed
    }

    /// Refuse a scope signed for another service, with AWS's message, e.g. `Credential should
    /// be scoped to correct service: 'sts'.` (scratchstack error ordering, rule 11). The server
    /// calls it right after [`parse_authorization`], before the session-token check.
    ///
    /// # Errors
    /// [`SigV4Error::ScopeMismatch`] when the scope's service is not `expected`.
    pub fn require_service(&self, expected: &str) -> Result<(), SigV4Error> {
        if self.scope.service == expected {
            Ok(())
        } else {
            Err(SigV4Error::ScopeMismatch {
                message: format!("Credential should be scoped to correct service: '{expected}'."),
            })
        }
    }
}

/// Long-term or temporary credentials, for the client-side signers. No `Debug`: it holds the
/// secret.
#[derive(Clone, Copy)]
pub struct SigningCredentials<'a> {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// The session token of temporary credentials.
    pub session_token: Option<&'a str>,
}

/// Why a request's SigV4 authorization was refused. `Display` is AWS's message;
/// [`SigV4Error::aws_code`] and [`SigV4Error::http_status`] give the rest of the AWS error.
///
/// Texts not given verbatim in sts-iam.md §1.4 come from scratchstack (`constants.rs`,
/// `signature.rs` tests of "AWS Auth Error Ordering"), which records what AWS answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// A malformed `%` escape in the path, or a relative path (rule 1).
    #[error("{message}")]
    InvalidUriPath {
        /// AWS's message, e.g. `Path is not absolute: x`.
        message: String,
    },
    /// The query string does not decode (rule 4).
    #[error(transparent)]
    MalformedQueryString(#[from] QueryError),
    /// Neither an `Authorization` header nor an `AWS4-HMAC-SHA256` `X-Amz-Algorithm` parameter
    /// (rules 5 and 7a). Unsigned actions (AssumeRoleWithWebIdentity, …) are the caller's call.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// Both an `Authorization` header and an `X-Amz-Algorithm` parameter (rule 5). AWS answers
    /// `SignatureDoesNotMatch`; scratchstack records no message, so the usual one is used.
    #[error("{MSG_SIGNATURE_MISMATCH}")]
    HeaderAndQueryAuthentication,
    /// The `Authorization` header names another algorithm (rule 6a).
    #[error("Unsupported AWS 'algorithm': '{algorithm}'.")]
    UnsupportedAlgorithm {
        /// The algorithm named.
        algorithm: String,
    },
    /// An `Authorization` component without `=` (rule 6b).
    #[error(
        "'{pair}' not a valid key=value pair (missing equal-sign) in Authorization header: \
         '{header}'"
    )]
    MalformedAuthorizationPair {
        /// The component.
        pair: String,
        /// The whole (trimmed) header value.
        header: String,
    },
    /// `Credential`, `Signature`, `SignedHeaders` or a date header missing (rule 6d), e.g.
    /// `Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256`.
    #[error("{message}")]
    IncompleteAuthorizationHeader {
        /// Every missing item, then `Authorization=<algorithm>`.
        message: String,
    },
    /// A presigned URL missing `X-Amz-Credential`, `-Signature`, `-SignedHeaders` or `-Date`
    /// (rule 7c), e.g. `AWS query-string parameters must include 'X-Amz-Date'. Re-examine the
    /// query-string parameters.`
    #[error("{message}")]
    IncompleteQueryParameters {
        /// Every missing item, then `Re-examine the query-string parameters.`
        message: String,
    },
    /// `X-Amz-Expires` not a whole number of seconds in 0..=604800 (rule 7d; S3's texts and
    /// code, AWS's query-protocol ones are not known).
    #[error("{message}")]
    InvalidExpires {
        /// S3's message for the fault.
        message: &'static str,
    },
    /// `host` is not in `SignedHeaders` (rule 8).
    #[error("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")]
    HostNotSigned,
    /// The date is not ISO 8601 basic format `YYYYMMDD'T'HHMMSS'Z'` (rule 9).
    #[error(
        "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
         http://en.wikipedia.org/wiki/ISO_8601"
    )]
    MalformedDate {
        /// The date as received.
        value: String,
    },
    /// The request time is more than [`MAX_SKEW`] before `now` (rule 10; sts-iam.md §1.4).
    #[error(
        "Signature expired: {} is now earlier than {} ({} - 15 min.)",
        format_amz_date_time(.request_time),
        format_amz_date_time(.earliest),
        format_amz_date_time(.now)
    )]
    SignatureExpired {
        /// The request time.
        request_time: OffsetDateTime,
        /// `now - MAX_SKEW`, the earliest acceptable request time.
        earliest: OffsetDateTime,
        /// The server clock.
        now: OffsetDateTime,
    },
    /// The request time is more than [`MAX_SKEW`] after `now` (rule 10; sts-iam.md §1.4).
    #[error(
        "Signature not yet current: {} is still later than {} ({} + 15 min.)",
        format_amz_date_time(.request_time),
        format_amz_date_time(.latest),
        format_amz_date_time(.now)
    )]
    SignatureNotYetCurrent {
        /// The request time.
        request_time: OffsetDateTime,
        /// `now + MAX_SKEW`, the latest acceptable request time.
        latest: OffsetDateTime,
        /// The server clock.
        now: OffsetDateTime,
    },
    /// A presigned URL used after `X-Amz-Date + X-Amz-Expires` (or with `X-Amz-Expires=0`).
    /// AWS's query-protocol text is not known: the code is `RequestExpired` (HTTP 400) from
    /// the IAM API Reference "Common Error Types", the message S3's (with a full stop).
    #[error("Request has expired.")]
    PresignedUrlExpired,
    /// `Credential` is not five `/`-separated parts (rule 10b).
    #[error(
        "Credential must have exactly 5 slash-delimited elements, e.g. \
         keyid/date/region/service/term, got '{credential}'"
    )]
    MalformedCredential {
        /// The credential as received.
        credential: String,
    },
    /// Scope region, service, terminator or date wrong (rule 11); every fault, one message.
    #[error("{message}")]
    ScopeMismatch {
        /// AWS's messages, space-separated.
        message: String,
    },
    /// The signature does not match the request and the secret (rule 16).
    #[error("{MSG_SIGNATURE_MISMATCH}")]
    SignatureDoesNotMatch,
}

impl SigV4Error {
    /// The AWS error code (`<Code>`).
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::InvalidUriPath { .. } => "InvalidURIPath",
            Self::MalformedQueryString(inner) => inner.aws_code(),
            Self::MissingAuthenticationToken => "MissingAuthenticationToken",
            Self::UnsupportedAlgorithm { .. }
            | Self::MalformedAuthorizationPair { .. }
            | Self::IncompleteAuthorizationHeader { .. }
            | Self::IncompleteQueryParameters { .. }
            | Self::MalformedDate { .. }
            | Self::MalformedCredential { .. } => "IncompleteSignature",
            Self::InvalidExpires { .. } => "AuthorizationQueryParametersError",
            Self::PresignedUrlExpired => "RequestExpired",
            Self::HeaderAndQueryAuthentication
            | Self::HostNotSigned
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::ScopeMismatch { .. }
            | Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
        }
    }

    /// The HTTP status: as the IAM API Reference "Common Error Types" lists it
    /// (`IncompleteSignature` 400, `MissingAuthenticationToken` 403, `MalformedQueryString`
    /// 404, `RequestExpired` 400), 403 for `SignatureDoesNotMatch` (sts-iam.md §1.4), 400 for
    /// `InvalidURIPath` and `AuthorizationQueryParametersError` (scratchstack, S3).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MalformedQueryString(inner) => inner.http_status(),
            Self::InvalidUriPath { .. }
            | Self::UnsupportedAlgorithm { .. }
            | Self::MalformedAuthorizationPair { .. }
            | Self::IncompleteAuthorizationHeader { .. }
            | Self::IncompleteQueryParameters { .. }
            | Self::InvalidExpires { .. }
            | Self::MalformedDate { .. }
            | Self::PresignedUrlExpired
            | Self::MalformedCredential { .. } => 400,
            Self::MissingAuthenticationToken
            | Self::HeaderAndQueryAuthentication
            | Self::HostNotSigned
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::ScopeMismatch { .. }
            | Self::SignatureDoesNotMatch => 403,
        }
    }
}

/// Every structural, date/skew and scope check, in AWS's error order (sts-iam.md §2 item 7),
/// up to (not including) session-token and access-key lookup. `now` is the server clock.
///
/// # Errors
/// The first [`SigV4Error`] in AWS's order (see the module docs).
pub fn parse_authorization(
    req: &HttpRequest<'_>,
    now: OffsetDateTime,
) -> Result<Authorization, SigV4Error> {
    check_path(req.path)?;
    let params = query::decode_form(req.query.as_bytes())?;

    let presented = match (
        first_header(req.headers, HEADER_AUTHORIZATION),
        first_param(&params, PARAM_ALGORITHM),
    ) {
        (Some(_), Some(_)) => return Err(SigV4Error::HeaderAndQueryAuthentication),
        (None, None) => return Err(SigV4Error::MissingAuthenticationToken),
        (Some(header), None) => presented_in_header(header, req.headers)?,
        (None, Some(algorithm)) => presented_in_query(algorithm, &params)?,
    };

    if !presented
        .signed_headers
        .iter()
        .any(|name| name == HEADER_HOST)
    {
        return Err(SigV4Error::HostNotSigned);
    }
    let request_time =
        parse_amz_date_time(&presented.date).ok_or_else(|| SigV4Error::MalformedDate {
            value: presented.date.clone(),
        })?;
    check_skew(request_time, now)?;
    if let Some(expires_secs) = presented.expires_secs {
        check_presigned_expiry(request_time, expires_secs, now)?;
    }
    let scope = parse_scope(&presented.credential, &presented.date)?;

    let security_token = first_header(req.headers, HEADER_SECURITY_TOKEN)
        .or_else(|| first_param(&params, PARAM_SECURITY_TOKEN))
        .map(str::to_owned);
    let parsed_signature = parse_signature(&presented.signature);
    Ok(Authorization {
        scope,
        signed_headers: presented.signed_headers,
        signature: parsed_signature.unwrap_or([0; 32]),
        request_time,
        security_token,
        location: presented.location,
        expires_secs: presented.expires_secs,
        signature_well_formed: parsed_signature.is_some(),
    })
}

/// Recompute the signature with the caller's secret and compare in constant time.
///
/// # Errors
/// [`SigV4Error::SignatureDoesNotMatch`] unless `auth.signature` is the signature of `req`
/// under `secret_access_key`.
pub fn verify_signature(
    req: &HttpRequest<'_>,
    auth: &Authorization,
    secret_access_key: &[u8],
) -> Result<(), SigV4Error> {
    verify_with_key(req, auth, &signing_key(secret_access_key, &auth.scope))
}

/// [`verify_signature`], with the derived signing key (kSigning) taken from `keys` when the
/// same secret signed for the same date, region and service before (see [`SigningKeys`]).
///
/// # Errors
/// As [`verify_signature`].
pub fn verify_signature_cached(
    req: &HttpRequest<'_>,
    auth: &Authorization,
    secret_access_key: &[u8],
    keys: &SigningKeys,
) -> Result<(), SigV4Error> {
    verify_with_key(req, auth, &keys.key(secret_access_key, &auth.scope))
}

/// [`verify_signature_cached`] for a secret that is a function of `secret_id` alone — a
/// temporary credential's, derived from its access key id by a key fixed for the process's
/// lifetime ([`crate::keys::DerivationKey`]): on a hit, `derive` is not called.
///
/// # Errors
/// As [`verify_signature`].
pub fn verify_signature_cached_derived(
    req: &HttpRequest<'_>,
    auth: &Authorization,
    keys: &SigningKeys,
    secret_id: &[u8],
    derive: impl FnOnce() -> Secret,
) -> Result<(), SigV4Error> {
    let map_key = SigningKeys::map_key(KeyOrigin::Derived, secret_id, &auth.scope);
    let key = keys.key_or(map_key, || signing_key(derive().expose(), &auth.scope));
    verify_with_key(req, auth, &key)
}

/// What a [`SigningKeys`] entry is found by: the secret itself, or the id it is derived from.
#[derive(Clone, Copy)]
enum KeyOrigin {
    Secret = 0,
    Derived = 1,
}

/// Derived signing keys (kSigning), so that a client's requests do not derive the same key
/// four HMACs deep on every request (AWS's SDKs cache it on their side for the same reason).
///
/// kSigning depends only on the secret, the date, the region and the service; an entry is
/// found by the SHA-256 of exactly those, length-prefixed, so it is never used for another
/// secret or scope, and no secret is a map key. The keys are as sensitive as the secrets they
/// come from, for one day: they live in this process's memory as the secrets themselves do
/// while a request is verified. Bounded ([`TwoGenerations`]).
pub struct SigningKeys {
    inner: Mutex<TwoGenerations<[u8; 32], hmac::Key>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

/// Signing keys kept by default (each ≈ 0.3 KB).
pub const DEFAULT_SIGNING_KEYS: usize = 4_096;

impl SigningKeys {
    /// At most `capacity` keys (`0`: derive every time).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(TwoGenerations::new(capacity)),
        }
    }

    /// kSigning for `secret` and `scope`, derived on a miss.
    fn key(&self, secret: &[u8], scope: &CredentialScope) -> hmac::Key {
        let map_key = Self::map_key(KeyOrigin::Secret, secret, scope);
        self.key_or(map_key, || signing_key(secret, scope))
    }

    /// The entry `map_key`, made by `derive` on a miss.
    fn key_or(&self, map_key: [u8; 32], derive: impl FnOnce() -> hmac::Key) -> hmac::Key {
        if let Some(key) = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&map_key)
        {
            return key;
        }
        let key = derive();
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(map_key, key.clone());
        key
    }

    /// SHA-256 of the origin tag, then each of `secret`, date, region and service
    /// length-prefixed: distinct inputs never share an entry.
    fn map_key(origin: KeyOrigin, secret: &[u8], scope: &CredentialScope) -> [u8; 32] {
        let mut id = digest::Context::new(&digest::SHA256);
        id.update(&[origin as u8]);
        for part in [
            secret,
            scope.date.as_bytes(),
            scope.region.as_bytes(),
            scope.service.as_bytes(),
        ] {
            id.update(&(part.len() as u64).to_be_bytes());
            id.update(part);
        }
        let mut map_key = [0u8; 32];
        // SHA-256 digests are 32 bytes: `as_ref()` is exactly `map_key`'s length.
        map_key.copy_from_slice(id.finish().as_ref());
        map_key
    }
}

/// Checks `auth.signature` against `req`, signed with `key` (kSigning).
fn verify_with_key(
    req: &HttpRequest<'_>,
    auth: &Authorization,
    key: &hmac::Key,
) -> Result<(), SigV4Error> {
    let canonical = canonical_request(req, auth)?;
    let string_to_sign = build_string_to_sign(
        &format_amz_date_time(&auth.request_time),
        &auth.scope,
        &canonical,
    );
    // `hmac::verify` compares the tags in constant time (ring's replacement for the deprecated
    // `constant_time::verify_slices_are_equal`). A malformed signature is refused only after
    // the same work, though its malformation is no secret.
    let verified = hmac::verify(key, string_to_sign.as_bytes(), &auth.signature);
    if verified.is_err() || !auth.signature_well_formed {
        return Err(SigV4Error::SignatureDoesNotMatch);
    }
    Ok(())
}

/// The canonical request the server signs for `req` (step 1 of the IAM User Guide procedure).
/// For diagnostics and tests; [`verify_signature`] builds it itself.
///
/// # Errors
/// [`SigV4Error::MalformedQueryString`] if `req.query` does not decode (never after a
/// successful [`parse_authorization`] of the same request).
pub fn canonical_request(
    req: &HttpRequest<'_>,
    auth: &Authorization,
) -> Result<String, SigV4Error> {
    let params = query::decode_form(req.query.as_bytes())?;
    let skip_signature = auth.location == AuthLocation::Query;
    let params = params
        .iter()
        .filter(|(name, _)| !(skip_signature && name == PARAM_SIGNATURE))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    Ok(build_canonical_request(req, params, req.headers, &auth.signed_headers).0)
}

/// The string to sign for `req` (step 2). For diagnostics and tests.
///
/// # Errors
/// As [`canonical_request`].
pub fn string_to_sign(req: &HttpRequest<'_>, auth: &Authorization) -> Result<String, SigV4Error> {
    let canonical = canonical_request(req, auth)?;
    Ok(build_string_to_sign(
        &format_amz_date_time(&auth.request_time),
        &auth.scope,
        &canonical,
    ))
}

/// Client side (used by `tokengate login`, tests and benches): sign a request with the
/// `Authorization` header.
///
/// Returns the headers to add: `("X-Amz-Date", ..)`, `("X-Amz-Security-Token", ..)` for
/// temporary credentials, then `("Authorization", ..)`. Signs every header in `req.headers`
/// (pass exactly the ones to sign; `Host` must be among them, as the server requires) plus
/// `x-amz-date` and `x-amz-security-token`; any `Authorization`, `X-Amz-Date` or
/// `X-Amz-Security-Token` already in `req.headers` is ignored. The payload hash is the SHA-256
/// of `req.body`. A query string that does not decode is signed as empty (the server refuses
/// such a request before it looks at the signature).
pub fn sign_request(
    req: &HttpRequest<'_>,
    creds: &SigningCredentials<'_>,
    region: &str,
    service: &str,
    time: OffsetDateTime,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date_time(&time);
    let scope = CredentialScope {
        access_key_id: creds.access_key_id.to_owned(),
        date: amz_date_of(&time),
        region: region.to_owned(),
        service: service.to_owned(),
    };
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| {
            ![
                HEADER_AUTHORIZATION,
                HEADER_X_AMZ_DATE,
                HEADER_SECURITY_TOKEN,
            ]
            .iter()
            .any(|added| name.eq_ignore_ascii_case(added))
        })
        .copied()
        .collect();
    headers.push(("X-Amz-Date", &amz_date));
    if let Some(token) = creds.session_token {
        headers.push(("X-Amz-Security-Token", token));
    }
    let signed: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    let params = query::decode_form(req.query.as_bytes()).unwrap_or_default();
    let params = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let (canonical, signed_line) = build_canonical_request(req, params, &headers, &signed);
    let string_to_sign = build_string_to_sign(&amz_date, &scope, &canonical);
    let signature = data_encoding::HEXLOWER.encode(
        hmac::sign(
            &signing_key(creds.secret_access_key.as_bytes(), &scope),
            string_to_sign.as_bytes(),
        )
        .as_ref(),
    );

    let mut out = vec![("X-Amz-Date".to_owned(), amz_date)];
    if let Some(token) = creds.session_token {
        out.push(("X-Amz-Security-Token".to_owned(), token.to_owned()));
    }
    out.push((
        "Authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_line}, Signature={signature}",
            creds.access_key_id,
            scope.to_scope_string()
        ),
    ));
    out
}

/// Presign a request (query auth), as boto3 `generate_presigned_url` does: returns the full
/// query string to append after `?`.
///
/// Parameters come out in boto3's order: `params`, then `X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders=host`,
/// `X-Amz-Security-Token` (temporary credentials), `X-Amz-Signature`. Only `host` is signed
/// and the payload hash is that of an empty body, as botocore `SigV4QueryAuth` does for
/// non-S3 services (sts-iam.md §2).
#[allow(clippy::too_many_arguments)] // The brief's shape; mirrors boto3's call.
pub fn presign_query(
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    creds: &SigningCredentials<'_>,
    region: &str,
    service: &str,
    time: OffsetDateTime,
    expires_secs: u32,
) -> String {
    let amz_date = format_amz_date_time(&time);
    let scope = CredentialScope {
        access_key_id: creds.access_key_id.to_owned(),
        date: amz_date_of(&time),
        region: region.to_owned(),
        service: service.to_owned(),
    };
    let credential = format!("{}/{}", creds.access_key_id, scope.to_scope_string());
    let expires = expires_secs.to_string();
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.extend([
        (PARAM_ALGORITHM, ALGORITHM),
        (PARAM_CREDENTIAL, credential.as_str()),
        (PARAM_DATE, amz_date.as_str()),
        (PARAM_EXPIRES, expires.as_str()),
        (PARAM_SIGNED_HEADERS, HEADER_HOST),
    ]);
    if let Some(token) = creds.session_token {
        all.push((PARAM_SECURITY_TOKEN, token));
    }
    let req = HttpRequest {
        method,
        path,
        query: "",
        headers: &[],
        body: b"",
    };
    let (canonical, _) = build_canonical_request(
        &req,
        all.iter().copied(),
        &[(HEADER_HOST, host)],
        &[HEADER_HOST.to_owned()],
    );
    let string_to_sign = build_string_to_sign(&amz_date, &scope, &canonical);
    let signature = data_encoding::HEXLOWER.encode(
        hmac::sign(
            &signing_key(creds.secret_access_key.as_bytes(), &scope),
            string_to_sign.as_bytes(),
        )
        .as_ref(),
    );
    all.push((PARAM_SIGNATURE, signature.as_str()));
    query::encode_form(&all)
}

/// Parse an `X-Amz-Date` value, ISO 8601 basic format `YYYYMMDD'T'HHMMSS'Z'`, strictly (sts-iam.md
/// §2 item 4): exactly 16 bytes, a real calendar date, seconds 00–59, UTC.
pub fn parse_amz_date_time(value: &str) -> Option<OffsetDateTime> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes.get(8) != Some(&b'T') || bytes.get(15) != Some(&b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes.get(from..to)?.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(4, 6)?).ok()?).ok()?;
    let day = u8::try_from(number(6, 8)?).ok()?;
    let hour = u8::try_from(number(9, 11)?).ok()?;
    let minute = u8::try_from(number(11, 13)?).ok()?;
    let second = u8::try_from(number(13, 15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Format `t`, converted to UTC, as an `X-Amz-Date` value `YYYYMMDD'T'HHMMSS'Z'`.
pub fn format_amz_date_time(t: &OffsetDateTime) -> String {
    let t = in_utc(*t);
    let mut out = amz_date_of(&t);
    out.reserve(8);
    out.push('T');
    for field in [t.hour(), t.minute(), t.second()] {
        push_digits(&mut out, i32::from(field), 2);
    }
    out.push('Z');
    out
}

/// What a request presents, before any check of its content.
struct Presented {
    credential: String,
    signature: String,
    signed_headers: Vec<String>,
    date: String,
    expires_secs: Option<u32>,
    location: AuthLocation,
}

/// Rules 6a–6d: the `Authorization` header and the date header.
fn presented_in_header(header: &str, headers: &[(&str, &str)]) -> Result<Presented, SigV4Error> {
    let header = trim_ascii(header);
    let (algorithm, components) = header.split_once(' ').unwrap_or((header, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: algorithm.to_owned(),
        });
    }
    let (mut credential, mut signature, mut signed_headers) = (None, None, None);
    for component in components
        .split(',')
        .map(trim_ascii)
        .filter(|c| !c.is_empty())
    {
        let Some((key, value)) = component.split_once('=') else {
            return Err(SigV4Error::MalformedAuthorizationPair {
                pair: component.to_owned(),
                header: header.to_owned(),
            });
        };
        // Rule 6c: a repeated key overrides the earlier one.
        match key {
            "Credential" => credential = Some(value),
            "Signature" => signature = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            _ => {}
        }
    }
    let date =
        first_header(headers, HEADER_X_AMZ_DATE).or_else(|| first_header(headers, HEADER_DATE));
    match (credential, signature, signed_headers, date) {
        (Some(credential), Some(signature), Some(signed_headers), Some(date)) => Ok(Presented {
            credential: credential.to_owned(),
            signature: signature.to_owned(),
            signed_headers: split_signed_headers(signed_headers),
            date: date.to_owned(),
            expires_secs: None,
            location: AuthLocation::Header,
        }),
        (credential, signature, signed_headers, date) => {
            let missing = [
                (
                    credential.is_none(),
                    "Authorization header requires 'Credential' parameter.",
                ),
                (
                    signature.is_none(),
                    "Authorization header requires 'Signature' parameter.",
                ),
                (
                    signed_headers.is_none(),
                    "Authorization header requires 'SignedHeaders' parameter.",
                ),
                (
                    date.is_none(),
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header.",
                ),
            ];
            let mut message = String::new();
            for (_, text) in missing.iter().filter(|(is_missing, _)| *is_missing) {
                message.push_str(text);
                message.push(' ');
            }
            message.push_str("Authorization=");
            message.push_str(algorithm);
            Err(SigV4Error::IncompleteAuthorizationHeader { message })
        }
    }
}

/// Rules 7a–7d: the `X-Amz-*` query parameters of a presigned URL.
fn presented_in_query(
    algorithm: &str,
    params: &[(String, String)],
) -> Result<Presented, SigV4Error> {
    if algorithm != ALGORITHM {
        return Err(SigV4Error::MissingAuthenticationToken);
    }
    match (
        first_param(params, PARAM_CREDENTIAL),
        first_param(params, PARAM_SIGNATURE),
        first_param(params, PARAM_SIGNED_HEADERS),
        first_param(params, PARAM_DATE),
    ) {
        (Some(credential), Some(signature), Some(signed_headers), Some(date)) => {
            let expires_secs = first_param(params, PARAM_EXPIRES)
                .map(parse_expires)
                .transpose()?;
            Ok(Presented {
                credential: credential.to_owned(),
                signature: signature.to_owned(),
                signed_headers: split_signed_headers(signed_headers),
                date: date.to_owned(),
                expires_secs,
                location: AuthLocation::Query,
            })
        }
        (credential, signature, signed_headers, date) => {
            let missing = [
                (credential, PARAM_CREDENTIAL),
                (signature, PARAM_SIGNATURE),
                (signed_headers, PARAM_SIGNED_HEADERS),
                (date, PARAM_DATE),
            ];
            let mut message = String::new();
            for (_, name) in missing.iter().filter(|(value, _)| value.is_none()) {
                message.push_str("AWS query-string parameters must include '");
                message.push_str(name);
                message.push_str("'. ");
            }
            message.push_str("Re-examine the query-string parameters.");
            Err(SigV4Error::IncompleteQueryParameters { message })
        }
    }
}

/// `X-Amz-Expires`: digits only, at most [`MAX_PRESIGN_EXPIRES_SECS`] (S3's messages).
fn parse_expires(value: &str) -> Result<u32, SigV4Error> {
    if value.starts_with('-') {
        return Err(SigV4Error::InvalidExpires {
            message: "X-Amz-Expires must be non-negative",
        });
    }
    let seconds = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<u64>().ok()
    } else {
        None
    };
    let Some(seconds) = seconds else {
        return Err(SigV4Error::InvalidExpires {
            message: "X-Amz-Expires should be a number",
        });
    };
    u32::try_from(seconds)
        .ok()
        .filter(|&seconds| seconds <= MAX_PRESIGN_EXPIRES_SECS)
        .ok_or(SigV4Error::InvalidExpires {
            message: "X-Amz-Expires must be less than a week (in seconds); that is, the given \
                      X-Amz-Expires must be less than 604800 seconds",
        })
}

/// Rule 1: an absolute path whose `%` escapes are well formed. (Dot segments are normalised
/// away later, as botocore does, not refused.)
fn check_path(path: &str) -> Result<(), SigV4Error> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(SigV4Error::InvalidUriPath {
            message: format!("Path is not absolute: {path}"),
        });
    }
    let mut rest = path.as_bytes();
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        // `at` is an index into `rest` found by `position`, so `at + 1..` is in bounds.
        match &rest[at + 1..] {
            [high, low, after @ ..] => {
                if query::hex_value(*high).is_none() || query::hex_value(*low).is_none() {
                    let pattern = String::from_utf8_lossy(&[*high, *low]).into_owned();
                    return Err(SigV4Error::InvalidUriPath {
                        message: format!("Illegal hex character in escape % pattern: %{pattern}"),
                    });
                }
                rest = after;
            }
            _ => {
                return Err(SigV4Error::InvalidUriPath {
                    message: "Incomplete trailing escape % sequence".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Rule 10: the request time within [`MAX_SKEW`] of `now`; exactly 15 minutes is accepted.
fn check_skew(request_time: OffsetDateTime, now: OffsetDateTime) -> Result<(), SigV4Error> {
    let earliest = now.checked_sub(MAX_SKEW).unwrap_or(now);
    if request_time < earliest {
        return Err(SigV4Error::SignatureExpired {
            request_time,
            earliest,
            now,
        });
    }
    let latest = now.checked_add(MAX_SKEW).unwrap_or(now);
    if request_time > latest {
        return Err(SigV4Error::SignatureNotYetCurrent {
            request_time,
            latest,
            now,
        });
    }
    Ok(())
}

/// A presigned URL is good from `X-Amz-Date` up to and including `X-Amz-Date + X-Amz-Expires`.
fn check_presigned_expiry(
    request_time: OffsetDateTime,
    expires_secs: u32,
    now: OffsetDateTime,
) -> Result<(), SigV4Error> {
    let deadline = request_time.checked_add(Duration::seconds(i64::from(expires_secs)));
    if expires_secs == 0 || deadline.is_some_and(|deadline| now > deadline) {
        return Err(SigV4Error::PresignedUrlExpired);
    }
    Ok(())
}

/// Rules 10b and 11: five parts, then every scope fault in one message.
fn parse_scope(credential: &str, amz_date: &str) -> Result<CredentialScope, SigV4Error> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(SigV4Error::MalformedCredential {
            credential: credential.to_owned(),
        });
    };
    let mut faults = Vec::new();
    if !is_scope_label(region, false) {
        faults.push(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        ));
    }
    if !is_scope_label(service, true) {
        faults.push(format!(
            "Credential should be scoped to a valid service, not '{service}'."
        ));
    }
    if *terminator != SCOPE_TERMINATOR {
        faults.push(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not \
             '{terminator}'."
        ));
    }
    // The date was validated as 16 ASCII characters, so it has an 8-byte prefix.
    let day = amz_date.get(..8).unwrap_or(amz_date);
    if *date != day {
        faults.push(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{date}' != '{day}', from '{amz_date}'."
        ));
    }
    if !faults.is_empty() {
        return Err(SigV4Error::ScopeMismatch {
            message: faults.join(" "),
        });
    }
    Ok(CredentialScope {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
    })
}

/// A region is a DNS label that is not all digits (botocore `validate_region_name`); a service
/// name (tokengate's rule) is a DNS label, `_` and `.` also allowed.
fn is_scope_label(label: &str, service: bool) -> bool {
    let bytes = label.as_bytes();
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || b == b'-' || (service && matches!(b, b'_' | b'.'));
    !bytes.is_empty()
        && bytes.len() <= MAX_SCOPE_LABEL_LEN
        && bytes.iter().all(|&b| allowed(b))
        && !label.starts_with('-')
        && !label.ends_with('-')
        && (service || !bytes.iter().all(u8::is_ascii_digit))
}

/// 64 lower-case hex digits, as every SDK writes them; anything else cannot match.
fn parse_signature(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

/// The UTC day of `t` as `YYYYMMDD`.
fn amz_date_of(t: &OffsetDateTime) -> String {
    let t = in_utc(*t);
    let mut out = String::with_capacity(8);
    push_digits(&mut out, t.year(), 4);
    push_digits(&mut out, i32::from(u8::from(t.month())), 2);
    push_digits(&mut out, i32::from(t.day()), 2);
    out
}

/// Appends `value` zero-padded to `width` digits (what `{:0width$}` prints for the values of
/// a SigV4 date: years 0–9999, the other fields below 100), without the formatting machinery
/// on every request.
fn push_digits(out: &mut String, value: i32, width: u32) {
    if !(0..10_i32.pow(width)).contains(&value) {
        out.push_str(&format!("{value:0width$}", width = width as usize));
        return;
    }
    for place in (0..width).rev() {
        let digit = (value / 10_i32.pow(place)) % 10;
        // 0 ≤ digit ≤ 9, so the `as` is exact.
        out.push(char::from(b'0' + digit as u8));
    }
}

fn in_utc(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(UtcOffset::UTC).unwrap_or(t)
}

/// The canonical request and its `SignedHeaders` line.
fn build_canonical_request<'p>(
    req: &HttpRequest<'_>,
    params: impl Iterator<Item = (&'p str, &'p str)>,
    headers: &[(&str, &str)],
    signed_headers: &[String],
) -> (String, String) {
    // Sized for what it will hold (a session token alone is ~1 KB): no regrowth.
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(
        256 + req.method.len() + 3 * (req.path.len() + req.query.len()) + 2 * header_bytes,
    );
    out.push_str(req.method);
    out.push('\n');
    push_canonical_uri(&mut out, req.path);
    out.push('\n');
    push_canonical_query(&mut out, params);
    out.push('\n');

    // botocore `canonical_headers`: sorted, de-duplicated names; each name's values in
    // received order, trimmed, inner whitespace collapsed, joined with ','.
    let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    for name in &names {
        out.push_str(name);
        out.push(':');
        let values = headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name));
        for (index, (_, value)) in values.enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_collapsed(&mut out, value);
        }
        out.push('\n');
    }
    out.push('\n');
    let signed_line = names.join(";");
    out.push_str(&signed_line);
    out.push('\n');
    out.push_str(
        &data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, req.body).as_ref()),
    );
    (out, signed_line)
}

/// botocore `_normalize_url_path` + `quote(path, safe='/~')`: dot segments and empty segments
/// removed, then every byte but unreserved and `/` percent-encoded — so an already-encoded path
/// is encoded a second time, as AWS expects of every service but S3.
fn push_canonical_uri(out: &mut String, path: &str) {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    if path.starts_with('/') || path.is_empty() {
        normalized.push('/');
    }
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    query::percent_encode_into(out, normalized.as_bytes(), true);
}

/// Names and values AWS-encoded, sorted by name then value, `name=value` joined with `&`.
fn push_canonical_query<'p>(out: &mut String, params: impl Iterator<Item = (&'p str, &'p str)>) {
    let mut encoded: Vec<(String, String)> = params
        .map(|(name, value)| {
            let mut encoded_name = String::with_capacity(name.len());
            query::percent_encode_into(&mut encoded_name, name.as_bytes(), false);
            let mut encoded_value = String::with_capacity(value.len());
            query::percent_encode_into(&mut encoded_value, value.as_bytes(), false);
            (encoded_name, encoded_value)
        })
        .collect();
    encoded.sort_unstable();
    for (index, (name, value)) in encoded.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// A header value trimmed, runs of ASCII whitespace collapsed to one space.
fn push_collapsed(out: &mut String, value: &str) {
    // Fast path: a value with no whitespace to trim or collapse (a session token, a date,
    // most hosts) is copied as it is.
    let bytes = value.as_bytes();
    let plain = bytes.iter().enumerate().all(|(i, b)| {
        !b.is_ascii_whitespace()
            || (*b == b' ' && i > 0 && i + 1 < bytes.len() && bytes[i + 1] != b' ')
    });
    if plain {
        out.push_str(value);
        return;
    }
    let words = value
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    for (index, word) in words.enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

fn build_string_to_sign(amz_date: &str, scope: &CredentialScope, canonical: &str) -> String {
    let hash = digest::digest(&digest::SHA256, canonical.as_bytes());
    let mut out = String::with_capacity(160 + scope.region.len() + scope.service.len());
    for part in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        &scope.date,
        "/",
        &scope.region,
        "/",
    ] {
        out.push_str(part);
    }
    for part in [&scope.service, "/", SCOPE_TERMINATOR, "\n"] {
        out.push_str(part);
    }
    data_encoding::HEXLOWER.encode_append(hash.as_ref(), &mut out);
    out
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
fn signing_key(secret: &[u8], scope: &CredentialScope) -> hmac::Key {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let k_date = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &k_secret),
        scope.date.as_bytes(),
    );
    // Best effort: do not leave a copy of the secret behind in the heap.
    k_secret.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&k_secret);
    let k_region = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_date.as_ref()),
        scope.region.as_bytes(),
    );
    let k_service = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_region.as_ref()),
        scope.service.as_bytes(),
    );
    let k_signing = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, k_service.as_ref()),
        SCOPE_TERMINATOR.as_bytes(),
    );
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

fn split_signed_headers(list: &str) -> Vec<String> {
    list.split(';').map(str::to_ascii_lowercase).collect()
}

fn first_header<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

fn first_param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(param, _)| param == name)
        .map(|(_, value)| value.as_str())
}

fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn collapsing_takes_the_fast_path_only_when_it_changes_nothing() {
        let slow = |v: &str| {
            v.split(|c: char| c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for v in [
            "",
            " ",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "a\tb",
            "a \tb",
            "a\nb",
            "\t",
            "a b c",
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==",
            "a\u{a0}b",
        ] {
            let mut out = String::from("x:");
            push_collapsed(&mut out, v);
            assert_eq!(out, format!("x:{}", slow(v)), "{v:?}");
        }
    }

    #[test]
    fn dates_format_as_before() {
        for t in [
            time::macros::datetime!(2015-08-30 12:36:00 UTC),
            time::macros::datetime!(2026-01-02 03:04:05 UTC),
            time::macros::datetime!(0999-12-31 23:59:59 UTC),
            time::macros::datetime!(2026-06-01 01:02:03 +02:00),
        ] {
            let u = t.to_offset(UtcOffset::UTC);
            let expected = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                u.year(),
                u8::from(u.month()),
                u.day(),
                u.hour(),
                u.minute(),
                u.second()
            );
            assert_eq!(format_amz_date_time(&t), expected);
            assert_eq!(amz_date_of(&t), expected[..8]);
        }
    }

    use time::macros::datetime;

    use super::*;

    fn canonical_uri(path: &str) -> String {
        let mut out = String::new();
        push_canonical_uri(&mut out, path);
        out
    }

    #[test]
    fn canonical_uri_normalises_then_encodes_twice_like_botocore() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("//example//", "/example/"),
            ("/a/./b/../c", "/a/c"),
            ("/a/b/", "/a/b/"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("/a/.", "/a"),
            ("/a b", "/a%20b"),
            ("/%20", "/%2520"),
            ("/a+b", "/a%2Bb"),
            ("/-._~", "/-._~"),
            ("/\u{1234}", "/%E1%88%B4"),
        ] {
            assert_eq!(canonical_uri(path), expected, "{path:?}");
        }
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        for (value, expected) in [
            ("", ""),
            ("  a  ", "a"),
            ("\"a   b   c\"", "\"a b c\""),
            ("value1\n  value2\n     value3", "value1 value2 value3"),
            ("a\t\tb", "a b"),
        ] {
            let mut out = String::new();
            push_collapsed(&mut out, value);
            assert_eq!(out, expected, "{value:?}");
        }
    }

    #[test]
    fn amz_dates_parse_strictly_and_round_trip() {
        let t = parse_amz_date_time("20240229T235959Z").unwrap();
        assert_eq!(t, datetime!(2024-02-29 23:59:59 UTC));
        assert_eq!(format_amz_date_time(&t), "20240229T235959Z");
        assert_eq!(amz_date_of(&t), "20240229");
        assert!(parse_amz_date_time("20230229T000000Z").is_none());
        assert!(parse_amz_date_time("00000101T000000Z").is_some());
        let tokyo = datetime!(2024-03-01 08:00:00 +9);
        assert_eq!(format_amz_date_time(&tokyo), "20240229T230000Z");
    }

    #[test]
    fn scope_labels() {
        assert!(is_scope_label("us-east-1", false));
        assert!(is_scope_label("a", false));
        assert!(!is_scope_label("123", false));
        assert!(is_scope_label("123", true));
        assert!(!is_scope_label("a_b", false));
        assert!(is_scope_label("a_b.c", true));
        assert!(!is_scope_label("", true));
        assert!(is_scope_label(&"a".repeat(MAX_SCOPE_LABEL_LEN), false));
        assert!(!is_scope_label(&"a".repeat(MAX_SCOPE_LABEL_LEN + 1), true));
    }

    #[test]
    fn expires_parse() {
        assert_eq!(parse_expires("0"), Ok(0));
        assert_eq!(parse_expires("0060"), Ok(60));
        assert_eq!(parse_expires("604800"), Ok(MAX_PRESIGN_EXPIRES_SECS));
        assert!(parse_expires("604801").is_err());
        assert!(parse_expires("4294967296").is_err());
        assert!(parse_expires("-0").is_err());
        assert!(parse_expires(" 1").is_err());
    }

    #[test]
    fn signature_hex_must_be_lower_case() {
        assert_eq!(parse_signature(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(parse_signature(&"AB".repeat(32)), None);
        assert_eq!(parse_signature("ab"), None);
        assert_eq!(parse_signature(&"\u{e9}".repeat(32)), None);
    }
}
