//! CollectedClientData (WebAuthn L3 §5.8.1): what the client says it was asked to sign.
//!
//! The checks are those of WebAuthn L3 §7.1 steps 5–11 (registration) and §7.2 steps 9–15
//! (authentication): `type`, `challenge` (base64url, compared in constant time), `origin`,
//! and neither `crossOrigin: true` nor a `topOrigin` — tokengate is never embedded in
//! another site's frame, so a cross-origin ceremony is one it did not start. Other members
//! (`extraData`, `tokenBinding`, `clientExtensions`, `hashAlgorithm`) are ignored, as
//! §5.8.1 requires of relying parties ("MUST ignore unknown members"). The full JSON parse,
//! rather than the "limited verification algorithm" of §5.8.1.3, also refuses duplicate
//! members.

use std::borrow::Cow;

use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Rejection;
use super::crypto::sha256;

/// Longest clientDataJSON accepted. WebAuthn sets no limit; browsers produce a few hundred
/// bytes, so this is tokengate's bound on the work one request can cause.
pub const MAX_CLIENT_DATA_JSON_LEN: usize = 8 * 1024;

/// Shortest challenge the relying party may pass: "at least 16 bytes long" (WebAuthn L3
/// §13.4.3 "Cryptographic Challenges"). tokengate's service issues 32.
pub const MIN_CHALLENGE_LEN: usize = 16;

/// Which ceremony clientDataJSON belongs to (its `type` member, WebAuthn L3 §5.8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// Registration: `"webauthn.create"`.
    Create,
    /// Authentication: `"webauthn.get"`.
    Get,
}

impl Ceremony {
    /// The `type` string.
    pub fn type_str(self) -> &'static str {
        match self {
            Self::Create => "webauthn.create",
            Self::Get => "webauthn.get",
        }
    }
}

/// What the authenticator's signature covers on the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientData<'a> {
    /// The clientDataJSON bytes as the client sent them (a browser, python-fido2). The
    /// verifier parses and checks them, and hashes them to get the clientDataHash.
    Json(&'a [u8]),
    /// A clientDataHash the relying party computed itself over clientDataJSON it built
    /// (e.g. with [`client_data_json`]) and sent to the key over CTAP. No `type`, challenge
    /// or origin check is made — the hash already binds them — so this must never carry a
    /// hash that came from the client.
    TrustedHash(&'a [u8; 32]),
}

impl ClientData<'_> {
    /// Checks the client data against the ceremony and returns the clientDataHash.
    pub(crate) fn verify(
        &self,
        ceremony: Ceremony,
        challenge: &[u8],
        origin: &str,
    ) -> Result<[u8; 32], Rejection> {
        match *self {
            ClientData::TrustedHash(hash) => Ok(*hash),
            ClientData::Json(json) => {
                check_json(json, ceremony, challenge, origin)?;
                Ok(sha256(json))
            }
        }
    }
}

/// The members tokengate reads (WebAuthn L3 §5.8.1 `CollectedClientData`).
#[derive(Deserialize)]
struct CollectedClientData<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    challenge: Cow<'a, str>,
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default, borrow)]
    top_origin: Option<Cow<'a, str>>,
}

fn check_json(
    json: &[u8],
    ceremony: Ceremony,
    challenge: &[u8],
    origin: &str,
) -> Result<(), Rejection> {
    if challenge.len() < MIN_CHALLENGE_LEN {
        return Err(Rejection::CallerMisuse("challenge shorter than 16 bytes"));
    }
    if json.len() > MAX_CLIENT_DATA_JSON_LEN {
        return Err(Rejection::MalformedClientData(
            "longer than MAX_CLIENT_DATA_JSON_LEN",
        ));
    }
    let ccd: CollectedClientData<'_> = serde_json::from_slice(json)
        .map_err(|_| Rejection::MalformedClientData("not a CollectedClientData JSON object"))?;
    if ccd.kind != ceremony.type_str() {
        return Err(Rejection::ClientDataMismatch("type"));
    }
    let received = BASE64URL_NOPAD
        .decode(ccd.challenge.as_bytes())
        .map_err(|_| Rejection::ClientDataMismatch("challenge"))?;
    if !bool::from(received.as_slice().ct_eq(challenge)) {
        return Err(Rejection::ClientDataMismatch("challenge"));
    }
    if ccd.origin != origin {
        return Err(Rejection::ClientDataMismatch("origin"));
    }
    if ccd.cross_origin == Some(true) {
        return Err(Rejection::ClientDataMismatch("crossOrigin"));
    }
    if ccd.top_origin.is_some() {
        return Err(Rejection::ClientDataMismatch("topOrigin"));
    }
    Ok(())
}

/// clientDataJSON for a ceremony tokengate runs as the client itself, in the serialization
/// of WebAuthn L3 §5.8.1.1: `{"type":…,"challenge":…,"origin":…,"crossOrigin":false}`.
/// Send SHA-256 of it to the key as clientDataHash, and verify with
/// [`ClientData::TrustedHash`] or [`ClientData::Json`] over the same bytes.
pub fn client_data_json(ceremony: Ceremony, challenge: &[u8], origin: &str) -> Vec<u8> {
    let mut out = String::with_capacity(96 + origin.len() + challenge.len() * 4 / 3);
    out.push_str("{\"type\":");
    push_ccd_string(&mut out, ceremony.type_str());
    out.push_str(",\"challenge\":");
    push_ccd_string(&mut out, &BASE64URL_NOPAD.encode(challenge));
    out.push_str(",\"origin\":");
    push_ccd_string(&mut out, origin);
    out.push_str(",\"crossOrigin\":false}");
    out.into_bytes()
}

