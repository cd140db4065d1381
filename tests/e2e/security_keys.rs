//! Security keys end to end, no hardware: firmware-sim (in-process, over UDP) → the bridge →
//! the real `tokengate` binary. Registration (FIDO2 and U2F) and login through the IAM/STS
//! ceremony actions, the credentials they issue, and every refusal issue 6 names — each with
//! no credentials issued: touch denied, a replayed assertion, a cloned key used after the
//! original (which flags the key), a wrong relying-party ID, another user's key, an expired
//! challenge, a deactivated key — plus lockout and the shared device quota. The CLI
//! (`tokengate mfa register-key`, `tokengate login`) is driven at the end.

pub(crate) mod client;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use firmware_sim::{RunningSim, TouchPolicy};
use tokengate_bridge::{CredentialRequest, Error as BridgeError};
use tokengate_verifier::fido::{Ceremony, client_data_json};
use tokengate_verifier::totp::{Generator, TotpParams};

use self::client::{
    LoginChallenge, SignedAssertion, connect, enable_with, issued, login, login_challenge,
    register, registration_challenge, service, sign, sign_with, spawn_sim, submit, unb64,
};
use crate::harness::{Creds, Reply, Service, binary};
use crate::user_with_key;

const INVALID_CODE: &str = "MultiFactorAuthentication failed with invalid MFA one time pass code.";
const INVALID_SERIAL: &str = "MultiFactorAuthentication failed, unable to validate MFA code.  \
     Please verify your MFA serial number is valid and associated with this user.";

/// Whether a reply is the refusal every failed security-key login gets, with nothing issued.
fn assert_refused(r: &Reply, message: &str) {
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code().as_deref(), Some("AccessDenied"), "{}", r.body);
    assert_eq!(r.xml("Message").as_deref(), Some(message), "{}", r.body);
    assert!(!r.body.contains("Credentials"), "{}", r.body);
}

/// The claims of a session token (signature not checked: the service checks it).
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let json = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn get_mfa_device(svc: &Service, root: &Creds, user: &str, serial: &str) -> Reply {
    svc.call(
        root,
        "iam",
        &[
            ("Action", "GetMFADevice"),
            ("UserName", user),
            ("SerialNumber", serial),
        ],
    )
}

// ---- Registration and login ----

#[test]
fn fido2_and_u2f_keys_register_log_in_and_are_mfa_devices() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let bob = user_with_key(&svc, &root, "bob");

    let fido2 = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    assert!(
        fido2.starts_with("arn:aws:iam::000000000000:u2f/user/alice/yubikey-"),
        "{fido2}"
    );
    let suffix = fido2.rsplit('-').next().unwrap();
    assert_eq!(suffix.len(), 26, "{fido2}");
    let u2f = register(&svc, &root, &sim, "bob", "legacy", "u2f");
    assert!(u2f.starts_with("arn:aws:iam::000000000000:u2f/user/bob/legacy-"));

    for (user, creds, serial, method) in [
        ("alice", &alice, &fido2, "fido2"),
        ("bob", &bob, &u2f, "u2f"),
    ] {
        let c = login_challenge(&svc, creds, serial).unwrap();
        assert_eq!(c.protocol, method);
        assert_eq!(c.challenge.len(), 32);
        assert_eq!(c.rp_id, "tokengate.localhost");
        // The default origin: the browser's, on the loopback port served.
        assert!(
            c.origin.starts_with("http://tokengate.localhost:"),
            "{}",
            c.origin
        );
        let r = submit(&svc, creds, &c, &sign(&sim, &c));
        let temp = issued(&r);
        assert!(temp.access_key_id.starts_with("ASIA"));
        let r = svc.call(&temp, "sts", &[("Action", "GetCallerIdentity")]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.xml("Arn").unwrap(),
            format!("arn:aws:iam::000000000000:user/{user}")
        );
        // The session carries the MFA context GetSessionToken gives a TOTP login.
        let claims = claims(temp.token.as_deref().unwrap());
        assert_eq!(claims["mfa"]["present"], true);
        assert_eq!(claims["mfa"]["method"], method);
        assert_eq!(claims["mfa"]["device"], serial.as_str());
        assert!(claims["mfa"]["auth_time"].is_i64());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
        // Sessions cannot start ceremonies, as they cannot call GetSessionToken.
        let r = svc.call(
            &temp,
            "sts",
            &[
                ("Action", "GetSecurityKeyChallenge"),
                ("SerialNumber", serial),
            ],
        );
        assert_eq!(r.status, 403);
        assert_eq!(
            r.xml("Message").unwrap(),
            "Cannot call GetSecurityKeyChallenge with session credentials"
        );

        // An MFA device: listed, described, and its counter moved.
        let r = svc.call(
            &root,
            "iam",
            &[("Action", "ListMFADevices"), ("UserName", user)],
        );
        assert_eq!(r.xml("SerialNumber").as_deref(), Some(serial.as_str()));
        let r = get_mfa_device(&svc, &root, user, serial);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.xml("UserName").as_deref(), Some(user));
        assert!(r.xml("EnableDate").is_some());
        assert_eq!(r.xml("Protocol").as_deref(), Some(method));
        assert_eq!(r.xml("PossiblyCloned").as_deref(), Some("false"));
        assert!(r.xml("LastUsedDate").is_some());
        let attestation = r.xml("AttestationResult").unwrap();
        assert!(attestation.starts_with("trusted: "), "{attestation}");
        let format = r.xml("AttestationFormat").unwrap();
        if method == "u2f" {
            assert_eq!(format, "fido-u2f");
            assert_eq!(
                r.xml("Aaguid").unwrap(),
                "00000000-0000-0000-0000-000000000000"
            );
        } else {
            assert_eq!(format, "packed");
            assert_ne!(
                r.xml("Aaguid").unwrap(),
                "00000000-0000-0000-0000-000000000000"
            );
        }
        assert!(r.xml("SignCount").unwrap().parse::<u32>().unwrap() > 0);
    }
    // GetMFADevice answers for the user's own devices only.
    let r = get_mfa_device(&svc, &root, "bob", &fido2);
    assert_eq!(r.code().as_deref(), Some("NoSuchEntity"), "{}", r.body);
    // The keys are the users' only: no IAM access for them.
    let r = svc.call(
        &alice,
        "iam",
        &[
            ("Action", "CreateSecurityKeyRegistrationChallenge"),
            ("UserName", "alice"),
            ("DeviceName", "mine"),
        ],
    );
    assert_eq!(r.code().as_deref(), Some("AccessDenied"), "{}", r.body);
}

