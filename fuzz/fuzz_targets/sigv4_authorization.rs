//! Fuzz `sigv4::parse_authorization` and `sigv4::verify_signature` with whole requests.
//!
//! The input is split deterministically on `\n` (no `arbitrary`): line 1 is the server clock as
//! an `X-Amz-Date` value (a fixed time when it does not parse), then the method, the path, the
//! query; then `Name:value` header lines up to an empty line; the rest is the body. Invalid
//! UTF-8 is replaced, as an HTTP layer handing over `&str` would have refused or mapped it.
//!
//! Beyond "never panics", it asserts canonical form: an `Authorization` header that parsed,
//! re-rendered the way botocore writes it, parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_token::sigv4::{
    self, AuthLocation, Authorization, HttpRequest, parse_authorization, verify_signature,
};

const DEFAULT_NOW: &str = "20150830T123600Z";
const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let now_line = lines.next().unwrap_or_default();
    let fallback = sigv4::parse_amz_date_time(DEFAULT_NOW);
    let Some(now) = sigv4::parse_amz_date_time(now_line).or(fallback) else {
        return;
    };
    let method = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let query = lines.next().unwrap_or_default();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        headers.push(line.split_once(':').unwrap_or((line, "")));
    }
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");
    let req = HttpRequest {
        method,
        path,
        query,
        headers: &headers,
        body: body.as_bytes(),
    };

    let auth = match parse_authorization(&req, now) {
        Ok(auth) => auth,
        Err(err) => {
            // The error must render as an AWS error without panicking.
            let _ = (err.to_string(), err.aws_code(), err.http_status());
            return;
        }
    };
    let _ = verify_signature(&req, &auth, SECRET);

    if auth.location == AuthLocation::Header && auth.has_well_formed_signature() {
        let rendered = render(&auth);
        let mut again: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("authorization"))
            .collect();
        again.push(("Authorization", rendered.as_str()));
        let req_again = HttpRequest {
            headers: &again,
            ..req
        };
        let reparsed = match parse_authorization(&req_again, now) {
            Ok(reparsed) => reparsed,
            Err(err) => panic!("re-rendered {rendered:?} failed to parse: {err}"),
        };
        assert_eq!(reparsed.scope, auth.scope);
        assert_eq!(reparsed.signed_headers, auth.signed_headers);
        assert_eq!(reparsed.signature, auth.signature);
        assert_eq!(reparsed.request_time, auth.request_time);
        assert_eq!(reparsed.security_token, auth.security_token);
        assert_eq!(reparsed.location, auth.location);
        assert_eq!(reparsed.expires_secs, auth.expires_secs);
    }
});

/// The `Authorization` header botocore would write for `auth`.
fn render(auth: &Authorization) -> String {
    let mut signature = String::with_capacity(64);
    for byte in auth.signature {
        signature.push_str(&format!("{byte:02x}"));
    }
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={signature}",
        auth.scope.access_key_id,
        auth.scope.to_scope_string(),
        auth.signed_headers.join(";"),
    )
}