/// CCDToString (WebAuthn L3 §5.8.1.1): a JSON string with `"` and `\` escaped and the
/// control characters U+0000–U+001F as `\u` and four lower-case hex digits.
fn push_ccd_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://example.org";
    const CHALLENGE: [u8; 32] = [7; 32];

    fn check(json: &str) -> Result<(), Rejection> {
        check_json(json.as_bytes(), Ceremony::Get, &CHALLENGE, ORIGIN)
    }

    fn with(fields: &str) -> String {
        format!(
            "{{\"type\":\"webauthn.get\",\"challenge\":\"{}\",\"origin\":\"{ORIGIN}\"{fields}}}",
            BASE64URL_NOPAD.encode(&CHALLENGE)
        )
    }

    #[test]
    fn accepts_the_expected_ceremony_and_ignores_unknown_members() {
        assert_eq!(check(&with("")), Ok(()));
        assert_eq!(
            check(&with(",\"crossOrigin\":false,\"extraData\":[1,{}]")),
            Ok(())
        );
        assert_eq!(
            check(&with(",\"tokenBinding\":{\"status\":\"supported\"}")),
            Ok(())
        );
    }

    #[test]
    fn refuses_each_mismatch() {
        let ok = with("");
        let cases = [
            (ok.replace("webauthn.get", "webauthn.create"), "type"),
            (
                ok.replace("https://example.org", "https://example.org."),
                "origin",
            ),
            (
                ok.replace("https://example.org", "http://example.org"),
                "origin",
            ),
            (ok.replace("BwcH", "BwcI"), "challenge"),
            (ok.replace("BwcH", "BwcH="), "challenge"),
            (ok.replace("BwcH", "Bwc+"), "challenge"),
            (with(",\"crossOrigin\":true"), "crossOrigin"),
            (with(",\"topOrigin\":\"https://example.com\""), "topOrigin"),
        ];
        for (json, field) in cases {
            assert_eq!(
                check(&json),
                Err(Rejection::ClientDataMismatch(field)),
                "{json}"
            );
        }
        // A shorter challenge that is a prefix of the expected one.
        let short = ok.replace(
            &BASE64URL_NOPAD.encode(&CHALLENGE),
            &BASE64URL_NOPAD.encode(&[7; 31]),
        );
        assert_eq!(
            check(&short),
            Err(Rejection::ClientDataMismatch("challenge"))
        );
    }

    #[test]
    fn refuses_malformed_json() {
        let ok = with("");
        for json in [
            String::new(),
            "[]".to_owned(),
            ok.replace("\"origin\"", "\"origin_\""),
            with(",\"type\":\"webauthn.get\""),
            with(",\"crossOrigin\":\"yes\""),
            format!("{ok}{{}}"),
            format!("\u{feff}{ok}"),
            ok.replace("webauthn.get", "webauthn.get\\ud800"),
        ] {
            assert!(
                matches!(check(&json), Err(Rejection::MalformedClientData(_))),
                "{json:?} gave {:?}",
                check(&json)
            );
        }
        let long = with(&format!(
            ",\"pad\":\"{}\"",
            "a".repeat(MAX_CLIENT_DATA_JSON_LEN)
        ));
        assert!(matches!(
            check(&long),
            Err(Rejection::MalformedClientData(_))
        ));
    }

    #[test]
    fn trailing_whitespace_is_json_and_accepted() {
        // JSON allows whitespace around the value; serde_json accepts a trailing newline.
        assert_eq!(check(&format!("{}\n", with(""))), Ok(()));
    }

    #[test]
    fn refuses_short_expected_challenges() {
        let json = with("");
        assert_eq!(
            check_json(json.as_bytes(), Ceremony::Get, &[7; 15], ORIGIN),
            Err(Rejection::CallerMisuse("challenge shorter than 16 bytes"))
        );
        assert_eq!(
            check_json(json.as_bytes(), Ceremony::Get, &[], ORIGIN),
            Err(Rejection::CallerMisuse("challenge shorter than 16 bytes"))
        );
    }

    #[test]
    fn escaped_strings_compare_by_value() {
        let escaped = with("").replace("https://example.org", "https:\\/\\/example.org");
        assert_eq!(check(&escaped), Ok(()));
    }

    #[test]
    fn built_json_verifies_and_matches_the_spec_serialization() {
        let json = client_data_json(Ceremony::Get, &CHALLENGE, ORIGIN);
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            format!(
                "{{\"type\":\"webauthn.get\",\"challenge\":\"{}\",\"origin\":\"{ORIGIN}\",\
                 \"crossOrigin\":false}}",
                BASE64URL_NOPAD.encode(&CHALLENGE)
            )
        );
        let hash = ClientData::Json(&json)
            .verify(Ceremony::Get, &CHALLENGE, ORIGIN)
            .unwrap();
        assert_eq!(hash, sha256(&json));
        assert_eq!(
            ClientData::Json(&json).verify(Ceremony::Create, &CHALLENGE, ORIGIN),
            Err(Rejection::ClientDataMismatch("type"))
        );
    }

    #[test]
    fn built_json_escapes_like_ccd_to_string() {
        let origin = "https://a\"b\\c\u{1}d\u{e9}";
        let json = client_data_json(Ceremony::Create, &CHALLENGE, origin);
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.contains(r#""origin":"https://a\"b\\c\u0001dé""#),
            "{text}"
        );
        assert_eq!(
            check_json(&json, Ceremony::Create, &CHALLENGE, origin),
            Ok(())
        );
    }

    #[test]
    fn trusted_hash_is_passed_through() {
        let hash = [9u8; 32];
        assert_eq!(
            ClientData::TrustedHash(&hash).verify(Ceremony::Get, &[], ""),
            Ok(hash)
        );
    }
}
