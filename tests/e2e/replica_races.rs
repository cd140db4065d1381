//! Races across two real `tokengate serve` replicas on one PostgreSQL schema (issue 14's
//! "Done when"), beside the TOTP race of replicas.rs:
//!
//! - a security-key registration response sent to both replicas at the same instant
//!   registers one key, and the other replica refuses it;
//! - a security-key assertion sent to both replicas at the same instant logs in once, and
//!   the other replica refuses it as the replay it is (no clone flag, no lockout);
//! - a TOTP race survives one replica killed with SIGKILL in its middle and restarted on the
//!   same data dir and schema: no code is accepted twice (counting every answer, the
//!   resubmissions after the restart included), and every code whose success was answered is
//!   still spent after the restart (each sent again to both replicas: all refused, while a
//!   control device's unused code of the same step is still accepted).
//!
//! "At the same instant": each pair of client threads (one per replica) meets at a barrier
//! before every item, so both requests of an item leave together.
//!
//! Same requirements as replicas.rs: PostgreSQL at `TOKENGATE_TEST_PG_URL` (an unreachable
//! database FAILS these tests), a schema of its own per test, dropped by the test. Sizes:
//! `TOKENGATE_TEST_REPLICA_CODES` (codes of the kill race, default 300) and
//! `TOKENGATE_TEST_REPLICA_KEYS` (users with security keys, default 16; each registers
//! [`KEYS_PER_USER`] keys, and each key logs in [`ROUNDS`] times). The 10 000 codes,
//! with and without the kill, run in `tokengate-load --replicas 2 [--kill-mid-race]`
//! against a release build (docs/benchmarks.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

use firmware_sim::{RunningSim, TouchPolicy};
use tokengate_bridge::{Authenticator, CredentialRequest, rp_id_hash};
use tokengate_token::query::encode_form;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use tokengate_verifier::fido::{Ceremony, client_data_json};

use crate::harness::{Creds, Reply, Service};
use crate::replicas::{DENIED, Replicas, code_at, login, now_step, race_codes};
use crate::security_keys::client::{
    RegistrationChallenge, b64, connect, issued, login_challenge, register, registration_challenge,
    sha256, sign, spawn_sim, submit,
};
use crate::user_with_key;

/// EnableSecurityKey's refusal of a registration whose challenge is spent.
const REGISTRATION_REFUSED: &str = "Authentication code for device is not valid.";
/// Keys each user registers (a user has at most 8 MFA devices).
const KEYS_PER_USER: usize = 4;
/// Logins per key in the assertion race.
const ROUNDS: usize = 3;
/// Pairs of client threads of a race.
const PAIRS: usize = 6;
/// Open challenges one requester may have (`MAX_LIVE_CHALLENGES` of crates/server).
const MAX_LIVE_CHALLENGES: usize = 16;
/// The origin both replicas are configured with (as behind one load balancer): the
/// default origin carries each replica's own port.
const ORIGIN: &str = "http://tokengate.localhost:8787";

