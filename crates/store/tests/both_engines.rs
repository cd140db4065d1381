//! The store's behaviour, one test body run against both engines: SQLite (a file in a
//! temporary directory) and PostgreSQL (a schema of its own in the database of
//! `TOKENGATE_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`, dropped
//! afterwards). A PostgreSQL that cannot be reached FAILS these tests; nothing is skipped.
//!
//! The race tests run two handles on one database: on PostgreSQL two stores (two replicas,
//! each with its own pool), on SQLite one store shared by two threads (one process owns a
//! SQLite database).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use tokengate_store::{
    AccessKey, Account, Bootstrap, CeremonyKind, Challenge, Entity, KeyOwner, KeyProtocol,
    KeyStatus, KeyUse, KeyUseOutcome, MfaDevice, MfaKind, PgOptions, PostgresStore, SecurityKey,
    SqliteStore, Store, StoreError, StoredSigningKey, User,
};
use tokengate_token::Secret;
use tokengate_verifier::totp::{LockoutPolicy, TotpParams, TotpState};

// ---------------------------------------------------------------- engines

fn pg_url() -> String {
    std::env::var("TOKENGATE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn master() -> Secret {
    Secret::new(vec![9u8; 32])
}

/// A schema created for one test and dropped (with everything in it) when the test ends.
struct Schema {
    name: String,
}

impl Schema {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self {
            name: format!(
                "tg_test_{}_{}_{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    fn open(&self) -> PostgresStore {
        PostgresStore::open(
            &pg_url(),
            &master(),
            PgOptions {
                pool_size: Some(4),
                schema: Some(self.name.clone()),
                ..PgOptions::default()
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required by these tests and could not be used: {e} \
                 (set TOKENGATE_TEST_PG_URL)",
                pg_url()
            )
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = self.name.clone();
        let dropped = rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await
        });
        if let Err(e) = dropped
            && !std::thread::panicking()
        {
            panic!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// A fresh store of each engine, handed to `body` with a second handle on the same
/// database (a second replica on PostgreSQL).
enum Engine {
    Sqlite,
    Postgres,
}

fn with_engine(engine: Engine, body: impl FnOnce(Arc<dyn Store>, Arc<dyn Store>)) {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&dir.path().join("t.db"), &master()).unwrap());
            body(s.clone(), s);
        }
        Engine::Postgres => {
            let schema = Schema::new();
            let a: Arc<dyn Store> = Arc::new(schema.open());
            let b: Arc<dyn Store> = Arc::new(schema.open());
            body(a, b);
        }
    }
}

/// `both!(name, |a, b| …)`: the test `name::sqlite` and `name::postgres`, one body.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                with_engine(Engine::Sqlite, $body);
            }
            #[test]
            fn postgres() {
                with_engine(Engine::Postgres, $body);
            }
        }
    };
}

// ---------------------------------------------------------------- fixtures

fn key(id: &str, owner: KeyOwner) -> AccessKey {
    AccessKey {
        access_key_id: id.into(),
        owner,
        status: KeyStatus::Active,
        created: 1,
        secret: Secret::from(format!("secret-of-{id}")),
    }
}

fn user(name: &str) -> User {
    User {
        user_id: format!("AIDA{name}"),
        name: name.into(),
        path: "/".into(),
        created: 1,
    }
}

fn signing_key(kid: &str, created: i64) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        pkcs8: Secret::new(vec![2; 10]),
        created,
        retired: None,
    }
}

fn bootstrap_with(root: &str, kid: &str) -> Bootstrap {
    Bootstrap {
        account: Account {
            account_id: "000000000000".into(),
            created: 1,
        },
        root_key: key(root, KeyOwner::Root),
        derivation_key: Secret::new(vec![1; 32]),
        signing_key: signing_key(kid, 1),
    }
}

fn bootstrap() -> Bootstrap {
    bootstrap_with("AKIAROOT", "kid1")
}

fn device(serial: &str) -> MfaDevice {
    MfaDevice {
        serial: serial.into(),
        kind: MfaKind::Virtual,
        owner: None,
        enabled_at: None,
        created: 1,
        seed: Secret::new(b"seed-bytes-of-a-device".to_vec()),
        params: TotpParams::AWS,
        state: TotpState::default(),
    }
}

const KEY: &str = "arn:aws:iam::000000000000:u2f/user/alice/yubikey-ABC";

fn security_key(serial: &str, owner: KeyOwner, credential_id: &[u8]) -> SecurityKey {
    SecurityKey {
        serial: serial.into(),
        owner,
        name: "yubikey".into(),
        protocol: KeyProtocol::Fido2,
        credential_id: credential_id.to_vec(),
        public_key_cose: vec![0xa5, 1, 2],
        sign_count: 7,
        backup_eligible: false,
        aaguid: [3; 16],
        attestation_format: "packed".into(),
        attestation: "trusted: CN=Test CA".into(),
        user_handle: b"AIDAalice".to_vec(),
        enabled_at: 100,
        last_used: None,
        possibly_cloned_at: None,
        lockout: TotpState::default(),
    }
}

fn challenge(id: &str, ceremony: CeremonyKind, owner: KeyOwner, serial: &str) -> Challenge {
    Challenge {
        id: id.into(),
        ceremony,
        requester: "arn:aws:iam::000000000000:root".into(),
        owner,
        serial: serial.into(),
        protocol: KeyProtocol::Fido2,
        device_name: "yubikey".into(),
        challenge: vec![0x42; 32],
        created: 100,
        expires: 220,
    }
}

fn alice() -> KeyOwner {
    KeyOwner::User("alice".into())
}

/// alice with one registered security key, [`KEY`], counter 7.
fn with_registered_key(s: &dyn Store) {
    s.create_user(&user("alice")).unwrap();
    s.create_challenge(&challenge("r1", CeremonyKind::Register, alice(), KEY), 16)
        .unwrap();
    s.enable_security_key("r1", 150, &security_key(KEY, alice(), b"cred-1"), 8)
        .unwrap();
}

/// Runs `f(0, a)` and `f(1, b)` in two threads at the same moment; both results.
fn race<T: Send>(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    f: impl Fn(usize, &dyn Store) -> T + Sync,
) -> [T; 2] {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let ha = scope.spawn(|| {
            barrier.wait();
            f(0, a.as_ref())
        });
        let hb = scope.spawn(|| {
            barrier.wait();
            f(1, b.as_ref())
        });
        [ha.join().unwrap(), hb.join().unwrap()]
    })
}

// ---------------------------------------------------------------- behaviour

both!(bootstrap_once_with_secrets_sealed, |s, _| {
    assert!(s.account().unwrap().is_none());
    s.bootstrap(&bootstrap()).unwrap();
    assert_eq!(s.account().unwrap().unwrap().account_id, "000000000000");
    assert_eq!(
        s.bootstrap(&bootstrap()).err(),
        Some(StoreError::AlreadyExists(Entity::Account))
    );
    let root = s.access_key("AKIAROOT").unwrap().unwrap();
    assert_eq!(root.owner, KeyOwner::Root);
    assert_eq!(root.secret.expose(), b"secret-of-AKIAROOT");
    let derivation = s.service_secret(tokengate_store::DERIVATION_KEY).unwrap();
    assert_eq!(derivation.unwrap().expose(), &[1; 32]);
    assert_eq!(s.signing_keys().unwrap().len(), 1);
});

