//! Fuzz `query::decode_form`, the parser of every STS/IAM form body and query string.
//!
//! Beyond "never panics", it asserts the round trip: whatever decodes, re-encoded with
//! `encode_form`, decodes to the same pairs, and that encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_token::query::{MAX_INPUT_LEN, decode_form, encode_form};

fuzz_target!(|data: &[u8]| {
    let pairs = match decode_form(data) {
        Ok(pairs) => pairs,
        Err(err) => {
            let _ = (err.to_string(), err.aws_code(), err.http_status());
            return;
        }
    };
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let encoded = encode_form(&borrowed);
    if encoded.len() > MAX_INPUT_LEN {
        // Percent-encoding can triple the size; past the limit the refusal is by design.
        return;
    }
    let decoded = match decode_form(encoded.as_bytes()) {
        Ok(decoded) => decoded,
        Err(err) => panic!("encode_form output {encoded:?} does not decode: {err}"),
    };
    assert_eq!(decoded, pairs);
    let borrowed: Vec<(&str, &str)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(encode_form(&borrowed), encoded);
});
