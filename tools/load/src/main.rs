//! `tokengate-load`: how many MFA-gated logins per second does tokengate sustain?
//!
//! 1. Seeds a fresh data dir with `--devices` IAM users, each with an access key and an
//!    enabled virtual TOTP device (directly through the store, fsync off: seeding is not
//!    what is measured).
//! 2. Starts the real `tokengate serve` (the binary beside this one) on loopback.
//! 3. Pre-signs one `GetSessionToken` (SerialNumber + the device's current TokenCode) per
//!    device, so the timed phase only moves bytes, and sends them over `--connections`
//!    keep-alive connections from this (second) process. Every login verifies SigV4, reads
//!    the key and the device, checks the code, writes the durable replay mark (group
//!    commit) and signs a session token.
//! 4. Runs the same number of `GetCallerIdentity` requests (long-term key, no MFA, no
//!    write) in the same run: the bare request ceiling.
//! 5. Runs the same number of IAM `GetUser` requests, each user reading itself with its
//!    long-term key: authorized by policy (IAMReadOnlyAccess, attached to a group every
//!    user is in), so the request path of a non-root principal's IAM read action — policy
//!    cache, request context, evaluation, one store read.
//! 6. Runs the same number of MFA-gated `AssumeRole`s (each user its own next TOTP step, to
//!    a role whose trust policy names the account and requires
//!    `aws:MultiFactorAuthPresent`; the users' group allows `sts:AssumeRole` on it): the
//!    code check and durable replay mark of a login, plus the trust-policy evaluation, the
//!    role's cached policies and the role session's token.
//!
//! With `--store-url URL` it runs on PostgreSQL (a schema of its own, dropped afterwards;
//! seeded from several threads with `synchronous_commit` off for the seeding connections);
//! with `--replicas N` it starts N servers on that one database, sends the workloads to them
//! round-robin, and adds a race (src/race.rs): each of `--devices` further codes sent to
//! every replica at once must be accepted exactly once, every one still spent when sent
//! again; `--kill-mid-race` kills one replica with SIGKILL in the middle and restarts it.
//!
//! Two more modes serve `tools/bench-request-path`, which drives tokengate with wrk:
//! `prepare` seeds a data dir with one user, its access key and temporary credentials
//! (minted by the server's own code, offline) and writes wrk scripts that replay a
//! pre-signed `GetCallerIdentity` with each; it also mints `--tokens` distinct sessions.
//! `replay` sends one `GetCallerIdentity` with each of those sessions, once (the verified
//! token cache filled with distinct valid tokens).
//!
//! Every answer must be 200; anything else is counted and reported. Beside requests/s, it
//! reports the CPU time (user + system, from `/proc/PID/stat`) that the server process and
//! this process spent per request: the load generator shares the machine's cores with the
//! server, so the server's CPU per request says what the server alone would sustain. The
//! numbers are printed as a table; docs/benchmarks.md records a run.