both!(signing_key_rotation_is_compare_and_set, |s, _| {
    s.bootstrap(&bootstrap()).unwrap();
    s.rotate_signing_key("kid1", &signing_key("kid2", 5))
        .unwrap();
    assert!(
        s.rotate_signing_key("kid1", &signing_key("kid3", 5))
            .is_err()
    );
    let keys = s.signing_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "kid2");
    assert_eq!(keys[1].retired, Some(5));
});

both!(users_are_unique_ignoring_case_and_listed_by_name, |s, _| {
    s.create_user(&user("alice")).unwrap();
    let mut dup = user("Alice");
    dup.user_id = "AIDAother".into();
    assert_eq!(
        s.create_user(&dup).err(),
        Some(StoreError::AlreadyExists(Entity::User))
    );
    assert_eq!(s.user("ALICE").unwrap().unwrap().name, "alice");
    assert_eq!(s.user_by_id("AIDAalice").unwrap().unwrap().name, "alice");
    for name in ["Carol", "bob", "dave"] {
        s.create_user(&user(name)).unwrap();
    }
    let mut deep = user("erin");
    deep.path = "/eng/".into();
    s.create_user(&deep).unwrap();
    let names = |v: Vec<User>| v.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_users("/", None, 10).unwrap()),
        ["alice", "bob", "Carol", "dave", "erin"]
    );
    assert_eq!(names(s.list_users("/eng/", None, 10).unwrap()), ["erin"]);
    assert_eq!(
        names(s.list_users("/", Some("bob"), 2).unwrap()),
        ["Carol", "dave"]
    );
});

// Two keys made in the same second (`created` has whole seconds) keep their creation
// order — not the order of their random ids — in the list and in the credential report,
// whose access_key_1 is the older key (a PostgreSQL run once listed them by id).
both!(
    access_keys_made_in_one_second_keep_their_creation_order,
    |s, _| {
        s.bootstrap(&bootstrap()).unwrap();
        s.create_user(&user("alice")).unwrap();
        s.create_access_key(&key("AKIAZZZZ", alice()), 2).unwrap();
        s.create_access_key(&key("AKIAAAAA", alice()), 2).unwrap();
        let listed: Vec<_> = s
            .access_keys_of(&alice())
            .unwrap()
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        assert_eq!(listed, ["AKIAZZZZ", "AKIAAAAA"]);
        let inventory = s.credential_inventory().unwrap();
        let (_, creds) = inventory
            .users
            .iter()
            .find(|(u, _)| u.name == "alice")
            .unwrap();
        let reported: Vec<_> = creds
            .keys
            .iter()
            .map(|k| k.access_key_id.as_str())
            .collect();
        assert_eq!(reported, ["AKIAZZZZ", "AKIAAAAA"]);
    }
);

both!(access_keys_quota_status_and_delete_conflicts, |s, _| {
    s.bootstrap(&bootstrap()).unwrap();
    s.create_user(&user("alice")).unwrap();
    s.create_access_key(&key("AKIA1", alice()), 2).unwrap();
    s.create_access_key(&key("AKIA2", alice()), 2).unwrap();
    assert_eq!(
        s.create_access_key(&key("AKIA3", alice()), 2).err(),
        Some(StoreError::LimitExceeded(Entity::AccessKey))
    );
    assert_eq!(
        s.create_access_key(&key("AKIA1", KeyOwner::Root), 2).err(),
        Some(StoreError::AlreadyExists(Entity::AccessKey))
    );
    assert_eq!(
        s.create_access_key(&key("AKIA9", KeyOwner::User("nobody".into())), 2)
            .err(),
        Some(StoreError::NotFound(Entity::User))
    );
    let ids: Vec<_> = s
        .access_keys_of(&alice())
        .unwrap()
        .into_iter()
        .map(|k| k.access_key_id)
        .collect();
    assert_eq!(ids, ["AKIA1", "AKIA2"]);
    // Root's keys are not alice's.
    assert_eq!(
        s.set_access_key_status(&KeyOwner::Root, "AKIA1", KeyStatus::Inactive)
            .err(),
        Some(StoreError::NotFound(Entity::AccessKey))
    );
    s.set_access_key_status(&alice(), "AKIA1", KeyStatus::Inactive)
        .unwrap();
    assert_eq!(
        s.access_key("AKIA1").unwrap().unwrap().status,
        KeyStatus::Inactive
    );
    assert_eq!(
        s.delete_user("alice").err(),
        Some(StoreError::DeleteConflict {
            entity: Entity::User,
            dependents: Entity::AccessKey
        })
    );
    s.delete_access_key(&alice(), "AKIA1").unwrap();
    s.delete_access_key(&alice(), "AKIA2").unwrap();
    s.delete_user("ALICE").unwrap();
    assert!(s.user("alice").unwrap().is_none());
    assert_eq!(
        s.delete_user("alice").err(),
        Some(StoreError::NotFound(Entity::User))
    );
});

both!(totp_devices_enable_replay_lockout_and_resync, |s, _| {
    s.create_user(&user("alice")).unwrap();
    for i in 0..9 {
        s.create_mfa_device(&device(&format!("arn:aws:iam::000000000000:mfa/d{i}")))
            .unwrap();
    }
    assert_eq!(
        s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/d0"))
            .err(),
        Some(StoreError::AlreadyExists(Entity::MfaDevice))
    );
    let st = TotpState {
        last_step: Some(10),
        ..TotpState::default()
    };
    for i in 0..8 {
        let serial = format!("arn:aws:iam::000000000000:mfa/d{i}");
        s.enable_mfa_device(&serial, &alice(), 5, &st, 8).unwrap();
    }
    assert_eq!(
        s.enable_mfa_device("arn:aws:iam::000000000000:mfa/d8", &alice(), 5, &st, 8)
            .err(),
        Some(StoreError::LimitExceeded(Entity::MfaDevice))
    );
    assert_eq!(
        s.enable_mfa_device("arn:aws:iam::000000000000:mfa/d0", &alice(), 5, &st, 8)
            .err(),
        Some(StoreError::AlreadyExists(Entity::MfaDevice))
    );
    let d0 = "arn:aws:iam::000000000000:mfa/d0";
    let dev = s.mfa_device(d0).unwrap().unwrap();
    assert_eq!(dev.owner, Some(alice()));
    assert_eq!(dev.seed.expose(), b"seed-bytes-of-a-device");
    assert_eq!(s.mfa_devices_of(&alice()).unwrap().len(), 8);
    assert_eq!(s.list_mfa_devices(Some(false)).unwrap().len(), 1);
    assert_eq!(s.list_mfa_devices(None).unwrap().len(), 9);
    // The replay compare-and-set.
    assert!(!s.record_totp_success(d0, 10).unwrap());
    assert!(s.record_totp_success(d0, 11).unwrap());
    assert!(!s.record_totp_success(d0, 11).unwrap());
    // Lockout: the verifier's arithmetic, counted in the store.
    let policy = LockoutPolicy::default();
    let mut last = TotpState::default();
    for _ in 0..policy.max_failures {
        last = s.record_totp_failure(d0, &policy, 1_000).unwrap();
    }
    assert!(last.locked_until.is_some_and(|t| t > 1_000), "{last:?}");
    assert_eq!(s.mfa_device(d0).unwrap().unwrap().state, last);
    // Resync only from the step it was read at.
    let resynced = TotpState {
        last_step: Some(20),
        drift: 1,
        ..TotpState::default()
    };
    assert_eq!(
        s.resync_mfa_device(d0, &alice(), Some(10), &resynced).err(),
        Some(StoreError::NotFound(Entity::MfaDevice))
    );
    s.resync_mfa_device(d0, &alice(), Some(11), &resynced)
        .unwrap();
    assert_eq!(s.mfa_device(d0).unwrap().unwrap().state, resynced);
    // An enabled device blocks deleting it and its user.
    assert!(matches!(
        s.delete_mfa_device(d0),
        Err(StoreError::DeleteConflict { .. })
    ));
    assert_eq!(
        s.delete_user("alice").err(),
        Some(StoreError::DeleteConflict {
            entity: Entity::User,
            dependents: Entity::MfaDevice
        })
    );
    s.deactivate_mfa_device(d0, &alice()).unwrap();
    assert_eq!(s.mfa_device(d0).unwrap().unwrap().owner, None);
    assert!(!s.record_totp_success(d0, 99).unwrap(), "unassigned");
    s.delete_mfa_device(d0).unwrap();
    assert!(s.mfa_device(d0).unwrap().is_none());
});

