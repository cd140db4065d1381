//! The suite every store engine runs: the root of each e2e target (`main.rs` on SQLite,
//! `postgresql.rs` on PostgreSQL) includes this file as a module named after its engine, so
//! a test's name says which one it ran on (`sqlite::totp::…`, `postgresql::totp::…`).
//! A test that needs engine-specific evidence (a file in the data dir, rows in the schema)
//! matches on [`ENGINE`]; a test of one engine only lives in that engine's root.

mod login;
mod mfa_cli;
mod ops;
pub(crate) mod security_keys;
mod totp;

use crate::harness::{
    Creds, ENGINE, Engine, Service, binary, mode, no_mfa, pg_i64, session, store_env, user_with_key,
};

#[test]
fn first_start_writes_private_files_and_a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let svc = Service::start(&data, &no_mfa());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("root-credentials.json")), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    match ENGINE {
        Engine::Sqlite => assert_eq!(mode(&data.join("tokengate.db")), 0o600),
        Engine::Postgresql => {
            // The store is the data dir's schema, not a file: one account in it, and no
            // SQLite database beside the keys.
            assert!(!data.join("tokengate.db").exists());
            let schema = svc.schema().unwrap();
            assert_eq!(pg_i64(&format!("SELECT count(*) FROM {schema}.account")), 1);
        }
    }
    let root = svc.root();
    assert!(root.access_key_id.starts_with("AKIA") && root.access_key_id.len() == 20);
    assert_eq!(root.secret.len(), 40);

    let r = svc.call(&root, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.xml("Arn").unwrap(), "arn:aws:iam::000000000000:root");
    assert_eq!(r.xml("Account").unwrap(), "000000000000");

    let alice = user_with_key(&svc, &root, "alice");
    let temp = session(&svc, &alice, "900");
    assert!(temp.access_key_id.starts_with("ASIA"));
    let r = svc.call(&temp, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(
        r.xml("Arn").unwrap(),
        "arn:aws:iam::000000000000:user/alice",
        "{}",
        r.body
    );

    let before = std::fs::read(data.join("root-credentials.json")).unwrap();
    assert!(svc.stop().success(), "SIGTERM must shut down cleanly");

    let svc = Service::start(&data, &no_mfa());
    assert_eq!(
        std::fs::read(data.join("root-credentials.json")).unwrap(),
        before
    );
    for creds in [&root, &alice, &temp] {
        let r = svc.call(creds, "sts", &[("Action", "GetCallerIdentity")]);
        assert_eq!(
            r.status, 200,
            "{} after restart: {}",
            creds.access_key_id, r.body
        );
    }
    let r = svc.call(
        &root,
        "iam",
        &[("Action", "GetUser"), ("UserName", "alice")],
    );
    assert_eq!(r.xml("UserName").unwrap(), "alice");
}

#[test]
fn health_and_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let r = svc.get("/healthz");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"ok\""));
    let r = svc.get("/.well-known/jwks.json");
    assert_eq!(r.status, 200);
    let jwks: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"].as_str().unwrap().len(), 43);
    drop(svc);
    // With EdDSA configured the key is replaced at start-up; both are published.
    let svc = Service::start(
        dir.path(),
        &[("TOKENGATE_SESSION_TOKENS_ALGORITHM", "EdDSA")],
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&svc.get("/.well-known/jwks.json").body).unwrap();
    let mut algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA"]);
}

#[test]
fn mfa_is_required_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let r = svc.call(&alice, "sts", &[("Action", "GetSessionToken")]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code().unwrap(), "AccessDenied");
    assert!(
        r.xml("Message")
            .unwrap()
            .contains("MultiFactorAuthentication is required")
    );
}

#[test]
fn session_credentials_are_confined() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &no_mfa());
    let root = svc.root();
    let alice = user_with_key(&svc, &root, "alice");
    let temp = session(&svc, &alice, "900");
    let r = svc.call(&temp, "sts", &[("Action", "GetSessionToken")]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.xml("Message").unwrap(),
        "Cannot call GetSessionToken with session credentials"
    );
    // A session token that belongs to another temporary key is refused.
    let other = session(&svc, &alice, "900");
    let swapped = Creds {
        token: other.token.clone(),
        ..temp.clone()
    };
    let r = svc.call(&swapped, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.code().unwrap(), "InvalidClientTokenId", "{}", r.body);
    // Root's sessions are capped at one hour, silently.
    let r = svc.call(
        &root,
        "sts",
        &[("Action", "GetSessionToken"), ("DurationSeconds", "7200")],
    );
    let exp = time::OffsetDateTime::parse(
        &r.xml("Expiration").unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = exp - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(3600) && left > time::Duration::seconds(3500),
        "{left}"
    );
}

#[test]
fn a_changed_account_id_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    Service::start(dir.path(), &[]).stop();
    let out = std::process::Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .envs(store_env(dir.path()))
        .env("TOKENGATE_ACCOUNT_ID", "123456789012")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belongs to account 000000000000"),
        "{stderr}"
    );
}
