//! `application/x-www-form-urlencoded` bodies and URL query strings, as the AWS query protocol
//! uses them (STS and IAM: form in, XML out).
//!
//! Decoding follows the WHATWG URL Standard §5.1 "application/x-www-form-urlencoded parsing"
//! (split on `&`, skip empty pieces, split each on the first `=`, `+` is a space, then
//! percent-decode per RFC 3986 §2.1), with one deliberate difference: a malformed escape is an
//! error, not literal text, because AWS answers it with `MalformedQueryString` (rule 4 of
//! scratchstack's "AWS Auth Error Ordering"; messages from its `constants.rs`).
//!
//! Encoding is AWS's URI encoding (IAM User Guide, "Create a signed AWS API request", step 1;
//! botocore `utils.percent_encode`): the RFC 3986 §2.3 unreserved bytes `A-Za-z0-9-_.~` stay,
//! every other byte of the UTF-8 form becomes `%XX` with upper-case hex. It is also the
//! canonical form SigV4 signs, so [`crate::sigv4`] uses the same encoder.
//!
//! No I/O and no allocation beyond the output; every limit is a named constant.

/// Most parameters accepted in one query string or form body.
///
/// The largest STS request (botocore `sts/2011-06-15/service-2.json`) has about 190 parameters:
/// 50 `Tags` (`tagListType` max 50) as key and value, 50 `TransitiveTagKeys`, 10 `PolicyArns`,
/// 5 `ProvidedContexts` and a dozen scalars. 1000 also leaves room for IAM list-valued actions
/// while bounding the work an unauthenticated peer can cause before its signature is checked.
pub const MAX_PARAMS: usize = 1000;

/// Longest query string or form body accepted, in bytes (1 MiB).
///
/// The longest single value in the STS/IAM models is an IAM policy document
/// (`policyDocumentType`, max 131072 characters in botocore `iam/2010-05-08/service-2.json`);
/// percent-encoded it can grow to three times that. 1 MiB holds it with headroom.
pub const MAX_INPUT_LEN: usize = 1 << 20;

/// Why a query string or form body was refused.
///
/// Every variant is AWS's `MalformedQueryString` ([`QueryError::aws_code`]); the `Display` text
/// is the message sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A `%` not followed by two hex digits, e.g. `%yy` (scratchstack `MSG_ILLEGAL_HEX_CHAR`).
    #[error("Illegal hex character in escape % pattern: {pattern}")]
    IllegalHexCharacter {
        /// The offending escape as received: `%` and the (up to two) characters after it.
        pattern: String,
    },
    /// A `%` with fewer than two characters left in its name or value
    /// (scratchstack `MSG_INCOMPLETE_TRAILING_ESCAPE`).
    #[error("Incomplete trailing escape % sequence")]
    IncompleteTrailingEscape,
    /// A name or value that is not UTF-8 once percent-decoded. AWS's text is not known; this
    /// one is tokengate's.
    #[error("Query string contains invalid UTF-8 after percent-decoding")]
    InvalidUtf8,
    /// More than [`MAX_PARAMS`] parameters.
    #[error("Query string has more than {MAX_PARAMS} parameters")]
    TooManyParameters,
    /// Input longer than [`MAX_INPUT_LEN`] bytes.
    #[error("Query string is longer than {MAX_INPUT_LEN} bytes")]
    TooLong,
}

impl QueryError {
    /// The AWS error code: always `MalformedQueryString`.
    pub fn aws_code(&self) -> &'static str {
        "MalformedQueryString"
    }

    /// The HTTP status AWS documents for `MalformedQueryString`: 404 (IAM API Reference,
    /// "Common Error Types"; the same list in every query-protocol service).
    pub fn http_status(&self) -> u16 {
        404
    }
}

/// Decode an `application/x-www-form-urlencoded` body or a URL query string (without `?`).
///
/// Pairs come back in input order, duplicates kept. Empty input gives no pairs, `a` gives
/// `("a", "")`, and the empty pieces of `a=1&&b=2` are skipped. `+` is a space; `%XX` must be
/// two hex digits; names and values must be UTF-8 once decoded.
///
/// # Errors
/// [`QueryError`] for a malformed escape, invalid UTF-8, or input over [`MAX_INPUT_LEN`] bytes
/// or [`MAX_PARAMS`] parameters.
pub fn decode_form(input: &[u8]) -> Result<Vec<(String, String)>, QueryError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(QueryError::TooLong);
    }
    let mut pairs = Vec::new();
    for piece in input
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
    {
        if pairs.len() == MAX_PARAMS {
            return Err(QueryError::TooManyParameters);
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &b""[..]),
        };
        pairs.push((decode_component(name)?, decode_component(value)?));
    }
    Ok(pairs)
}

/// Encode pairs as `name=value&…`, each side AWS-percent-encoded (see the module docs).
///
/// [`decode_form`] inverts it exactly, so it is what clients, tests and benches use to build
/// STS form bodies: `Action=GetSessionToken&SerialNumber=arn%3Aaws%3Aiam%3A%3A…`.
pub fn encode_form(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in params.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        percent_encode_into(&mut out, name.as_bytes(), false);
        out.push('=');
        percent_encode_into(&mut out, value.as_bytes(), false);
    }
    out
}