both!(security_keys_register_once_and_count_up, |s, _| {
    with_registered_key(s.as_ref());
    assert_eq!(
        s.security_key(KEY).unwrap().unwrap(),
        security_key(KEY, alice(), b"cred-1")
    );
    assert_eq!(s.security_keys_of(&alice()).unwrap().len(), 1);
    assert!(s.challenge("r1").unwrap().is_none(), "spent");
    assert_eq!(
        s.enable_security_key("r1", 150, &security_key(KEY, alice(), b"cred-1"), 8),
        Err(StoreError::NotFound(Entity::Challenge))
    );
    let a1 = challenge("a1", CeremonyKind::Authenticate, alice(), KEY);
    s.create_challenge(&a1, 16).unwrap();
    assert_eq!(s.challenge("a1").unwrap().unwrap(), a1);
    let use1 = KeyUse {
        serial: KEY.into(),
        challenge_id: "a1".into(),
        expected_sign_count: 7,
        sign_count: 8,
        now: 150,
    };
    assert_eq!(
        s.record_security_key_use(&use1).unwrap(),
        KeyUseOutcome::Recorded
    );
    assert_eq!(
        s.record_security_key_use(&use1).unwrap(),
        KeyUseOutcome::ChallengeSpent
    );
    s.create_challenge(
        &challenge("a2", CeremonyKind::Authenticate, alice(), KEY),
        16,
    )
    .unwrap();
    let stale = KeyUse {
        challenge_id: "a2".into(),
        ..use1.clone()
    };
    assert_eq!(
        s.record_security_key_use(&stale).unwrap(),
        KeyUseOutcome::KeyChanged
    );
    let stored = s.security_key(KEY).unwrap().unwrap();
    assert_eq!((stored.sign_count, stored.last_used), (8, Some(150)));
    // A possible clone is flagged once and refused from then on.
    let policy = LockoutPolicy::default();
    s.record_security_key_failure(KEY, None, &policy, 160, true)
        .unwrap();
    s.record_security_key_failure(KEY, None, &policy, 170, true)
        .unwrap();
    assert_eq!(
        s.security_key(KEY).unwrap().unwrap().possibly_cloned_at,
        Some(160)
    );
    s.create_challenge(
        &challenge("a3", CeremonyKind::Authenticate, alice(), KEY),
        16,
    )
    .unwrap();
    let after_clone = KeyUse {
        challenge_id: "a3".into(),
        expected_sign_count: 8,
        sign_count: 9,
        ..use1
    };
    assert_eq!(
        s.record_security_key_use(&after_clone).unwrap(),
        KeyUseOutcome::KeyChanged
    );
    // Challenge quota per requester, and discarding.
    for i in 0..3 {
        s.create_challenge(
            &challenge(&format!("q{i}"), CeremonyKind::Authenticate, alice(), KEY),
            3,
        )
        .unwrap_or_else(|e| assert_eq!(e, StoreError::LimitExceeded(Entity::Challenge)));
    }
    assert_eq!(
        s.create_challenge(
            &challenge("q9", CeremonyKind::Authenticate, alice(), KEY),
            3
        )
        .err(),
        Some(StoreError::LimitExceeded(Entity::Challenge))
    );
    s.discard_challenge("q0").unwrap();
    s.discard_challenge("q0").unwrap();
    assert!(s.challenge("q0").unwrap().is_none());
    assert_eq!(
        s.delete_user("alice").err(),
        Some(StoreError::DeleteConflict {
            entity: Entity::User,
            dependents: Entity::SecurityKey
        })
    );
    s.delete_security_key(KEY, &alice()).unwrap();
    assert!(s.security_key(KEY).unwrap().is_none());
});

both!(
    admin_writes_move_the_generation_login_writes_do_not,
    |a, b| {
        a.bootstrap(&bootstrap()).unwrap();
        a.create_user(&user("alice")).unwrap();
        a.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/d"))
            .unwrap();
        a.enable_mfa_device(
            "arn:aws:iam::000000000000:mfa/d",
            &alice(),
            1,
            &TotpState::default(),
            8,
        )
        .unwrap();
        let before = b.iam_generation();
        assert!(
            a.record_totp_success("arn:aws:iam::000000000000:mfa/d", 5)
                .unwrap()
        );
        assert_eq!(b.iam_generation(), before, "a login is not an IAM change");
        a.create_access_key(&key("AKIA1", alice()), 2).unwrap();
        assert_ne!(b.iam_generation(), before);
        // The other handle (another replica on PostgreSQL) sees the change at once.
        let seen = b.iam_generation();
        a.set_access_key_status(&alice(), "AKIA1", KeyStatus::Inactive)
            .unwrap();
        assert_ne!(b.iam_generation(), seen);
        assert_eq!(
            b.access_key("AKIA1").unwrap().unwrap().status,
            KeyStatus::Inactive
        );
        a.deactivate_mfa_device("arn:aws:iam::000000000000:mfa/d", &alice())
            .unwrap();
        assert_eq!(
            b.mfa_device("arn:aws:iam::000000000000:mfa/d")
                .unwrap()
                .unwrap()
                .owner,
            None
        );
        a.delete_access_key(&alice(), "AKIA1").unwrap();
        a.delete_user("alice").unwrap();
        assert!(b.user_by_id("AIDAalice").unwrap().is_none());
    }
);

// ---------------------------------------------------------------- races (two replicas)

both!(bootstrap_races_create_one_account, |a, b| {
    let results = race(&a, &b, |_, s| {
        // Each replica makes its own keys, as `tokengate serve` does.
        let n = std::thread::current().id();
        let tag = format!("{n:?}").replace(|c: char| !c.is_ascii_alphanumeric(), "");
        s.bootstrap(&bootstrap_with(
            &format!("AKIAROOT{tag}"),
            &format!("kid{tag}"),
        ))
    });
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results.contains(&Err(StoreError::AlreadyExists(Entity::Account))),
        "{results:?}"
    );
    assert_eq!(a.access_keys_of(&KeyOwner::Root).unwrap().len(), 1);
    assert_eq!(b.signing_keys().unwrap().len(), 1);
    assert!(b.account().unwrap().is_some());
});

