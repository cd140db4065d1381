//! Property tests for assertion verification with random keys (ring): ES256 (P-256) and
//! EdDSA (Ed25519) keys sign random authenticatorData and clientDataHash; the assertion
//! verifies, flipping any single bit of authenticatorData, clientDataHash or signature makes
//! it fail, and the counter rule (WebAuthn L3 §6.1.1) holds for every pair of counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fido_common;

use fido_common::sha256;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use tokengate_ctap::auth_data::flags;
use tokengate_ctap::cose::{CoseKey, P256Point};
use tokengate_verifier::fido::{
    AssertionInput, AssertionOutcome, ClientData, Rejection, StoredCredential, verify_assertion,
};

const RP_ID: &str = "tokengate.test";

enum Signer {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    fn new(ed25519: bool) -> Self {
        let rng = SystemRandom::new();
        if ed25519 {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        } else {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            Self::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap(),
            )
        }
    }

    fn public_key(&self) -> CoseKey {
        match self {
            Self::P256(k) => {
                CoseKey::Es256(P256Point::from_sec1_uncompressed(k.public_key().as_ref()).unwrap())
            }
            Self::Ed25519(k) => CoseKey::Ed25519(k.public_key().as_ref().try_into().unwrap()),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => k
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        }
    }
}

/// authenticatorData for an assertion: rpIdHash, flags (UP, and UV/BE/BS as chosen with BS
/// only under BE), counter.
fn auth_data(extra_flags: u8, counter: u32) -> Vec<u8> {
    let mut flags = flags::UP | (extra_flags & (flags::UV | flags::BE));
    if flags & flags::BE != 0 {
        flags |= extra_flags & flags::BS;
    }
    let mut out = sha256(RP_ID.as_bytes()).to_vec();
    out.push(flags);
    out.extend_from_slice(&counter.to_be_bytes());
    out
}

struct Case {
    stored: StoredCredential,
    auth_data: Vec<u8>,
    client_data_hash: [u8; 32],
    signature: Vec<u8>,
}

impl Case {
    fn new(signer: &Signer, extra_flags: u8, counter: u32, hash: [u8; 32]) -> Self {
        let auth_data = auth_data(extra_flags, counter);
        let mut message = auth_data.clone();
        message.extend_from_slice(&hash);
        Self {
            stored: StoredCredential {
                public_key: signer.public_key(),
                sign_count: 0,
                backup_eligible: auth_data[32] & flags::BE != 0,
            },
            signature: signer.sign(&message),
            auth_data,
            client_data_hash: hash,
        }
    }

    fn verify(&self) -> Result<AssertionOutcome, Rejection> {
        verify_assertion(
            &self.stored,
            &AssertionInput {
                authenticator_data: &self.auth_data,
                client_data: ClientData::TrustedHash(&self.client_data_hash),
                signature: &self.signature,
                challenge: &[],
                origin: "",
                rp_id: RP_ID,
                require_user_verification: false,
            },
        )
    }

    /// The case with bit `bit` of `authData ‖ clientDataHash ‖ signature` flipped.
    fn flipped(&self, bit: usize) -> Self {
        let mut out = Self {
            stored: self.stored,
            auth_data: self.auth_data.clone(),
            client_data_hash: self.client_data_hash,
            signature: self.signature.clone(),
        };
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        let (a, h) = (out.auth_data.len(), out.client_data_hash.len());
        if byte < a {
            out.auth_data[byte] ^= mask;
        } else if byte < a + h {
            out.client_data_hash[byte - a] ^= mask;
        } else {
            out.signature[byte - a - h] ^= mask;
        }
        out
    }

    fn bits(&self) -> usize {
        8 * (self.auth_data.len() + self.client_data_hash.len() + self.signature.len())
    }
}

#[test]
fn every_single_bit_flip_fails_for_both_key_types() {
    for ed25519 in [false, true] {
        let signer = Signer::new(ed25519);
        let case = Case::new(&signer, flags::UV | flags::BE, 7, sha256(b"client data"));
        assert_eq!(case.verify().unwrap().sign_count, 7);
        for bit in 0..case.bits() {
            assert!(
                case.flipped(bit).verify().is_err(),
                "ed25519={ed25519} bit {bit}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_assertions_verify_and_any_flip_fails(
        ed25519 in any::<bool>(),
        extra_flags in any::<u8>(),
        counter in 1u32..,
        hash in any::<[u8; 32]>(),
        bit_seed in any::<usize>(),
    ) {
        let signer = Signer::new(ed25519);
        let case = Case::new(&signer, extra_flags, counter, hash);
        let outcome = case.verify().unwrap();
        prop_assert_eq!(outcome.sign_count, counter);
        prop_assert_eq!(outcome.flags.bits(), case.auth_data[32]);
        let bit = bit_seed % case.bits();
        prop_assert!(case.flipped(bit).verify().is_err(), "bit {}", bit);
    }

    #[test]
    fn counter_rule_holds_for_authentic_assertions(
        ed25519 in any::<bool>(),
        stored in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        received in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
    ) {
        let signer = Signer::new(ed25519);
        let mut case = Case::new(&signer, 0, received, [3; 32]);
        case.stored.sign_count = stored;
        let result = case.verify();
        if (stored == 0 && received == 0) || received > stored {
            prop_assert_eq!(result.map(|o| o.sign_count), Ok(received));
        } else {
            prop_assert_eq!(result, Err(Rejection::PossibleClone { stored, received }));
        }
    }

    #[test]
    fn forged_low_counters_never_flag_a_key(
        stored in 1u32..,
        received in any::<u32>(),
        junk in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        // An unsigned assertion must fail on the signature, never as a possible clone.
        let signer = Signer::new(false);
        let mut case = Case::new(&signer, 0, received, [4; 32]);
        case.stored.sign_count = stored;
        case.signature = junk;
        prop_assert_eq!(case.verify(), Err(Rejection::BadSignature));
    }
}
