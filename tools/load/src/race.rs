//! The race phase of `--replicas N` (N ≥ 2): each race device's code sent to every replica
//! at once, accounted per code, optionally with one replica killed with SIGKILL in the
//! middle and restarted (`--kill-mid-race`).
//!
//! In chunks of [`CHUNK`] codes, each chunk with the codes of the step after the current
//! one (valid 60 to 90 s; the window takes one step either side), so a chunk's race, its
//! resubmissions and its checks all happen while its codes are still in the window:
//!
//! 1. every replica gets every code of the chunk, in the same order, over its share of the
//!    connections; a request that gets no answer (the replica was killed) is recorded as
//!    unanswered and its connection waits for the replica to listen again;
//! 2. what went unanswered is sent again to the same (restarted) replica;
//! 3. per code: at most one success over every answer; a code with none must have an
//!    unanswered request (the killed replica spent it and died before answering);
//! 4. every code is sent to every replica again: every answer must be the spent-code
//!    `AccessDenied` — the replay marks survived the kill;
//! 5. [`CONTROLS`] devices that took no part send their code of the same step: every one
//!    must be accepted, so the refusals of step 4 are the marks, not an expired step.
//!
//! A device whose code is also its code of a nearby step (≈ 1 in 100 000) sits its chunk
//! out: that code is valid once per step, so two successes would be right, not a replay.
//!
//! With `--kill-mid-race`, replica 1 is killed once half of the middle chunk's codes were
//! answered by replica 0, and restarted on the same address, data dir and schema.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokengate_verifier::totp::{Generator, TotpParams};

use super::{Args, Identity, MFA_DENIED, Pg, Server, read_response, signed_request, start_server};

/// Codes per chunk: a chunk's race and checks take well under the 60 s its codes are valid
/// for (≈ 9 s race and 9 s re-check for 2 000 codes on two replicas, release build).
pub const CHUNK: usize = 2_000;
/// Devices per chunk that take no part in the race (step 5 of the module docs).
pub const CONTROLS: usize = 5;

/// How one request fared.
const PENDING: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 2;
const UNANSWERED: u8 = 3;
const OTHER: u8 = 4;

/// What the whole race saw.
#[derive(Default)]
pub struct Report {
    pub codes: usize,
    pub accepted: usize,
    pub refused: usize,
    pub unanswered: usize,
    pub accepted_on_resubmission: usize,
    pub spent_without_answer: usize,
    pub rechecked_refused: usize,
    pub controls_accepted: usize,
    /// Devices whose code was also their code of a nearby step, left out of the race.
    pub set_aside: usize,
    pub elapsed: Duration,
    pub kill: Option<Kill>,
    /// Everything that broke a rule; empty when the race held.
    pub failures: Vec<String>,
}

/// The kill of `--kill-mid-race`.
pub struct Kill {
    pub chunk: usize,
    pub after: usize,
    pub restarted_in: Duration,
}