/// `value` AWS-URI-encoded: unreserved characters as themselves, every other byte `%XX`.
/// IAM returns policy documents this way (policy.md §4.1); `unquote` in botocore inverts it.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    percent_encode_into(&mut out, value.as_bytes(), false);
    out
}

/// Append `bytes` AWS-URI-encoded to `out`: unreserved bytes as themselves, `/` too when
/// `keep_slash` (the SigV4 canonical URI), everything else `%XX` upper-case.
pub(crate) fn percent_encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(byte & 0x0f)]));
        }
    }
}

/// RFC 3986 §2.3 unreserved characters.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// Percent-decode one name or value (`+` is a space), then require UTF-8.
fn decode_component(raw: &[u8]) -> Result<String, QueryError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'+' => {
                out.push(b' ');
                rest = tail;
            }
            b'%' => match tail {
                [high, low, after @ ..] => {
                    let (Some(high_nibble), Some(low_nibble)) = (hex_value(*high), hex_value(*low))
                    else {
                        return Err(QueryError::IllegalHexCharacter {
                            pattern: format!("%{}", String::from_utf8_lossy(&[*high, *low])),
                        });
                    };
                    out.push(high_nibble << 4 | low_nibble);
                    rest = after;
                }
                _ => return Err(QueryError::IncompleteTrailingEscape),
            },
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::InvalidUtf8)
}

/// The value of one hex digit, either case.
pub(crate) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Why a JSON 1.1 request body (the protocol of CloudTrail's LookupEvents) was refused.
///
/// Each is AWS's `SerializationException` (HTTP 400); the `Display` text is the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonBodyError {
    /// Not JSON at all (serde_json's reason).
    #[error("The request body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("The request body must be a JSON object.")]
    NotObject,
    /// More than [`MAX_PARAMS`] scalar members.
    #[error("The request body has more than {MAX_PARAMS} parameters.")]
    TooManyParameters,
}

/// Flatten a JSON 1.1 request body into query-protocol pairs, so that one parameter model
/// serves both protocols: object members join with `.`, array items become
/// `name.member.N` (1-based, as in the query protocol), strings, numbers and booleans are
/// the values (numbers and booleans as JSON writes them), `null` is left out. An empty body
/// is an empty object. Nesting is bounded by serde_json's recursion limit (128).
///
/// # Errors
/// [`JsonBodyError`] for a body that is not JSON, not an object, or has more than
/// [`MAX_PARAMS`] values.
pub fn decode_json_body(body: &[u8]) -> Result<Vec<(String, String)>, JsonBodyError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| JsonBodyError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(JsonBodyError::NotObject);
    }
    let mut pairs = Vec::new();
    flatten_json("", &value, &mut pairs)?;
    Ok(pairs)
}