#[test]
fn a_login_survives_a_restart_of_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    // Each start here listens on a new port, and the default origin carries the port (what
    // a browser sends); a real restart keeps its port. So the origin is fixed.
    let origin = [(
        "TOKENGATE_SECURITY_KEYS_ORIGIN",
        "http://tokengate.localhost:8787",
    )];
    let svc = service(dir.path(), &sim, &origin);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let serial = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    // A challenge issued before a restart completes after it (it is stored).
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    let a = sign(&sim, &c);
    svc.kill9();
    let svc = service(dir.path(), &sim, &origin);
    issued(&submit(&svc, &alice, &c, &a));
    // … and the counter it recorded survives a kill -9: the same assertion is a replay.
    svc.kill9();
    let svc = service(dir.path(), &sim, &origin);
    assert_refused(&submit(&svc, &alice, &c, &a), INVALID_CODE);
}

// ---- Refusals: nothing is issued ----

#[test]
fn touch_denied_issues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("yubikey.json");
    let sim = spawn_sim(TouchPolicy::Auto, Some(state.clone()));
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let fido2 = register(&svc, &root, &sim, "alice", "fido2", "fido2");
    sim.stop();
    // The same key, now declining every touch.
    let denying = spawn_sim(TouchPolicy::Deny, Some(state));
    let c = login_challenge(&svc, &alice, &fido2).unwrap();
    let e = sign_with(&mut connect(&denying), &c, &c.rp_id, &c.credential_id)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::OperationDenied), "{e}");
    // Nothing was signed, so nothing can be sent; the key is as it was, and the unanswered
    // challenge is good for nothing else.
    let r = get_mfa_device(&svc, &root, "alice", &fido2);
    assert!(r.xml("LastUsedDate").is_none(), "{}", r.body);
    let forged = SignedAssertion {
        credential_id: c.credential_id.clone(),
        authenticator_data: vec![0; 37],
        client_data_json: client_data_json(Ceremony::Get, &c.challenge, &c.origin),
        signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
    };
    assert_refused(&submit(&svc, &alice, &c, &forged), INVALID_CODE);
}