both!(one_totp_step_is_accepted_once_across_replicas, |a, b| {
    const SERIAL: &str = "arn:aws:iam::000000000000:mfa/race";
    a.create_user(&user("alice")).unwrap();
    a.create_mfa_device(&device(SERIAL)).unwrap();
    a.enable_mfa_device(SERIAL, &alice(), 1, &TotpState::default(), 8)
        .unwrap();
    const STEPS: u64 = 200;
    let mut wins = 0;
    for step in 1..=STEPS {
        let [x, y] = race(&a, &b, |_, s| s.record_totp_success(SERIAL, step).unwrap());
        assert!(!(x && y), "step {step} accepted twice");
        wins += usize::from(x) + usize::from(y);
    }
    assert_eq!(wins, usize::try_from(STEPS).unwrap());
    assert_eq!(
        b.mfa_device(SERIAL).unwrap().unwrap().state.last_step,
        Some(STEPS)
    );
});

both!(concurrent_totp_failures_are_all_counted, |a, b| {
    const SERIAL: &str = "arn:aws:iam::000000000000:mfa/fail";
    a.create_user(&user("alice")).unwrap();
    a.create_mfa_device(&device(SERIAL)).unwrap();
    a.enable_mfa_device(SERIAL, &alice(), 1, &TotpState::default(), 8)
        .unwrap();
    let policy = LockoutPolicy {
        max_failures: 1_000,
        ..LockoutPolicy::default()
    };
    for _ in 0..20 {
        race(&a, &b, |_, s| {
            s.record_totp_failure(SERIAL, &policy, 10).unwrap()
        });
    }
    assert_eq!(a.mfa_device(SERIAL).unwrap().unwrap().state.failures, 40);
});

both!(one_assertion_is_recorded_once_across_replicas, |a, b| {
    with_registered_key(a.as_ref());
    for i in 0..100u32 {
        let id = format!("auth{i}");
        a.create_challenge(
            &challenge(&id, CeremonyKind::Authenticate, alice(), KEY),
            16,
        )
        .unwrap();
        let u = KeyUse {
            serial: KEY.into(),
            challenge_id: id,
            expected_sign_count: 7 + i,
            sign_count: 8 + i,
            now: 150,
        };
        // One replica records inline, the other through the callback form.
        let outcomes = race(&a, &b, |i, s| {
            if i == 0 {
                return s.record_security_key_use(&u).unwrap();
            }
            let (tx, rx) = std::sync::mpsc::channel();
            s.record_security_key_use_then(
                &u,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            rx.recv().unwrap().unwrap()
        });
        let recorded = outcomes
            .iter()
            .filter(|o| **o == KeyUseOutcome::Recorded)
            .count();
        assert_eq!(recorded, 1, "assertion {i}: {outcomes:?}");
        assert!(outcomes.contains(&KeyUseOutcome::ChallengeSpent));
    }
    assert_eq!(b.security_key(KEY).unwrap().unwrap().sign_count, 107);
});

both!(two_assertions_racing_on_one_counter_move_it_once, |a, b| {
    with_registered_key(a.as_ref());
    for i in 0..50u32 {
        let (c1, c2) = (format!("x{i}"), format!("y{i}"));
        for id in [&c1, &c2] {
            a.create_challenge(&challenge(id, CeremonyKind::Authenticate, alice(), KEY), 16)
                .unwrap();
        }
        let current = a.security_key(KEY).unwrap().unwrap().sign_count;
        let [x, y] = race(&a, &b, |i, s| {
            let id = [&c1, &c2][i];
            s.record_security_key_use(&KeyUse {
                serial: KEY.into(),
                challenge_id: id.clone(),
                expected_sign_count: current,
                sign_count: current + 1,
                now: 150,
            })
            .unwrap()
        });
        let recorded = [x, y]
            .iter()
            .filter(|o| **o == KeyUseOutcome::Recorded)
            .count();
        assert_eq!(recorded, 1, "round {i}: {x:?} {y:?}");
        assert!([x, y].contains(&KeyUseOutcome::KeyChanged));
        assert_eq!(
            a.security_key(KEY).unwrap().unwrap().sign_count,
            current + 1
        );
    }
});

both!(
    a_registration_challenge_is_single_use_across_replicas,
    |a, b| {
        a.create_user(&user("alice")).unwrap();
        for i in 0..50 {
            let serial = format!("arn:aws:iam::000000000000:u2f/user/alice/k{i}");
            let id = format!("reg{i}");
            a.create_challenge(
                &challenge(&id, CeremonyKind::Register, alice(), &serial),
                16,
            )
            .unwrap();
            let results = race(&a, &b, |_, s| {
                let cred = format!("{:?}", std::thread::current().id());
                s.enable_security_key(
                    &id,
                    150,
                    &security_key(&serial, alice(), cred.as_bytes()),
                    100,
                )
            });
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "challenge {i}: {results:?}"
            );
            assert!(results.contains(&Err(StoreError::NotFound(Entity::Challenge))));
        }
        assert_eq!(b.security_keys_of(&alice()).unwrap().len(), 50);
    }
);

// ---------------------------------------------------------------- usage and audit

fn audit_event(n: i64, user: &str) -> tokengate_store::AuditEvent {
    tokengate_store::AuditEvent {
        event_id: format!("id-{n}"),
        event_time: 1000 + n,
        event_name: if n % 2 == 0 {
            "GetUser"
        } else {
            "GetSessionToken"
        }
        .into(),
        event_source: "iam.amazonaws.com".into(),
        username: Some(user.into()),
        access_key_id: Some("AKIAEXAMPLE".into()),
        read_only: n % 2 == 0,
        resource_type: None,
        resource_name: None,
        record: format!("{{\"n\":{n}}}"),
    }
}

