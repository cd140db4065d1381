//! SigV4 verification against published vectors, each re-run tampered; AWS's error order and
//! texts; clock-skew edges; sign → parse → verify round trips.
//!
//! Vectors (sources in `tests/data/*/README.md`): the botocore STS GetSessionToken vector of
//! sts-iam.md §2, and a subset of the AWS SigV4 test suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use time::{Duration, OffsetDateTime, macros::datetime};
use tokengate_token::Secret;
use tokengate_token::query::{decode_form, encode_form};
use tokengate_token::sigv4::{
    AuthLocation, Authorization, HttpRequest, MAX_SKEW, SigV4Error, SigningCredentials,
    SigningKeys, canonical_request, parse_authorization, presign_query, sign_request,
    string_to_sign, verify_signature, verify_signature_cached, verify_signature_cached_derived,
};

// ---------------------------------------------------------------------------------------------
// Vectors

const SUITE_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// One signing-key cache for every check (see `Case::check`).
static SIGNING_KEYS: std::sync::LazyLock<SigningKeys> =
    std::sync::LazyLock::new(|| SigningKeys::new(64));
const SUITE_TIME: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);
const BOTOCORE_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const BOTOCORE_TIME: OffsetDateTime = datetime!(2026-01-02 03:04:05 UTC);

macro_rules! suite {
    ($case:literal, $file:literal) => {
        (
            concat!($case, "/", $file),
            include_str!(concat!("data/aws-sig-v4-test-suite/", $case, "/", $file)),
        )
    };
}

/// Every positive vector: (name, signed request, secret, time).
fn positive_vectors() -> Vec<(&'static str, &'static str, &'static [u8], OffsetDateTime)> {
    let suite = [
        suite!("get-header-key-duplicate", "header-signed-request.txt"),
        suite!("get-header-value-order", "header-signed-request.txt"),
        suite!("get-header-value-trim", "header-signed-request.txt"),
        suite!("get-header-value-trim", "query-signed-request.txt"),
        suite!(
            "get-relative-relative-normalized",
            "header-signed-request.txt"
        ),
        suite!("get-slashes-normalized", "header-signed-request.txt"),
        suite!("get-space-normalized", "header-signed-request.txt"),
        suite!("get-unreserved", "header-signed-request.txt"),
        suite!("get-utf8", "header-signed-request.txt"),
        suite!("get-vanilla-empty-query-key", "header-signed-request.txt"),
        suite!(
            "get-vanilla-query-order-key-case",
            "header-signed-request.txt"
        ),
        suite!(
            "get-vanilla-query-order-key-case",
            "query-signed-request.txt"
        ),
        suite!("get-vanilla-query-unreserved", "header-signed-request.txt"),
        suite!("get-vanilla-utf8-query", "header-signed-request.txt"),
        suite!(
            "get-vanilla-with-session-token",
            "header-signed-request.txt"
        ),
        suite!("post-vanilla", "header-signed-request.txt"),
        suite!("post-vanilla", "query-signed-request.txt"),
        suite!("post-x-www-form-urlencoded", "header-signed-request.txt"),
    ];
    let mut all: Vec<_> = suite
        .into_iter()
        .map(|(n, t)| (n, t, SUITE_SECRET, SUITE_TIME))
        .collect();
    all.push((
        "botocore/sts-get-session-token",
        include_str!("data/botocore/sts-get-session-token.header-signed-request.txt"),
        BOTOCORE_SECRET,
        BOTOCORE_TIME,
    ));
    all
}

/// An owned HTTP request, parsed from the suite's text format.
#[derive(Clone, Debug)]
struct Owned {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Owned {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\n\n").unwrap();
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method_and_target, _version) = request_line.rsplit_once(' ').unwrap();
        let (method, target) = method_and_target.split_once(' ').unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&HttpRequest<'_>) -> R) -> R {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        f(&HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }

    fn check(&self, secret: &[u8], now: OffsetDateTime) -> Result<Authorization, SigV4Error> {
        self.with(|req| {
            let auth = parse_authorization(req, now)?;
            let verified = verify_signature(req, &auth, secret);
            // The signing-key cache (shared by every vector, so across secrets and scopes)
            // answers exactly as the derivation does, hit or miss.
            for _ in 0..2 {
                let cached = verify_signature_cached(req, &auth, secret, &SIGNING_KEYS);
                assert_eq!(cached, verified);
                // Found by an id the secret is derived from (here: a label of it).
                let id = [b"vector:".as_slice(), secret].concat();
                let derived =
                    verify_signature_cached_derived(req, &auth, &SIGNING_KEYS, &id, || {
                        Secret::new(secret.to_vec())
                    });
                assert_eq!(derived, verified);
            }
            verified?;
            Ok(auth)
        })
    }

