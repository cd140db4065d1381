//! The client side of tokengate's security-key ceremonies, as `tokengate mfa register-key`
//! and `tokengate login` run them, over the test harness's signed requests and the bridge:
//! shared by the end-to-end tests (tests/e2e/security_keys.rs) and the login benchmark
//! (crates/cli/benches/security_key_login.rs), which include this file.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_sim::{RunningSim, SimConfig, TouchPolicy};
use tokengate_bridge::{
    AssertionRequest, Authenticator, CredentialRequest, DeviceAddress, Error as BridgeError,
    Interaction, open, rp_id_hash,
};
use tokengate_verifier::fido::{Ceremony, client_data_json};

use crate::harness::{Creds, Reply, Service};

pub fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    data_encoding::BASE64.decode(text.as_bytes()).unwrap()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

pub fn spawn_sim(touch: TouchPolicy, state: Option<PathBuf>) -> RunningSim {
    firmware_sim::spawn(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state,
        touch,
        verbose: false,
    })
    .unwrap()
}

pub fn address(sim: &RunningSim) -> DeviceAddress {
    DeviceAddress::Udp(sim.addr().to_string())
}

pub fn connect(sim: &RunningSim) -> Authenticator {
    open(
        &address(sim),
        Interaction::new().timeout(Duration::from_secs(5)),
    )
    .unwrap()
}

/// A service (data in `dir/data`) that trusts `sim`'s attestation CA, with `env` on top.
pub fn service(dir: &Path, sim: &RunningSim, env: &[(&str, &str)]) -> Service {
    let ca = dir.join("sim-ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let mut all = vec![("TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS", ca.as_str())];
    all.extend_from_slice(env);
    Service::start(&dir.join("data"), &all)
}

/// A registration challenge as IAM answers it.
pub struct RegistrationChallenge {
    pub id: String,
    pub challenge: Vec<u8>,
    pub rp_id: String,
    pub origin: String,
    pub user_id: Vec<u8>,
}

pub fn registration_challenge(
    svc: &Service,
    root: &Creds,
    user: &str,
    name: &str,
    protocol: &str,
) -> Result<RegistrationChallenge, Reply> {
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "CreateSecurityKeyRegistrationChallenge"),
            ("UserName", user),
            ("DeviceName", name),
            ("Protocol", protocol),
        ],
    );
    if r.status != 200 {
        return Err(r);
    }
    Ok(RegistrationChallenge {
        id: r.xml("ChallengeId").unwrap(),
        challenge: unb64(&r.xml("Challenge").unwrap()),
        rp_id: r.xml("RpId").unwrap(),
        origin: r.xml("Origin").unwrap(),
        user_id: unb64(&r.xml("UserId").unwrap()),
    })
}

/// Has `key` make a credential for `c` (at `rp_id` instead of the challenge's, to forge),
/// then calls EnableSecurityKey.
pub fn enable_with(
    svc: &Service,
    root: &Creds,
    key: &mut Authenticator,
    c: &RegistrationChallenge,
    protocol: &str,
    rp_id: &str,
) -> Reply {
    let json = client_data_json(Ceremony::Create, &c.challenge, &c.origin);
    let hash = sha256(&json);
    let (param, blob) = if protocol == "u2f" {
        let response = key.u2f_register(&hash, &rp_id_hash(rp_id)).unwrap();
        let mut raw = Vec::new();
        response.encode(&mut raw).unwrap();
        ("RegistrationData", raw)
    } else {
        let registration = key
            .register(&CredentialRequest::new(hash, rp_id, &c.user_id, "user"))
            .unwrap();
        (
            "AttestationObject",
            registration.attestation_object.to_vec(),
        )
    };
    let (blob, json) = (b64(&blob), b64(&json));
    svc.call(
        root,
        "iam",
        &[
            ("Action", "EnableSecurityKey"),
            ("ChallengeId", &c.id),
            ("ClientDataJSON", &json),
            (param, &blob),
        ],
    )
}

