//! The UDP transport and the simulator runner.
//!
//! Each datagram carries exactly one 64-byte CTAPHID report, without the hidraw report-ID
//! byte; datagrams of any other size are ignored. Replies go to the address that sent the
//! last report on the reply's channel — for a request's response that is the request's
//! sender, for keepalives and timeouts the channel's last sender — the convention of the
//! SoloKeys and OpenSK simulators (DESIGN.md "Transport to the simulator", fido.md §5).
//!
//! [`spawn`] binds, loads or creates the state, and serves on a background thread until
//! [`RunningSim::stop`] (finish the current datagram, then stop) or [`RunningSim::kill`]
//! (not one more datagram leaves once it returns, even mid-transaction — a pulled plug).
//!
//! What it will not do: bind anything but the address given (loopback by default), carry
//! the hidraw report-ID byte, or authenticate peers (anyone who can reach the port can use
//! the key, as with a key plugged into the machine).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ring::rand::SystemRandom;
use tokengate_ctaphid::{HID_REPORT_SIZE, Report};

use super::SystemClock;
use super::file::FileStorage;
use super::prompt::PromptPresence;
use crate::authenticator::Authenticator;
use crate::env::{Env, MemoryStorage, PolicyPresence, Storage, TouchPolicy, UserPresence};
use crate::firmware::Firmware;

/// Longest the server sleeps in `recv` before it looks at its stop flag and timers.
const MAX_RECV_WAIT: Duration = Duration::from_millis(50);
/// Channels whose sender address is remembered before the table is flushed.
const MAX_PEERS: usize = 4096;

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The UDP address to bind; port 0 picks a free port ([`RunningSim::addr`] tells which).
    pub listen: SocketAddr,
    /// The state file; `None` keeps the state in memory (a new device every time).
    pub state: Option<PathBuf>,
    /// How the button behaves.
    pub touch: TouchPolicy,
    /// Log each command and its status on stderr.
    pub verbose: bool,
}

impl Default for SimConfig {
    /// `127.0.0.1:8111`, in-memory state, touch `auto`, quiet.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8111)),
            state: None,
            touch: TouchPolicy::Auto,
            verbose: false,
        }
    }
}

/// Flags shared between the handle and the server thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Held while sending; once `true`, nothing more is sent.
    killed: Mutex<bool>,
}

/// A simulator serving on a background thread.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulator's attestation CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Stops after the datagram being processed; the state is already stored.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.join_thread();
    }

    /// Stops answering at once, even mid-transaction: when this returns no further
    /// datagram is sent, and the socket is closed.
    pub fn kill(mut self) {
        *self
            .shared
            .killed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.join_thread();
    }

    /// Blocks until the server ends (after a stop, or with the socket error that ended it).
    pub fn join(mut self) -> std::io::Result<()> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> std::io::Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("simulator thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.join_thread();
    }
}

/// Binds `config.listen`, powers up the authenticator (loading or creating the state), and
/// serves on a background thread. A corrupt state file is an `InvalidData` error naming
/// the problem.
pub fn spawn(config: SimConfig) -> std::io::Result<RunningSim> {
    let socket = UdpSocket::bind(config.listen)?;
    let addr = socket.local_addr()?;
    let storage: Box<dyn Storage> = match &config.state {
        Some(path) => Box::new(FileStorage::new(path)),
        None => Box::new(MemoryStorage::new()),
    };
    let presence: Box<dyn UserPresence> = match config.touch {
        TouchPolicy::Prompt => Box::new(PromptPresence::new()),
        policy => Box::new(PolicyPresence::new(policy)),
    };
    let env = Env {
        clock: Box::new(SystemClock::new()),
        rng: Box::new(SystemRandom::new()),
        presence,
        storage,
    };
    let authenticator = Authenticator::new(env)?;
    let ca_pem = authenticator.ca_pem();
    let firmware = Firmware::new(authenticator);
    let shared = Arc::new(Shared::default());
    let server = Server {
        socket,
        firmware,
        shared: Arc::clone(&shared),
        peers: HashMap::new(),
        verbose: config.verbose,
    };
    let thread = std::thread::Builder::new()
        .name(format!("firmware-sim {addr}"))
        .spawn(move || server.run())?;
    Ok(RunningSim {
        addr,
        ca_pem,
        shared,
        thread: Some(thread),
    })
}

struct Server {
    socket: UdpSocket,
    firmware: Firmware,
    shared: Arc<Shared>,
    peers: HashMap<u32, SocketAddr>,
    verbose: bool,
}

impl Server {
    fn run(mut self) -> std::io::Result<()> {
        // Room for one oversized datagram, so that it is recognised and dropped whole.
        let mut buffer = [0u8; 2 * HID_REPORT_SIZE];
        while !self.shared.stop.load(Ordering::SeqCst) {
            self.socket.set_read_timeout(Some(self.recv_wait()))?;
            match self.socket.recv_from(&mut buffer) {
                Ok((len, from)) => match buffer.get(..len).and_then(|d| Report::try_from(d).ok()) {
                    Some(report) => self.on_report(&report, from),
                    None => {
                        if self.verbose {
                            eprintln!("firmware-sim: ignoring a {len}-byte datagram from {from}");
                        }
                    }
                },
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
            let now = self.firmware.authenticator().now();
            if self.firmware.next_deadline().is_some_and(|d| d <= now) {
                let replies = self.firmware.handle_timeout();
                self.send(&replies, None);
            }
            self.flush_log();
        }
        Ok(())
    }

    fn recv_wait(&self) -> Duration {
        let now = self.firmware.authenticator().now();
        let until_deadline = self.firmware.next_deadline().map(|deadline| {
            Duration::from_millis(deadline.as_millis().saturating_sub(now.as_millis()))
        });
        until_deadline
            .unwrap_or(MAX_RECV_WAIT)
            .clamp(Duration::from_millis(1), MAX_RECV_WAIT)
    }

    fn on_report(&mut self, report: &Report, from: SocketAddr) {
        let cid = channel_of(report);
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&cid) {
            self.peers.clear();
        }
        self.peers.insert(cid, from);
        let replies = self.firmware.handle_report(report);
        self.send(&replies, Some((cid, from)));
    }

    /// Sends each report to its channel's peer; `request` is the channel and sender of the
    /// datagram being answered.
    fn send(&self, replies: &[Report], request: Option<(u32, SocketAddr)>) {
        let killed = self
            .shared
            .killed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *killed {
            return;
        }
        for report in replies {
            let cid = channel_of(report);
            let to = match request {
                Some((request_cid, from)) if request_cid == cid => Some(from),
                _ => self.peers.get(&cid).copied(),
            };
            if let Some(to) = to {
                // A vanished peer is the peer's problem; keep serving the others.
                let _ = self.socket.send_to(report, to);
            }
        }
    }

    fn flush_log(&mut self) {
        let entries = self.firmware.take_log();
        if self.verbose {
            for entry in entries {
                eprintln!("firmware-sim: {entry}");
            }
        }
    }
}

fn channel_of(report: &Report) -> u32 {
    let [a, b, c, d, ..] = *report;
    u32::from_be_bytes([a, b, c, d])
}

/// Errors that end one `recv` but not the server: timeouts, signals, and the ICMP
/// "port unreachable" Linux reports on the next `recv` after a peer went away.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        WouldBlock | TimedOut | Interrupted | ConnectionRefused | ConnectionReset
    )
}
