//! CTAP2 requests (authenticator side) and responses (client side), and the CBOR under
//! them: whatever decodes must re-encode canonically and decode to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctap::cbor;
use tokengate_ctap::ctap2::{
    ClientPinResponse, CredentialManagementResponse, GetAssertionResponse, GetInfoResponse,
    MakeCredentialResponse, Request, StatusCode,
};

/// decode(encode(v)) == v and encode is a fixed point, for one response type.
macro_rules! response_round_trip {
    ($ty:ty, $bytes:expr) => {
        if let Ok(value) = <$ty>::decode($bytes) {
            let mut out = Vec::new();
            value.encode(&mut out);
            let again = <$ty>::decode(&out).expect("re-encoded response decodes");
            assert_eq!(again, value);
            let mut out2 = Vec::new();
            again.encode(&mut out2);
            assert_eq!(out2, out, "canonical encoding is a fixed point");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    // Strict CBOR: accepted input is already canonical, so it re-encodes byte for byte.
    if let Ok(value) = cbor::decode(data) {
        assert_eq!(value.to_vec(), data);
    }

    match Request::decode(data) {
        Ok(request) => {
            let bytes = request.to_vec();
            let again = Request::decode(&bytes).expect("re-encoded request decodes");
            assert_eq!(again, request);
            assert_eq!(again.to_vec(), bytes, "canonical encoding is a fixed point");
        }
        // Every error has a status to answer with.
        Err(e) => {
            let _ = u8::from(StatusCode::from(&e));
        }
    }

    // Responses, as the bridge sees them: the first byte picks the type.
    if let Some((&selector, payload)) = data.split_first() {
        match selector % 5 {
            0 => response_round_trip!(GetInfoResponse, payload),
            1 => response_round_trip!(MakeCredentialResponse, payload),
            2 => response_round_trip!(GetAssertionResponse, payload),
            3 => response_round_trip!(ClientPinResponse, payload),
            _ => response_round_trip!(CredentialManagementResponse, payload),
        }
    }
});
