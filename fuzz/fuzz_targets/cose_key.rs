//! COSE_Key: whatever parses must re-encode to exactly the input bytes (canonical CBOR, no
//! other labels), and the raw public key must convert back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctap::cose::{CoseKey, P256Point};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = CoseKey::decode(data) {
        assert_eq!(key.to_vec(), data);
        let raw = key.public_key_bytes();
        match key {
            CoseKey::Es256(p) | CoseKey::EcdhEsHkdf256(p) => {
                assert_eq!(
                    P256Point::from_sec1_uncompressed(&raw).expect("SEC 1 point"),
                    p
                );
            }
            CoseKey::Ed25519(x) => assert_eq!(raw, x),
        }
    }
    if let Ok(point) = P256Point::from_sec1_uncompressed(data) {
        assert_eq!(point.to_sec1_uncompressed()[..], data[..]);
    }
});