mod race;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ring::rand::{SecureRandom, SystemRandom};
use tokengate_server::config::Config;
use tokengate_server::state::{self, SystemClock};
use tokengate_store::{
    AccessKey, Group, KeyOwner, KeyStatus, MfaDevice, MfaKind, PgOptions, PolicyTarget,
    PostgresStore, Role, SqliteStore, Store, User,
};
use tokengate_token::Secret;
use tokengate_token::keys;
use tokengate_token::query::encode_form;
use tokengate_token::session::{MfaContext, MfaMethod};
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use tokengate_verifier::totp::{Generator, TotpParams, TotpState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options.
#[derive(Debug, Parser)]
#[command(
    name = "tokengate-load",
    about = "Measure MFA-gated logins (GetSessionToken, AssumeRole) per second"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    logins: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Seed a data dir for tools/bench-request-path and write its wrk scripts.
    Prepare(PrepareArgs),
    /// Send one GetCallerIdentity with each session that `prepare` minted.
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct PrepareArgs {
    /// The data dir to create (must not exist).
    #[arg(long)]
    data_dir: PathBuf,
    /// The address the server will listen on (signed as the `host` header).
    #[arg(long)]
    addr: String,
    /// Where to write `long-term.lua`, `temporary.lua` and `sessions.tsv`.
    #[arg(long)]
    out: PathBuf,
    /// Distinct sessions to mint into `sessions.tsv`.
    #[arg(long, default_value_t = 100_000)]
    tokens: usize,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The server's address.
    #[arg(long)]
    addr: String,
    /// `sessions.tsv` from `prepare`.
    #[arg(long)]
    sessions: PathBuf,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

/// Options of the login benchmark (the default mode).
#[derive(Debug, clap::Args)]
struct Args {
    /// Distinct users/devices (each logs in once per run).
    #[arg(long, default_value_t = 40_000)]
    devices: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The `tokengate` binary [default: the one beside this binary].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Server worker threads (TOKIO_WORKER_THREADS) [default: the number of cores].
    #[arg(long)]
    server_threads: Option<usize>,
    /// Instead of the four workloads: MFA logins on a server with the audit trail off
    /// (`TOKENGATE_AUDIT_ENABLED=false`) and on, alternating, each round on fresh devices;
    /// prints both rates and the cost of auditing (docs/audit.md).
    #[arg(long)]
    audit_compare: bool,
    /// Rounds of `--audit-compare`: odd rounds run off then on, even rounds on then off
    /// (so a steady drift of the machine's load cancels out over each pair of rounds).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Instead of any workload: the audit trail alone, in this process — the CPU per event
    /// of building N GetSessionToken events (request path + JSON) and of recording them
    /// through the writer into a file store (group commit, fsync).
    #[arg(long)]
    audit_bench: Option<usize>,
    /// Pin the server to these CPUs (`taskset -c LIST`); pin this process with taskset.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Run on PostgreSQL at this URL (a schema of its own, `tokengate_load_<pid>`, created
    /// for the run and dropped after it) instead of SQLite in a temporary data dir.
    #[arg(long)]
    store_url: Option<String>,
    /// `tokengate serve` processes on the one database (needs `--store-url` when above 1),
    /// each on its own port with its own data dir and the shared master key file; requests
    /// go to them round-robin. With 2 or more, a last phase races: each of `--devices`
    /// further devices sends one code to every replica at once — exactly one success per
    /// code, every other answer AccessDenied (the throttle is off: the race's refusals all
    /// come from 127.0.0.1).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// With `--replicas 2` or more: kill replica 1 with SIGKILL halfway through the race's
    /// middle chunk and restart it on the same address, data dir and schema; every code is
    /// then accounted for (src/race.rs): none accepted twice, every accepted one still spent.
    #[arg(long)]
    kill_mid_race: bool,
}

/// The PostgreSQL database and schema of a run.
struct Pg {
    url: String,
    schema: String,
}

impl Pg {
    /// The URL the seeding store connects with: the run's schema as its search path, and
    /// `synchronous_commit` off — seeding is not what is measured, and each admin write
    /// would otherwise wait for its own WAL flush while holding the IAM generation row
    /// (serialising them all). The servers connect with the plain URL.
    fn seeding_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}%20-c%20synchronous_commit%3Doff",
            self.url, self.schema
        )
    }

    /// Creates the run's schema (the seeding store gets it as its search path).
    fn create_schema(&self) -> anyhow::Result<()> {
        self.execute(&format!("CREATE SCHEMA {}", self.schema))
    }

    /// Drops the run's schema (everything the run wrote).
    fn drop_schema(&self) -> anyhow::Result<()> {
        self.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
    }

    fn execute(&self, statement: &str) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to {}", self.url))?;
            tokio::spawn(conn);
            client.batch_execute(statement).await?;
            anyhow::Ok(())
        })
    }
}

/// The refusal of a spent TOTP code (the race phase counts these).
const MFA_DENIED: &str = "MultiFactorAuthentication failed with invalid MFA one time pass code.";