    fn header_mut(&mut self, name: &str) -> &mut String {
        &mut self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Replace `from` by `to` in the Authorization header or, for a presigned URL, the query.
    fn edit_auth(&mut self, from: &str, to: &str) {
        let target = if self.has_header("authorization") {
            self.header_mut("authorization")
        } else {
            &mut self.query
        };
        assert!(target.contains(from), "{from:?} not in {target:?}");
        *target = target.replacen(from, to, 1);
    }
}

#[test]
fn every_positive_vector_verifies() {
    for (name, text, secret, time) in positive_vectors() {
        let request = Owned::parse(text);
        let auth = request
            .check(secret, time)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(auth.has_well_formed_signature(), "{name}");
        let expected_location = if name.ends_with("/query-signed-request.txt") {
            AuthLocation::Query
        } else {
            AuthLocation::Header
        };
        assert_eq!(auth.location, expected_location, "{name}");
    }
}

#[test]
fn botocore_vector_matches_canonical_request_and_string_to_sign() {
    let request = Owned::parse(include_str!(
        "data/botocore/sts-get-session-token.header-signed-request.txt"
    ));
    request.with(|req| {
        let auth = parse_authorization(req, BOTOCORE_TIME).unwrap();
        assert_eq!(auth.scope.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(auth.scope.date, "20260102");
        assert_eq!(auth.scope.region, "us-east-1");
        assert_eq!(auth.scope.service, "sts");
        assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert_eq!(auth.request_time, BOTOCORE_TIME);
        assert_eq!(auth.security_token, None);
        assert_eq!(auth.expires_secs, None);
        assert_eq!(
            canonical_request(req, &auth).unwrap(),
            include_str!("data/botocore/sts-get-session-token.canonical-request.txt")
        );
        assert_eq!(
            string_to_sign(req, &auth).unwrap(),
            include_str!("data/botocore/sts-get-session-token.string-to-sign.txt")
        );
        verify_signature(req, &auth, BOTOCORE_SECRET).unwrap();
        auth.require_service("sts").unwrap();
        assert_eq!(
            auth.require_service("iam").unwrap_err().to_string(),
            "Credential should be scoped to correct service: 'iam'."
        );
    });
}

#[test]
fn sign_request_reproduces_the_botocore_vector() {
    let request = Owned::parse(include_str!(
        "data/botocore/sts-get-session-token.header-signed-request.txt"
    ));
    let unsigned: Vec<(&str, &str)> = vec![
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("Host", "127.0.0.1:8080"),
    ];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &unsigned,
        body: &request.body,
    };
    let creds = SigningCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    let added = sign_request(&req, &creds, "us-east-1", "sts", BOTOCORE_TIME);
    let expected_authorization = request
        .headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(
        added,
        [
            ("X-Amz-Date".to_owned(), "20260102T030405Z".to_owned()),
            ("Authorization".to_owned(), expected_authorization),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Every positive vector, tampered

fn expect_mismatch(name: &str, what: &str, tampered: &Owned, secret: &[u8], time: OffsetDateTime) {
    match tampered.check(secret, time) {
        Err(SigV4Error::SignatureDoesNotMatch) => {}
        other => panic!("{name}, {what}: expected SignatureDoesNotMatch, got {other:?}"),
    }
}

#[test]
fn every_positive_vector_fails_when_tampered() {
    for (name, text, secret, time) in positive_vectors() {
        let original = Owned::parse(text);
        let auth = original.check(secret, time).unwrap();
        let presigned = auth.location == AuthLocation::Query;

        // A body byte.
        for index in [0, original.body.len().saturating_sub(1)] {
            let mut t = original.clone();
            match t.body.get_mut(index) {
                Some(byte) => *byte ^= 0x01,
                None => t.body.push(b'x'),
            }
            expect_mismatch(name, "body", &t, secret, time);
        }

        // Each signed header's value (a spoilt date is a structural error).
        for signed in &auth.signed_headers {
            let mut t = original.clone();
            t.header_mut(signed).push('x');
            if signed == "x-amz-date" {
                let err = t.check(secret, time).unwrap_err();
                assert!(
                    matches!(err, SigV4Error::MalformedDate { .. }),
                    "{name}: {err:?}"
                );
            } else {
                expect_mismatch(name, &format!("header {signed}"), &t, secret, time);
            }
        }

        // A second value for a signed header.
        let mut t = original.clone();
        t.headers
            .push(("Host".to_owned(), "evil.example".to_owned()));
        expect_mismatch(name, "second host", &t, secret, time);

        // The date, by one second (same day: the signature no longer matches) ...
        let date = if presigned {
            time_param(&original)
        } else {
            date_header(&original)
        };
        let later = bump(&date, Duration::seconds(1));
        let mut t = original.clone();
        set_date(&mut t, presigned, &later);
        expect_mismatch(name, "date + 1 s", &t, secret, time);
        // ... and by a day (the scope date no longer matches, a structural error).
        let next_day = bump(&date, Duration::days(1));
        let mut t = original.clone();
        set_date(&mut t, presigned, &next_day);
        let err = t.check(secret, time + Duration::days(1)).unwrap_err();
        assert!(
            matches!(err, SigV4Error::ScopeMismatch { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("Date in Credential scope does not match")
        );

        // Region and service in the scope (both still well formed).
        for (from, to) in [("us-east-1", "us-west-2"), (service_of(&auth), "sts2")] {
            let mut t = original.clone();
            let from_scoped = format!("/{from}/");
            let to_scoped = format!("/{to}/");
            if presigned {
                t.edit_auth(
                    &from_scoped.replace('/', "%2F"),
                    &to_scoped.replace('/', "%2F"),
                );
            } else {
                t.edit_auth(&from_scoped, &to_scoped);
            }
            expect_mismatch(name, &format!("scope {from} -> {to}"), &t, secret, time);
        }

        // The key: another secret.
        let mut other_secret = secret.to_vec();
        other_secret[0] ^= 0x01;
        expect_mismatch(name, "secret", &original, &other_secret, time);

        // The signed-headers list: one name dropped, one added, `host` dropped.
        let list = auth.signed_headers.join(";");
        let encoded_list = |l: &str| {
            if presigned {
                l.replace(';', "%3B")
            } else {
                l.to_owned()
            }
        };
        let without_last = auth.signed_headers[..auth.signed_headers.len() - 1].join(";");
        if auth.signed_headers.len() > 1 {
            let mut t = original.clone();
            t.edit_auth(&encoded_list(&list), &encoded_list(&without_last));
            expect_mismatch(name, "signed header dropped", &t, secret, time);
        }
        let mut t = original.clone();
        t.edit_auth(&encoded_list(&list), &encoded_list(&format!("{list};zzz")));
        expect_mismatch(name, "signed header added", &t, secret, time);
        let without_host: Vec<&str> = auth
            .signed_headers
            .iter()
            .map(String::as_str)
            .filter(|h| *h != "host")
            .collect();
        let mut t = original.clone();
        t.edit_auth(&encoded_list(&list), &encoded_list(&without_host.join(";")));
        assert_eq!(
            t.check(secret, time).unwrap_err(),
            SigV4Error::HostNotSigned,
            "{name}"
        );

        // The signature: one digit, and upper case (not what any SDK sends).
        let hex = data_encoding::HEXLOWER.encode(&auth.signature);
        let mut flipped = hex.clone().into_bytes();
        flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
        let mut t = original.clone();
        t.edit_auth(&hex, std::str::from_utf8(&flipped).unwrap());
        expect_mismatch(name, "signature digit", &t, secret, time);
        let mut t = original.clone();
        t.edit_auth(&hex, &hex.to_uppercase());
        if hex != hex.to_uppercase() {
            expect_mismatch(name, "signature case", &t, secret, time);
        }

        // Method, path and query.
        let mut t = original.clone();
        t.method = if t.method == "GET" {
            "POST".into()
        } else {
            "GET".into()
        };
        expect_mismatch(name, "method", &t, secret, time);
        let mut t = original.clone();
        t.path.push('x');
        expect_mismatch(name, "path", &t, secret, time);
        let mut t = original.clone();
        t.query = if t.query.is_empty() {
            "a=b".into()
        } else {
            format!("{}&a=b", t.query)
        };
        expect_mismatch(name, "query", &t, secret, time);

        // The session token, where there is one.
        if auth.security_token.is_some() {
            let mut t = original.clone();
            t.header_mut("x-amz-security-token").push('0');
            expect_mismatch(name, "session token", &t, secret, time);
        }
    }
}

fn service_of(auth: &Authorization) -> &str {
    &auth.scope.service
}

fn date_header(request: &Owned) -> String {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
        .unwrap()
        .1
        .clone()
}

fn time_param(request: &Owned) -> String {
    decode_form(request.query.as_bytes())
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == "X-Amz-Date")
        .unwrap()
        .1
}

fn set_date(request: &mut Owned, presigned: bool, value: &str) {
    if presigned {
        let old = time_param(request);
        request.query = request.query.replacen(&old, value, 1);
    } else {
        *request.header_mut("x-amz-date") = value.to_owned();
    }
}

fn amz(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn parse_amz(value: &str) -> OffsetDateTime {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, &format)
        .unwrap()
        .assume_utc()
}

fn bump(value: &str, by: Duration) -> String {
    amz(parse_amz(value) + by)
}

// ---------------------------------------------------------------------------------------------
// Clock skew: ±15 minutes inclusive, AWS's texts

/// A GetCallerIdentity POST signed at `at`, as boto3 sends it.
fn signed_post(at: OffsetDateTime) -> Owned {
    let body = encode_form(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]);
    let base: Vec<(&str, &str)> = vec![
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("Host", "127.0.0.1:8080"),
    ];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &base,
        body: body.as_bytes(),
    };
    let creds = SigningCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    let added = sign_request(&req, &creds, "us-east-1", "sts", at);
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    headers.extend(added);
    Owned {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers,
        body: body.into_bytes(),
    }
}

#[test]
fn skew_of_exactly_fifteen_minutes_is_accepted_both_ways() {
    let at = datetime!(2026-01-02 12:00:00 UTC);
    let request = signed_post(at);
    request.check(BOTOCORE_SECRET, at + MAX_SKEW).unwrap();
    request.check(BOTOCORE_SECRET, at - MAX_SKEW).unwrap();
    request.check(BOTOCORE_SECRET, at).unwrap();
}

#[test]
fn skew_past_fifteen_minutes_is_refused_with_aws_texts() {
    let at = datetime!(2026-01-02 12:00:00 UTC);
    let request = signed_post(at);

    let err = request
        .check(BOTOCORE_SECRET, at + MAX_SKEW + Duration::SECOND)
        .unwrap_err();
    assert!(matches!(err, SigV4Error::SignatureExpired { .. }));
    assert_eq!(
        err.to_string(),
        "Signature expired: 20260102T120000Z is now earlier than 20260102T120001Z \
         (20260102T121501Z - 15 min.)"
    );
    assert_eq!(
        (err.aws_code(), err.http_status()),
        ("SignatureDoesNotMatch", 403)
    );

    let err = request
        .check(BOTOCORE_SECRET, at - MAX_SKEW - Duration::SECOND)
        .unwrap_err();
    assert!(matches!(err, SigV4Error::SignatureNotYetCurrent { .. }));
    assert_eq!(
        err.to_string(),
        "Signature not yet current: 20260102T120000Z is still later than 20260102T115959Z \
         (20260102T114459Z + 15 min.)"
    );
    assert_eq!(
        (err.aws_code(), err.http_status()),
        ("SignatureDoesNotMatch", 403)
    );
}

#[test]
fn skew_messages_reproduce_the_captured_aws_errors() {
    // sts-iam.md §1.4: devsecops/bootcamp#101 and scratchstack `error.rs`.
    let request = signed_post(datetime!(2016-06-09 18:45:12 UTC));
    let err = request
        .check(BOTOCORE_SECRET, datetime!(2016-06-10 01:45:08 UTC))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Signature expired: 20160609T184512Z is now earlier than 20160610T013008Z \
         (20160610T014508Z - 15 min.)"
    );
    let request = signed_post(datetime!(2021-05-02 18:36:40 UTC));
    let err = request
        .check(BOTOCORE_SECRET, datetime!(2021-05-02 17:36:40 UTC))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Signature not yet current: 20210502T183640Z is still later than 20210502T175140Z \
         (20210502T173640Z + 15 min.)"
    );
}

#[test]
fn skew_is_judged_in_utc_whatever_the_server_offset() {
    let at = datetime!(2026-01-02 12:00:00 UTC);
    let request = signed_post(at);
    let now = (at + MAX_SKEW + Duration::SECOND).to_offset(time::macros::offset!(+9));
    let err = request.check(BOTOCORE_SECRET, now).unwrap_err();
    assert!(
        err.to_string().ends_with("(20260102T121501Z - 15 min.)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Error order and texts (scratchstack "AWS Auth Error Ordering"; sts-iam.md §2 item 7)

const NOW: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

fn parse_with(
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Authorization, SigV4Error> {
    let req = HttpRequest {
        method: "GET",
        path,
        query,
        headers,
        body: b"",
    };
    parse_authorization(&req, NOW)
}

const GOOD_CREDENTIAL: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn header_auth(credential: &str, signed: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={SIG}")
}

#[test]
fn header_error_order_follows_aws() {
    let host = ("Host", "example.amazonaws.com");
    let date = ("X-Amz-Date", "20150830T123600Z");
    // (extra headers, AWS code, AWS message)
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![],
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        (
            vec![("Authorization", "AWS5-HMAC-SHA256 FooBar, BazBurp".into())],
            "IncompleteSignature",
            "Unsupported AWS 'algorithm': 'AWS5-HMAC-SHA256'.",
        ),
        (
            vec![("Authorization", "AWS4-HMAC-SHA256 FooBar, BazBurp".into())],
            "IncompleteSignature",
            "'FooBar' not a valid key=value pair (missing equal-sign) in Authorization header: \
             'AWS4-HMAC-SHA256 FooBar, BazBurp'",
        ),
        (
            vec![("Authorization", "AWS4-HMAC-SHA256 Foo=Bar, Baz=Burp".into())],
            "IncompleteSignature",
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter. Authorization header requires existence of either a 'X-Amz-Date' or a \
             'Date' header. Authorization=AWS4-HMAC-SHA256",
        ),
        (
            vec![(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE, Signature=AB".into(),
            )],
            "IncompleteSignature",
            "Authorization header requires 'SignedHeaders' parameter. Authorization header \
             requires existence of either a 'X-Amz-Date' or a 'Date' header. \
             Authorization=AWS4-HMAC-SHA256",
        ),
        (
            // Host not signed comes before the date format.
            vec![
                ("Authorization", header_auth(GOOD_CREDENTIAL, "x-amz-date")),
                ("X-Amz-Date", "2015/08/30T12/36/00Z".into()),
            ],
            "SignatureDoesNotMatch",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            // Bad date format before a bad scope.
            vec![
                (
                    "Authorization",
                    header_auth("AKIDEXAMPLE/x/bad_region/service/aws5_request", "host"),
                ),
                ("X-Amz-Date", "2015/08/30T12/36/00Z".into()),
            ],
            "IncompleteSignature",
            "Date must be in ISO-8601 'basic format'. Got '2015/08/30T12/36/00Z'. See \
             http://en.wikipedia.org/wiki/ISO_8601",
        ),
        (
            // Expired before a malformed credential.
            vec![
                ("Authorization", header_auth("AKIDEXAMPLE", "host")),
                ("X-Amz-Date", "20150830T122059Z".into()),
            ],
            "SignatureDoesNotMatch",
            "Signature expired: 20150830T122059Z is now earlier than 20150830T122100Z \
             (20150830T123600Z - 15 min.)",
        ),
        (
            vec![
                ("Authorization", header_auth("AKIDEXAMPLE", "host")),
                ("X-Amz-Date", "20150830T125101Z".into()),
            ],
            "SignatureDoesNotMatch",
            "Signature not yet current: 20150830T125101Z is still later than 20150830T125100Z \
             (20150830T123600Z + 15 min.)",
        ),
        (
            vec![
                ("Authorization", header_auth("AKIDEXAMPLE", "host")),
                ("X-Amz-Date", date.1.into()),
            ],
            "IncompleteSignature",
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got 'AKIDEXAMPLE'",
        ),
        (
            vec![
                (
                    "Authorization",
                    header_auth("AKIDEXAMPLE/foobar/bad_region//aws5_request", "host"),
                ),
                ("X-Amz-Date", date.1.into()),
            ],
            "SignatureDoesNotMatch",
            "Credential should be scoped to a valid region, not 'bad_region'. Credential should \
             be scoped to a valid service, not ''. Credential should be scoped with a valid \
             terminator: 'aws4_request', not 'aws5_request'. Date in Credential scope does not \
             match YYYYMMDD from ISO-8601 version of date from HTTP: 'foobar' != '20150830', \
             from '20150830T123600Z'.",
        ),
        (
            vec![
                (
                    "Authorization",
                    header_auth(
                        "AKIDEXAMPLE/20150830/us-east-1/service/aws5_request",
                        "host",
                    ),
                ),
                ("X-Amz-Date", date.1.into()),
            ],
            "SignatureDoesNotMatch",
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             'aws5_request'.",
        ),
    ];
    for (index, (extra, code, message)) in cases.iter().enumerate() {
        let mut headers = vec![host];
        headers.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
        let err = parse_with("/", "", &headers).unwrap_err();
        assert_eq!(err.to_string(), *message, "case {index}");
        assert_eq!(err.aws_code(), *code, "case {index}");
    }
    // All good structurally: parse succeeds, the zero signature then fails to verify.
    let authorization = header_auth(GOOD_CREDENTIAL, "host;x-amz-date");
    let headers = [host, date, ("Authorization", authorization.as_str())];
    let auth = parse_with("/", "", &headers).unwrap();
    let req = HttpRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        verify_signature(&req, &auth, SUITE_SECRET)
            .unwrap_err()
            .to_string(),
        "The request signature we calculated does not match the signature you provided. Check \
         your AWS Secret Access Key and signing method. Consult the service documentation for \
         details."
    );
}

#[test]
fn url_errors_come_first() {
    // A malformed query beats a missing Authorization header (rules 4, 5).
    let err = parse_with("/", "a%yy", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Illegal hex character in escape % pattern: %yy"
    );
    assert_eq!(
        (err.aws_code(), err.http_status()),
        ("MalformedQueryString", 404)
    );
    // A malformed path beats a malformed query (rule 1).
    let err = parse_with("/a%2", "a%yy", &[]).unwrap_err();
    assert_eq!(err.to_string(), "Incomplete trailing escape % sequence");
    assert_eq!((err.aws_code(), err.http_status()), ("InvalidURIPath", 400));
    let err = parse_with("/a%zz/", "", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Illegal hex character in escape % pattern: %zz"
    );
    let err = parse_with("relative", "", &[]).unwrap_err();
    assert_eq!(err.to_string(), "Path is not absolute: relative");
}

#[test]
fn header_and_query_authentication_together_is_signature_does_not_match() {
    let authorization = header_auth(GOOD_CREDENTIAL, "host;x-amz-date");
    let headers = [
        ("Host", "h"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", authorization.as_str()),
    ];
    let err = parse_with("/", "X-Amz-Algorithm=AWS4-HMAC-SHA256", &headers).unwrap_err();
    assert_eq!(err, SigV4Error::HeaderAndQueryAuthentication);
    assert_eq!(
        (err.aws_code(), err.http_status()),
        ("SignatureDoesNotMatch", 403)
    );
    // Whatever else is wrong with the header.
    let headers = [("Authorization", "garbage")];
    let err = parse_with("/", "X-Amz-Algorithm=nonsense", &headers).unwrap_err();
    assert_eq!(err, SigV4Error::HeaderAndQueryAuthentication);
}

#[test]
fn missing_authentication_is_403() {
    let err = parse_with("/", "Action=GetCallerIdentity", &[("Host", "h")]).unwrap_err();
    assert_eq!(err, SigV4Error::MissingAuthenticationToken);
    assert_eq!(
        (err.aws_code(), err.http_status()),
        ("MissingAuthenticationToken", 403)
    );
    // An unknown query algorithm is "missing" too (rule 7a).
    let err = parse_with("/", "X-Amz-Algorithm=AWS4-HMAC-SHA512", &[]).unwrap_err();
    assert_eq!(err, SigV4Error::MissingAuthenticationToken);
}

#[test]
fn date_header_is_used_when_x_amz_date_is_absent() {
    let authorization = header_auth(GOOD_CREDENTIAL, "date;host");
    let headers = [
        ("Host", "h"),
        ("Date", "20150830T123600Z"),
        ("Authorization", authorization.as_str()),
    ];
    assert_eq!(parse_with("/", "", &headers).unwrap().request_time, NOW);
    // X-Amz-Date wins over Date.
    let headers = [
        ("Host", "h"),
        ("Date", "Sun, 30 Aug 2015 12:36:00 GMT"),
        ("x-amz-date", "20150830T123600Z"),
        ("Authorization", authorization.as_str()),
    ];
    assert_eq!(parse_with("/", "", &headers).unwrap().request_time, NOW);
    // An RFC 7231 Date alone is not ISO 8601 basic format.
    let headers = [
        ("Host", "h"),
        ("Date", "Sun, 30 Aug 2015 12:36:00 GMT"),
        ("Authorization", authorization.as_str()),
    ];
    assert!(matches!(
        parse_with("/", "", &headers).unwrap_err(),
        SigV4Error::MalformedDate { .. }
    ));
}

#[test]
fn malformed_dates_are_refused() {
    let authorization = header_auth(GOOD_CREDENTIAL, "host");
    for bad in [
        "",
        "20150830T123600",
        "20150830T123600z",
        "20150830 123600Z",
        "20151330T123600Z",
        "20150230T123600Z",
        "20150830T243600Z",
        "20150830T126000Z",
        "20150830T123660Z",
        "+0150830T123600Z",
        "2015083OT123600Z",
        "20150830T123600Z ",
        "２0150830T123600Z",
    ] {
        let headers = [
            ("Host", "h"),
            ("X-Amz-Date", bad),
            ("Authorization", authorization.as_str()),
        ];
        let err = parse_with("/", "", &headers).unwrap_err();
        assert_eq!(
            err,
            SigV4Error::MalformedDate {
                value: bad.to_owned()
            },
            "{bad:?}"
        );
        assert_eq!(
            (err.aws_code(), err.http_status()),
            ("IncompleteSignature", 400)
        );
    }
}

#[test]
fn regions_are_accepted_when_well_formed() {
    for region in [
        "us-east-1",
        "eu-central-2",
        "local",
        "aws-global",
        "us-gov-west-1",
    ] {
        let credential = format!("AKIDEXAMPLE/20150830/{region}/sts/aws4_request");
        let authorization = header_auth(&credential, "host");
        let headers = [
            ("Host", "h"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", authorization.as_str()),
        ];
        assert_eq!(parse_with("/", "", &headers).unwrap().scope.region, region);
    }
    for region in [
        "",
        "-us",
        "us-",
        "us_east_1",
        "12345",
        "us east",
        &"a".repeat(64),
    ] {
        let credential = format!("AKIDEXAMPLE/20150830/{region}/sts/aws4_request");
        let authorization = header_auth(&credential, "host");
        let headers = [
            ("Host", "h"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", authorization.as_str()),
        ];
        let err = parse_with("/", "", &headers).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Credential should be scoped to a valid region, not '{region}'."),
        );
    }
}

#[test]
fn session_token_comes_from_header_or_query() {
    let authorization = header_auth(GOOD_CREDENTIAL, "host");
    let headers = [
        ("Host", "h"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", authorization.as_str()),
        ("X-Amz-Security-Token", "tok1"),
    ];
    let auth = parse_with("/", "X-Amz-Security-Token=tok2", &headers).unwrap();
    assert_eq!(auth.security_token.as_deref(), Some("tok1"));
    let auth = parse_with("/", "X-Amz-Security-Token=tok2", &headers[..3]).unwrap();
    assert_eq!(auth.security_token.as_deref(), Some("tok2"));
    // Never in Debug output.
    assert!(!format!("{auth:?}").contains("tok2"));
    assert!(format!("{auth:?}").contains("<redacted>"));
}

#[test]
fn malformed_signature_parses_then_never_verifies() {
    for bad in [
        "",
        "ABCDEF",
        &"A".repeat(64),
        &"0".repeat(63),
        &"0".repeat(65),
        &"g".repeat(64),
    ] {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={GOOD_CREDENTIAL}, SignedHeaders=host, Signature={bad}"
        );
        let headers = [
            ("Host", "h"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", authorization.as_str()),
        ];
        let auth = parse_with("/", "", &headers).unwrap();
        assert!(!auth.has_well_formed_signature());
        assert_eq!(auth.signature, [0; 32]);
        let req = HttpRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            verify_signature(&req, &auth, SUITE_SECRET),
            Err(SigV4Error::SignatureDoesNotMatch)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Presigned URLs

const CREDS: SigningCredentials<'static> = SigningCredentials {
    access_key_id: "AKIAIOSFODNN7EXAMPLE",
    secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    session_token: None,
};

fn presigned(query: &str) -> Owned {
    Owned {
        method: "GET".into(),
        path: "/".into(),
        query: query.to_owned(),
        headers: vec![("Host".into(), "sts.us-east-1.amazonaws.com".into())],
        body: Vec::new(),
    }
}

#[test]
fn presigned_get_caller_identity_round_trips() {
    let at = datetime!(2026-11-22 07:43:45 UTC);
    let params = [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")];
    let with_token = SigningCredentials {
        session_token: Some("FwoG/tok+en="),
        ..CREDS
    };
    let query = presign_query(
        "GET",
        "sts.us-east-1.amazonaws.com",
        "/",
        &params,
        &with_token,
        "us-east-1",
        "sts",
        at,
        60,
    );
    assert!(
        query.starts_with(
            "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&\
         X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261122%2Fus-east-1%2Fsts%2Faws4_request&\
         X-Amz-Date=20261122T074345Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&\
         X-Amz-Security-Token=FwoG%2Ftok%2Ben%3D&X-Amz-Signature="
        ),
        "{query}"
    );
    let request = presigned(&query);
    let auth = request
        .check(BOTOCORE_SECRET, at + Duration::seconds(60))
        .unwrap();
    assert_eq!(auth.location, AuthLocation::Query);
    assert_eq!(auth.expires_secs, Some(60));
    assert_eq!(auth.security_token.as_deref(), Some("FwoG/tok+en="));
    assert_eq!(auth.signed_headers, ["host"]);

    // One second after X-Amz-Date + X-Amz-Expires.
    let err = request
        .check(BOTOCORE_SECRET, at + Duration::seconds(61))
        .unwrap_err();
    assert_eq!(err, SigV4Error::PresignedUrlExpired);
    assert_eq!(
        (err.aws_code(), err.http_status(), err.to_string().as_str()),
        ("RequestExpired", 400, "Request has expired.")
    );
    // Past the skew window, the skew error comes first (STS's 15-minute rule, aws-sdk-go#2167).
    let err = request
        .check(BOTOCORE_SECRET, at + Duration::minutes(16))
        .unwrap_err();
    assert!(matches!(err, SigV4Error::SignatureExpired { .. }));

    // A longer X-Amz-Expires does not extend the 15-minute skew window.
    let query = presign_query(
        "GET",
        "sts.us-east-1.amazonaws.com",
        "/",
        &params,
        &CREDS,
        "us-east-1",
        "sts",
        at,
        3600,
    );
    let request = presigned(&query);
    request.check(BOTOCORE_SECRET, at + MAX_SKEW).unwrap();
    assert!(matches!(
        request
            .check(BOTOCORE_SECRET, at + MAX_SKEW + Duration::SECOND)
            .unwrap_err(),
        SigV4Error::SignatureExpired { .. }
    ));

    // Tampered: another action, or the signature param stripped.
    let tampered = presigned(&query.replace("GetCallerIdentity", "GetSessionToken"));
    assert_eq!(
        tampered.check(BOTOCORE_SECRET, at).unwrap_err(),
        SigV4Error::SignatureDoesNotMatch
    );
    let (without_signature, _) = query.rsplit_once("&X-Amz-Signature=").unwrap();
    assert_eq!(
        presigned(without_signature)
            .check(BOTOCORE_SECRET, at)
            .unwrap_err()
            .to_string(),
        "AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the \
         query-string parameters."
    );
}

#[test]
fn presigned_parameter_errors() {
    let at = NOW;
    let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
    let err = presigned(base).check(SUITE_SECRET, at).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string \
         parameters must include 'X-Amz-Signature'. AWS query-string parameters must include \
         'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. \
         Re-examine the query-string parameters."
    );
    assert_eq!(err.aws_code(), "IncompleteSignature");

    let full = format!(
        "{base}&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request\
         &X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature={SIG}"
    );
    presigned(&full)
        .with(|req| parse_authorization(req, at))
        .unwrap();
    for (expires, message) in [
        ("-1", "X-Amz-Expires must be non-negative"),
        ("", "X-Amz-Expires should be a number"),
        ("1e3", "X-Amz-Expires should be a number"),
        ("+60", "X-Amz-Expires should be a number"),
        (
            "99999999999999999999999",
            "X-Amz-Expires should be a number",
        ),
        (
            "604801",
            "X-Amz-Expires must be less than a week (in seconds); that is, the given \
             X-Amz-Expires must be less than 604800 seconds",
        ),
    ] {
        let query = format!(
            "{full}&X-Amz-Expires={}",
            encode_form(&[("", expires)]).trim_start_matches('=')
        );
        let err = presigned(&query)
            .with(|req| parse_authorization(req, at))
            .unwrap_err();
        assert_eq!(err.to_string(), message, "{expires:?}");
        assert_eq!(
            (err.aws_code(), err.http_status()),
            ("AuthorizationQueryParametersError", 400)
        );
    }
    let query = format!("{full}&X-Amz-Expires=604800");
    assert_eq!(
        presigned(&query)
            .with(|req| parse_authorization(req, at))
            .unwrap()
            .expires_secs,
        Some(604_800)
    );
    // Zero seconds: expired the moment it was signed.
    let query = format!("{full}&X-Amz-Expires=0");
    assert_eq!(
        presigned(&query)
            .with(|req| parse_authorization(req, at))
            .unwrap_err(),
        SigV4Error::PresignedUrlExpired
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn header_name() -> impl Strategy<Value = String> {
    "x-test-[a-z0-9-]{0,8}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sign_then_parse_then_verify(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        params in proptest::collection::vec(("[^\u{0}]{0,8}", ".{0,8}"), 0..6),
        extra in proptest::collection::vec((header_name(), "[ -~\t]{0,24}"), 0..4),
        path in "(/[A-Za-z0-9._~ +-]{0,6}){1,3}/?",
        token in proptest::option::of("[A-Za-z0-9+/=]{1,40}"),
        offset_secs in -900i64..=900,
    ) {
        prop_assume!(params.iter().all(|(k, _)| !k.starts_with("X-Amz-")));
        let at = datetime!(2026-03-04 05:06:07 UTC);
        let borrowed: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let query = encode_form(&borrowed);
        let mut unsigned: Vec<(&str, &str)> = vec![("Host", "127.0.0.1:8080")];
        unsigned.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let req = HttpRequest {
            method: "POST", path: &path, query: &query, headers: &unsigned, body: &body,
        };
        let creds = SigningCredentials { session_token: token.as_deref(), ..CREDS };
        let added = sign_request(&req, &creds, "eu-west-3", "iam", at);

        let mut all = unsigned.clone();
        all.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        // Headers the client adds without signing them do not matter.
        all.push(("User-Agent", "Boto3/1.44.5"));
        let req = HttpRequest { headers: &all, ..req };
        let now = at + Duration::seconds(offset_secs);
        let auth = parse_authorization(&req, now).unwrap();
        prop_assert_eq!(auth.scope.region.as_str(), "eu-west-3");
        prop_assert_eq!(auth.scope.service.as_str(), "iam");
        prop_assert_eq!(auth.security_token.as_deref(), token.as_deref());
        prop_assert_eq!(auth.request_time, at);
        verify_signature(&req, &auth, creds.secret_access_key.as_bytes()).unwrap();

        // And tampered.
        let mut other_body = body.clone();
        match other_body.first_mut() { Some(b) => *b ^= 0x80, None => other_body.push(0) }
        let tampered = HttpRequest { body: &other_body, ..req };
        prop_assert_eq!(
            verify_signature(&tampered, &auth, creds.secret_access_key.as_bytes()),
            Err(SigV4Error::SignatureDoesNotMatch)
        );
        prop_assert_eq!(
            verify_signature(&req, &auth, b"another secret"),
            Err(SigV4Error::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn presign_then_parse_then_verify(
        params in proptest::collection::vec(("[A-Za-z][A-Za-z0-9.]{0,10}", ".{0,12}"), 0..6),
        expires in 1u32..=604_800,
        elapsed in 0u32..=900,
    ) {
        let at = datetime!(2026-03-04 05:06:07 UTC);
        let borrowed: Vec<(&str, &str)> =
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let query = presign_query(
            "GET", "localhost:9000", "/", &borrowed, &CREDS, "us-east-1", "sts", at, expires,
        );
        let request = Owned {
            method: "GET".into(),
            path: "/".into(),
            query,
            headers: vec![("host".into(), "localhost:9000".into())],
            body: Vec::new(),
        };
        let result = request.check(BOTOCORE_SECRET, at + Duration::seconds(i64::from(elapsed)));
        if elapsed <= expires {
            let auth = result.unwrap();
            prop_assert_eq!(auth.expires_secs, Some(expires));
        } else {
            prop_assert_eq!(result.unwrap_err(), SigV4Error::PresignedUrlExpired);
        }
    }
}