both!(audit_pages_newest_first_with_filters_and_purge, |s, _| {
    use tokengate_store::{AuditAttribute, AuditQuery};
    let generation = s.iam_generation();
    let events: Vec<_> = (0..10)
        .map(|n| audit_event(n, if n < 6 { "alice" } else { "bob" }))
        .collect();
    s.append_audit_events(events).unwrap();
    assert_eq!(s.iam_generation(), generation, "audit is no IAM change");
    let ids = |page: &tokengate_store::AuditPage| {
        page.events
            .iter()
            .map(|(_, e)| e.event_id.clone())
            .collect::<Vec<_>>()
    };
    let mut query = AuditQuery {
        attribute: Some(AuditAttribute::Username("alice".into())),
        limit: 4,
        ..AuditQuery::default()
    };
    let first = s.audit_events(&query).unwrap();
    assert_eq!(ids(&first), ["id-5", "id-4", "id-3", "id-2"]);
    assert!(first.more);
    query.before_seq = Some(first.events[3].0);
    let second = s.audit_events(&query).unwrap();
    assert_eq!(ids(&second), ["id-1", "id-0"]);
    assert!(!second.more);
    let read_only = s
        .audit_events(&AuditQuery {
            attribute: Some(AuditAttribute::ReadOnly(true)),
            start: Some(1004),
            end: Some(1008),
            limit: 50,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(ids(&read_only), ["id-8", "id-6", "id-4"]);
    assert_eq!(s.purge_audit_events(1005).unwrap(), 5);
    let all = s
        .audit_events(&AuditQuery {
            limit: 50,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(all.events.len(), 5);
    assert_eq!(all.events[4].1.record, "{\"n\":5}");
});

both!(
    usage_keeps_the_newest_use_and_leaves_the_generation_alone,
    |s, _| {
        use tokengate_store::{EntityUse, KeyLastUsed, UsageBatch};
        let entity_use = |action: &str, at| EntityUse {
            entity_id: "AIDAALICE".into(),
            entity_arn: "arn:aws:iam::000000000000:user/alice".into(),
            service: "iam".into(),
            action: action.into(),
            at,
            region: "us-east-1".into(),
        };
        s.bootstrap(&bootstrap()).unwrap();
        s.create_user(&user("alice")).unwrap();
        s.create_access_key(&key("AKIAALICE1", alice()), 2).unwrap();
        let generation = s.iam_generation();
        let used = |at| KeyLastUsed {
            at,
            service: "sts".into(),
            region: "eu-west-1".into(),
        };
        s.record_usage(&UsageBatch {
            keys: vec![("AKIAALICE1".into(), used(100))],
            entities: vec![entity_use("GetUser", 100), entity_use("ListUsers", 90)],
        })
        .unwrap();
        s.record_usage(&UsageBatch {
            keys: vec![("AKIAALICE1".into(), used(50))],
            entities: vec![entity_use("GetUser", 50), entity_use("ListUsers", 120)],
        })
        .unwrap();
        s.record_access_key_last_used(&[("AKIAALICE1".into(), used(60))])
            .unwrap();
        assert_eq!(s.iam_generation(), generation);
        assert_eq!(
            s.access_key_last_used("AKIAALICE1").unwrap(),
            Some(used(100))
        );
        assert_eq!(s.access_key_last_used("AKIAROOT").unwrap(), None);
        let uses = s
            .entity_usage(&["AIDAALICE".into(), "AIDANONE".into()])
            .unwrap();
        let got: Vec<(&str, i64)> = uses.iter().map(|u| (u.action.as_str(), u.at)).collect();
        assert_eq!(got, [("GetUser", 100), ("ListUsers", 120)]);
    }
);

both!(advisor_jobs_expire_and_the_alias_is_one, |s, _| {
    use tokengate_store::AdvisorJob;
    let job = |id: &str, created| AdvisorJob {
        job_id: id.into(),
        requester: "arn:aws:iam::000000000000:root".into(),
        created,
        completed: created,
        granularity: "SERVICE_LEVEL".into(),
        result: "[]".into(),
    };
    s.put_advisor_job(&job("a", 10), 0).unwrap();
    s.put_advisor_job(&job("b", 20), 15).unwrap();
    assert_eq!(s.advisor_job("a").unwrap(), None);
    assert_eq!(s.advisor_job("b").unwrap(), Some(job("b", 20)));
    assert_eq!(s.account_alias().unwrap(), None);
    s.set_account_alias("first").unwrap();
    s.set_account_alias("second").unwrap();
    assert_eq!(s.account_alias().unwrap().as_deref(), Some("second"));
    assert_eq!(
        s.delete_account_alias("first").err(),
        Some(StoreError::NotFound(Entity::AccountAlias))
    );
    s.delete_account_alias("second").unwrap();
    assert_eq!(s.account_alias().unwrap(), None);
});

// ---------------------------------------------------------------- groups and policies

both!(
    groups_attachments_inline_policies_and_the_policy_set,
    |s, b| {
        use tokengate_store::{Group, PolicyTarget, Tag};
        const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
        let group = |name: &str| Group {
            group_id: format!("AGPA{name}"),
            name: name.into(),
            path: "/".into(),
            created: 2,
        };
        s.create_user(&user("alice")).unwrap();
        s.create_group(&group("devs"), 2).unwrap();
        assert_eq!(
            s.create_group(&group("DEVS"), 2).err(),
            Some(StoreError::AlreadyExists(Entity::Group))
        );
        s.create_group(&group("ops"), 2).unwrap();
        assert_eq!(
            s.create_group(&group("qa"), 2).err(),
            Some(StoreError::LimitExceeded(Entity::Group))
        );
        assert_eq!(s.group("Devs").unwrap(), Some(group("devs")));
        s.add_user_to_group("devs", "ALICE", 10).unwrap();
        s.add_user_to_group("devs", "alice", 10).unwrap(); // already a member: nothing
        assert_eq!(
            s.add_user_to_group("ops", "alice", 1).err(),
            Some(StoreError::LimitExceeded(Entity::GroupMembership))
        );
        assert_eq!(s.groups_for_user("alice").unwrap(), [group("devs")]);
        assert_eq!(s.group_members("devs").unwrap()[0].name, "alice");
        let devs = PolicyTarget::Group("devs".into());
        let alice_t = PolicyTarget::User("alice".into());
        s.attach_policy(&devs, ADMIN, true, 10).unwrap();
        assert_eq!(
            s.attach_policy(&alice_t, "arn:aws:iam::000000000000:policy/none", false, 10)
                .err(),
            Some(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.attached_policies(&devs).unwrap()[0].name,
            "AdministratorAccess"
        );
        s.put_inline_policy(&alice_t, "Read", "{\"a\":1}", 900, 2048)
            .unwrap();
        s.put_inline_policy(&alice_t, "READ", "{\"a\":2}", 900, 2048)
            .unwrap(); // the same policy, replaced
        assert_eq!(
            s.put_inline_policy(&alice_t, "other", "{}", 1200, 2048)
                .err(),
            Some(StoreError::LimitExceeded(Entity::InlinePolicy))
        );
        assert_eq!(s.inline_policy_names(&alice_t).unwrap(), ["READ"]);
        assert_eq!(
            s.inline_policy(&alice_t, "read").unwrap().as_deref(),
            Some("{\"a\":2}")
        );
        s.set_user_permissions_boundary("alice", Some(ADMIN), true)
            .unwrap();
        s.tag_user(
            "alice",
            &[Tag {
                key: "team".into(),
                value: "a".into(),
            }],
            50,
        )
        .unwrap();
        let set = b.user_policies("AIDAalice").unwrap().unwrap();
        assert_eq!(set.user.name, "alice");
        assert_eq!(set.inline.len(), 1);
        assert_eq!(set.groups.len(), 1);
        assert_eq!(set.groups[0].attached[0].arn, ADMIN);
        assert_eq!(set.boundary.as_ref().unwrap().arn, ADMIN);
        assert_eq!(set.tags[0].key, "team");
        assert!(b.user_policies("AIDAnobody").unwrap().is_none());
        assert_eq!(b.group_policies("DEVS").unwrap().unwrap().attached.len(), 1);
        // Removing is seen by the other handle at once.
        s.detach_policy(&devs, ADMIN).unwrap();
        assert!(
            b.group_policies("devs")
                .unwrap()
                .unwrap()
                .attached
                .is_empty()
        );
        assert_eq!(
            s.delete_group("devs").err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::Group,
                dependents: Entity::GroupMembership
            })
        );
        s.remove_user_from_group("devs", "alice").unwrap();
        s.delete_group("devs").unwrap();
        s.untag_user("alice", &["TEAM".into()]).unwrap();
        assert!(s.user_tags("alice").unwrap().is_empty());
        s.delete_inline_policy(&alice_t, "Read").unwrap();
        s.set_user_permissions_boundary("alice", None, true)
            .unwrap();
        assert_eq!(s.user_permissions_boundary("alice").unwrap(), None);
        s.delete_user("alice").unwrap();
    }
);

// ---------------------------------------------------------------- roles

both!(roles_their_policies_tags_boundary_and_use, |s, b| {
    use tokengate_store::{PolicyTarget, PrincipalBinding, Role, Tag};
    const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
    let role = |name: &str| Role {
        role_id: format!("AROA{name}"),
        name: name.into(),
        path: "/svc/".into(),
        created: 5,
        assume_role_policy: "{\"Version\":\"2012-10-17\",\"Statement\":[]}".into(),
        description: String::new(),
        max_session_duration: 3600,
        last_used: None,
        last_used_region: None,
        trust_principals: vec![PrincipalBinding {
            arn: "arn:aws:iam::000000000000:user/alice".into(),
            unique_id: "AIDAALICE".into(),
        }],
    };
    let tag = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    s.create_role(
        &role("deploy"),
        &[tag("env", "prod")],
        Some((ADMIN, true)),
        2,
    )
    .unwrap();
    assert_eq!(
        s.create_role(&role("DEPLOY"), &[], None, 2).err(),
        Some(StoreError::AlreadyExists(Entity::Role))
    );
    s.create_role(&role("other"), &[], None, 2).unwrap();
    assert_eq!(
        s.create_role(&role("third"), &[], None, 2).err(),
        Some(StoreError::LimitExceeded(Entity::Role))
    );
    assert_eq!(b.role("Deploy").unwrap(), Some(role("deploy")));
    assert_eq!(s.list_roles("/svc/").unwrap().len(), 2);
    assert!(s.list_roles("/none/").unwrap().is_empty());
    let target = PolicyTarget::Role("deploy".into());
    s.attach_policy(&target, ADMIN, true, 10).unwrap();
    s.put_inline_policy(&target, "inline", "{}", 2, 10_240)
        .unwrap();
    let set = b.role_policies("AROAdeploy").unwrap().unwrap();
    assert_eq!(set.role.name, "deploy");
    assert_eq!(set.attached[0].arn, ADMIN);
    assert_eq!(set.inline[0].name, "inline");
    assert_eq!(set.boundary.as_ref().unwrap().arn, ADMIN);
    assert_eq!(set.tags, [tag("env", "prod")]);
    // Role use is recorded coarsely and is no IAM change.
    let generation = b.iam_generation();
    s.record_role_use("AROAdeploy", 1_000, "us-east-1").unwrap();
    s.record_role_use("AROAdeploy", 1_010, "us-east-1").unwrap();
    let r = b.role("deploy").unwrap().unwrap();
    assert_eq!(
        (r.last_used, r.last_used_region.as_deref()),
        (Some(1_000), Some("us-east-1"))
    );
    assert_eq!(b.iam_generation(), generation);
    s.update_role("deploy", Some("ships it"), Some(7200))
        .unwrap();
    let bindings = vec![PrincipalBinding {
        arn: "arn:aws:iam::000000000000:user/bob".into(),
        unique_id: "AIDABOB".into(),
    }];
    s.update_assume_role_policy("deploy", "{}", &bindings)
        .unwrap();
    let r = b.role("deploy").unwrap().unwrap();
    assert_eq!(
        (r.description.as_str(), r.max_session_duration),
        ("ships it", 7200)
    );
    assert_eq!(
        (r.assume_role_policy.as_str(), r.trust_principals),
        ("{}", bindings)
    );
    s.tag_role("deploy", &[tag("ENV", "dev"), tag("team", "a")], 50)
        .unwrap();
    assert_eq!(
        s.role_tags("deploy").unwrap(),
        [tag("ENV", "dev"), tag("team", "a")]
    );
    s.untag_role("deploy", &["env".into()]).unwrap();
    assert_eq!(s.role_tags("deploy").unwrap(), [tag("team", "a")]);
    s.set_role_permissions_boundary("deploy", None, true)
        .unwrap();
    assert_eq!(s.role_permissions_boundary("deploy").unwrap(), None);
    assert_eq!(
        s.delete_role("deploy").err(),
        Some(StoreError::DeleteConflict {
            entity: Entity::Role,
            dependents: Entity::InlinePolicy
        })
    );
    s.delete_inline_policy(&target, "inline").unwrap();
    s.detach_policy(&target, ADMIN).unwrap();
    s.delete_role("deploy").unwrap();
    assert!(b.role_policies("AROAdeploy").unwrap().is_none());
    assert_eq!(
        s.delete_role("deploy").err(),
        Some(StoreError::NotFound(Entity::Role))
    );
});

// ---------------------------------------------------------------- managed policies

both!(
    managed_policies_versions_counts_entities_and_tags,
    |s, b| {
        use tokengate_store::{NewManagedPolicy, PolicyTarget, PolicyUsage, Tag};
        const DOC: &str = "{\"Version\":\"2012-10-17\",\"Statement\":[]}";
        let policy = |name: &str| NewManagedPolicy {
            policy_id: format!("ANPA{name}"),
            name: name.into(),
            path: "/team/".into(),
            arn: format!("arn:aws:iam::000000000000:policy/team/{name}"),
            description: "d".into(),
            document: DOC.into(),
            created: 1,
            tags: vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        let arn = "arn:aws:iam::000000000000:policy/team/read";
        s.create_policy(&policy("read"), 2).unwrap();
        assert_eq!(
            s.create_policy(&policy("READ"), 2).err(),
            Some(StoreError::AlreadyExists(Entity::Policy))
        );
        s.create_policy(&policy("write"), 2).unwrap();
        assert_eq!(
            s.create_policy(&policy("admin"), 2).err(),
            Some(StoreError::LimitExceeded(Entity::Policy))
        );
        let p = b.managed_policy(arn).unwrap().unwrap();
        assert_eq!((p.default_version.as_str(), p.attachment_count), ("v1", 0));
        assert_eq!(b.list_policies("/team/").unwrap().len(), 2);
        let v2 = s
            .create_policy_version(arn, "{\"v\":2}", true, 5, 7)
            .unwrap();
        assert_eq!(v2.version_id, "v2");
        s.create_policy_version(arn, "{\"v\":3}", false, 3, 8)
            .unwrap();
        assert_eq!(
            s.create_policy_version(arn, "{}", false, 3, 9).err(),
            Some(StoreError::LimitExceeded(Entity::PolicyVersion))
        );
        let ids: Vec<_> = b
            .policy_versions(arn)
            .unwrap()
            .into_iter()
            .map(|v| (v.version_id, v.is_default))
            .collect();
        assert_eq!(
            ids,
            [
                ("v3".into(), false),
                ("v2".into(), true),
                ("v1".into(), false)
            ]
        );
        s.delete_policy_version(arn, "v1").unwrap();
        assert_eq!(
            s.delete_policy_version(arn, "v2").err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::PolicyVersion,
                dependents: Entity::PolicyVersion
            })
        );
        s.set_default_policy_version(arn, "v3", 10).unwrap();
        assert!(b.policy_version(arn, "v3").unwrap().unwrap().is_default);
        // A new version id is never a reused one.
        s.delete_policy_version(arn, "v2").unwrap();
        assert_eq!(
            s.create_policy_version(arn, "{}", false, 5, 11)
                .unwrap()
                .version_id,
            "v4"
        );
        // Uses: an attachment and a boundary; the document reaches the policy sets.
        s.create_user(&user("alice")).unwrap();
        s.attach_policy(&PolicyTarget::User("alice".into()), arn, false, 10)
            .unwrap();
        s.set_user_permissions_boundary("alice", Some(arn), false)
            .unwrap();
        let counts = b.policy_use_counts(arn).unwrap();
        assert_eq!((counts.attachments, counts.boundary_uses), (1, 1));
        let set = b.user_policies("AIDAalice").unwrap().unwrap();
        assert_eq!(set.attached[0].document.as_deref(), Some("{\"v\":3}"));
        let entities = b.policy_entities(arn, Some(PolicyUsage::Boundary)).unwrap();
        assert_eq!(entities.users.len(), 1);
        assert!(entities.groups.is_empty());
        assert_eq!(
            s.delete_policy(arn).err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::AttachedPolicy
            })
        );
        s.tag_policy(
            arn,
            &[Tag {
                key: "K".into(),
                value: "w".into(),
            }],
            50,
        )
        .unwrap();
        assert_eq!(b.policy_tags(arn).unwrap().len(), 1);
        s.untag_policy(arn, &["k".into()]).unwrap();
        assert!(b.policy_tags(arn).unwrap().is_empty());
        s.detach_policy(&PolicyTarget::User("alice".into()), arn)
            .unwrap();
        s.set_user_permissions_boundary("alice", None, false)
            .unwrap();
        assert_eq!(
            s.delete_policy(arn).err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::PolicyVersion
            })
        );
        s.delete_policy_version(arn, "v4").unwrap();
        s.delete_policy(arn).unwrap();
        assert!(b.managed_policy(arn).unwrap().is_none());
    }
);