#[test]
fn a_replayed_assertion_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    for protocol in ["fido2", "u2f"] {
        let serial = register(&svc, &root, &sim, "alice", protocol, protocol);
        let c = login_challenge(&svc, &alice, &serial).unwrap();
        let a = sign(&sim, &c);
        issued(&submit(&svc, &alice, &c, &a));
        assert_refused(&submit(&svc, &alice, &c, &a), INVALID_CODE);
        // Nor does the old assertion answer a new challenge.
        let fresh = login_challenge(&svc, &alice, &serial).unwrap();
        let replayed = LoginChallenge {
            id: fresh.id.clone(),
            ..c.clone()
        };
        assert_refused(&submit(&svc, &alice, &replayed, &a), INVALID_CODE);
        // The refusals spent the fresh challenge too; a new login works.
        issued(&login(&svc, &alice, &sim, &serial));
    }
}

#[test]
fn a_cloned_key_used_after_the_original_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("yubikey.json");
    let original = spawn_sim(TouchPolicy::Auto, Some(state.clone()));
    let svc = service(dir.path(), &original, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let serial = register(&svc, &root, &original, "alice", "yubikey", "fido2");
    issued(&login(&svc, &alice, &original, &serial));
    // Someone copies the key's secrets — its state file and its counter side file — so the
    // clone starts level with the original …
    let copy = dir.path().join("clone.json");
    std::fs::copy(&state, &copy).unwrap();
    let counter = dir.path().join("yubikey.json.counter");
    if counter.exists() {
        std::fs::copy(&counter, dir.path().join("clone.json.counter")).unwrap();
    }
    let clone = spawn_sim(TouchPolicy::Auto, Some(copy));
    // … the owner keeps using the original …
    issued(&login(&svc, &alice, &original, &serial));
    // … and the clone's next counter is one the service has seen: refused, key flagged.
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    assert_refused(&submit(&svc, &alice, &c, &sign(&clone, &c)), INVALID_CODE);
    let r = get_mfa_device(&svc, &root, "alice", &serial);
    assert_eq!(
        r.xml("PossiblyCloned").as_deref(),
        Some("true"),
        "{}",
        r.body
    );
    assert!(r.xml("PossiblyClonedDate").is_some());
    // A flagged key is refused from then on, the original included, until it is
    // deactivated and registered again.
    let r = svc.call(
        &alice,
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", &serial),
        ],
    );
    assert_refused(&r, INVALID_CODE);
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let again = register(&svc, &root, &original, "alice", "yubikey", "fido2");
    issued(&login(&svc, &alice, &original, &again));
}

#[test]
fn a_wrong_relying_party_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    // A registration made for another relying party.
    for protocol in ["fido2", "u2f"] {
        let c = registration_challenge(&svc, &root, "alice", "phished", protocol).unwrap();
        let r = enable_with(
            &svc,
            &root,
            &mut connect(&sim),
            &c,
            protocol,
            "evil.example",
        );
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.code().as_deref(), Some("InvalidAuthenticationCode"));
        assert!(!r.body.contains("SerialNumber"));
    }
    // An assertion made for another relying party, by a credential the key holds there,
    // answering tokengate's challenge (a phishing site relaying it).
    let serial = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    let mut key = connect(&sim);
    let evil = key
        .register(&CredentialRequest::new(
            [7; 32],
            "evil.example",
            b"alice",
            "alice",
        ))
        .unwrap();
    let evil_id = evil.credential_id().unwrap().to_vec();
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    let signed = sign_with(&mut key, &c, "evil.example", &evil_id).unwrap();
    let claimed = SignedAssertion {
        credential_id: c.credential_id.clone(),
        ..signed.clone()
    };
    assert_refused(&submit(&svc, &alice, &c, &claimed), INVALID_CODE);
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    let signed = sign_with(&mut key, &c, "evil.example", &evil_id).unwrap();
    assert_refused(&submit(&svc, &alice, &c, &signed), INVALID_CODE);
    // The key's own credential does not exist at the other relying party.
    let e = sign_with(&mut key, &c, "evil.example", &c.credential_id)
        .err()
        .unwrap();
    assert!(matches!(e, BridgeError::NoCredentials), "{e}");
}

