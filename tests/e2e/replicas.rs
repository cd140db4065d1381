//! Two real `tokengate serve` replicas on one PostgreSQL database (issue 14's "Done when"):
//! one TOTP code works once across both, a change on one is refused on the other's very next
//! request, and two replicas started at the same instant bootstrap the account once.
//!
//! PostgreSQL at `TOKENGATE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! is required: an unreachable database FAILS these tests. Each test runs in a schema of its
//! own, created and dropped by the test. `TOKENGATE_TEST_REPLICA_CODES` sets the number of
//! codes of the race (default 300; `tokengate-load --store-url … --replicas 2` runs the
//! issue's 10 000 against a release build).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokengate_verifier::totp::{Generator, TotpParams};

use crate::harness::{Creds, Reply, Service, access_key, user_with_key};

pub(crate) const DENIED: &str =
    "MultiFactorAuthentication failed with invalid MFA one time pass code.";

pub(crate) fn pg_url() -> String {
    std::env::var("TOKENGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn sql(url: &str, statement: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {url} is required by the replica tests \
                     (set TOKENGATE_TEST_PG_URL): {e}"
                )
            });
        tokio::spawn(conn);
        client.batch_execute(statement).await.unwrap();
    });
}

/// A schema of its own on the test database, dropped (with everything in it) on drop.
pub(crate) struct Schema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Schema {
    fn new(tag: &str) -> Self {
        let url = pg_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("tg_replicas_{}_{tag}_{nanos}", std::process::id());
        sql(&url, &format!("CREATE SCHEMA {name}"));
        Self { url, name }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        sql(
            &self.url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Two replicas (each its own data dir) on one schema with one master key file.
pub(crate) struct Replicas {
    pub(crate) a: Service,
    pub(crate) b: Service,
    pub(crate) root: Creds,
    pub(crate) schema: Schema,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn replica_env<'a>(
    schema: &'a Schema,
    key: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("TOKENGATE_STORE_URL", schema.url.as_str()),
        ("TOKENGATE_STORE_SCHEMA", schema.name.as_str()),
        ("TOKENGATE_MASTER_KEY_FILE", key),
    ];
    env.extend_from_slice(extra);
    env
}

/// Starts two replicas at the same instant (each on its own thread, released together).
fn start_together(schema: &Schema, dir: &Path, extra: &[(&str, &str)]) -> (Service, Service) {
    let key: PathBuf = dir.join("master.key");
    let key = key.to_str().unwrap().to_owned();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let start = |name: &str| {
            let data = dir.join(name);
            let env = replica_env(schema, &key, extra);
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                Service::start(&data, &env)
            })
        };
        let (a, b) = (start("a"), start("b"));
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// The root credentials: in the data dir of whichever replica created the account (exactly
/// one of them).
fn root_of(a: &Service, b: &Service) -> Creds {
    let files: Vec<&Service> = [a, b]
        .into_iter()
        .filter(|s| s.data_dir.join("root-credentials.json").exists())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "exactly one replica writes root credentials"
    );
    files[0].root()
}

impl Replicas {
    pub(crate) fn start(tag: &str) -> Self {
        Self::start_with(tag, &[])
    }

    /// Two replicas with `extra` environment on top of the throttle's.
    pub(crate) fn start_with(tag: &str, extra: &[(&str, &str)]) -> Self {
        let schema = Schema::new(tag);
        let dir = tempfile::tempdir().unwrap();
        // Failed MFA codes are half of the race's answers, all from 127.0.0.1: the
        // per-address throttle would answer the rest `Throttling` (it is per replica and
        // tested in ops.rs).
        let mut env = vec![("TOKENGATE_THROTTLE_ENABLED", "false")];
        env.extend_from_slice(extra);
        let (a, b) = start_together(&schema, dir.path(), &env);
        let root = root_of(&a, &b);
        Self {
            a,
            b,
            root,
            schema,
            dir,
        }
    }

    /// N fresh users with an access key and an enabled virtual MFA device each, created
    /// through the API of both replicas (user i through A when i is even) from 4 threads.
    pub(crate) fn users_with_devices(&self, n: usize) -> Vec<(Creds, String, Vec<u8>)> {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        (t..n)
                            .step_by(4)
                            .map(|i| {
                                let svc = if i.is_multiple_of(2) {
                                    &self.a
                                } else {
                                    &self.b
                                };
                                (i, user_with_device(svc, &self.root, &format!("u{i}")))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, made)| made).collect()
        })
    }
}

/// A fresh user with an access key and an enabled virtual MFA device, all through `svc`'s
/// API (enabled with the codes of steps now-4 and now-3). Returns key, serial and seed.
pub(crate) fn user_with_device(
    svc: &Service,
    root: &Creds,
    name: &str,
) -> (Creds, String, Vec<u8>) {
    let key = user_with_key(svc, root, name);
    let (serial, seed) = add_device(svc, root, name, name);
    (key, serial, seed)
}

