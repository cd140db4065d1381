//! authenticatorData and attestationObject: both parsers are strict, so whatever they accept
//! must re-encode to exactly the input bytes (the verifier relies on this).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctap::attestation::AttestationObject;
use tokengate_ctap::auth_data::AuthenticatorData;

fuzz_target!(|data: &[u8]| {
    if let Ok(auth_data) = AuthenticatorData::decode(data) {
        assert_eq!(auth_data.to_vec(), data);
        assert_eq!(auth_data.encoded_flags(), auth_data.flags);
    }
    if let Ok(object) = AttestationObject::decode(data) {
        assert_eq!(object.to_vec(), data);
    }
});