#[test]
fn another_users_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let bob = user_with_key(&svc, &root, "bob");
    let alices = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    let bobs = register(&svc, &root, &sim, "bob", "yubikey", "fido2");
    // Bob cannot even ask for a challenge for alice's key.
    let r = svc.call(
        &bob,
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", &alices),
        ],
    );
    assert_refused(&r, INVALID_SERIAL);
    // Alice's challenge answered by alice's key, submitted by bob under her serial.
    let c = login_challenge(&svc, &alice, &alices).unwrap();
    let a = sign(&sim, &c);
    assert_refused(&submit(&svc, &bob, &c, &a), INVALID_SERIAL);
    // … or under his own serial.
    let as_bobs = LoginChallenge {
        serial: bobs.clone(),
        ..c.clone()
    };
    assert_refused(&submit(&svc, &bob, &as_bobs, &a), INVALID_CODE);
    // Bob's challenge, signed by alice's credential.
    let c = login_challenge(&svc, &bob, &bobs).unwrap();
    let alices_credential = login_challenge(&svc, &alice, &alices)
        .unwrap()
        .credential_id;
    let a = sign_with(&mut connect(&sim), &c, &c.rp_id, &alices_credential).unwrap();
    assert_refused(&submit(&svc, &bob, &c, &a), INVALID_CODE);
    // Alice still logs in with hers.
    issued(&login(&svc, &alice, &sim, &alices));
}

/// The challenge TTL of [`an_expired_challenge_is_refused`].
const CHALLENGE_TTL_SECS: u64 = 4;

#[test]
fn an_expired_challenge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    // A challenge expires at its creation second + the TTL, so a TTL of 4 s leaves every
    // ceremony that must succeed at least 3 s (a loaded machine, PostgreSQL), and a wait
    // of TTL + 1 s expires the ones that must fail.
    let svc = service(
        dir.path(),
        &sim,
        &[(
            "TOKENGATE_SECURITY_KEYS_CHALLENGE_TTL_SECS",
            &CHALLENGE_TTL_SECS.to_string(),
        )],
    );
    let expired = Duration::from_millis(CHALLENGE_TTL_SECS * 1000 + 1100);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    // Registration.
    let c = registration_challenge(&svc, &root, "alice", "slow", "fido2").unwrap();
    std::thread::sleep(expired);
    let r = enable_with(&svc, &root, &mut connect(&sim), &c, "fido2", &c.rp_id);
    assert_eq!(
        r.code().as_deref(),
        Some("InvalidAuthenticationCode"),
        "{}",
        r.body
    );
    // Login.
    let serial = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    let a = sign(&sim, &c);
    std::thread::sleep(expired);
    assert_refused(&submit(&svc, &alice, &c, &a), INVALID_CODE);
    issued(&login(&svc, &alice, &sim, &serial));
}

#[test]
fn a_deactivated_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let serial = register(&svc, &root, &sim, "alice", "yubikey", "u2f");
    let c = login_challenge(&svc, &alice, &serial).unwrap();
    let a = sign(&sim, &c);
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_refused(&submit(&svc, &alice, &c, &a), INVALID_SERIAL);
    let r = svc.call(
        &alice,
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", &serial),
        ],
    );
    assert_refused(&r, INVALID_SERIAL);
    let r = svc.call(
        &root,
        "iam",
        &[("Action", "ListMFADevices"), ("UserName", "alice")],
    );
    assert!(!r.body.contains(&serial), "{}", r.body);
    let r = get_mfa_device(&svc, &root, "alice", &serial);
    assert_eq!(r.code().as_deref(), Some("NoSuchEntity"));
    // Deactivated, the user can be deleted (no MFA device left).
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
        ],
    );
    assert_eq!(r.code().as_deref(), Some("NoSuchEntity"), "{}", r.body);
}

#[test]
fn failures_lock_the_key_out() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[("TOKENGATE_MFA_MAX_FAILURES", "3")]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let serial = register(&svc, &root, &sim, "alice", "yubikey", "fido2");
    for _ in 0..3 {
        let c = login_challenge(&svc, &alice, &serial).unwrap();
        let mut a = sign(&sim, &c);
        let last = a.signature.len() - 1;
        a.signature[last] ^= 1;
        assert_refused(&submit(&svc, &alice, &c, &a), INVALID_CODE);
    }
    // Locked out: refused before any touch, with the same text.
    let r = svc.call(
        &alice,
        "sts",
        &[
            ("Action", "GetSecurityKeyChallenge"),
            ("SerialNumber", &serial),
        ],
    );
    assert_refused(&r, INVALID_CODE);
}