/// A virtual MFA device named `device`, enabled for `user` (codes of steps now-4 and
/// now-3). Returns serial and seed.
pub(crate) fn add_device(
    svc: &Service,
    root: &Creds,
    user: &str,
    device: &str,
) -> (String, Vec<u8>) {
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "CreateVirtualMFADevice"),
            ("VirtualMFADeviceName", device),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let serial = r.xml("SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(r.xml("Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let seed = data_encoding::BASE32_NOPAD.decode(&base32).unwrap();
    let step = now_step();
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", user),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &code_at(&seed, step - 4)),
            ("AuthenticationCode2", &code_at(&seed, step - 3)),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (serial, seed)
}

/// The number of codes of a TOTP race: `TOKENGATE_TEST_REPLICA_CODES`, default 300.
pub(crate) fn race_codes() -> usize {
    std::env::var("TOKENGATE_TEST_REPLICA_CODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

pub(crate) fn code_at(seed: &[u8], step: u64) -> String {
    Generator::new(seed, TotpParams::AWS).code(step)
}

/// Whether `seed`'s code of `step` is its code of no other step within `radius` steps. A
/// code that is also another step's is valid once for each (the verifier accepts the later
/// step after the earlier one is spent, as it must), so a race that allows one success per
/// code leaves such a device out: about 2·`radius` in a million devices.
pub(crate) fn unambiguous(seed: &[u8], step: u64, radius: u64) -> bool {
    let code = code_at(seed, step);
    (step.saturating_sub(radius)..=step + radius).all(|s| s == step || code_at(seed, s) != code)
}

/// Steps around a race's step within which its codes must be unambiguous: the verifier's
/// window (one step either side) plus the minutes a large race with its checks may last.
pub(crate) const RACE_RADIUS: u64 = 12;

pub(crate) fn now_step() -> u64 {
    TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp())
}

/// An MFA `GetSessionToken`.
pub(crate) fn login(svc: &Service, key: &Creds, serial: &str, code: &str) -> Reply {
    svc.call(
        key,
        "sts",
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", serial),
            ("TokenCode", code),
            ("DurationSeconds", "900"),
        ],
    )
}

#[test]
fn one_code_submitted_to_both_replicas_at_once_works_exactly_once() {
    let n = race_codes();
    let r = Replicas::start("race");
    // N fresh users and devices, created through the API of both replicas.
    let made = r.users_with_devices(n);
    assert_eq!(made.len(), n);
    // One code per device, computed once: both replicas get the same code, whatever the
    // clock does while the requests fly (the window takes one step either side).
    let step = now_step();
    let made: Vec<_> = made
        .into_iter()
        .filter(|(_, _, seed)| unambiguous(seed, step, RACE_RADIUS))
        .collect();
    let n = made.len();
    let codes: Vec<String> = made
        .iter()
        .map(|(_, _, seed)| code_at(seed, step))
        .collect();

    let (ok, denied, other) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        std::sync::Mutex::new(Vec::new()),
    );
    let per_device_ok: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    let workers = 6;
    std::thread::scope(|s| {
        for replica in [&r.a, &r.b] {
            for w in 0..workers {
                let (made, codes, ok, denied, other, per_device_ok) =
                    (&made, &codes, &ok, &denied, &other, &per_device_ok);
                s.spawn(move || {
                    for i in (w..n).step_by(workers) {
                        let (key, serial, _) = &made[i];
                        let reply = login(replica, key, serial, &codes[i]);
                        if reply.status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                            per_device_ok[i].fetch_add(1, Ordering::Relaxed);
                        } else if reply.status == 403
                            && reply.code().as_deref() == Some("AccessDenied")
                            && reply.xml("Message").as_deref() == Some(DENIED)
                        {
                            denied.fetch_add(1, Ordering::Relaxed);
                        } else {
                            other
                                .lock()
                                .unwrap()
                                .push(format!("{}: {}", reply.status, reply.body));
                        }
                    }
                });
            }
        }
    });
    let other = other.into_inner().unwrap();
    assert!(
        other.is_empty(),
        "{} unexpected answers, first: {}",
        other.len(),
        other[0]
    );
    assert_eq!(ok.load(Ordering::Relaxed), n, "successes");
    assert_eq!(denied.load(Ordering::Relaxed), n, "AccessDenied");
    for (i, c) in per_device_ok.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), 1, "device u{i}");
    }
}