// ---------------------------------------------------------------- portal

both!(portal_sessions_rotate_and_the_throttle_is_shared, |s, b| {
    use tokengate_store::{PortalSession, PortalStage};
    s.create_user(&user("alice")).unwrap();
    let session = |hash: &[u8], stage| PortalSession {
        id_hash: hash.to_vec(),
        user_id: "AIDAalice".into(),
        stage,
        mfa_method: None,
        mfa_device: None,
        mfa_time: None,
        created: 100,
        last_seen: 100,
        expires: 1_000,
    };
    s.put_portal_session(None, &session(b"one", PortalStage::Mfa))
        .unwrap();
    let rotated = PortalSession {
        mfa_method: Some("totp".into()),
        ..session(b"two", PortalStage::SignedIn)
    };
    s.put_portal_session(Some(b"one"), &rotated).unwrap();
    assert_eq!(b.portal_session(b"one").unwrap(), None);
    assert_eq!(b.portal_session(b"two").unwrap(), Some(rotated.clone()));
    s.touch_portal_session(b"two", 150).unwrap();
    b.touch_portal_session(b"two", 120).unwrap(); // an older request changes nothing
    assert_eq!(b.portal_session(b"two").unwrap().unwrap().last_seen, 150);
    b.delete_portal_session(b"two").unwrap();
    assert_eq!(s.portal_session(b"two").unwrap(), None);
    for (at, store) in [(10, &s), (20, &b), (30, &s)] {
        store.record_portal_signin_failure("Alice", at, 60).unwrap();
    }
    assert_eq!(b.portal_signin_failures("alice", 0).unwrap(), 3);
    assert_eq!(s.portal_signin_failures("ALICE", 15).unwrap(), 2);
    assert_eq!(s.portal_signin_failures("bob", 0).unwrap(), 0);
    // A user's sessions go with the user.
    s.put_portal_session(None, &session(b"three", PortalStage::SignedIn))
        .unwrap();
    s.delete_user("alice").unwrap();
    assert_eq!(b.portal_session(b"three").unwrap(), None);
});