struct Identity {
    key_id: String,
    secret: String,
    serial: String,
    seed: Vec<u8>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Prepare(p)) => return prepare(&p),
        Some(Mode::Replay(r)) => return replay(&r),
        None => {}
    }
    let args = cli.logins;
    if let Some(n) = args.audit_bench {
        return audit_bench(n);
    }
    if args.replicas == 0 || (args.replicas > 1 && args.store_url.is_none()) {
        bail!("--replicas N needs N >= 1, and --store-url when N > 1 (SQLite has one writer)");
    }
    if args.kill_mid_race && args.replicas < 2 {
        bail!("--kill-mid-race needs --replicas 2 or more");
    }
    let pg = args.store_url.as_ref().map(|url| Pg {
        url: url.clone(),
        schema: format!("tokengate_load_{}", std::process::id()),
    });
    let dir = std::env::temp_dir().join(format!("tokengate-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run(&args, &dir, pg.as_ref());
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(pg) = &pg {
        pg.drop_schema()?;
    }
    result
}

fn run(args: &Args, dir: &Path, pg: Option<&Pg>) -> anyhow::Result<()> {
    let seeded = Instant::now();
    let racing = if args.replicas > 1 { args.devices } else { 0 };
    // Each chunk of the race has CONTROLS devices of its own that take no part in it.
    let race_devices = racing + racing.div_ceil(race::CHUNK) * race::CONTROLS;
    let mut identities = seed(dir, args.devices + race_devices, pg)?;
    let race_ids = identities.split_off(args.devices);
    eprintln!(
        "seeded {} users and devices in {:.1?}",
        identities.len() + race_ids.len(),
        seeded.elapsed()
    );

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    if args.audit_compare {
        if pg.is_some() {
            bail!("--audit-compare runs on SQLite only");
        }
        return compare_audit(args, dir, &addr, &identities);
    }
    let mut servers = vec![start_server(args, dir, &addr, true, pg, 0)?];
    let mut addrs = vec![addr.clone()];
    for i in 1..args.replicas {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        servers.push(start_server(args, dir, &addr, true, pg, i)?);
        addrs.push(addr);
    }
    // Request i goes to replica i mod N, signed for that replica's host.
    let addr_of = |i: usize| addrs[i % addrs.len()].as_str();
    let server_pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // Codes are computed just before their phase, for the *next* step: the verifier's
    // window takes one step either side, so a code of step now+1 stays valid for 60 to 90
    // s — a phase on a slow store (PostgreSQL, 10 000 devices) takes longer than 30.
    let now_step = || TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let login_step = now_step() + 1;
    let logins: Vec<Vec<u8>> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let code = Generator::new(&id.seed, TotpParams::AWS).code(login_step);
            let params = [
                ("Action", "GetSessionToken"),
                ("Version", "2011-06-15"),
                ("SerialNumber", id.serial.as_str()),
                ("TokenCode", code.as_str()),
                ("DurationSeconds", "900"),
            ];
            signed_request(addr_of(i), id, &params)
        })
        .collect();
    let identity_calls: Vec<Vec<u8>> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| {
            signed_request(
                addr_of(i),
                id,
                &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
            )
        })
        .collect();

    let iam_reads: Vec<Vec<u8>> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| {
            signed_request_to(
                addr_of(i),
                id,
                "iam",
                &[("Action", "GetUser"), ("Version", "2010-05-08")],
            )
        })
        .collect();

    // A later step's code than the login's (a code works once, and never an older one),
    // built when the phase starts (below).
    let assumes = |step: u64| -> Vec<Vec<u8>> {
        identities
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let code = Generator::new(&id.seed, TotpParams::AWS).code(step);
                let params = [
                    ("Action", "AssumeRole"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", ROLE_ARN),
                    ("RoleSessionName", "load"),
                    ("SerialNumber", id.serial.as_str()),
                    ("TokenCode", code.as_str()),
                    ("DurationSeconds", "900"),
                ];
                signed_request(addr_of(i), id, &params)
            })
            .collect()
    };
    let n = addrs.len();
    let warm = runtime.block_on(blast_round_robin(
        &addrs,
        identity_calls[..(1000 * n).min(identity_calls.len())].to_vec(),
        args.connections,
    ))?;
    eprintln!("warm-up: {} requests", warm.ok);
    let ceiling = measured(&server_pids, || {
        runtime.block_on(blast_round_robin(&addrs, identity_calls, args.connections))
    })?;
    let login = measured(&server_pids, || {
        runtime.block_on(blast_round_robin(&addrs, logins, args.connections))
    })?;
    let iam_read = measured(&server_pids, || {
        runtime.block_on(blast_round_robin(&addrs, iam_reads, args.connections))
    })?;
    // The assume code must be of a later step than the login's and within one step of
    // now: on a fast store the login phase ends before its (next) step has begun — wait.
    while now_step() < login_step {
        std::thread::sleep(Duration::from_millis(200));
    }
    let assumes = assumes(now_step() + 1);
    let assume = measured(&server_pids, || {
        runtime.block_on(blast_round_robin(&addrs, assumes, args.connections))
    })?;
    let raced = if racing > 0 {
        Some(race::run(
            &runtime,
            args,
            dir,
            pg,
            &addrs,
            &mut servers,
            &race_ids,
            args.kill_mid_race,
        )?)
    } else {
        None
    };
    drop(servers);

    println!(
        "| workload | requests | errors | seconds | requests/s | p50 ms | p99 ms \
         | server CPU µs/req | load CPU µs/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, (r, cpu)) in [
        ("GetCallerIdentity (bare ceiling)", &ceiling),
        ("MFA GetSessionToken", &login),
        ("IAM GetUser by a user (policy-authorized)", &iam_read),
        ("MFA AssumeRole (trust policy + role session)", &assume),
    ] {
        let n = (r.ok + r.errors).max(1) as f64;
        println!(
            "| {name} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.ok + r.errors,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.ok as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            cpu.server.as_secs_f64() * 1e6 / n,
            cpu.load.as_secs_f64() * 1e6 / n,
        );
    }
    let (r, cpu) = &login;
    let per_login = cpu.server.as_secs_f64() / (r.ok + r.errors).max(1) as f64;
    println!(
        "\nserver alone on these cores: ≈ {:.0} logins/s ({} cores / server CPU per login)",
        cores() as f64 / per_login.max(f64::MIN_POSITIVE),
        cores()
    );
    println!(
        "{} devices, {} connections, {} cores, {} on {} replica(s)",
        args.devices,
        args.connections,
        cores(),
        if pg.is_some() { "PostgreSQL" } else { "SQLite" },
        addrs.len(),
    );
    let mut race_failed = None;
    if let Some(r) = &raced {
        println!(
            "race: {} codes, each sent to all {} replicas at once, in chunks of {}: {:.2} s; \
             {} accepted ({} on resubmission after a restart), {} AccessDenied (spent code); \
             every code sent to every replica again: {} AccessDenied; {} of {} control codes \
             of the same steps accepted; {} devices set aside (their code was also that of a \
             nearby step)",
            r.codes,
            addrs.len(),
            race::CHUNK,
            r.elapsed.as_secs_f64(),
            r.accepted,
            r.accepted_on_resubmission,
            r.refused,
            r.rechecked_refused,
            r.controls_accepted,
            race_ids.len() - r.codes - r.set_aside,
            r.set_aside,
        );
        if let Some(k) = &r.kill {
            println!(
                "kill -9 of replica 1 in chunk {} after {} of its codes were answered by \
                 replica 0; restarted (listening) in {:.2} s; requests unanswered by the \
                 killed replica (sent again after the restart): {}; codes it spent without \
                 answering: {}",
                k.chunk + 1,
                k.after,
                k.restarted_in.as_secs_f64(),
                r.unanswered,
                r.spent_without_answer,
            );
        }
        if let Some(first) = r.failures.first() {
            race_failed = Some(format!(
                "the race broke the one-use rule or failed ({} problems), first: {first}",
                r.failures.len()
            ));
        }
    }
    let (a, l) = (&assume.0, &login.0);
    println!(
        "AssumeRole with MFA / GetSessionToken with MFA, same run: {:.2}",
        (a.ok as f64 / a.elapsed.as_secs_f64()) / (l.ok as f64 / l.elapsed.as_secs_f64())
    );
    let phases = [&login.0, &ceiling.0, &iam_read.0, &assume.0];
    if let Some(why) = race_failed {
        bail!("{why}");
    }
    if phases.iter().any(|r| r.errors > 0) {
        bail!(
            "some requests failed (first: {})",
            phases
                .iter()
                .find_map(|r| r.first_error.clone())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `--audit-compare`: the login workload with the audit trail off and on, alternating
/// (off, on), (on, off), … × rounds on one data dir, each phase on its own slice of the
/// devices (a code works once). Each phase has its own server, warmed up with
/// GetCallerIdentity. Besides the totals, it prints each round's cost (its on phase against
/// its off phase) and the median over rounds, which a burst of other work on a shared
/// machine moves less than the totals.
fn compare_audit(
    args: &Args,
    dir: &Path,
    addr: &str,
    identities: &[Identity],
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let phases = 2 * args.rounds.max(1);
    let slice = identities.len() / phases;
    if slice == 0 {
        bail!("--audit-compare needs at least {phases} devices");
    }
    let mut totals = [(0usize, Duration::ZERO, Duration::ZERO); 2];
    // Per round: [off, on] as (logins/s, server CPU µs/login).
    let mut rounds = vec![[(0.0f64, 0.0f64); 2]; phases / 2];
    println!(
        "| round | audit | logins | errors | seconds | logins/s | p50 ms | p99 ms | server CPU µs/login |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for phase in 0..phases {
        let audit = (phase % 2 == 1) != ((phase / 2) % 2 == 1);
        let ids = identities
            .get(phase * slice..(phase + 1) * slice)
            .unwrap_or_default();
        let server = start_server(args, dir, addr, audit, None, 0)?;
        let warm: Vec<Vec<u8>> = ids
            .iter()
            .take(1000)
            .map(|id| {
                signed_request(
                    addr,
                    id,
                    &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
                )
            })
            .collect();
        runtime.block_on(blast(addr, warm, args.connections))?;
        let step = TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
        let logins: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| race::login_request(addr, id, step))
            .collect();
        let (r, cpu) = measured(&[server.0.id()], || {
            runtime.block_on(blast(addr, logins, args.connections))
        })?;
        drop(server);
        let n = (r.ok + r.errors).max(1) as f64;
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} |",
            phase / 2 + 1,
            if audit { "on" } else { "off" },
            r.ok + r.errors,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.ok as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            cpu.server.as_secs_f64() * 1e6 / n,
        );
        if let Some(e) = r.first_error {
            bail!("{} logins failed (first: {e})", r.errors);
        }
        let total = &mut totals[usize::from(audit)];
        total.0 += r.ok;
        total.1 += r.elapsed;
        total.2 += cpu.server;
        if let Some(round) = rounds.get_mut(phase / 2) {
            round[usize::from(audit)] = (
                r.ok as f64 / r.elapsed.as_secs_f64(),
                cpu.server.as_secs_f64() * 1e6 / n,
            );
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        if v.len().is_multiple_of(2) {
            (at(m.wrapping_sub(1)) + at(m)) / 2.0
        } else {
            at(m)
        }
    };
    let rate_costs: Vec<f64> = rounds
        .iter()
        .map(|[off, on]| 100.0 * (1.0 - on.0 / off.0))
        .collect();
    let cpu_costs: Vec<f64> = rounds
        .iter()
        .map(|[off, on]| 100.0 * (on.1 / off.1 - 1.0))
        .collect();
    let list = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.1}%"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\nper round, cost of auditing: throughput {}; CPU per login {}",
        list(&rate_costs),
        list(&cpu_costs)
    );
    println!(
        "median over rounds: {:.1}% of throughput, {:.1}% more CPU per login",
        median(rate_costs.clone()),
        median(cpu_costs.clone())
    );
    let rate = |(ok, elapsed, _): (usize, Duration, Duration)| ok as f64 / elapsed.as_secs_f64();
    let cpu = |(ok, _, cpu): (usize, Duration, Duration)| cpu.as_secs_f64() * 1e6 / ok as f64;
    let (off, on) = (totals[0], totals[1]);
    println!(
        "totals: audit off: {:.0} logins/s ({:.0} µs server CPU/login); audit on: {:.0} logins/s \
         ({:.0} µs); cost of auditing: {:.1}% of throughput, {:.1}% more CPU per login",
        rate(off),
        cpu(off),
        rate(on),
        cpu(on),
        100.0 * (1.0 - rate(on) / rate(off)),
        100.0 * (cpu(on) / cpu(off) - 1.0),
    );
    println!(
        "{} devices per phase, {} connections, {} cores",
        slice,
        args.connections,
        cores()
    );
    Ok(())
}