/// Users with security keys: `TOKENGATE_TEST_REPLICA_KEYS`, default 16.
fn key_users() -> usize {
    std::env::var("TOKENGATE_TEST_REPLICA_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// What one replica answered, or why there was no answer (refused connection, reset, a
/// response cut short).
type Sent = Result<Reply, String>;

/// Sends every item `0..n` to both sides at the same instant: [`PAIRS`] pairs of threads,
/// the two of a pair meeting at a barrier before each item; `send(side, item)`. `during`
/// runs on the calling thread meanwhile. Returns each item's answers, side 0 first.
fn race(
    n: usize,
    send: impl Fn(usize, usize) -> Sent + Sync,
    during: impl FnOnce(),
) -> Vec<[Sent; 2]> {
    let barriers: Vec<Barrier> = (0..PAIRS).map(|_| Barrier::new(2)).collect();
    let mut slots: Vec<[Option<Sent>; 2]> = (0..n).map(|_| [None, None]).collect();
    std::thread::scope(|s| {
        let mut threads = Vec::new();
        for (pair, barrier) in barriers.iter().enumerate() {
            for side in 0..2 {
                let send = &send;
                threads.push(s.spawn(move || {
                    (pair..n)
                        .step_by(PAIRS)
                        .map(|i| {
                            barrier.wait();
                            (i, side, send(side, i))
                        })
                        .collect::<Vec<_>>()
                }));
            }
        }
        during();
        for t in threads {
            for (i, side, sent) in t.join().unwrap() {
                slots[i][side] = Some(sent);
            }
        }
    });
    slots
        .into_iter()
        .map(|[a, b]| [a.unwrap(), b.unwrap()])
        .collect()
}

/// One signed query-API POST to `addr` that reports a missing answer instead of panicking
/// (the harness's `call` panics: a replica killed mid-request is expected here).
fn try_call(addr: &str, creds: &Creds, service: &str, params: &[(&str, &str)]) -> Sent {
    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
    let version = if service == "iam" {
        "2010-05-08"
    } else {
        "2011-06-15"
    };
    let mut all = params.to_vec();
    all.push(("Version", version));
    let body = encode_form(&all);
    let headers = [("host", addr), ("content-type", FORM)];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let signing = SigningCredentials {
        access_key_id: &creds.access_key_id,
        secret_access_key: &creds.secret,
        session_token: creds.token.as_deref(),
    };
    let now = time::OffsetDateTime::now_utc();
    let mut head = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {FORM}\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    for (k, v) in sign_request(&req, &signing, "us-east-1", service, now) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response head in {} bytes", raw.len()))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    // Every answer of the query API has a Content-Length; a shorter body was cut off.
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    if body.len() != length {
        return Err(format!("body cut at {} of {length} bytes", body.len()));
    }
    Ok(Reply {
        status,
        body: body.to_owned(),
    })
}

/// Whether `r` is the AccessDenied refusal every failed second factor gets.
fn is_mfa_refusal(r: &Reply) -> bool {
    r.status == 403
        && r.code().as_deref() == Some("AccessDenied")
        && r.xml("Message").as_deref() == Some(DENIED)
        && !r.body.contains("Credentials")
}

/// Replicas for security keys: both trust `sim`'s attestation CA and share one origin.
fn key_replicas(tag: &str, sim: &RunningSim) -> (Replicas, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let r = Replicas::start_with(
        tag,
        &[
            (
                "TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS",
                ca.to_str().unwrap(),
            ),
            ("TOKENGATE_SECURITY_KEYS_ORIGIN", ORIGIN),
        ],
    );
    (r, dir)
}

/// The replica of item `i` for one-replica steps (challenges, setup): A for even items.
fn replica(r: &Replicas, i: usize) -> &Service {
    if i.is_multiple_of(2) { &r.a } else { &r.b }
}

/// The EnableSecurityKey parameters for `c`, made by `key` (`protocol` "fido2" or "u2f").
fn registration_params(
    key: &mut Authenticator,
    c: &RegistrationChallenge,
    protocol: &str,
) -> Vec<(&'static str, String)> {
    let json = client_data_json(Ceremony::Create, &c.challenge, &c.origin);
    let hash = sha256(&json);
    let (name, blob) = if protocol == "u2f" {
        let response = key.u2f_register(&hash, &rp_id_hash(&c.rp_id)).unwrap();
        let mut raw = Vec::new();
        response.encode(&mut raw).unwrap();
        ("RegistrationData", raw)
    } else {
        let registration = key
            .register(&CredentialRequest::new(hash, &c.rp_id, &c.user_id, "user"))
            .unwrap();
        (
            "AttestationObject",
            registration.attestation_object.to_vec(),
        )
    };
    vec![
        ("Action", "EnableSecurityKey".to_owned()),
        ("ChallengeId", c.id.clone()),
        ("ClientDataJSON", b64(&json)),
        (name, b64(&blob)),
    ]
}

fn protocol_of(user: usize, key: usize) -> &'static str {
    if (user + key) % 4 == 3 {
        "u2f"
    } else {
        "fido2"
    }
}

#[test]
fn a_security_key_registration_sent_to_both_replicas_at_once_registers_one_key() {
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let (r, _ca) = key_replicas("skreg", &sim);
    let users = key_users();
    for u in 0..users {
        user_with_key(replica(&r, u), &r.root, &format!("k{u}"));
    }
    // Registrations in batches of at most MAX_LIVE_CHALLENGES open challenges (root's).
    let jobs: Vec<(usize, usize)> = (0..KEYS_PER_USER)
        .flat_map(|k| (0..users).map(move |u| (u, k)))
        .collect();
    let mut serials: Vec<Vec<String>> = vec![Vec::new(); users];
    let mut key = connect(&sim);
    for (batch, jobs) in jobs.chunks(MAX_LIVE_CHALLENGES).enumerate() {
        let params: Vec<Vec<(&str, String)>> = jobs
            .iter()
            .enumerate()
            .map(|(j, &(u, k))| {
                let protocol = protocol_of(u, k);
                let svc = replica(&r, batch + j);
                let c = registration_challenge(
                    svc,
                    &r.root,
                    &format!("k{u}"),
                    &format!("key{k}"),
                    protocol,
                )
                .unwrap_or_else(|e| panic!("{}", e.body));
                registration_params(&mut key, &c, protocol)
            })
            .collect();
        let answers = race(
            params.len(),
            |side, i| {
                let svc = if side == 0 { &r.a } else { &r.b };
                let p: Vec<(&str, &str)> =
                    params[i].iter().map(|(k, v)| (*k, v.as_str())).collect();
                Ok(svc.call(&r.root, "iam", &p))
            },
            || {},
        );
        for (&(u, k), pair) in jobs.iter().zip(&answers) {
            let [a, b] = pair.each_ref().map(|s| s.as_ref().unwrap());
            let (won, lost) = match (a.status, b.status) {
                (200, _) => (a, b),
                (_, 200) => (b, a),
                _ => panic!(
                    "k{u} key{k}: no replica registered it: {} / {}",
                    a.body, b.body
                ),
            };
            assert_eq!(
                lost.status, 403,
                "k{u} key{k} registered twice? {}",
                lost.body
            );
            assert_eq!(
                lost.code().as_deref(),
                Some("InvalidAuthenticationCode"),
                "{}",
                lost.body
            );
            assert_eq!(
                lost.xml("Message").as_deref(),
                Some(REGISTRATION_REFUSED),
                "{}",
                lost.body
            );
            serials[u].push(won.xml("SerialNumber").unwrap());
        }
    }
    // Each user has exactly the keys the winners answered, seen from both replicas.
    for (u, mine) in serials.iter_mut().enumerate() {
        mine.sort();
        for svc in [&r.a, &r.b] {
            let x = svc.call(
                &r.root,
                "iam",
                &[("Action", "ListMFADevices"), ("UserName", &format!("k{u}"))],
            );
            assert_eq!(x.status, 200, "{}", x.body);
            let mut listed: Vec<String> = x
                .body
                .split("<SerialNumber>")
                .skip(1)
                .map(|s| s.split('<').next().unwrap().to_owned())
                .collect();
            listed.sort();
            assert_eq!(&listed, mine, "k{u}");
        }
    }
    eprintln!(
        "security-key registrations raced: {} on {users} users, each registered once",
        jobs.len()
    );
}

#[test]
fn a_security_key_assertion_sent_to_both_replicas_at_once_logs_in_once() {
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let (r, _ca) = key_replicas("sklogin", &sim);
    let users = key_users();
    // (user's key, serial) for every registered key.
    let mut keys: Vec<(Creds, String)> = Vec::new();
    for u in 0..users {
        let name = format!("k{u}");
        let creds = user_with_key(replica(&r, u), &r.root, &name);
        for k in 0..KEYS_PER_USER {
            let svc = replica(&r, u + k);
            let serial = register(
                svc,
                &r.root,
                &sim,
                &name,
                &format!("key{k}"),
                protocol_of(u, k),
            );
            keys.push((creds.clone(), serial));
        }
    }
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        // One assertion per key per round: a key's next assertion has a higher counter,
        // so it may only be signed once the previous one is decided.
        let signed: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, (creds, serial))| {
                let c = login_challenge(replica(&r, round + i), creds, serial)
                    .unwrap_or_else(|e| panic!("{}", e.body));
                let a = sign(&sim, &c);
                (c, a)
            })
            .collect();
        let answers = race(
            keys.len(),
            |side, i| {
                let svc = if side == 0 { &r.a } else { &r.b };
                let (c, a) = &signed[i];
                Ok(submit(svc, &keys[i].0, c, a))
            },
            || {},
        );
        for (i, pair) in answers.iter().enumerate() {
            let [a, b] = pair.each_ref().map(|s| s.as_ref().unwrap());
            let serial = &keys[i].1;
            let (won, lost) = match (a.status, b.status) {
                (200, _) => (a, b),
                (_, 200) => (b, a),
                _ => panic!("{serial} round {round}: no login: {} / {}", a.body, b.body),
            };
            issued(won);
            assert!(
                is_mfa_refusal(lost),
                "{serial} round {round}: accepted twice? {}",
                lost.body
            );
            accepted += 1;
            refused += 1;
        }
    }
    assert_eq!(
        (accepted, refused),
        (keys.len() * ROUNDS, keys.len() * ROUNDS)
    );
    // No key was flagged as cloned, and each still logs in (not locked out, its counter
    // where the winners left it), on either replica.
    for (i, (creds, serial)) in keys.iter().enumerate() {
        let user = format!("k{}", i / KEYS_PER_USER);
        let x = r.a.call(
            &r.root,
            "iam",
            &[
                ("Action", "GetMFADevice"),
                ("UserName", &user),
                ("SerialNumber", serial),
            ],
        );
        assert_eq!(x.status, 200, "{}", x.body);
        assert_eq!(
            x.xml("PossiblyCloned").as_deref(),
            Some("false"),
            "{serial}"
        );
        let svc = replica(&r, i + 1);
        let c = login_challenge(svc, creds, serial).unwrap_or_else(|e| panic!("{}", e.body));
        issued(&submit(svc, creds, &c, &sign(&sim, &c)));
    }
    eprintln!(
        "security-key assertions raced: {} keys × {ROUNDS} rounds → {accepted} accepted, \
         {refused} refused",
        keys.len()
    );
}