#[test]
fn a_change_on_one_replica_is_refused_on_the_other_at_its_next_request() {
    let r = Replicas::start("fresh");
    let (a, b, root) = (&r.a, &r.b, &r.root);

    // (1) An access key deactivated on A: B's very next request with it is refused.
    let r1 = a.call(
        root,
        "iam",
        &[("Action", "CreateUser"), ("UserName", "kim")],
    );
    assert_eq!(r1.status, 200, "{}", r1.body);
    let kim = access_key(a, root, "kim");
    let ident = [("Action", "GetCallerIdentity")];
    for _ in 0..3 {
        let x = b.call(&kim, "sts", &ident);
        assert_eq!(x.status, 200, "{}", x.body);
    }
    let x = a.call(
        root,
        "iam",
        &[
            ("Action", "UpdateAccessKey"),
            ("UserName", "kim"),
            ("AccessKeyId", &kim.access_key_id),
            ("Status", "Inactive"),
        ],
    );
    assert_eq!(x.status, 200, "{}", x.body);
    let x = b.call(&kim, "sts", &ident);
    assert_eq!(x.status, 403, "deactivated key accepted on B: {}", x.body);
    assert_eq!(
        x.code().as_deref(),
        Some("InvalidClientTokenId"),
        "{}",
        x.body
    );

    // (2) An MFA device deactivated on A: B's next login with a valid, unused code of that
    // device is refused.
    let (mel, serial, seed) = user_with_device(a, root, "mel");
    let step = now_step();
    let x = login(b, &mel, &serial, &code_at(&seed, step));
    assert_eq!(x.status, 200, "{}", x.body);
    let x = a.call(
        root,
        "iam",
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "mel"),
            ("SerialNumber", &serial),
        ],
    );
    assert_eq!(x.status, 200, "{}", x.body);
    let x = login(b, &mel, &serial, &code_at(&seed, step + 1));
    assert_eq!(
        x.status, 403,
        "deactivated device accepted on B: {}",
        x.body
    );
    assert_eq!(x.code().as_deref(), Some("AccessDenied"), "{}", x.body);

    // (3) A user deleted on A: B's next request with that user's session credentials
    // (minted on B before) is refused. The key and device go first (DeleteConflict
    // otherwise); the session stays valid on B until the user itself is deleted.
    let (ned, serial, seed) = user_with_device(a, root, "ned");
    let x = login(b, &ned, &serial, &code_at(&seed, now_step()));
    assert_eq!(x.status, 200, "{}", x.body);
    let session = Creds {
        access_key_id: x.xml("AccessKeyId").unwrap(),
        secret: x.xml("SecretAccessKey").unwrap(),
        token: Some(x.xml("SessionToken").unwrap()),
    };
    for (action, extra) in [
        ("DeactivateMFADevice", ("SerialNumber", serial.as_str())),
        (
            "DeleteAccessKey",
            ("AccessKeyId", ned.access_key_id.as_str()),
        ),
    ] {
        let x = a.call(
            root,
            "iam",
            &[("Action", action), ("UserName", "ned"), extra],
        );
        assert_eq!(x.status, 200, "{action}: {}", x.body);
    }
    let x = a.call(
        root,
        "iam",
        &[
            ("Action", "DeleteVirtualMFADevice"),
            ("SerialNumber", &serial),
        ],
    );
    assert_eq!(x.status, 200, "{}", x.body);
    let x = b.call(&session, "sts", &ident);
    assert_eq!(x.status, 200, "{}", x.body);
    let x = a.call(
        root,
        "iam",
        &[("Action", "DeleteUser"), ("UserName", "ned")],
    );
    assert_eq!(x.status, 200, "{}", x.body);
    let x = b.call(&session, "sts", &ident);
    assert_eq!(
        x.status, 403,
        "deleted user's session accepted on B: {}",
        x.body
    );
}

#[test]
fn two_replicas_started_together_on_an_empty_schema_bootstrap_once() {
    let schema = Schema::new("boot");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_together(&schema, dir.path(), &[]);
    let root = root_of(&a, &b);
    for svc in [&a, &b] {
        let x = svc.get("/readyz");
        assert_eq!(x.status, 200, "{}", x.body);
        let x = svc.call(&root, "sts", &[("Action", "GetCallerIdentity")]);
        assert_eq!(x.status, 200, "{}", x.body);
        assert_eq!(x.xml("Arn").unwrap(), "arn:aws:iam::000000000000:root");
        let x = svc.call(&root, "iam", &[("Action", "ListAccessKeys")]);
        assert_eq!(x.status, 200, "{}", x.body);
        assert_eq!(x.body.matches("<AccessKeyId>").count(), 1, "{}", x.body);
    }
    // One JWKS, the same on both: one signing key.
    let (ja, jb) = (
        a.get("/.well-known/jwks.json").body,
        b.get("/.well-known/jwks.json").body,
    );
    let jwks: serde_json::Value = serde_json::from_str(&ja).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{ja}");
    assert_eq!(ja, jb);
    // And in the database: one account row, one root key, one signing key.
    let counts = count_rows(&schema);
    assert_eq!(counts, (1, 1, 1), "account, root keys, signing keys");
}

fn count_rows(schema: &Schema) -> (i64, i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let s = &schema.name;
        let one = |q: String| {
            let client = &client;
            async move { client.query_one(&q, &[]).await.unwrap().get::<_, i64>(0) }
        };
        (
            one(format!("SELECT count(*) FROM {s}.account")).await,
            one(format!(
                "SELECT count(*) FROM {s}.access_key WHERE owner_user_id IS NULL"
            ))
            .await,
            one(format!("SELECT count(*) FROM {s}.signing_key")).await,
        )
    })
}