/// `--audit-bench N`: see [`Args::audit_bench`].
fn audit_bench(n: usize) -> anyhow::Result<()> {
    use tokengate_server::action::Api;
    use tokengate_server::audit::{self, AuditTrail, Identity, Pending, RequestMeta};
    use tokengate_server::params::Params;
    use tokengate_token::Principal;

    let dir = tempfile_dir()?;
    let store: Arc<dyn tokengate_store::Store> = Arc::new(SqliteStore::open(
        &dir.join("bench.db"),
        &tokengate_token::Secret::new(vec![7; 32]),
    )?);
    let claims = r#"{"iat":1800000000,"exp":1800043200,"mfa":{"present":true,"method":"totp","device":"arn:aws:iam::000000000000:mfa/u"}}"#;
    let token = format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.{}",
        data_encoding::BASE64URL_NOPAD.encode(claims.as_bytes()),
        "s".repeat(86)
    );
    let result = format!(
        "<Credentials><AccessKeyId>ASIAEXAMPLEEXAMPLE01</AccessKeyId>\
         <SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken>\
         <Expiration>2027-01-15T08:00:00Z</Expiration></Credentials>",
        "x".repeat(40)
    );
    let pending = |i: usize| {
        let params = Params::new(vec![
            ("Action".into(), "GetSessionToken".into()),
            ("Version".into(), "2011-06-15".into()),
            (
                "SerialNumber".into(),
                format!("arn:aws:iam::000000000000:mfa/u{i}"),
            ),
            ("TokenCode".into(), "123456".into()),
            ("DurationSeconds".into(), "900".into()),
        ]);
        let identity = Identity::Known {
            principal: Principal::User {
                account: "000000000000".into(),
                path: "/".into(),
                name: format!("u{i}"),
                user_id: "AIDAEXAMPLEEXAMPLE01".into(),
            },
            access_key_id: "AKIAEXAMPLEEXAMPLE01".into(),
            session: None,
            request_mfa: None,
        };
        let meta = RequestMeta {
            request_id: "5f8e2a34-5c1b-4e0c-9a0e-3a2b1c0d9e8f",
            source_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
            user_agent: Some("tokengate-load"),
        };
        let p = Pending::new(
            Api::Sts,
            "GetSessionToken",
            true,
            1_800_000_000,
            identity,
            "us-east-1",
            &meta,
            &params,
            "*",
        );
        p.finish(Ok(Some(result.as_str())))
    };
    let me = std::process::id();
    let t0 = cpu_time(me)?;
    let mut bytes = 0;
    for i in 0..n {
        bytes += audit::build_event(&pending(i), "000000000000", "id")
            .record
            .len();
    }
    let built = cpu_time(me)?.saturating_sub(t0);
    let trail = AuditTrail::start(
        store,
        "000000000000".into(),
        n + 1,
        90,
        Arc::new(|| 1_800_000_000),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (t1, wall) = (cpu_time(me)?, Instant::now());
    for i in 0..n {
        trail.record(pending(i));
    }
    runtime.block_on(trail.flush());
    let recorded = cpu_time(me)?.saturating_sub(t1);
    let wall = wall.elapsed();
    drop(trail);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{n} events ({} bytes each): request path + JSON {:.1} µs CPU/event; \
         recorded through the writer into a file store {:.1} µs CPU/event ({:.0} events/s)",
        bytes / n.max(1),
        built.as_secs_f64() * 1e6 / n as f64,
        recorded.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64(),
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tokengate-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time (user + system) spent during one phase.
struct Cpu {
    server: Duration,
    load: Duration,
}

/// Runs `phase`, measuring the CPU time of the server processes (summed) and of this one.
fn measured<T>(
    server_pids: &[u32],
    phase: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Cpu)> {
    let servers = || -> anyhow::Result<Duration> { server_pids.iter().map(|p| cpu_time(*p)).sum() };
    let (server0, load0) = (servers()?, cpu_time(std::process::id())?);
    let out = phase()?;
    let (server1, load1) = (servers()?, cpu_time(std::process::id())?);
    Ok((
        out,
        Cpu {
            server: server1.saturating_sub(server0),
            load: load1.saturating_sub(load0),
        },
    ))
}

/// User + system CPU time of process `pid`, all threads (proc(5): fields 14 and 15 of
/// `/proc/PID/stat`, in clock ticks of USER_HZ, which is 100 on Linux).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces; count after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()?)
    };
    // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) 12.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
}

