//! TOTP MFA end to end: durability of the replay mark across a crash, and secrets at rest.

use tokengate_verifier::totp::{Generator, TotpParams};

use crate::harness::{Creds, ENGINE, Engine, Service, pg_rows};

/// A user with an access key and an enabled virtual MFA device (enabled with the codes of
/// steps now-4 and now-3). Returns the key, the serial and the raw seed.
fn user_with_device(svc: &Service, root: &Creds, name: &str) -> (Creds, String, Vec<u8>) {
    let r = svc.call(root, "iam", &[("Action", "CreateUser"), ("UserName", name)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = svc.call(
        root,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    );
    let key = Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: None,
    };
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "CreateVirtualMFADevice"),
            ("VirtualMFADeviceName", name),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let serial = r.xml("SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(r.xml("Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let seed = data_encoding::BASE32_NOPAD.decode(&base32).unwrap();
    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let (c1, c2) = (generator.code(step - 4), generator.code(step - 3));
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", name),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (key, serial, seed)
}

fn current_code(seed: &[u8]) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Generator::new(seed, TotpParams::AWS).code(TotpParams::AWS.step_at(now))
}

#[test]
fn a_used_code_stays_used_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    let (alice, serial, seed) = user_with_device(&svc, &root, "alice");
    let code = current_code(&seed);
    let login = [
        ("Action", "GetSessionToken"),
        ("SerialNumber", &serial),
        ("TokenCode", &code),
    ];
    let r = svc.call(&alice, "sts", &login);
    assert_eq!(r.status, 200, "{}", r.body);
    svc.kill9();

    let svc = Service::start(dir.path(), &[]);
    let r = svc.call(&alice, "sts", &login);
    assert_eq!(
        r.status, 403,
        "the code was accepted again after a crash: {}",
        r.body
    );
    assert_eq!(
        r.xml("Message").unwrap(),
        "MultiFactorAuthentication failed with invalid MFA one time pass code."
    );
}

/// Secrets at rest: SQLite's database files (the WAL and shared memory included), or on
/// PostgreSQL every row of every table of the service's schema (`bytea` as stored).
#[test]
fn the_store_holds_no_secret_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    let (alice, serial, seed) = user_with_device(&svc, &root, "alice");
    let code = current_code(&seed);
    let r = svc.call(
        &alice,
        "sts",
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", &serial),
            ("TokenCode", &code),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let temp_secret = r.xml("SecretAccessKey").unwrap();
    let master = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let schema = svc.schema().map(str::to_owned);
    svc.stop();

    let mut raw = Vec::new();
    match ENGINE {
        Engine::Sqlite => {
            for file in ["tokengate.db", "tokengate.db-wal", "tokengate.db-shm"] {
                if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                    raw.extend(bytes);
                }
            }
        }
        Engine::Postgresql => raw = pg_rows(&schema.unwrap()),
    }
    assert!(raw.len() > 4096, "the store is suspiciously small");
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    let base32 = data_encoding::BASE32_NOPAD.encode(&seed);
    let secrets: [(&str, &[u8]); 6] = [
        ("root secret access key", root.secret.as_bytes()),
        ("alice's secret access key", alice.secret.as_bytes()),
        ("temporary secret", temp_secret.as_bytes()),
        ("TOTP seed (raw)", &seed),
        ("TOTP seed (base32)", base32.as_bytes()),
        ("master key", master.trim().as_bytes()),
    ];
    for (what, secret) in secrets {
        assert!(!contains(secret), "{what} found in clear in the store");
    }
    // The test can fail: the public parts are in the file.
    assert!(contains(alice.access_key_id.as_bytes()));
    assert!(contains(serial.as_bytes()));
}
