//! U2F command APDUs (authenticator side) and response bodies (client side): whatever
//! decodes must re-encode and decode to the same value; strict response parsers must give
//! back the exact input bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctap::u2f::{
    AuthenticateResponse, CommandApdu, RegisterResponse, Request, ResponseApdu, StatusWord,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(apdu) = CommandApdu::decode(data) {
        let mut extended = Vec::new();
        apdu.encode_extended(&mut extended)
            .expect("decoded APDU encodes");
        assert_eq!(
            CommandApdu::decode(&extended).expect("extended form decodes"),
            apdu
        );
        let mut short = Vec::new();
        if apdu.encode_short(&mut short).is_ok() {
            assert_eq!(
                CommandApdu::decode(&short).expect("short form decodes"),
                apdu
            );
        }
    }

    match Request::decode(data) {
        Ok(request) => {
            let mut out = Vec::new();
            request.encode(&mut out).expect("decoded request encodes");
            assert_eq!(
                Request::decode(&out).expect("re-encoded request decodes"),
                request
            );
        }
        // Every error has a status word to answer with.
        Err(e) => {
            let _ = u16::from(StatusWord::from(&e));
        }
    }

    if let Ok(resp) = RegisterResponse::decode(data) {
        let mut out = Vec::new();
        resp.encode(&mut out).expect("decoded response encodes");
        assert_eq!(out, data);
    }
    if let Ok(resp) = AuthenticateResponse::decode(data) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        assert_eq!(out, data);
    }
    if let Ok(resp) = ResponseApdu::decode(data) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        assert_eq!(out, data);
    }
});