// ---------------------------------------------------------------- passwords

fn pw(hash: &str, at: i64) -> tokengate_store::NewPassword {
    tokengate_store::NewPassword {
        hash: hash.into(),
        at,
        expected: None,
    }
}

both!(the_password_policy_is_set_whole_and_deleted_once, |s, b| {
    use tokengate_store::PasswordPolicy;
    assert_eq!(s.password_policy().unwrap(), None);
    assert_eq!(
        s.delete_password_policy().err(),
        Some(StoreError::NotFound(Entity::PasswordPolicy))
    );
    let policy = PasswordPolicy {
        minimum_length: 12,
        require_symbols: true,
        require_numbers: false,
        require_uppercase: true,
        require_lowercase: false,
        allow_users_to_change: true,
        max_age_days: Some(90),
        reuse_prevention: Some(24),
        hard_expiry: Some(false),
    };
    s.set_password_policy(&policy).unwrap();
    assert_eq!(b.password_policy().unwrap(), Some(policy.clone()));
    let minimal = PasswordPolicy {
        max_age_days: None,
        reuse_prevention: None,
        hard_expiry: None,
        ..policy
    };
    s.set_password_policy(&minimal).unwrap();
    assert_eq!(b.password_policy().unwrap(), Some(minimal));
    s.delete_password_policy().unwrap();
    assert_eq!(b.password_policy().unwrap(), None);
});

both!(
    login_profiles_history_and_compare_and_set_changes,
    |s, b| {
        use tokengate_store::{LoginProfileUpdate, MAX_PASSWORD_HISTORY, NewPassword};
        assert_eq!(
            s.create_login_profile("alice", &pw("h0", 1), false, None)
                .err(),
            Some(StoreError::NotFound(Entity::User))
        );
        s.create_user(&user("alice")).unwrap();
        assert_eq!(s.login_profile("alice").unwrap(), None);
        let p = s
            .create_login_profile("alice", &pw("h1", 10), true, Some(3600))
            .unwrap();
        assert_eq!(
            (p.user_name.as_str(), p.created, p.password_changed),
            ("alice", 10, 10)
        );
        assert!(p.reset_required && p.last_used.is_none());
        assert_eq!(p.max_session_duration, Some(3600));
        assert_eq!(
            b.create_login_profile("alice", &pw("hx", 11), false, None)
                .err(),
            Some(StoreError::AlreadyExists(Entity::LoginProfile))
        );
        assert_eq!(
            s.delete_user("alice").err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::User,
                dependents: Entity::LoginProfile
            })
        );
        let change = |expected: &str, hash: &str, at| LoginProfileUpdate {
            password: Some(NewPassword {
                hash: hash.into(),
                at,
                expected: Some(expected.into()),
            }),
            reset_required: Some(false),
            max_session_duration: None,
        };
        // Two replicas changing the same verified password at once: one wins.
        let results = race(&s, &b, |i, st| {
            st.update_login_profile("alice", &change("h1", &format!("h2{i}"), 20))
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results.contains(&Err(StoreError::Changed(Entity::LoginProfile))));
        let p = b.login_profile("alice").unwrap().unwrap();
        assert!(p.password_hash.starts_with("h2") && !p.reset_required);
        assert_eq!(s.password_history("alice", 5).unwrap().len(), 2);
        for i in 3..40 {
            s.update_login_profile(
                "alice",
                &LoginProfileUpdate {
                    password: Some(pw(&format!("h{i}"), 20 + i)),
                    ..LoginProfileUpdate::default()
                },
            )
            .unwrap();
        }
        let history = b.password_history("alice", 100).unwrap();
        assert_eq!(history.len(), MAX_PASSWORD_HISTORY);
        assert_eq!(history.first().map(String::as_str), Some("h39"));
        assert_eq!(history.last().map(String::as_str), Some("h16"));
        s.delete_login_profile("alice").unwrap();
        assert_eq!(
            s.delete_login_profile("alice").err(),
            Some(StoreError::NotFound(Entity::LoginProfile))
        );
        assert_eq!(s.password_history("alice", 2).unwrap(), vec!["h39", "h38"]);
        s.delete_user("alice").unwrap();
    }
);