/// Runs the race over `ids` (CONTROLS of each chunk's devices are its controls) against
/// `addrs`; `servers[1]` is replaced by its restart when `kill` is set.
#[allow(clippy::too_many_arguments)]
pub fn run(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    dir: &Path,
    pg: Option<&Pg>,
    addrs: &[String],
    servers: &mut Vec<Server>,
    ids: &[Identity],
    kill: bool,
) -> anyhow::Result<Report> {
    let now_step = || TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let chunks: Vec<&[Identity]> = ids.chunks(CHUNK + CONTROLS).collect();
    let kill_chunk = chunks.len() / 2;
    let mut report = Report::default();
    let start = Instant::now();
    for (c, chunk) in chunks.iter().enumerate() {
        let (racers, controls) = chunk.split_at(chunk.len().saturating_sub(CONTROLS));
        let step = now_step() + 1;
        // A code that is also its device's code of a nearby step is valid once per step (the
        // verifier accepts the later step once the earlier is spent, as it must): such a
        // device (about 1 in 100 000) sits the race out rather than count as a double success.
        let racers: Vec<&Identity> = racers
            .iter()
            .filter(|id| unambiguous(&id.seed, step))
            .collect();
        report.set_aside += chunk.len() - controls.len() - racers.len();
        let requests = |ids: &[&Identity], addr: &str| -> Vec<Vec<u8>> {
            ids.iter().map(|id| login_request(addr, id, step)).collect()
        };
        let targets: Vec<(String, Vec<Vec<u8>>)> = addrs
            .iter()
            .map(|a| (a.clone(), requests(&racers, a)))
            .collect();
        // 1. The race, with the kill when it is this chunk's.
        let progress = Arc::new(AtomicUsize::new(0));
        let (fates, killed) = if kill && c == kill_chunk {
            let victim = servers.remove(1);
            let (fates, killed) = std::thread::scope(|s| {
                let seen = progress.clone();
                let half = racers.len() / 2;
                let killer = s.spawn(move || -> anyhow::Result<(Server, usize, Duration)> {
                    while seen.load(Ordering::SeqCst) < half {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let mut victim = victim;
                    victim.0.kill().context("SIGKILL")?;
                    victim.0.wait()?;
                    let after = seen.load(Ordering::SeqCst);
                    let t = Instant::now();
                    let server = start_server(args, dir, &addrs[1], true, pg, 1)?;
                    Ok((server, after, t.elapsed()))
                });
                let fates =
                    runtime.block_on(send_all(targets.clone(), args.connections, &progress));
                (fates, killer.join())
            });
            let (server, after, restarted_in) =
                killed.map_err(|_| anyhow::anyhow!("the killer thread panicked"))??;
            servers.insert(1, server);
            (
                fates?,
                Some(Kill {
                    chunk: c,
                    after,
                    restarted_in,
                }),
            )
        } else {
            (
                runtime.block_on(send_all(targets.clone(), args.connections, &progress))?,
                None,
            )
        };
        if let Some(k) = &killed
            && (k.after == 0 || k.after >= racers.len())
        {
            report.failures.push(format!(
                "the kill came after {} of {} codes: not mid-race",
                k.after,
                racers.len()
            ));
        }
        report.kill = report.kill.or(killed);
        let (mut fates, others): (Vec<Vec<u8>>, Vec<Option<String>>) = fates.into_iter().unzip();
        // 2. Resubmit what went unanswered, to the same replica.
        let mut again: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        let mut which: Vec<Vec<usize>> = Vec::new();
        for (r, f) in fates.iter().enumerate() {
            let lost: Vec<usize> = (0..f.len()).filter(|&i| f[i] == UNANSWERED).collect();
            report.unanswered += lost.len();
            again.push((
                addrs[r].clone(),
                lost.iter().map(|&i| targets[r].1[i].clone()).collect(),
            ));
            which.push(lost);
        }
        let resubmitted = runtime.block_on(send_all(again, 1, &Arc::new(AtomicUsize::new(0))))?;
        let mut per_code = vec![0usize; racers.len()];
        let mut unanswered_code = vec![false; racers.len()];
        for (r, f) in fates.iter_mut().enumerate() {
            for (i, fate) in f.iter().enumerate() {
                match *fate {
                    ACCEPTED => per_code[i] += 1,
                    REFUSED => report.refused += 1,
                    UNANSWERED => unanswered_code[i] = true,
                    _ => {}
                }
            }
            for (&i, &fate) in which[r].iter().zip(&resubmitted[r].0) {
                match fate {
                    ACCEPTED => {
                        per_code[i] += 1;
                        report.accepted_on_resubmission += 1;
                    }
                    REFUSED => report.refused += 1,
                    UNANSWERED => report.failures.push(format!(
                        "chunk {c}: code {i} unanswered again after the restart"
                    )),
                    _ => {}
                }
                f[i] = fate;
            }
        }
        for (r, f) in fates.iter().enumerate() {
            if let Some(i) = f.iter().position(|&x| x == OTHER) {
                report.failures.push(format!(
                    "chunk {c}: replica {r} answered code {i} with neither a session nor the \
                     spent-code refusal: {}",
                    others[r]
                        .clone()
                        .or_else(|| resubmitted[r].1.clone())
                        .unwrap_or_default()
                ));
            }
        }
        // 3. One success per code, at most; none only where an answer was lost.
        for (i, &n) in per_code.iter().enumerate() {
            if n > 1 {
                report
                    .failures
                    .push(format!("chunk {c}: code {i} accepted {n} times"));
            }
            if n == 0 {
                if unanswered_code[i] {
                    report.spent_without_answer += 1;
                } else {
                    report
                        .failures
                        .push(format!("chunk {c}: code {i} accepted by no replica"));
                }
            }
        }
        report.accepted += per_code.iter().sum::<usize>();
        report.codes += racers.len();
        // 4. Every code again, to every replica: all spent.
        let recheck = runtime.block_on(send_all(
            targets,
            args.connections,
            &Arc::new(AtomicUsize::new(0)),
        ))?;
        for (r, (f, first_other)) in recheck.iter().enumerate() {
            let refused = f.iter().filter(|&&x| x == REFUSED).count();
            report.rechecked_refused += refused;
            if refused != f.len() {
                report.failures.push(format!(
                    "chunk {c}: after the race, replica {r} refused {refused} of {} spent codes \
                     (first other answer: {})",
                    f.len(),
                    first_other.clone().unwrap_or_default()
                ));
            }
        }
        // 5. The controls' codes of the same step: accepted.
        let control_targets: Vec<(String, Vec<Vec<u8>>)> = addrs
            .iter()
            .enumerate()
            .map(|(r, a)| {
                (
                    a.clone(),
                    controls
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| j % addrs.len() == r)
                        .map(|(_, id)| login_request(a, id, step))
                        .collect(),
                )
            })
            .collect();
        let controlled = runtime.block_on(send_all(
            control_targets,
            addrs.len(),
            &Arc::new(AtomicUsize::new(0)),
        ))?;
        let accepted = controlled
            .iter()
            .flat_map(|(f, _)| f)
            .filter(|&&x| x == ACCEPTED)
            .count();
        report.controls_accepted += accepted;
        if accepted != controls.len() {
            report.failures.push(format!(
                "chunk {c}: {accepted} of {} control codes accepted: the chunk outlasted its step",
                controls.len()
            ));
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Steps either side of a chunk's step within which its codes must be unambiguous: the
/// verifier's window of one step plus the chunk's race and checks (well under a minute).
const RADIUS: u64 = 4;

/// Whether `seed`'s code of `step` is its code of no other step within [`RADIUS`] steps.
fn unambiguous(seed: &[u8], step: u64) -> bool {
    let generator = Generator::new(seed, TotpParams::AWS);
    let code = generator.code(step);
    (step.saturating_sub(RADIUS)..=step + RADIUS).all(|s| s == step || generator.code(s) != code)
}

/// A signed GetSessionToken with `id`'s code of `step`, for `addr`.
pub fn login_request(addr: &str, id: &Identity, step: u64) -> Vec<u8> {
    let code = Generator::new(&id.seed, TotpParams::AWS).code(step);
    let params = [
        ("Action", "GetSessionToken"),
        ("Version", "2011-06-15"),
        ("SerialNumber", id.serial.as_str()),
        ("TokenCode", code.as_str()),
        ("DurationSeconds", "900"),
    ];
    signed_request(addr, id, &params)
}

/// Sends each target's requests in order over its share of `connections` keep-alive
/// connections, all targets at once; returns per target each request's fate and the first
/// answer that was neither a success nor the spent-code refusal. A connection that breaks
/// marks its request unanswered and reconnects (for up to 60 s: a killed replica restarts);
/// `progress` counts the answers of target 0.
async fn send_all(
    targets: Vec<(String, Vec<Vec<u8>>)>,
    connections: usize,
    progress: &Arc<AtomicUsize>,
) -> anyhow::Result<Vec<(Vec<u8>, Option<String>)>> {
    let per_target = (connections / targets.len().max(1)).max(1);
    let mut tasks = Vec::new();
    let mut slots = Vec::new();
    for (t, (addr, requests)) in targets.into_iter().enumerate() {
        let fates: Arc<Vec<AtomicU8>> = Arc::new(
            (0..requests.len())
                .map(|_| AtomicU8::new(PENDING))
                .collect(),
        );
        slots.push(fates.clone());
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..per_target.min(requests.len()) {
            let (requests, fates, next) = (requests.clone(), fates.clone(), next.clone());
            let (addr, progress) = (addr.clone(), progress.clone());
            tasks.push((
                t,
                tokio::spawn(async move {
                    let mut stream: Option<tokio::net::TcpStream> = None;
                    let mut buf = Vec::with_capacity(8192);
                    let mut first_other = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(req), Some(slot)) = (requests.get(i), fates.get(i)) else {
                            break;
                        };
                        let conn = match stream.as_mut() {
                            Some(conn) => conn,
                            None => stream.insert(connect(&addr).await?),
                        };
                        let fate = match exchange(conn, req, &mut buf).await {
                            Ok((200, _)) => ACCEPTED,
                            Ok((403, body))
                                if body.contains("<Code>AccessDenied</Code>")
                                    && body.contains(MFA_DENIED) =>
                            {
                                REFUSED
                            }
                            Ok((_, body)) => {
                                first_other.get_or_insert(body);
                                OTHER
                            }
                            Err(_) => {
                                stream = None;
                                buf.clear();
                                UNANSWERED
                            }
                        };
                        slot.store(fate, Ordering::SeqCst);
                        if t == 0 {
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    anyhow::Ok(first_other)
                }),
            ));
        }
    }
    let mut firsts: Vec<Option<String>> = vec![None; slots.len()];
    for (t, task) in tasks {
        let first = task.await??;
        if let Some(f) = firsts.get_mut(t) {
            *f = f.take().or(first);
        }
    }
    Ok(slots
        .into_iter()
        .zip(firsts)
        .map(|(fates, first)| {
            let fates = fates.iter().map(|f| f.load(Ordering::SeqCst)).collect();
            (fates, first)
        })
        .collect())
}

/// One request, one answer on `conn`.
async fn exchange(
    conn: &mut tokio::net::TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::AsyncWriteExt;
    conn.write_all(req).await?;
    read_response(conn, buf).await
}

/// A connection to `addr`, retried for up to 60 s (while a killed replica restarts).
async fn connect(addr: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(conn) => {
                conn.set_nodelay(true)?;
                return Ok(conn);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("{addr} did not come back"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
