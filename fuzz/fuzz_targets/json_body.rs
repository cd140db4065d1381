//! Fuzz `query::decode_json_body`, the parser of every JSON 1.1 request body (CloudTrail
//! LookupEvents) before its signature is checked.
//!
//! Beyond "never panics", it asserts canonical form: whatever decodes, parsed as JSON and
//! written back by serde_json (compact), flattens to the same pairs; and the pairs stay
//! within `MAX_PARAMS`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_token::query::{MAX_PARAMS, decode_json_body};

fuzz_target!(|data: &[u8]| {
    let pairs = match decode_json_body(data) {
        Ok(pairs) => pairs,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    assert!(pairs.len() <= MAX_PARAMS);
    if data.is_empty() {
        assert!(pairs.is_empty());
        return;
    }
    let value: serde_json::Value = serde_json::from_slice(data).expect("it decoded once");
    let rewritten = serde_json::to_vec(&value).expect("a Value always serialises");
    let again = decode_json_body(&rewritten).expect("serde_json's own output decodes");
    assert_eq!(pairs, again, "{rewritten:?}");
});