both!(
    password_use_is_recorded_once_per_span_and_rehashes,
    |s, b| {
        use tokengate_store::PasswordUse;
        s.create_user(&user("bob")).unwrap();
        s.create_login_profile("bob", &pw("old-params", 1), false, None)
            .unwrap();
        let used = |verified: &str, now, rehash: Option<&str>| PasswordUse {
            user_name: "bob".into(),
            verified_hash: verified.into(),
            now,
            granularity_secs: 300,
            rehash: rehash.map(str::to_owned),
        };
        s.record_password_use(&used("old-params", 1000, Some("new-params")))
            .unwrap();
        let p = b.login_profile("bob").unwrap().unwrap();
        assert_eq!(
            (p.password_hash.as_str(), p.last_used),
            ("new-params", Some(1000))
        );
        assert_eq!(b.password_history("bob", 1).unwrap(), vec!["new-params"]);
        b.record_password_use(&used("new-params", 1299, None))
            .unwrap();
        assert_eq!(
            s.login_profile("bob").unwrap().unwrap().last_used,
            Some(1000)
        );
        b.record_password_use(&used("new-params", 1300, None))
            .unwrap();
        assert_eq!(
            s.login_profile("bob").unwrap().unwrap().last_used,
            Some(1300)
        );
        s.record_password_use(&used("old-params", 5000, Some("other")))
            .unwrap();
        let p = b.login_profile("bob").unwrap().unwrap();
        assert_eq!(
            (p.password_hash.as_str(), p.last_used),
            ("new-params", Some(1300))
        );
    }
);

// ---------------------------------------------------------------- credential report

both!(one_report_is_kept_and_the_inventory_is_whole, |s, b| {
    use tokengate_store::{KeyLastUsed, StoredReport};
    assert_eq!(s.credential_report().unwrap(), None);
    for generated in [10, 20] {
        s.put_credential_report(&StoredReport {
            generated,
            content: format!("report {generated}").into_bytes(),
        })
        .unwrap();
    }
    let stored = b.credential_report().unwrap().unwrap();
    assert_eq!(
        (stored.generated, stored.content),
        (20, b"report 20".to_vec())
    );

    s.bootstrap(&bootstrap()).unwrap();
    for name in ["carol", "alice", "Bob"] {
        s.create_user(&user(name)).unwrap();
    }
    let mut k1 = key("AKIAALICE1", alice());
    k1.created = 5;
    let mut k2 = key("AKIAALICE2", alice());
    k2.created = 6;
    s.create_access_key(&k2, 2).unwrap();
    s.create_access_key(&k1, 2).unwrap();
    s.set_access_key_status(&alice(), "AKIAALICE2", KeyStatus::Inactive)
        .unwrap();
    s.create_login_profile("bob", &pw("$argon2id$…", 7), true, None)
        .unwrap();
    s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/a"))
        .unwrap();
    s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/spare"))
        .unwrap();
    s.enable_mfa_device(
        "arn:aws:iam::000000000000:mfa/a",
        &alice(),
        9,
        &TotpState::default(),
        8,
    )
    .unwrap();
    let bob = KeyOwner::User("bob".into());
    let serial = "arn:aws:iam::000000000000:u2f/user/bob/yubikey-X";
    s.create_challenge(
        &challenge("c1", CeremonyKind::Register, bob.clone(), serial),
        4,
    )
    .unwrap();
    s.enable_security_key("c1", 150, &security_key(serial, bob, b"cred"), 8)
        .unwrap();
    let used = |at, service: &str| KeyLastUsed {
        at,
        service: service.into(),
        region: "eu-west-1".into(),
    };
    s.record_access_key_last_used(&[("AKIAALICE1".into(), used(100, "sts"))])
        .unwrap();
    let inventory = b.credential_inventory().unwrap();
    assert_eq!(inventory.account.created, 1);
    assert_eq!(inventory.root.keys.len(), 1);
    let names: Vec<_> = inventory
        .users
        .iter()
        .map(|(u, _)| u.name.as_str())
        .collect();
    assert_eq!(names, ["alice", "Bob", "carol"]);
    let a = &inventory.users[0].1;
    assert_eq!(a.mfa_devices, 1);
    assert!(a.login_profile.is_none());
    let keys: Vec<_> = a
        .keys
        .iter()
        .map(|k| (k.access_key_id.as_str(), k.active))
        .collect();
    assert_eq!(keys, [("AKIAALICE1", true), ("AKIAALICE2", false)]);
    assert_eq!(a.keys[0].last_used, Some(used(100, "sts")));
    let bob = &inventory.users[1].1;
    assert_eq!(bob.mfa_devices, 1);
    let profile = bob.login_profile.as_ref().unwrap();
    assert_eq!((profile.created, profile.reset_required), (7, true));
    assert_eq!(inventory.users[2].1, Default::default());
});

// ---------------------------------------------------------------- the whole TOTP check

both!(
    one_code_checked_on_two_replicas_at_once_is_accepted_once,
    |a, b| {
        use tokengate_store::{TotpCheck, TotpOutcome};
        use tokengate_verifier::totp::{Generator, Refusal};
        const SERIAL: &str = "arn:aws:iam::000000000000:mfa/check";
        a.create_user(&user("alice")).unwrap();
        a.create_mfa_device(&device(SERIAL)).unwrap();
        a.enable_mfa_device(SERIAL, &alice(), 1, &TotpState::default(), 8)
            .unwrap();
        let generator = Generator::new(b"seed-bytes-of-a-device", TotpParams::AWS);
        let check = |now: i64, code: String| TotpCheck {
            serial: SERIAL.into(),
            owner: alice(),
            code,
            now,
            policy: LockoutPolicy::default(),
        };
        for round in 0..40i64 {
            let now = 1_800_000_000 + round * 30;
            let code = generator.code(u64::try_from(now / 30).unwrap());
            let outcomes = race(&a, &b, |_, s| {
                let (tx, rx) = std::sync::mpsc::channel();
                s.check_totp_then(
                    check(now, code.clone()),
                    Box::new(move |r| {
                        let _ = tx.send(r);
                    }),
                );
                rx.recv().unwrap().unwrap()
            });
            let accepted = outcomes
                .iter()
                .filter(|o| matches!(o, TotpOutcome::Accepted { .. }))
                .count();
            assert_eq!(accepted, 1, "round {round}: {outcomes:?}");
            assert!(
                outcomes.iter().any(|o| matches!(
                    o,
                    TotpOutcome::Refused {
                        refusal: Refusal::Replayed,
                        ..
                    }
                )),
                "round {round}: {outcomes:?}"
            );
        }
        // A device that is not the caller's is refused without a write.
        let other = TotpCheck {
            owner: KeyOwner::Root,
            ..check(1_900_000_000, "000000".into())
        };
        let (tx, rx) = std::sync::mpsc::channel();
        b.check_totp_then(other, Box::new(move |r| tx.send(r).unwrap()));
        assert_eq!(rx.recv().unwrap().unwrap(), TotpOutcome::NotAssigned);
    }
);