/// The group every seeded user is in; IAMReadOnlyAccess is attached to it.
const READERS: &str = "readers";
/// The role the AssumeRole workload assumes.
const ROLE: &str = "load-role";
/// Its ARN.
const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/load-role";

/// Creates the data dir's account and `n` users with keys and enabled devices.
fn seed(dir: &Path, n: usize, pg: Option<&Pg>) -> anyhow::Result<Vec<Identity>> {
    std::fs::create_dir_all(dir)?;
    let (master, _) =
        tokengate_store::master_key::load_or_create(&dir.join(state::MASTER_KEY_FILE))?;
    let store: Arc<dyn Store> = match pg {
        None => {
            let sqlite = Arc::new(SqliteStore::open(&dir.join(state::DATABASE_FILE), &master)?);
            sqlite.relax_durability_for_bulk_load()?;
            sqlite
        }
        Some(pg) => {
            pg.create_schema()?;
            Arc::new(PostgresStore::open(
                &pg.seeding_url(),
                &master,
                PgOptions {
                    pool_size: Some(SEEDERS),
                    schema: None,
                    ..PgOptions::default()
                },
            )?)
        }
    };
    let config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    state::open_with_store(config, store.clone(), Arc::new(SystemClock))
        .context("bootstrapping the data dir")?;
    let rng = SystemRandom::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    store.create_group(
        &Group {
            group_id: keys::new_group_id(&rng).map_err(|e| anyhow::anyhow!("{e}"))?,
            name: READERS.into(),
            path: "/".into(),
            created: now,
        },
        1,
    )?;
    store.attach_policy(
        &PolicyTarget::Group(READERS.into()),
        "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
        true,
        10,
    )?;
    // The role: trusted by the account with MFA; the group may assume it.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole",
        "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#;
    store.create_role(
        &Role {
            role_id: keys::new_role_id(&rng).map_err(|e| anyhow::anyhow!("{e}"))?,
            name: ROLE.into(),
            path: "/".into(),
            created: now,
            assume_role_policy: trust.into(),
            description: String::new(),
            max_session_duration: 3600,
            last_used: None,
            last_used_region: None,
            trust_principals: Vec::new(),
        },
        &[],
        None,
        1,
    )?;
    store.attach_policy(
        &PolicyTarget::Role(ROLE.into()),
        "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
        true,
        10,
    )?;
    let may_assume = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{ROLE_ARN}"}}]}}"#
    );
    store.put_inline_policy(
        &PolicyTarget::Group(READERS.into()),
        "assume-load-role",
        &may_assume,
        may_assume.len(),
        5_120,
    )?;
    // PostgreSQL takes the users from SEEDERS threads (each write's round trips overlap);
    // SQLite has one writer.
    let threads = if pg.is_some() { SEEDERS } else { 1 };
    let seeded: Vec<anyhow::Result<Vec<(usize, Identity)>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (store, rng) = (&store, &rng);
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| Ok((i, seed_user(store.as_ref(), rng, i, now)?)))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a seeding thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for part in seeded {
        out.extend(part?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, id)| id).collect())
}

