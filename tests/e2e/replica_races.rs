//! Races across two real `tokengate serve` replicas on one PostgreSQL schema (issue 14's
//! "Done when"), beside the TOTP race of replicas.rs:
//!
//! - a security-key registration response sent to both replicas at the same instant
//!   registers one key, and the other replica refuses it;
//! - a security-key assertion sent to both replicas at the same instant logs in once, and
//!   the other replica refuses it as the replay it is (no clone flag, no lockout);
//! - the same three races with one replica killed with SIGKILL in their middle and restarted
//!   on the same data dir and schema (TOTP codes, security-key assertions, security-key
//!   registrations): no item is accepted twice (counting every answer, the resubmissions
//!   after the restart included), an item with no success is one whose answer the killed
//!   replica took with it, and every item whose success was answered stays spent after the
//!   restart (each sent again to both replicas: all refused). Then the TOTP step is still
//!   accepted for control devices, each key still logs in (not flagged as cloned), and each
//!   user lists every key whose registration was answered.
//!
//! "At the same instant": each pair of client threads (one per replica) meets at a barrier
//! before every item, so both requests of an item leave together.
//!
//! Same requirements as replicas.rs: PostgreSQL at `TOKENGATE_TEST_PG_URL` (an unreachable
//! database FAILS these tests), a schema of its own per test, dropped by the test. Sizes:
//! `TOKENGATE_TEST_REPLICA_CODES` (codes of the kill race, default 300) and
//! `TOKENGATE_TEST_REPLICA_KEYS` (users with security keys, default 16; each registers
//! [`KEYS_PER_USER`] keys, and each key logs in [`ROUNDS`] times, once in the kill race).
//! The 10 000 of each ran against a release build with `TOKENGATE_TEST_REPLICA_KEYS
//! =2500` (10 000 keys) and `TOKENGATE_TEST_REPLICA_CODES=10000`, and the 10 000 codes also
//! in `tokengate-load --replicas 2 [--kill-mid-race]` (docs/benchmarks.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

use firmware_sim::{RunningSim, TouchPolicy};
use tokengate_bridge::{Authenticator, CredentialRequest, rp_id_hash};
use tokengate_verifier::fido::{Ceremony, client_data_json};

use crate::harness::{Creds, Reply, Service, signed_post};
use crate::postgresql::security_keys::client::{
    RegistrationChallenge, b64, connect, issued, login_challenge, register, registration_challenge,
    sha256, sign, spawn_sim, submit, submit_params,
};
use crate::replicas::{
    DENIED, RACE_RADIUS, Replicas, Schema, code_at, login, now_step, race_codes, replica_env,
    unambiguous,
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
    let (headers, body) = signed_post(
        addr,
        creds,
        service,
        params,
        time::OffsetDateTime::now_utc(),
    );
    let mut head = format!(
        "POST / HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
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

/// What a replica trusting the simulator needs beside the throttle's setting: the file with
/// its attestation CA (in a temp dir that lives as long as this) and the shared origin.
struct KeyEnv {
    _dir: tempfile::TempDir,
    ca: String,
}

impl KeyEnv {
    fn env(&self) -> [(&str, &str); 2] {
        [
            ("TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS", self.ca.as_str()),
            ("TOKENGATE_SECURITY_KEYS_ORIGIN", ORIGIN),
        ]
    }
}

/// Replicas for security keys: both trust `sim`'s attestation CA and share one origin.
fn key_replicas(tag: &str, sim: &RunningSim) -> (Replicas, KeyEnv) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let keys = KeyEnv {
        ca: ca.to_str().unwrap().to_owned(),
        _dir: dir,
    };
    (Replicas::start_with(tag, &keys.env()), keys)
}

/// The environment a killed B restarts with: what `Replicas::start_with(_, extra)` gave it.
fn restart_env<'a>(
    schema: &'a Schema,
    key: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut with = vec![("TOKENGATE_THROTTLE_ENABLED", "false")];
    with.extend_from_slice(extra);
    replica_env(schema, key, &with)
}

/// Creates [`key_users`] users `k0`, `k1`, … through both replicas; returns their number and
/// the registrations to race: (user, key number), [`KEYS_PER_USER`] each.
fn registration_jobs(r: &Replicas) -> (usize, Vec<(usize, usize)>) {
    let users = key_users();
    for u in 0..users {
        user_with_key(replica(r, u), &r.root, &format!("k{u}"));
    }
    let jobs = (0..KEYS_PER_USER)
        .flat_map(|k| (0..users).map(move |u| (u, k)))
        .collect();
    (users, jobs)
}

