//! Session-token signing keys across two replicas on one PostgreSQL database (issue 14):
//! a rotation on one replica is served by the other's `/.well-known/jwks.json` at its next
//! request (the identical document), tokens signed with the new key verify on both, the
//! other replica signs with the new key too, and two replicas that decide to rotate at the
//! same instant rotate once. A throwaway cluster of its own ([`Cluster`]).

use std::path::Path;

use crate::harness::{Creds, Service};
use crate::pg_outage::{Cluster, serve_on, session_of};
use crate::replicas::{add_device, code_at, login, now_step};

/// The `(alg, kid)` of a session token's header.
fn header_of(token: &str) -> (String, String) {
    let head = token.split('.').next().unwrap();
    let json = data_encoding::BASE64URL_NOPAD
        .decode(head.as_bytes())
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    (
        v["alg"].as_str().unwrap().to_owned(),
        v["kid"].as_str().unwrap().to_owned(),
    )
}

fn jwks(svc: &Service) -> (String, Vec<String>) {
    let r = svc.get("/.well-known/jwks.json");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let kids = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    (r.body, kids)
}

/// (all signing keys, current ones) in the database.
fn signing_key_rows(cluster: &Cluster) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE retired IS NULL)
                 FROM tokengate.signing_key",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    })
}

/// Starts replicas `a` and `b` of `dir` at the same instant with `extra` environment.
fn start_together(cluster: &Cluster, dir: &Path, extra: &[(&str, &str)]) -> (Service, Service) {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let start = |name: &str| {
            let data = dir.join(name);
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                serve_on(cluster, &data, extra)
            })
        };
        let (a, b) = (start("a"), start("b"));
        (a.join().unwrap(), b.join().unwrap())
    })
}

#[test]
fn a_rotation_on_one_replica_is_served_and_used_by_the_other_and_happens_once() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let key = key_file.to_str().unwrap();
    let es256 = [
        ("TOKENGATE_MASTER_KEY_FILE", key),
        ("TOKENGATE_SESSION_TOKENS_ALGORITHM", "ES256"),
    ];
    let eddsa = [
        ("TOKENGATE_MASTER_KEY_FILE", key),
        ("TOKENGATE_SESSION_TOKENS_ALGORITHM", "EdDSA"),
    ];
    let a = serve_on(&cluster, &dir.path().join("a"), &es256);
    let b = serve_on(&cluster, &dir.path().join("b"), &es256);
    let root = a.root();
    let (ja, kids) = jwks(&a);
    assert_eq!(kids.len(), 1, "{ja}");
    assert_eq!(jwks(&b).0, ja);
    let first_kid = kids[0].clone();

    // alice, with a device per login (each login its own device: no waiting for steps).
    let r = a.call(
        &root,
        "iam",
        &[("Action", "CreateUser"), ("UserName", "alice")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = a.call(
        &root,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", "alice")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let alice = Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: None,
    };
    let devices: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| add_device(&a, &root, "alice", &format!("alice{i}")))
        .collect();
    let mut next_device = devices.iter();
    let mut login_on = |svc: &Service| {
        let (serial, seed) = next_device.next().unwrap();
        let r = login(svc, &alice, serial, &code_at(seed, now_step()));
        assert_eq!(r.status, 200, "{}", r.body);
        session_of(&r)
    };
    let ident = [("Action", "GetCallerIdentity")];
    let t1 = login_on(&b);
    assert_eq!(
        header_of(t1.token.as_ref().unwrap()),
        ("ES256".into(), first_kid.clone())
    );

    // (1) A restarts with EdDSA: its current ES256 key is replaced (a rotation in the store).
    a.stop();
    let a = serve_on(&cluster, &dir.path().join("a"), &eddsa);
    assert_eq!(signing_key_rows(&cluster), (2, 1));
    let (ja, kids) = jwks(&a);
    assert_eq!(kids.len(), 2, "{ja}");
    // B, which has not restarted, serves the identical document at its next request.
    assert_eq!(jwks(&b).0, ja, "B's JWKS lags A's rotation");
    // A token minted on A with the new key verifies on B (and the old one on A).
    let t2 = login_on(&a);
    let (alg, new_kid) = header_of(t2.token.as_ref().unwrap());
    assert_eq!(alg, "EdDSA");
    assert!(kids.contains(&new_kid) && new_kid != first_kid);
    let r = b.call(&t2, "sts", &ident);
    assert_eq!(r.status, 200, "new key's token on B: {}", r.body);
    let r = a.call(&t1, "sts", &ident);
    assert_eq!(r.status, 200, "old key's token on A: {}", r.body);
    // B signs with the store's current key too: one rotation for the whole deployment.
    let t3 = login_on(&b);
    assert_eq!(
        header_of(t3.token.as_ref().unwrap()),
        ("EdDSA".into(), new_kid.clone())
    );
    let r = a.call(&t3, "sts", &ident);
    assert_eq!(r.status, 200, "{}", r.body);

    // (2) Both restart at the same instant with ES256: both find the current key due
    // (another algorithm) and try to rotate; the store's compare-and-set lets one.
    a.stop();
    b.stop();
    let (a, b) = start_together(&cluster, dir.path(), &es256);
    assert_eq!(signing_key_rows(&cluster), (3, 1), "rotated more than once");
    let (ja, kids) = jwks(&a);
    assert_eq!(kids.len(), 3, "{ja}");
    assert_eq!(jwks(&b).0, ja);
    let (ta, tb) = (login_on(&a), login_on(&b));
    let (ha, hb) = (
        header_of(ta.token.as_ref().unwrap()),
        header_of(tb.token.as_ref().unwrap()),
    );
    assert_eq!(ha, hb, "the replicas sign with different keys");
    assert_eq!(ha.0, "ES256");
    assert!(kids.contains(&ha.1) && ha.1 != first_kid && ha.1 != new_kid);
    for (svc, token) in [(&a, &tb), (&b, &ta), (&a, &t2), (&b, &t1)] {
        let r = svc.call(token, "sts", &ident);
        assert_eq!(r.status, 200, "{}", r.body);
    }
}