/// Registers a key of `sim` for `user`; returns its serial.
pub fn register(
    svc: &Service,
    root: &Creds,
    sim: &RunningSim,
    user: &str,
    name: &str,
    protocol: &str,
) -> String {
    let c = registration_challenge(svc, root, user, name, protocol)
        .unwrap_or_else(|r| panic!("{}", r.body));
    let r = enable_with(svc, root, &mut connect(sim), &c, protocol, &c.rp_id.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    r.xml("SerialNumber").unwrap()
}

/// A login challenge as STS answers it.
#[derive(Clone)]
pub struct LoginChallenge {
    pub serial: String,
    pub id: String,
    pub challenge: Vec<u8>,
    pub rp_id: String,
    pub origin: String,
    pub protocol: String,
    pub credential_id: Vec<u8>,
}

pub fn login_challenge(
    svc: &Service,
    creds: &Creds,
    serial: &str,
) -> Result<LoginChallenge, Reply> {
    let r = svc.call(
        creds,
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", serial),
        ],
    );
    if r.status != 200 {
        return Err(r);
    }
    Ok(LoginChallenge {
        serial: serial.to_owned(),
        id: r.xml("ChallengeId").unwrap(),
        challenge: unb64(&r.xml("Challenge").unwrap()),
        rp_id: r.xml("RpId").unwrap(),
        origin: r.xml("Origin").unwrap(),
        protocol: r.xml("Protocol").unwrap(),
        credential_id: unb64(&r.xml("member").unwrap()),
    })
}

/// What the client sends back: the assertion and the clientDataJSON it signed.
#[derive(Clone)]
pub struct SignedAssertion {
    pub credential_id: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Has `key` sign `c` with `credential_id` at `rp_id`.
pub fn sign_with(
    key: &mut Authenticator,
    c: &LoginChallenge,
    rp_id: &str,
    credential_id: &[u8],
) -> Result<SignedAssertion, BridgeError> {
    let json = client_data_json(Ceremony::Get, &c.challenge, &c.origin);
    let hash = sha256(&json);
    let (authenticator_data, signature) = if c.protocol == "u2f" {
        let app = rp_id_hash(rp_id);
        let response = key.u2f_authenticate(&hash, &app, credential_id)?;
        (response.to_auth_data(&app).to_vec(), response.signature)
    } else {
        let request = AssertionRequest::new(hash, rp_id, vec![credential_id.to_vec()]);
        let assertion = key.authenticate(&request)?;
        (assertion.auth_data.to_vec(), assertion.signature)
    };
    Ok(SignedAssertion {
        credential_id: credential_id.to_vec(),
        authenticator_data,
        client_data_json: json,
        signature,
    })
}

pub fn sign(sim: &RunningSim, c: &LoginChallenge) -> SignedAssertion {
    sign_with(
        &mut connect(sim),
        c,
        &c.rp_id.clone(),
        &c.credential_id.clone(),
    )
    .unwrap()
}

/// The GetSessionTokenWithSecurityKey parameters for `c` with `a`.
pub fn submit_params(c: &LoginChallenge, a: &SignedAssertion) -> Vec<(&'static str, String)> {
    vec![
        ("Action", "GetSessionTokenWithSecurityKey".to_owned()),
        ("SerialNumber", c.serial.clone()),
        ("ChallengeId", c.id.clone()),
        ("CredentialId", b64(&a.credential_id)),
        ("AuthenticatorData", b64(&a.authenticator_data)),
        ("ClientDataJSON", b64(&a.client_data_json)),
        ("Signature", b64(&a.signature)),
        ("DurationSeconds", "900".to_owned()),
    ]
}

/// GetSessionTokenWithSecurityKey for `c` with `a`.
pub fn submit(svc: &Service, creds: &Creds, c: &LoginChallenge, a: &SignedAssertion) -> Reply {
    let params = submit_params(c, a);
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    svc.call(creds, "sts", &params)
}

/// A whole login with `sim`: the reply of GetSessionTokenWithSecurityKey.
pub fn login(svc: &Service, creds: &Creds, sim: &RunningSim, serial: &str) -> Reply {
    let c = login_challenge(svc, creds, serial).unwrap_or_else(|r| panic!("{}", r.body));
    submit(svc, creds, &c, &sign(sim, &c))
}

/// The temporary credentials of a successful login reply.
pub fn issued(r: &Reply) -> Creds {
    assert_eq!(r.status, 200, "{}", r.body);
    Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: Some(r.xml("SessionToken").unwrap()),
    }
}
