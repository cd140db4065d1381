//! Group commit of the login-path writes (TOTP marks and failures, security-key uses and
//! failures, audit events), and the TOTP check job it runs.

use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokengate_verifier::totp::{LockoutPolicy, TotpState};

use super::mfa::{
    DEVICE_COLUMNS, device_from_row, device_row, totp_failure, totp_success, write_totp_failure,
};
use super::security_keys::{key_failure, key_use_cas};
use super::{backend, to_i64};
use crate::seal::Sealer;
use crate::{Completion, KeyUse, KeyUseOutcome, StoreError, TotpCheck, TotpOutcome};

/// Most replay-mark writes committed in one transaction (one fsync).
const MAX_BATCH: usize = 512;
/// Under load (the previous batch had at least [`LINGER_AFTER_BATCH`] writes), a batch
/// smaller than this waits up to [`LINGER`] for more writes before it commits: each commit
/// costs an fsync (≈ 100 µs of kernel CPU on the reference machine), and at ~12 000 logins/s
/// the wait turns batches of ~10 into batches of ~40 — a quarter of the fsyncs and half the
/// WAL writes (docs/benchmarks.md). A lightly loaded server never waits.
const LINGER_UNTIL_BATCH: usize = 64;
/// The previous batch size from which a batch lingers (see [`LINGER_UNTIL_BATCH`]).
const LINGER_AFTER_BATCH: usize = 8;
/// The longest a batch waits for company (see [`LINGER_UNTIL_BATCH`]).
const LINGER: std::time::Duration = std::time::Duration::from_micros(1_000);

/// A write on the login path, batched by the [`GroupCommitter`].
pub(super) enum HotWrite {
    TotpSuccess {
        serial: String,
        step: i64,
    },
    TotpFailure {
        serial: String,
        policy: LockoutPolicy,
        now: i64,
    },
    TotpCheck(TotpCheck),
    KeyUse(KeyUse),
    KeyFailure {
        serial: String,
        challenge_id: Option<String>,
        policy: LockoutPolicy,
        now: i64,
        possible_clone: bool,
    },
    /// Audit events riding along with the login writes: one writer, one fsync, no lock
    /// taken from the login path (docs/audit.md).
    AuditAppend(Vec<crate::AuditEvent>),
}

pub(super) enum HotResult {
    Success(bool),
    Failure(TotpState),
    Check(TotpOutcome),
    KeyUse(KeyUseOutcome),
    Appended,
}

struct Job {
    op: HotWrite,
    reply: Completion<HotResult>,
}

