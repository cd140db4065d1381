//! Fuzz the STS/IAM reply parser (`tokengate_client::sts_client::parse_reply`): a query-API
//! `…Response` document, or an AWS error document, as any server (or anything pretending to
//! be one) may send it, followed by the credentials read from a GetSessionToken result.
//!
//! The first byte picks the HTTP status; the rest is the body. Beyond "never panics" it
//! asserts: parsing is deterministic; an accepted reply has a 2xx status and a `…Response`
//! root; an AWS error carries the status it came with; accepted credentials have a non-empty
//! AccessKeyId, SecretAccessKey and SessionToken and an Expiration that survives the
//! `credential_process` JSON (written, read back, the same four values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_client::SessionCredentials;
use tokengate_client::sts_client::{ApiCallError, parse_reply};

const STATUSES: [u16; 6] = [200, 201, 400, 403, 404, 500];
const URL: &str = "http://127.0.0.1:8787/";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(selector) % STATUSES.len()];
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let outcome = parse_reply(URL, status, body);
    let again = parse_reply(URL, status, body);
    assert_eq!(
        format!("{outcome:?}"),
        format!("{again:?}"),
        "parse_reply is not deterministic"
    );
    let reply = match outcome {
        Ok(reply) => reply,
        Err(ApiCallError::Api { status: s, .. }) => {
            assert_eq!(s, status);
            return;
        }
        Err(ApiCallError::MalformedReply { status: s, .. }) => {
            assert_eq!(s, status);
            return;
        }
        Err(other) => panic!("parse_reply can only refuse a document: {other:?}"),
    };
    assert!((200..300).contains(&reply.status));
    assert!(reply.response.ends_with("Response"), "{}", reply.response);
    let Ok(creds) = SessionCredentials::from_reply(&reply) else {
        return;
    };
    assert!(!creds.access_key_id.is_empty());
    assert!(!creds.secret_access_key.expose().is_empty());
    assert!(!creds.session_token.expose().is_empty());
    let json = match creds.to_process_json() {
        Ok(json) => json,
        Err(e) => panic!("accepted credentials do not print as credential_process JSON: {e}"),
    };
    let back = match SessionCredentials::from_process_json(&json) {
        Ok(back) => back,
        Err(e) => panic!("credential_process JSON does not read back: {e}"),
    };
    assert_eq!(back.access_key_id, creds.access_key_id);
    assert_eq!(
        back.secret_access_key.expose(),
        creds.secret_access_key.expose()
    );
    assert_eq!(back.session_token.expose(), creds.session_token.expose());
    assert_eq!(back.expiration, creds.expiration);
});