fn flatten_json(
    prefix: &str,
    value: &serde_json::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), JsonBodyError> {
    use serde_json::Value;
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let mut push = |v: String| {
        if out.len() == MAX_PARAMS {
            return Err(JsonBodyError::TooManyParameters);
        }
        out.push((prefix.to_owned(), v));
        Ok(())
    };
    match value {
        Value::Object(members) => {
            for (name, v) in members {
                flatten_json(&join(name), v, out)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(&join(&format!("member.{}", i + 1)), v, out)?;
            }
        }
        Value::String(s) => push(s.clone())?,
        Value::Number(n) => push(n.to_string())?,
        Value::Bool(b) => push(b.to_string())?,
        Value::Null => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_the_shapes_the_brief_names() {
        assert_eq!(decode_form(b"").unwrap(), owned(&[]));
        assert_eq!(decode_form(b"a").unwrap(), owned(&[("a", "")]));
        assert_eq!(decode_form(b"a=").unwrap(), owned(&[("a", "")]));
        assert_eq!(decode_form(b"=").unwrap(), owned(&[("", "")]));
        assert_eq!(
            decode_form(b"&&a=1&&b=2&").unwrap(),
            owned(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(decode_form(b"a=b=c").unwrap(), owned(&[("a", "b=c")]));
        assert_eq!(
            decode_form(b"a+b=c+d%2B").unwrap(),
            owned(&[("a b", "c d+")])
        );
        assert_eq!(
            decode_form(b"k=%e1%88%b4").unwrap(),
            owned(&[("k", "\u{1234}")])
        );
        assert_eq!(
            decode_form(b"k=1&k=2").unwrap(),
            owned(&[("k", "1"), ("k", "2")])
        );
    }

    #[test]
    fn decodes_the_boto3_get_session_token_body() {
        let body = b"Action=GetSessionToken&Version=2011-06-15&SerialNumber=arn%3Aaws%3Aiam\
            %3A%3A123456789012%3Amfa%2Falice&TokenCode=123456&DurationSeconds=3600";
        let pairs = decode_form(body).unwrap();
        assert_eq!(
            pairs[2],
            (
                "SerialNumber".into(),
                "arn:aws:iam::123456789012:mfa/alice".into()
            )
        );
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(encode_form(&borrowed).as_bytes(), &body[..]);
    }

    #[test]
    fn rejects_malformed_escapes_with_aws_texts() {
        let err = decode_form(b"aaa=a%yy").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Illegal hex character in escape % pattern: %yy"
        );
        assert_eq!(err.aws_code(), "MalformedQueryString");
        assert_eq!(err.http_status(), 404);
        assert_eq!(
            decode_form(b"a=%4").unwrap_err().to_string(),
            "Incomplete trailing escape % sequence"
        );
        assert_eq!(
            decode_form(b"a=%").unwrap_err(),
            QueryError::IncompleteTrailingEscape
        );
        // The escape ends at its own pair: "%4&b" is not "%4" followed by "&b".
        assert_eq!(
            decode_form(b"a=%4&b=1").unwrap_err(),
            QueryError::IncompleteTrailingEscape
        );
        assert_eq!(
            decode_form(b"%g0=1").unwrap_err().to_string(),
            "Illegal hex character in escape % pattern: %g0"
        );
        assert_eq!(decode_form(b"a=%ff").unwrap_err(), QueryError::InvalidUtf8);
        assert_eq!(decode_form(b"a=\xff").unwrap_err(), QueryError::InvalidUtf8);
        // A multi-byte character after '%' is reported without panicking on a char boundary.
        assert!(matches!(
            decode_form("a=%\u{e9}".as_bytes()).unwrap_err(),
            QueryError::IllegalHexCharacter { .. }
        ));
    }

    #[test]
    fn enforces_limits_at_the_boundary() {
        let at_limit = vec!["a=1"; MAX_PARAMS].join("&");
        assert_eq!(decode_form(at_limit.as_bytes()).unwrap().len(), MAX_PARAMS);
        let over = format!("{at_limit}&b=2");
        assert_eq!(
            decode_form(over.as_bytes()).unwrap_err(),
            QueryError::TooManyParameters
        );
        // Empty pieces do not count towards the limit.
        let with_empties = format!("{at_limit}&&&");
        assert!(decode_form(with_empties.as_bytes()).is_ok());

        let long = vec![b'a'; MAX_INPUT_LEN];
        assert_eq!(decode_form(&long).unwrap().len(), 1);
        let too_long = vec![b'a'; MAX_INPUT_LEN + 1];
        assert_eq!(decode_form(&too_long).unwrap_err(), QueryError::TooLong);
    }

    #[test]
    fn encodes_like_botocore() {
        assert_eq!(encode_form(&[]), "");
        assert_eq!(encode_form(&[("a", "")]), "a=");
        assert_eq!(encode_form(&[("a b", "x/y+z~._-")]), "a%20b=x%2Fy%2Bz~._-");
        assert_eq!(encode_form(&[("k", "\u{1234}")]), "k=%E1%88%B4");
        assert_eq!(encode_form(&[("a", "1"), ("b", "&=")]), "a=1&b=%26%3D");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(pairs in proptest::collection::vec((".*", ".*"), 0..16)) {
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let encoded = encode_form(&borrowed);
            prop_assert_eq!(decode_form(encoded.as_bytes()).unwrap(), pairs);
        }

        #[test]
        fn encoded_form_is_canonical(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Whatever decodes re-encodes to a string that decodes to the same pairs and is a
            // fixed point of encode∘decode.
            if let Ok(pairs) = decode_form(&input) {
                let borrowed: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let canonical = encode_form(&borrowed);
                let again = decode_form(canonical.as_bytes()).unwrap();
                prop_assert_eq!(&again, &pairs);
                let borrowed: Vec<(&str, &str)> =
                    again.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(encode_form(&borrowed), canonical);
            }
        }
    }

    #[test]
    fn json_bodies_flatten_like_query_parameters() {
        let pairs = decode_json_body(
            br#"{"LookupAttributes":[{"AttributeKey":"Username","AttributeValue":"alice"}],
                "MaxResults":5,"ReadOnly":true,"NextToken":null}"#,
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                (
                    "LookupAttributes.member.1.AttributeKey".into(),
                    "Username".into()
                ),
                (
                    "LookupAttributes.member.1.AttributeValue".into(),
                    "alice".into()
                ),
                ("MaxResults".into(), "5".into()),
                ("ReadOnly".into(), "true".into()),
            ]
        );
        assert_eq!(decode_json_body(b"").unwrap(), []);
        assert_eq!(decode_json_body(b"[1]"), Err(JsonBodyError::NotObject));
        assert!(matches!(
            decode_json_body(b"{"),
            Err(JsonBodyError::NotJson(_))
        ));
        let many = format!("{{\"a\":[{}]}}", vec!["1"; MAX_PARAMS + 1].join(","));
        assert_eq!(
            decode_json_body(many.as_bytes()),
            Err(JsonBodyError::TooManyParameters)
        );
    }
}