/// Threads (and pooled connections) that seed a PostgreSQL run.
const SEEDERS: usize = 8;

/// User `load-<i>`: in the readers group, with an access key and an enabled device.
fn seed_user(
    store: &dyn Store,
    rng: &SystemRandom,
    i: usize,
    now: i64,
) -> anyhow::Result<Identity> {
    let name = format!("load-{i}");
    let user_id = keys::new_user_id(rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.create_user(&User {
        user_id,
        name: name.clone(),
        path: "/".into(),
        created: now,
    })?;
    store.add_user_to_group(READERS, &name, 10)?;
    let key_id = keys::new_long_term_key_id(rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret = keys::new_secret_access_key(rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret_text = secret.expose_str().unwrap_or_default().to_owned();
    let owner = KeyOwner::User(name.clone());
    store.create_access_key(
        &AccessKey {
            access_key_id: key_id.clone(),
            owner: owner.clone(),
            status: KeyStatus::Active,
            created: now,
            secret,
        },
        2,
    )?;
    let mut seed = vec![0u8; 20];
    rng.fill(&mut seed).map_err(|_| anyhow::anyhow!("rng"))?;
    let serial = format!("arn:aws:iam::000000000000:mfa/{name}");
    store.create_mfa_device(&MfaDevice {
        serial: serial.clone(),
        kind: MfaKind::Virtual,
        owner: None,
        enabled_at: None,
        created: now,
        seed: Secret::new(seed.clone()),
        params: TotpParams::AWS,
        state: TotpState::default(),
    })?;
    store.enable_mfa_device(&serial, &owner, now, &TotpState::default(), 8)?;
    Ok(Identity {
        key_id,
        secret: secret_text,
        serial,
        seed,
    })
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tokengate serve` on `addr`: on SQLite in `dir`, or as replica `index` of the
/// PostgreSQL run `pg` (its own data dir under `dir`, the shared master key file of `dir`).
fn start_server(
    args: &Args,
    dir: &Path,
    addr: &str,
    audit: bool,
    pg: Option<&Pg>,
    index: usize,
) -> anyhow::Result<Server> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("tokengate"),
    };
    let mut cmd = match &args.server_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let data_dir = match pg {
        None => dir.to_owned(),
        Some(pg) => {
            cmd.env("TOKENGATE_STORE_URL", &pg.url)
                .env("TOKENGATE_STORE_SCHEMA", &pg.schema)
                .env(
                    "TOKENGATE_MASTER_KEY_FILE",
                    dir.join(state::MASTER_KEY_FILE),
                );
            if args.replicas > 1 {
                cmd.env("TOKENGATE_THROTTLE_ENABLED", "false");
            }
            dir.join(format!("replica-{index}"))
        }
    };
    cmd.args(["serve", "--listen", addr, "--data-dir"])
        .arg(&data_dir)
        .env("TOKENGATE_LOG_LEVEL", "warn")
        .env(
            "TOKENGATE_AUDIT_ENABLED",
            if audit { "true" } else { "false" },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(n) = args.server_threads {
        cmd.env("TOKIO_WORKER_THREADS", n.to_string());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
    }
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("the server did not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn signed_request(addr: &str, id: &Identity, params: &[(&str, &str)]) -> Vec<u8> {
    signed_request_to(addr, id, "sts", params)
}

/// A SigV4-signed POST of `params` to `service` (`sts` or `iam`).
fn signed_request_to(addr: &str, id: &Identity, service: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let creds = SigningCredentials {
        access_key_id: &id.key_id,
        secret_access_key: &id.secret,
        session_token: None,
    };
    signed_with(addr, &creds, service, params)
}

/// The content type every request of this tool declares (and signs).
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The signed headers of a POST of `body` to `addr` with `creds`: `host` and
/// `content-type`, then what SigV4 adds.
fn signed_headers(
    addr: &str,
    creds: &SigningCredentials<'_>,
    service: &str,
    body: &str,
) -> Vec<(String, String)> {
    let headers = [("host", addr), ("content-type", FORM)];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    sign_request(
        &req,
        creds,
        "us-east-1",
        service,
        time::OffsetDateTime::now_utc(),
    )
}

/// A raw HTTP/1.1 POST of `params` to `service`, signed with `creds`.
fn signed_with(
    addr: &str,
    creds: &SigningCredentials<'_>,
    service: &str,
    params: &[(&str, &str)],
) -> Vec<u8> {
    let body = encode_form(params);
    let mut out = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {FORM}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in signed_headers(addr, creds, service, &body) {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

struct Outcome {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    first_error: Option<String>,
}

/// Sends every request once over `connections` keep-alive connections.
async fn blast(addr: &str, requests: Vec<Vec<u8>>, connections: usize) -> anyhow::Result<Outcome> {
    blast_many(vec![(addr.to_owned(), requests)], connections).await
}

/// Request i to `addrs[i mod N]` (each request is signed for its replica's host).
async fn blast_round_robin(
    addrs: &[String],
    requests: Vec<Vec<u8>>,
    connections: usize,
) -> anyhow::Result<Outcome> {
    let mut per: Vec<(String, Vec<Vec<u8>>)> =
        addrs.iter().map(|a| (a.clone(), Vec::new())).collect();
    let n = per.len().max(1);
    for (i, r) in requests.into_iter().enumerate() {
        if let Some((_, list)) = per.get_mut(i % n) {
            list.push(r);
        }
    }
    blast_many(per, connections).await
}

/// Sends each target's requests, in order, over its share of `connections` keep-alive
/// connections, all targets at once.
async fn blast_many(
    targets: Vec<(String, Vec<Vec<u8>>)>,
    connections: usize,
) -> anyhow::Result<Outcome> {
    let per_target = (connections / targets.len().max(1)).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (addr, requests) in targets {
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..per_target {
            let (requests, next, addr) = (requests.clone(), next.clone(), addr.clone());
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&addr).await?;
                stream.set_nodelay(true)?;
                let mut latencies = Vec::new();
                let (mut ok, mut errors) = (0usize, 0usize);
                let mut first_error = None;
                let mut buf = Vec::with_capacity(8192);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = requests.get(i) else { break };
                    let sent = Instant::now();
                    stream.write_all(req).await?;
                    let (status, body) = read_response(&mut stream, &mut buf).await?;
                    latencies.push(sent.elapsed());
                    if status == 200 {
                        ok += 1;
                    } else {
                        errors += 1;
                        first_error.get_or_insert(body);
                    }
                }
                anyhow::Ok((ok, errors, latencies, first_error))
            }));
        }
    }
    let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
    let mut first_error = None;
    for t in tasks {
        let (o, e, l, f) = t.await??;
        ok += o;
        errors += e;
        latencies.extend(l);
        first_error = first_error.or(f);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(Outcome {
        ok,
        errors,
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
        first_error,
    })
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns the status, and the
/// body text for an error only (a 200 body is not kept: the client's work per request should
/// be the I/O, as a real client's would be, not copies).
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("response without content-length")?;
            let total = end + 4 + len;
            while buf.len() < total {
                read_more(stream, buf).await?;
            }
            let body = if status == 200 {
                String::new()
            } else {
                String::from_utf8_lossy(&buf[end + 4..total]).into_owned()
            };
            buf.drain(..total);
            return Ok((status, body));
        }
        read_more(stream, buf).await?;
    }
}

/// Appends what the socket has to `buf`; an error if the server closed the connection.
async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        bail!("connection closed mid-response");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The user `prepare` creates.
const BENCH_USER: &str = "bench";

/// `prepare`: one user with an access key and temporary credentials, wrk scripts for both,
/// and `--tokens` distinct sessions of the same user.
fn prepare(p: &PrepareArgs) -> anyhow::Result<()> {
    if p.data_dir.exists() {
        bail!(
            "{} exists; prepare wants a fresh data dir",
            p.data_dir.display()
        );
    }
    std::fs::create_dir_all(&p.data_dir)?;
    std::fs::create_dir_all(&p.out)?;
    let (master, _) =
        tokengate_store::master_key::load_or_create(&p.data_dir.join(state::MASTER_KEY_FILE))?;
    let store = Arc::new(SqliteStore::open(
        &p.data_dir.join(state::DATABASE_FILE),
        &master,
    )?);
    let config = Config {
        data_dir: p.data_dir.clone(),
        ..Config::default()
    };
    let state = state::open_with_store(config, store.clone(), Arc::new(SystemClock))
        .context("bootstrapping the data dir")?;
    let rng = SystemRandom::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let user_id = keys::new_user_id(&rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.create_user(&User {
        user_id: user_id.clone(),
        name: BENCH_USER.into(),
        path: "/".into(),
        created: now,
    })?;
    let key_id = keys::new_long_term_key_id(&rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret = keys::new_secret_access_key(&rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret_text = secret.expose_str().unwrap_or_default().to_owned();
    store.create_access_key(
        &AccessKey {
            access_key_id: key_id.clone(),
            owner: KeyOwner::User(BENCH_USER.into()),
            status: KeyStatus::Active,
            created: now,
            secret,
        },
        2,
    )?;
    // Sessions as GetSessionToken with a TOTP code issues them, minted by the same code.
    let mint = || {
        tokengate_server::credentials::mint_session(
            &state,
            tokengate_server::credentials::NewSession {
                principal: tokengate_token::Principal::User {
                    account: state.account_id.clone(),
                    path: "/".into(),
                    name: BENCH_USER.into(),
                    user_id: user_id.clone(),
                },
                src: key_id.clone(),
                duration: 3_600,
                mfa: MfaContext {
                    present: true,
                    method: Some(MfaMethod::Totp),
                    device: Some(format!("arn:aws:iam::000000000000:mfa/{BENCH_USER}")),
                    auth_time: Some(now),
                },
                session_policy: None,
                chained: false,
                attributes: Default::default(),
            },
        )
        .map_err(|e| anyhow::anyhow!("minting a session: {}", e.message))
    };
    let temporary = mint()?;
    let temporary_secret = temporary
        .secret_access_key
        .expose_str()
        .context("derived secret is not text")?
        .to_owned();
    let long_term = SigningCredentials {
        access_key_id: &key_id,
        secret_access_key: &secret_text,
        session_token: None,
    };
    let session = SigningCredentials {
        access_key_id: &temporary.access_key_id,
        secret_access_key: &temporary_secret,
        session_token: Some(&temporary.session_token),
    };
    std::fs::write(p.out.join("long-term.lua"), wrk_script(&p.addr, &long_term))?;
    std::fs::write(p.out.join("temporary.lua"), wrk_script(&p.addr, &session))?;

    let mut tsv = String::with_capacity(p.tokens * 800);
    for _ in 0..p.tokens {
        let c = mint()?;
        let secret = c.secret_access_key.expose_str().context("secret")?;
        tsv.push_str(&format!(
            "{}\t{secret}\t{}\n",
            c.access_key_id, c.session_token
        ));
    }
    std::fs::write(p.out.join("sessions.tsv"), tsv)?;
    eprintln!(
        "prepared {}: user {BENCH_USER}, its key, a session, {} more sessions",
        p.data_dir.display(),
        p.tokens
    );
    Ok(())
}

/// A wrk script replaying one `GetCallerIdentity` signed with `creds` (SigV4 lets a request
/// be replayed for as long as its date is within the allowed skew).
fn wrk_script(addr: &str, creds: &SigningCredentials<'_>) -> String {
    let body = encode_form(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]);
    let lua = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = format!(
        "-- written by tokengate-load prepare\nwrk.method = \"POST\"\nwrk.body = {}\n\
         wrk.headers[\"Host\"] = {}\nwrk.headers[\"Content-Type\"] = {}\n",
        lua(&body),
        lua(addr),
        lua(FORM)
    );
    for (k, v) in signed_headers(addr, creds, "sts", &body) {
        out.push_str(&format!("wrk.headers[{}] = {}\n", lua(&k), lua(&v)));
    }
    out
}

/// `replay`: one `GetCallerIdentity` with each minted session, once.
fn replay(r: &ReplayArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&r.sessions)
        .with_context(|| format!("reading {}", r.sessions.display()))?;
    let mut requests = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(akid), Some(secret), Some(token)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!(
                "a line of {} is not akid, secret, token",
                r.sessions.display()
            );
        };
        let creds = SigningCredentials {
            access_key_id: akid,
            secret_access_key: secret,
            session_token: Some(token),
        };
        requests.push(signed_with(
            &r.addr,
            &creds,
            "sts",
            &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let n = requests.len();
    let out = runtime.block_on(blast(&r.addr, requests, r.connections))?;
    println!(
        "replayed {n} distinct sessions in {:.2} s: {} ok, {} errors ({:.0} requests/s)",
        out.elapsed.as_secs_f64(),
        out.ok,
        out.errors,
        out.ok as f64 / out.elapsed.as_secs_f64()
    );
    if out.errors > 0 {
        bail!(
            "some requests failed (first: {})",
            out.first_error.unwrap_or_default()
        );
    }
    Ok(())
}