#[test]
fn security_keys_share_the_eight_device_quota_and_validate_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    // One TOTP device …
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "CreateVirtualMFADevice"),
            ("VirtualMFADeviceName", "phone"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let phone = r.xml("SerialNumber").unwrap();
    let base32 = unb64(&r.xml("Base32StringSeed").unwrap());
    let seed = data_encoding::BASE32_NOPAD.decode(&base32).unwrap();
    let totp = Generator::new(&seed, TotpParams::AWS);
    let step = TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let (c1, c2) = (totp.code(step - 4), totp.code(step - 3));
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &phone),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // … and seven keys fill the eight places.
    let first = register(&svc, &root, &sim, "alice", "k0", "fido2");
    for i in 1..7 {
        register(&svc, &root, &sim, "alice", &format!("k{i}"), "fido2");
    }
    let r = svc.call(
        &root,
        "iam",
        &[("Action", "ListMFADevices"), ("UserName", "alice")],
    );
    assert_eq!(r.body.matches("<member>").count(), 8, "{}", r.body);
    let r = registration_challenge(&svc, &root, "alice", "k7", "fido2")
        .err()
        .unwrap();
    assert_eq!(r.code().as_deref(), Some("LimitExceeded"), "{}", r.body);
    assert_eq!(
        r.xml("Message").unwrap(),
        "Cannot exceed quota for MFADevicesPerUser: 8"
    );
    // Malformed requests get AWS's ValidationError, not an MFA refusal.
    let c = login_challenge(&svc, &alice, &first).unwrap();
    let r = svc.call(
        &alice,
        "sts",
        &[
            ("Action", "GetSessionTokenWithSecurityKey"),
            ("SerialNumber", &c.serial),
            ("ChallengeId", &c.id),
            ("CredentialId", "not base64!"),
            ("AuthenticatorData", "AAAA"),
            ("ClientDataJSON", "AAAA"),
            ("Signature", "AAAA"),
        ],
    );
    assert_eq!(r.code().as_deref(), Some("ValidationError"), "{}", r.body);
    assert!(
        r.body
            .contains("at &apos;credentialId&apos; failed to satisfy constraint"),
        "{}",
        r.body
    );
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "CreateSecurityKeyRegistrationChallenge"),
            ("UserName", "alice"),
            ("DeviceName", "bad name"),
            ("Protocol", "ctap3"),
        ],
    );
    assert_eq!(r.code().as_deref(), Some("ValidationError"), "{}", r.body);
    assert!(
        r.body.contains("2 validation errors detected"),
        "{}",
        r.body
    );
}

// ---- The CLI: `tokengate mfa register-key`, `tokengate login` ----

/// `config` and `credentials` for profile `alice` (its long-term key, `mfa_serial` = the
/// key, the endpoint), in a temp home; commands run with only these.
struct AwsHome {
    dir: tempfile::TempDir,
}