/// Registers [`KEYS_PER_USER`] keys of `sim` for each of [`key_users`] new users, through
/// both replicas; returns each key's user credentials and serial.
fn registered_keys(r: &Replicas, sim: &RunningSim) -> Vec<(Creds, String)> {
    let mut keys = Vec::new();
    for u in 0..key_users() {
        let name = format!("k{u}");
        let creds = user_with_key(replica(r, u), &r.root, &name);
        for k in 0..KEYS_PER_USER {
            let svc = replica(r, u + k);
            let serial = register(
                svc,
                &r.root,
                sim,
                &name,
                &format!("key{k}"),
                protocol_of(u, k),
            );
            keys.push((creds.clone(), serial));
        }
    }
    keys
}

/// No key was flagged as cloned, and each still logs in (not locked out, its counter where
/// the winners left it), on either replica.
fn keys_log_in_again(
    a: &Service,
    b: &Service,
    root: &Creds,
    sim: &RunningSim,
    keys: &[(Creds, String)],
) {
    for (i, (creds, serial)) in keys.iter().enumerate() {
        let user = format!("k{}", i / KEYS_PER_USER);
        let x = a.call(
            root,
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
        let svc = if i.is_multiple_of(2) { b } else { a };
        let c = login_challenge(svc, creds, serial).unwrap_or_else(|e| panic!("{}", e.body));
        issued(&submit(svc, creds, &c, &sign(sim, &c)));
    }
}

/// The serial numbers of `user`'s MFA devices, as `svc` lists them, sorted.
fn serials_of(svc: &Service, root: &Creds, user: &str) -> Vec<String> {
    let x = svc.call(
        root,
        "iam",
        &[("Action", "ListMFADevices"), ("UserName", user)],
    );
    assert_eq!(x.status, 200, "{}", x.body);
    let mut listed: Vec<String> = x
        .body
        .split("<SerialNumber>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    listed.sort();
    listed
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
    let (users, jobs) = registration_jobs(&r);
    // Registrations in batches of at most MAX_LIVE_CHALLENGES open challenges (root's).
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
            assert_eq!(&serials_of(svc, &r.root, &format!("k{u}")), mine, "k{u}");
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
    let keys = registered_keys(&r, &sim);
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
    keys_log_in_again(&r.a, &r.b, &r.root, &sim, &keys);
    eprintln!(
        "security-key assertions raced: {} keys × {ROUNDS} rounds → {accepted} accepted, \
         {refused} refused",
        keys.len()
    );
}

/// How an item of a race fared on one replica.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Accepted,
    Refused,
    /// No answer: the replica was killed with the request in flight or before it.
    Unanswered,
}

/// The fate of `sent`; `refused` says whether an answer is the race's refusal (anything
/// else but a 200 fails the test).
fn fate(sent: &Sent, what: &str, refused: &dyn Fn(&Reply) -> bool) -> Fate {
    match sent {
        Ok(r) if r.status == 200 => Fate::Accepted,
        Ok(r) if refused(r) => Fate::Refused,
        Ok(r) => panic!("{what}: unexpected answer {}: {}", r.status, r.body),
        Err(_) => Fate::Unanswered,
    }
}

/// Whether `r` is EnableSecurityKey's refusal of a spent registration challenge.
fn is_registration_refusal(r: &Reply) -> bool {
    r.status == 403
        && r.code().as_deref() == Some("InvalidAuthenticationCode")
        && r.xml("Message").as_deref() == Some(REGISTRATION_REFUSED)
}

/// Sends item `i` to the replica at `addr` (a [`try_call`]).
type Send<'a> = dyn Fn(&str, usize) -> Sent + Sync + 'a;

/// What a race with B killed in its middle left.
struct KilledRace {
    /// Each item's answers, A's first.
    answers: Vec<[Sent; 2]>,
    /// B, restarted.
    b: Service,
    /// Items A had answered when B was killed.
    killed_after: usize,
    restarted_in: Duration,
    /// Race answers that came from the restarted B.
    after_restart: usize,
}

/// A race of `n` items (as [`race`]) during which B is killed with SIGKILL once A has
/// answered half of them, and restarted on the same data dir with `env` (so on the same
/// schema and master key). A B thread whose request went unanswered waits for the
/// restart, so the race goes on against the new process.
fn race_killing_b(
    n: usize,
    a: &Service,
    mut b: Service,
    env: &[(&str, &str)],
    send: &Send<'_>,
) -> KilledRace {
    let b_data = b.data_dir.clone();
    let b_addr = RwLock::new(b.addr.clone());
    let restarts = AtomicUsize::new(0);
    let done_on_a = AtomicUsize::new(0);
    let after_restart = AtomicUsize::new(0);
    let mut killed_after = 0;
    let mut restarted_in = Duration::ZERO;
    let answers = race(
        n,
        |side, i| {
            if side == 0 {
                let sent = send(&a.addr, i);
                done_on_a.fetch_add(1, Ordering::SeqCst);
                return sent;
            }
            let epoch = restarts.load(Ordering::SeqCst);
            let addr = b_addr.read().unwrap().clone();
            let sent = send(&addr, i);
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
        },
        || {
            while done_on_a.load(Ordering::SeqCst) < n / 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            b.child.kill().unwrap(); // SIGKILL
            b.child.wait().unwrap();
            killed_after = done_on_a.load(Ordering::SeqCst);
            let started = Instant::now();
            b = Service::start(&b_data, env);
            restarted_in = started.elapsed();
            *b_addr.write().unwrap() = b.addr.clone();
            restarts.fetch_add(1, Ordering::SeqCst);
        },
    );
    KilledRace {
        answers,
        b,
        killed_after,
        restarted_in,
        after_restart: after_restart.into_inner(),
    }
}

/// Every answer of a killed race, counted per item.
struct Tally {
    /// The success of each item, if any (a race answer or a resubmission's).
    won: Vec<Option<Reply>>,
    /// Items the killed B left unanswered (each resubmitted to the restarted B).
    unanswered: Vec<usize>,
    /// Items no answer accepted: the killed B spent them and died before answering.
    never: Vec<usize>,
    /// Successes among the resubmissions.
    resubmitted_ok: usize,
}

/// Counts the answers of `k` per item, resubmits to the restarted B what the killed one
/// left unanswered, and checks the invariants: no item accepted twice; an item with no
/// success only where B's answer was lost; at most one lost answer per B thread; the kill
/// came mid-race and the restarted B answered part of it.
fn tally(k: &KilledRace, send: &Send<'_>, refused: &dyn Fn(&Reply) -> bool) -> Tally {
    let n = k.answers.len();
    let mut won: Vec<Option<Reply>> = vec![None; n];
    let mut twice = Vec::new();
    // Records one answer of item `i`; whether it was a success.
    let mut count = |won: &mut [Option<Reply>], i: usize, sent: &Sent, what: &str| match fate(
        sent,
        &format!("item {i} on {what}"),
        refused,
    ) {
        Fate::Accepted if won[i].is_some() => {
            twice.push(i);
            true
        }
        Fate::Accepted => {
            won[i] = sent.as_ref().ok().cloned();
            true
        }
        Fate::Refused => false,
        Fate::Unanswered => {
            assert!(
                what != "B (resubmitted)",
                "item {i}: the restarted B did not answer: {sent:?}"
            );
            false
        }
    };
    let mut unanswered = Vec::new();
    for (i, [on_a, on_b]) in k.answers.iter().enumerate() {
        assert!(on_a.is_ok(), "item {i}: A did not answer: {on_a:?}");
        count(&mut won, i, on_a, "A");
        if on_b.is_err() {
            unanswered.push(i);
        }
        count(&mut won, i, on_b, "B");
    }
    let mut resubmitted_ok = 0;
    for &i in &unanswered {
        if count(&mut won, i, &send(&k.b.addr, i), "B (resubmitted)") {
            resubmitted_ok += 1;
        }
    }
    assert!(twice.is_empty(), "items accepted twice: {twice:?}");
    // Any other item without a success would be a lost one.
    let never: Vec<usize> = (0..n).filter(|&i| won[i].is_none()).collect();
    for i in &never {
        assert!(unanswered.contains(i), "item {i}: no replica accepted it");
    }
    assert!(
        unanswered.len() <= PAIRS,
        "{} requests unanswered; at most one in flight per B thread",
        unanswered.len()
    );
    assert!(
        k.killed_after > 0 && k.killed_after < n,
        "the kill came after {} of {n} items",
        k.killed_after
    );
    assert!(
        k.after_restart > 0,
        "the restarted B answered none of the race"
    );
    Tally {
        won,
        unanswered,
        never,
        resubmitted_ok,
    }
}

/// Every item sent again to both replicas at once, after the restart: all refused.
fn refused_everywhere(
    a: &Service,
    b: &Service,
    n: usize,
    send: &Send<'_>,
    refused: &dyn Fn(&Reply) -> bool,
) {
    let again = race(
        n,
        |side, i| send(if side == 0 { &a.addr } else { &b.addr }, i),
        || {},
    );
    for (i, pair) in again.iter().enumerate() {
        for sent in pair {
            let x = sent.as_ref().unwrap();
            assert!(
                refused(x),
                "item {i} accepted again after the restart: {}",
                x.body
            );
        }
    }
}

/// The one-line summary of a killed race.
fn summary(what: &str, k: &KilledRace, t: &Tally) -> String {
    let n = k.answers.len();
    format!(
        "kill -9 race of {n} {what}: B killed after {} answered on A, restarted in {:.1?}; \
         {} accepted ({} on resubmission), {} unanswered by the killed B, {} spent by B \
         without an answer, 0 twice; {} race answers from the restarted B; all {n} refused on \
         both replicas after the restart",
        k.killed_after,
        k.restarted_in,
        t.won.iter().flatten().count(),
        t.resubmitted_ok,
        t.unanswered.len(),
        t.never.len(),
        k.after_restart,
    )
}

/// `params` as the harness takes them.
fn borrowed<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn a_replica_killed_mid_race_neither_accepts_a_code_twice_nor_forgets_one() {
    let n = race_codes();
    let controls = 4;
    let r = Replicas::start("kill");
    let made = r.users_with_devices(n + controls);
    // The next step's codes: valid for 60 to 90 s (the window takes one step either side),
    // the race, the restart and the checks included — the controls prove it at the end.
    let step = now_step() + 1;
    let (control, made) = made.split_at(controls);
    let racers: Vec<_> = made
        .iter()
        .filter(|(_, _, seed)| unambiguous(seed, step, RACE_RADIUS))
        .collect();
    let n = racers.len();
    let codes: Vec<String> = racers
        .iter()
        .copied()
        .chain(control)
        .map(|(_, _, seed)| code_at(seed, step))
        .collect();

    let Replicas {
        a, b, schema, dir, ..
    } = r;
    let key = dir.path().join("master.key").to_str().unwrap().to_owned();
    let env = restart_env(&schema, &key, &[]);
    let send = |addr: &str, i: usize| -> Sent {
        let (creds, serial, _) = &racers[i];
        let params = [
            ("Action", "GetSessionToken"),
            ("SerialNumber", serial.as_str()),
            ("TokenCode", codes[i].as_str()),
            ("DurationSeconds", "900"),
        ];
        try_call(addr, creds, "sts", &params)
    };
    let k = race_killing_b(n, &a, b, &env, &send);
    let t = tally(&k, &send, &is_mfa_refusal);
    // After the restart every code is spent on both replicas, whichever answered it …
    refused_everywhere(&a, &k.b, n, &send, &is_mfa_refusal);
    // … while the step itself is still accepted: the refusals above are the replay marks.
    for (j, (creds, serial, _)) in control.iter().enumerate() {
        let svc = if j.is_multiple_of(2) { &a } else { &k.b };
        let x = login(svc, creds, serial, &codes[n + j]);
        assert_eq!(
            x.status, 200,
            "the race took too long for its step (lower TOKENGATE_TEST_REPLICA_CODES): {}",
            x.body
        );
    }
    eprintln!("{}", summary("TOTP codes", &k, &t));
}

#[test]
fn a_replica_killed_mid_race_accepts_each_security_key_assertion_once_and_forgets_none() {
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let (r, ca) = key_replicas("skkill", &sim);
    let keys = registered_keys(&r, &sim);
    // One assertion per key, each on a challenge of one replica.
    let signed: Vec<Vec<(&str, String)>> = keys
        .iter()
        .enumerate()
        .map(|(i, (creds, serial))| {
            let c = login_challenge(replica(&r, i), creds, serial)
                .unwrap_or_else(|e| panic!("{}", e.body));
            submit_params(&c, &sign(&sim, &c))
        })
        .collect();
    let Replicas {
        a,
        b,
        root,
        schema,
        dir,
    } = r;
    let key = dir.path().join("master.key").to_str().unwrap().to_owned();
    let env = restart_env(&schema, &key, &ca.env());
    let send =
        |addr: &str, i: usize| -> Sent { try_call(addr, &keys[i].0, "sts", &borrowed(&signed[i])) };
    let k = race_killing_b(keys.len(), &a, b, &env, &send);
    let t = tally(&k, &send, &is_mfa_refusal);
    for w in t.won.iter().flatten() {
        issued(w);
    }
    // Every assertion is spent on both replicas after the restart, whichever took it …
    refused_everywhere(&a, &k.b, keys.len(), &send, &is_mfa_refusal);
    // … and each key, not flagged, logs in again with a fresh assertion on either replica.
    keys_log_in_again(&a, &k.b, &root, &sim, &keys);
    eprintln!("{}", summary("security-key assertions", &k, &t));
}

#[test]
fn a_replica_killed_mid_race_registers_each_security_key_once_and_forgets_none() {
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let (r, ca) = key_replicas("skregkill", &sim);
    let (users, jobs) = registration_jobs(&r);
    // All registrations open at once: one requester per MAX_LIVE_CHALLENGES of them,
    // administrators through the AWS managed policy.
    let admins: Vec<Creds> = (0..jobs.len().div_ceil(MAX_LIVE_CHALLENGES))
        .map(|j| {
            let svc = replica(&r, j);
            let creds = user_with_key(svc, &r.root, &format!("admin{j}"));
            let x = svc.call(
                &r.root,
                "iam",
                &[
                    ("Action", "AttachUserPolicy"),
                    ("UserName", &format!("admin{j}")),
                    ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
                ],
            );
            assert_eq!(x.status, 200, "{}", x.body);
            creds
        })
        .collect();
    let requester = |i: usize| &admins[i / MAX_LIVE_CHALLENGES];
    let mut key = connect(&sim);
    let params: Vec<Vec<(&str, String)>> = jobs
        .iter()
        .enumerate()
        .map(|(i, &(u, k))| {
            let protocol = protocol_of(u, k);
            let c = registration_challenge(
                replica(&r, i),
                requester(i),
                &format!("k{u}"),
                &format!("key{k}"),
                protocol,
            )
            .unwrap_or_else(|e| panic!("{}", e.body));
            registration_params(&mut key, &c, protocol)
        })
        .collect();
    let Replicas {
        a,
        b,
        root,
        schema,
        dir,
    } = r;
    let key = dir.path().join("master.key").to_str().unwrap().to_owned();
    let env = restart_env(&schema, &key, &ca.env());
    let send = |addr: &str, i: usize| -> Sent {
        try_call(addr, requester(i), "iam", &borrowed(&params[i]))
    };
    let k = race_killing_b(jobs.len(), &a, b, &env, &send);
    let t = tally(&k, &send, &is_registration_refusal);
    // Every challenge is spent on both replicas after the restart …
    refused_everywhere(&a, &k.b, jobs.len(), &send, &is_registration_refusal);
    // … and each user has every key whose registration was answered, on both replicas;
    // beyond those only keys the killed B registered without answering.
    for u in 0..users {
        let mut answered: Vec<String> = jobs
            .iter()
            .zip(&t.won)
            .filter(|((ju, _), _)| *ju == u)
            .filter_map(|(_, w)| w.as_ref()?.xml("SerialNumber"))
            .collect();
        answered.sort();
        let unanswered = jobs
            .iter()
            .enumerate()
            .filter(|(i, (ju, _))| *ju == u && t.never.contains(i))
            .count();
        for svc in [&a, &k.b] {
            let listed = serials_of(svc, &root, &format!("k{u}"));
            for serial in &answered {
                assert!(listed.contains(serial), "k{u}: {serial} lost: {listed:?}");
            }
            assert!(
                listed.len() <= answered.len() + unanswered,
                "k{u}: {listed:?}, answered {answered:?}"
            );
        }
    }
    eprintln!("{}", summary("security-key registrations", &k, &t));
}