/// How a TOTP code fared on one replica.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Accepted,
    Refused,
    /// No answer: the replica was killed with the request in flight or before it.
    Unanswered,
}

fn fate(sent: &Sent, what: &str) -> Fate {
    match sent {
        Ok(r) if r.status == 200 => Fate::Accepted,
        Ok(r) if is_mfa_refusal(r) => Fate::Refused,
        Ok(r) => panic!("{what}: unexpected answer {}: {}", r.status, r.body),
        Err(_) => Fate::Unanswered,
    }
}

#[test]
fn a_replica_killed_mid_race_neither_accepts_a_code_twice_nor_forgets_one() {
    let n = race_codes();
    let controls = 4;
    let r = Replicas::start("kill");
    let made = r.users_with_devices(n + controls);
    let (racers, control) = made.split_at(n);
    // The next step's codes: valid for 60 to 90 s (the window takes one step either side),
    // the race, the restart and the checks included — the controls prove it at the end.
    let step = now_step() + 1;
    let codes: Vec<String> = made
        .iter()
        .map(|(_, _, seed)| code_at(seed, step))
        .collect();

    let Replicas {
        a,
        mut b,
        root: _,
        schema: _schema,
        dir,
    } = r;
    let key = dir.path().join("master.key").to_str().unwrap().to_owned();
    let b_data = b.data_dir.clone();
    // B's address, and how many times it was restarted (a B thread whose request went
    // unanswered waits for the restart, so the race goes on against the new process).
    let b_addr = RwLock::new(b.addr.clone());
    let restarts = AtomicUsize::new(0);
    let done_on_a = AtomicUsize::new(0);
    let after_restart = AtomicUsize::new(0);
    let mut killed_after = 0;
    let mut restarted_in = Duration::ZERO;

    let send = |side: usize, i: usize| -> Sent {
        let (creds, serial, _) = &racers[i];
        let params = [
            ("Action", "GetSessionToken"),
            ("SerialNumber", serial.as_str()),
            ("TokenCode", codes[i].as_str()),
            ("DurationSeconds", "900"),
        ];
        if side == 0 {
            let sent = try_call(&a.addr, creds, "sts", &params);
            done_on_a.fetch_add(1, Ordering::SeqCst);
            return sent;
        }
        let epoch = restarts.load(Ordering::SeqCst);
        let addr = b_addr.read().unwrap().clone();
        let sent = try_call(&addr, creds, "sts", &params);
        if sent.is_err() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while restarts.load(Ordering::SeqCst) == epoch {
                assert!(
                    Instant::now() < deadline,
                    "B unanswered and not restarted: {sent:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        } else if epoch > 0 {
            after_restart.fetch_add(1, Ordering::SeqCst);
        }
        sent
    };
    let answers = race(n, send, || {
        while done_on_a.load(Ordering::SeqCst) < n / 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        b.child.kill().unwrap(); // SIGKILL
        b.child.wait().unwrap();
        killed_after = done_on_a.load(Ordering::SeqCst);
        let started = Instant::now();
        let env = replica_env_for(&_schema, &key);
        b = Service::start(&b_data, &env);
        restarted_in = started.elapsed();
        *b_addr.write().unwrap() = b.addr.clone();
        restarts.fetch_add(1, Ordering::SeqCst);
    });

    // Tally every answer per code; resubmit to the restarted B what it left unanswered.
    let mut per_code = vec![0usize; n];
    let (mut unanswered, mut resubmitted_ok) = (Vec::new(), 0);
    for (i, [on_a, on_b]) in answers.iter().enumerate() {
        assert!(on_a.is_ok(), "u{i}: A did not answer: {on_a:?}");
        for (sent, what) in [(on_a, "A"), (on_b, "B")] {
            match fate(sent, &format!("u{i} on {what}")) {
                Fate::Accepted => per_code[i] += 1,
                Fate::Refused => {}
                Fate::Unanswered => unanswered.push(i),
            }
        }
    }
    for &i in &unanswered {
        let (creds, serial, _) = &racers[i];
        let x = login(&b, creds, serial, &codes[i]);
        if fate(&Ok(x), &format!("u{i} resubmitted to B")) == Fate::Accepted {
            per_code[i] += 1;
            resubmitted_ok += 1;
        }
    }
    let twice: Vec<usize> = (0..n).filter(|&i| per_code[i] > 1).collect();
    assert!(twice.is_empty(), "codes accepted twice: {twice:?}");
    // A code with no success had B's answer lost: B spent it (committed) and died before
    // answering. Any other code without a success would be a lost code.
    let never: Vec<usize> = (0..n).filter(|&i| per_code[i] == 0).collect();
    for i in &never {
        assert!(unanswered.contains(i), "u{i}: no replica accepted its code");
    }
    assert!(
        unanswered.len() <= PAIRS,
        "{} requests unanswered; at most one in flight per B thread",
        unanswered.len()
    );
    assert!(
        killed_after > 0 && killed_after < n,
        "the kill came after {killed_after} of {n} codes"
    );
    assert!(
        after_restart.load(Ordering::SeqCst) > 0,
        "the restarted B answered none of the race"
    );

    // After the restart every code is spent on both replicas, whichever answered it …
    let again = race(
        n,
        |side, i| {
            let (creds, serial, _) = &racers[i];
            let svc = if side == 0 { &a } else { &b };
            Ok(login(svc, creds, serial, &codes[i]))
        },
        || {},
    );
    for (i, pair) in again.iter().enumerate() {
        for sent in pair {
            let x = sent.as_ref().unwrap();
            assert!(
                is_mfa_refusal(x),
                "u{i} accepted again after the restart: {}",
                x.body
            );
        }
    }
    // … while the step itself is still accepted: the refusals above are the replay marks.
    for (j, (creds, serial, _)) in control.iter().enumerate() {
        let svc = if j.is_multiple_of(2) { &a } else { &b };
        let x = login(svc, creds, serial, &codes[n + j]);
        assert_eq!(
            x.status, 200,
            "the race took too long for its step (lower TOKENGATE_TEST_REPLICA_CODES): {}",
            x.body
        );
    }
    eprintln!(
        "kill -9 race: {n} codes; B killed after {killed_after} answered on A, restarted in \
         {restarted_in:.1?}; {} accepted ({resubmitted_ok} on resubmission), {} unanswered \
         by the killed B, {} spent by B without an answer, 0 twice; {} race answers from the \
         restarted B; all {n} refused on both replicas after the restart",
        per_code.iter().sum::<usize>(),
        unanswered.len(),
        never.len(),
        after_restart.load(Ordering::SeqCst),
    );
}

fn replica_env_for<'a>(
    schema: &'a crate::replicas::Schema,
    key: &'a str,
) -> Vec<(&'a str, &'a str)> {
    crate::replicas::replica_env(schema, key, &[("TOKENGATE_THROTTLE_ENABLED", "false")])
}
