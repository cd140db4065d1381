//! Helpers shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod process;

use tokengate_ctap::cose::CoseKey;
use tokengate_ctap::ctap2::{
    GetAssertionExtensions, GetAssertionOptions, GetAssertionRequest, MakeCredentialExtensions,
    MakeCredentialOptions, MakeCredentialRequest, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};

pub const RP: &str = "example.com";

pub fn make_credential(client_data_hash: [u8; 32], alg: i64) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash,
        rp: PublicKeyCredentialRpEntity {
            id: RP.into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: b"user".to_vec(),
            name: Some("user".into()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(alg)],
        exclude_list: vec![],
        extensions: MakeCredentialExtensions::default(),
        options: MakeCredentialOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    }
}

pub fn get_assertion(client_data_hash: [u8; 32], credential_id: &[u8]) -> GetAssertionRequest {
    GetAssertionRequest {
        rp_id: RP.into(),
        client_data_hash,
        allow_list: vec![PublicKeyCredentialDescriptor::public_key(
            credential_id.to_vec(),
        )],
        extensions: GetAssertionExtensions::default(),
        options: GetAssertionOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    }
}

/// Verifies an ES256 signature with ring.
pub fn verify_es256(key: &CoseKey, message: &[u8], signature: &[u8]) -> bool {
    let CoseKey::Es256(point) = key else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        point.to_sec1_uncompressed(),
    )
    .verify(message, signature)
    .is_ok()
}