/// Group commit: one thread with its own connection takes every queued login-path write,
/// runs them in order in one IMMEDIATE transaction and commits once, then answers each.
/// While it waits on one fsync the next batch queues up, so the fsync cost is shared by
/// every login in flight. A write is answered only after its commit is on disk, and the
/// statements keep their compare-and-set meaning inside a batch (they run in order).
pub(super) struct GroupCommitter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GroupCommitter {
    pub(super) fn start(mut conn: Connection, sealer: Arc<Sealer>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("store-group-commit".into())
            .spawn(move || {
                let mut last_batch = 0;
                while let Ok(first) = rx.recv() {
                    let linger = last_batch >= LINGER_AFTER_BATCH;
                    let linger_until = std::time::Instant::now() + LINGER;
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        let next = match rx.try_recv() {
                            Ok(job) => Ok(job),
                            Err(_) if !linger || batch.len() >= LINGER_UNTIL_BATCH => break,
                            Err(_) => rx.recv_timeout(
                                linger_until.saturating_duration_since(std::time::Instant::now()),
                            ),
                        };
                        match next {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    last_batch = batch.len();
                    let results = run_batch(&mut conn, &sealer, &batch);
                    for (job, result) in batch.into_iter().zip(results) {
                        (job.reply)(result);
                    }
                }
            })
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Queues `op`; `reply` is called once its batch is committed (or failed).
    pub(super) fn submit_then(&self, op: HotWrite, reply: Completion<HotResult>) {
        let sender = match self.jobs.lock() {
            Ok(jobs) => jobs.clone(),
            Err(_) => None,
        };
        let Some(sender) = sender else {
            reply(Err(StoreError::Backend("the store is closed".into())));
            return;
        };
        if let Err(mpsc::SendError(job)) = sender.send(Job { op, reply }) {
            (job.reply)(Err(StoreError::Backend(
                "the group-commit thread stopped".into(),
            )));
        }
    }

    /// Queues `op` and waits for its commit.
    pub(super) fn submit(&self, op: HotWrite) -> Result<HotResult, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_then(
            op,
            Box::new(move |result| {
                // The waiter below is still there: it blocks on this channel.
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .map_err(|_| StoreError::Backend("the group-commit thread stopped".into()))?
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

fn run_batch(
    conn: &mut Connection,
    sealer: &Sealer,
    batch: &[Job],
) -> Vec<Result<HotResult, StoreError>> {
    let started = std::time::Instant::now();
    let fail_all = |e: StoreError| {
        crate::observe::batch(batch.len(), started.elapsed(), false);
        batch.iter().map(|_| Err(e.clone())).collect()
    };
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(backend(e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match &job.op {
            HotWrite::TotpSuccess { serial, step } => {
                totp_success(&tx, serial, *step).map(HotResult::Success)
            }
            HotWrite::TotpFailure {
                serial,
                policy,
                now,
            } => totp_failure(&tx, serial, policy, *now).map(HotResult::Failure),
            HotWrite::TotpCheck(check) => totp_check(&tx, sealer, check).map(HotResult::Check),
            HotWrite::KeyUse(key_use) => key_use_cas(&tx, key_use).map(HotResult::KeyUse),
            HotWrite::KeyFailure {
                serial,
                challenge_id,
                policy,
                now,
                possible_clone,
            } => key_failure(
                &tx,
                serial,
                challenge_id.as_deref(),
                policy,
                *now,
                *possible_clone,
            )
            .map(HotResult::Failure),
            HotWrite::AuditAppend(events) => {
                super::audit::insert_events(&tx, events).map(|()| HotResult::Appended)
            }
        };
        // A backend failure poisons the transaction: nothing of this batch is kept.
        if let Err(StoreError::Backend(e)) = &result {
            return fail_all(StoreError::Backend(e.clone()));
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => {
            crate::observe::batch(batch.len(), started.elapsed(), true);
            results
        }
        Err(e) => fail_all(backend(e)),
    }
}

/// A TOTP login in one transaction: read the device, verify the code, then record the
/// step (the replay compare-and-set) or the failure. Run by the group-commit thread, whose
/// connection keeps its page cache across its own commits, so the read is cheap; and as
/// the read and the write share a transaction, the state verified against is the state
/// written over.
pub(super) fn totp_check(
    tx: &Connection,
    sealer: &Sealer,
    c: &TotpCheck,
) -> Result<TotpOutcome, StoreError> {
    let row = tx
        .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} WHERE d.serial = ?1"))
        .and_then(|mut stmt| stmt.query_row([&c.serial], device_row).optional())
        .map_err(backend)?;
    let device = row.map(|row| device_from_row(sealer, row)).transpose()?;
    let state = device.as_ref().map(|d| d.state).unwrap_or_default();
    crate::settle_totp_check(
        device.as_ref(),
        c,
        // Cannot lose inside this transaction; it states its expectation all the same.
        |step| totp_success(tx, &c.serial, to_i64(step)?),
        // The state was read in this transaction: count the failure from it.
        || {
            let failed = state.failed(&c.policy, c.now);
            write_totp_failure(tx, &c.serial, &failed)?;
            Ok(failed)
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::mpsc;

    use tokengate_verifier::totp::{self, LockoutPolicy, Refusal, TotpParams, TotpState};

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{KeyOwner, Store, TotpCheck, TotpOutcome};

    /// The code of the test device (`device()`'s seed) at `step`.
    fn code_at(step: u64) -> String {
        totp::Generator::new(b"seed-bytes-of-a-device", TotpParams::AWS).code(step)
    }

    fn totp_check_sync(s: &SqliteStore, check: TotpCheck) -> TotpOutcome {
        let (tx, rx) = mpsc::channel();
        s.check_totp_then(check, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap()
    }

    /// One device's life through `check`: accepted once, replay refused, other owners and
    /// serials not assigned, lockout after five failures, recovery after it.
    fn totp_scenario(s: &SqliteStore, check: &dyn Fn(TotpCheck) -> TotpOutcome) {
        s.create_user(&user("alice")).unwrap();
        s.create_mfa_device(&device("SERIAL0009")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.enable_mfa_device("SERIAL0009", &alice, 1, &TotpState::default(), 8)
            .unwrap();
        let policy = LockoutPolicy::default();
        let at = |owner: &KeyOwner, serial: &str, code: String, now: i64| TotpCheck {
            serial: serial.into(),
            owner: owner.clone(),
            code,
            now,
            policy,
        };
        let now = 30_000; // step 1000
        let accepted = check(at(&alice, "SERIAL0009", code_at(1000), now));
        assert_eq!(accepted, TotpOutcome::Accepted { step: 1000 });
        let replay = check(at(&alice, "SERIAL0009", code_at(1000), now));
        assert!(matches!(
            replay,
            TotpOutcome::Refused { refusal: Refusal::Replayed, state } if state.failures == 1
        ));
        for (owner, serial) in [(&KeyOwner::Root, "SERIAL0009"), (&alice, "SERIAL0404")] {
            let r = check(at(owner, serial, code_at(1001), now + 30));
            assert_eq!(r, TotpOutcome::NotAssigned, "{owner:?} {serial}");
        }
        // Three more wrong codes, then the fifth failure locks the device for 60 s …
        for _ in 0..3 {
            let r = check(at(&alice, "SERIAL0009", "000000".into(), now));
            assert!(matches!(
                r,
                TotpOutcome::Refused {
                    refusal: Refusal::WrongCode,
                    ..
                }
            ));
        }
        let locked = check(at(&alice, "SERIAL0009", "000000".into(), now));
        assert!(matches!(
            locked,
            TotpOutcome::Refused { state, .. } if state.locked_until == Some(now + 60)
        ));
        // … during which even the right code is refused, and nothing more is counted …
        let r = check(at(&alice, "SERIAL0009", code_at(1001), now + 30));
        assert!(matches!(
            r,
            TotpOutcome::Refused { refusal: Refusal::LockedOut(u), state }
                if u == now + 60 && state.lockouts == 1 && state.failures == 0
        ));
        // … and after which the next code works and clears the counters.
        let r = check(at(&alice, "SERIAL0009", code_at(1003), now + 90));
        assert_eq!(r, TotpOutcome::Accepted { step: 1003 });
        let d = s.mfa_device("SERIAL0009").unwrap().unwrap();
        assert_eq!(d.state.last_step, Some(1003));
        assert_eq!(
            (d.state.failures, d.state.lockouts, d.state.locked_until),
            (0, 0, None)
        );
    }

    #[test]
    fn a_totp_check_runs_in_the_group_commit_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = std::sync::Arc::new(SqliteStore::open(&path, &master()).unwrap());
        totp_scenario(&s, &|c| totp_check_sync(&s, c));
        // Eight threads race with one fresh code: exactly one wins.
        let check = TotpCheck {
            serial: "SERIAL0009".into(),
            owner: KeyOwner::User("alice".into()),
            code: code_at(1010),
            now: 30_300,
            policy: LockoutPolicy::default(),
        };
        let wins = (0..8)
            .map(|_| {
                let (s, check) = (s.clone(), check.clone());
                std::thread::spawn(move || totp_check_sync(&s, check))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|o| matches!(o, TotpOutcome::Accepted { .. }))
            .count();
        assert_eq!(wins, 1);
        // The mark is durable: a restarted store refuses the code. (The seven losers each
        // counted a replay as a failure, so the device is locked out by now as well.)
        drop(s);
        let again = SqliteStore::open(&path, &master()).unwrap();
        let d = again.mfa_device("SERIAL0009").unwrap().unwrap();
        assert_eq!(d.state.last_step, Some(1010));
        assert_eq!(d.state.lockouts, 1);
        assert!(matches!(
            totp_check_sync(&again, check),
            TotpOutcome::Refused { .. }
        ));
    }

    #[test]
    fn the_in_memory_and_default_totp_checks_agree() {
        // In memory: no group commit, the same transaction through `write`.
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        totp_scenario(&s, &|c| totp_check_sync(&s, c));
        // The trait's default, from the read and the two compare-and-set writes.
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        totp_scenario(&s, &|c| crate::check_totp_by_parts(&s, &c).unwrap());
    }
}