impl AwsHome {
    fn new(svc: &Service, creds: &Creds, serial: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            format!(
                "[profile alice]\nregion = us-east-1\nendpoint_url = http://{}\n\
                 mfa_serial = {serial}\nduration_seconds = 3600\n",
                svc.addr
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            format!(
                "[alice]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                creds.access_key_id, creds.secret
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        for var in [
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "TOKENGATE_DEVICE",
        ] {
            cmd.env_remove(var);
        }
        let home = self.dir.path();
        cmd.env("HOME", home)
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .stdin(Stdio::null());
        cmd
    }

    fn cached_sessions(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("cache/tokengate"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn register_key_cli(svc: &Service, sim: &RunningSim, user: &str, protocol: &str) -> Output {
    Command::new(binary())
        .args([
            "mfa",
            "register-key",
            "--user-name",
            user,
            "--name",
            "yubikey",
        ])
        .args(["--protocol", protocol])
        .args(["--device", &format!("udp:{}", sim.addr())])
        .arg("--root-credentials")
        .arg(svc.data_dir.join("root-credentials.json"))
        .args(["--endpoint-url", &format!("http://{}", svc.addr)])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The serial `register-key` printed (`mfa_serial = …`).
fn printed_serial(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("mfa_serial = "))
        .unwrap_or_else(|| panic!("no serial in: {}", text(out)))
        .to_owned()
}

#[test]
fn the_cli_registers_keys_and_logs_in_with_them() {
    let dir = tempfile::tempdir().unwrap();
    // A touch that takes a moment, so that the key asks for it.
    let sim = spawn_sim(TouchPolicy::Delay(Duration::from_millis(200)), None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    for (user, protocol) in [("alice", "fido2"), ("bob", "u2f")] {
        let creds = user_with_key(&svc, &root, user);
        let out = register_key_cli(&svc, &sim, user, protocol);
        assert!(out.status.success(), "{}", text(&out));
        let serial = printed_serial(&out);
        assert!(
            serial.contains(&format!(":u2f/user/{user}/yubikey-")),
            "{serial}"
        );
        let r = get_mfa_device(&svc, &root, user, &serial);
        assert_eq!(r.xml("Protocol").as_deref(), Some(protocol), "{}", r.body);

        let home = AwsHome::new(&svc, &creds, &serial);
        let out = home
            .command(&["login", "--profile", "alice"])
            .env("TOKENGATE_DEVICE", format!("udp:{}", sim.addr()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        // No terminal here: the prompt falls back to stderr.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Touch your security key"),
            "{}",
            text(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Version"], 1);
        let temp = Creds {
            access_key_id: v["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
            token: Some(v["SessionToken"].as_str().unwrap().to_owned()),
        };
        let r = svc.call(&temp, "sts", &[("Action", "GetCallerIdentity")]);
        assert_eq!(
            r.xml("Arn").unwrap(),
            format!("arn:aws:iam::000000000000:user/{user}")
        );
        assert_eq!(
            claims(temp.token.as_deref().unwrap())["mfa"]["method"],
            protocol
        );
        assert_eq!(home.cached_sessions(), 1);
        // The cached session answers without a touch, even with the key gone.
        let out = home
            .command(&["login", "--profile", "alice", "--device", "udp:127.0.0.1:9"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(again["AccessKeyId"], v["AccessKeyId"]);
        // --token-code makes no sense for a key.
        let out = home
            .command(&["login", "--profile", "alice", "--token-code", "123456"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
}

#[test]
fn the_cli_login_fails_cleanly_when_the_touch_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("key.json");
    let sim = spawn_sim(TouchPolicy::Auto, Some(state.clone()));
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let out = register_key_cli(&svc, &sim, "alice", "fido2");
    assert!(out.status.success(), "{}", text(&out));
    let serial = printed_serial(&out);
    sim.stop();
    let denying = spawn_sim(TouchPolicy::Deny, Some(state));
    let home = AwsHome::new(&svc, &alice, &serial);
    let out = home
        .command(&[
            "login",
            "--profile",
            "alice",
            "--device",
            &format!("udp:{}", denying.addr()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("denied") || stderr.contains("refused"),
        "{stderr}"
    );
    assert_eq!(home.cached_sessions(), 0);
    let r = get_mfa_device(&svc, &root, "alice", &serial);
    assert!(r.xml("LastUsedDate").is_none(), "{}", r.body);
}

/// `tokengate mfa register-key` with root's keys only in the environment (no AWS files, no
/// `--root-credentials`), as an AWS CLI user would run it.
fn register_key_with_env_keys(svc: &Service, sim: &RunningSim, home: &std::path::Path) -> Output {
    let root = svc.root();
    let mut cmd = Command::new(binary());
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "TOKENGATE_DEVICE",
    ] {
        cmd.env_remove(var);
    }
    cmd.args([
        "mfa",
        "register-key",
        "--user-name",
        "alice",
        "--name",
        "yubikey",
    ])
    .args(["--device", &format!("udp:{}", sim.addr())])
    .args(["--endpoint-url", &format!("http://{}", svc.addr)])
    .env("HOME", home)
    .env("AWS_CONFIG_FILE", home.join("config"))
    .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
    .env("AWS_ACCESS_KEY_ID", &root.access_key_id)
    .env("AWS_SECRET_ACCESS_KEY", &root.secret)
    .stdin(Stdio::null())
    .output()
    .unwrap()
}

#[test]
fn register_key_takes_keys_from_the_environment_and_explains_an_untrusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    // A service that does not trust the simulator's attestation CA.
    let untrusting = Service::start(&dir.path().join("untrusting"), &[]);
    user_with_key(&untrusting, &untrusting.root(), "alice");
    let out = register_key_with_env_keys(&untrusting, &sim, home.path());
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("InvalidAuthenticationCode"), "{stderr}");
    assert!(stderr.contains("security_keys.trust_anchors"), "{stderr}");
    assert!(stderr.contains("firmware-sim export-ca"), "{stderr}");
    drop(untrusting);

    // Trusted, the same command registers the key.
    let svc = service(dir.path(), &sim, &[]);
    user_with_key(&svc, &svc.root(), "alice");
    let out = register_key_with_env_keys(&svc, &sim, home.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(printed_serial(&out).contains(":u2f/user/alice/yubikey-"));
}
