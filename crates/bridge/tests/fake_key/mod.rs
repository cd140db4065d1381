//! An in-test security key: `tokengate_ctaphid::Device` behind a UDP socket on a thread,
//! answering with scripted behaviour. It lets the client core (keepalives, CANCEL, busy,
//! deadlines, silence) be tested without firmware-sim.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokengate_bridge::ctaphid::{
    Capabilities, Command, Device, DeviceConfig, DeviceVersion, ErrorCode, Event, KeepaliveStatus,
    Message, SequentialCids, Timestamp,
};

/// What the fake does with one MSG, CBOR, WINK request.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer at once.
    Respond(Vec<u8>),
    /// Send `keepalives` UPNEEDED keepalives 100 ms apart, then answer.
    TouchThenRespond { keepalives: u32, payload: Vec<u8> },
    /// UPNEEDED keepalives every 100 ms until CTAPHID_CANCEL, then CTAP2 status 0x2D.
    WaitForCancel,
    /// Never answer, send nothing.
    Silent,
    /// Answer CTAPHID_ERROR.
    Error(ErrorCode),
}

pub type Handler = Arc<dyn Fn(&Message) -> Script + Send + Sync>;

/// Counters the tests look at.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub cancels: AtomicUsize,
    pub inits: AtomicUsize,
    pub aborted: AtomicUsize,
}

pub struct FakeKey {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    forget: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

struct Pending {
    cid: u32,
    peer: SocketAddr,
    keepalives_left: Option<u32>,
    next_keepalive: Instant,
    payload: Vec<u8>,
}

impl FakeKey {
    pub fn start(capabilities: Capabilities, handler: Handler) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let forget = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let handle = {
            let (stop, forget, seen) = (stop.clone(), forget.clone(), seen.clone());
            std::thread::spawn(move || run(socket, capabilities, handler, stop, forget, seen))
        };
        Self {
            addr,
            seen,
            stop,
            forget,
            handle: Some(handle),
        }
    }

    /// `udp:127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("udp:{}", self.addr)
    }

    /// The device forgets every channel (as if re-plugged).
    pub fn forget_channels(&self) {
        self.forget.store(true, Ordering::SeqCst);
    }

    /// Stops and closes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for FakeKey {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn new_device(capabilities: Capabilities) -> Device {
    let version = DeviceVersion {
        major: 5,
        minor: 2,
        build: 1,
    };
    Device::new(
        DeviceConfig::new(version, capabilities),
        SequentialCids::starting_at(0x0100),
    )
}

fn run(
    socket: UdpSocket,
    capabilities: Capabilities,
    handler: Handler,
    stop: Arc<AtomicBool>,
    forget: Arc<AtomicBool>,
    seen: Arc<Seen>,
) {
    let start = Instant::now();
    let now = || Timestamp::from_millis(start.elapsed().as_millis() as u64);
    let mut device = new_device(capabilities);
    let mut pending: Option<Pending> = None;
    let mut peers: HashMap<u32, SocketAddr> = HashMap::new();
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::SeqCst) {
        if forget.swap(false, Ordering::SeqCst) {
            device = new_device(capabilities);
            pending = None;
        }
        // Keepalives and delayed answers.
        if let Some(p) = &mut pending
            && Instant::now() >= p.next_keepalive
        {
            match p.keepalives_left {
                Some(0) => {
                    let p = pending.take().unwrap();
                    for report in device.respond(p.cid, &p.payload).unwrap() {
                        socket.send_to(&report, p.peer).unwrap();
                    }
                }
                left => {
                    let report = device.keepalive(p.cid, KeepaliveStatus::UpNeeded).unwrap();
                    socket.send_to(&report, p.peer).unwrap();
                    p.keepalives_left = left.map(|n| n - 1);
                    p.next_keepalive = Instant::now() + Duration::from_millis(100);
                }
            }
        }
        for report in device.handle_timeout(now()) {
            let cid = u32::from_be_bytes(report[..4].try_into().unwrap());
            if let Some(peer) = peers.get(&cid) {
                socket.send_to(&report, peer).unwrap();
            }
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        if n != 64 {
            continue;
        }
        let report: [u8; 64] = buf[..64].try_into().unwrap();
        let cid = u32::from_be_bytes(report[..4].try_into().unwrap());
        if report[4] == 0x86 {
            seen.inits.fetch_add(1, Ordering::SeqCst);
        }
        let out = device.handle_report(now(), &report);
        for reply in &out.reports {
            // INIT replies on the broadcast channel name the new channel: remember its peer.
            let reply_cid = u32::from_be_bytes(reply[..4].try_into().unwrap());
            if reply_cid == 0xFFFF_FFFF && reply[4] == 0x86 {
                let new_cid = u32::from_be_bytes(reply[15..19].try_into().unwrap());
                peers.insert(new_cid, from);
            }
            socket.send_to(reply, from).unwrap();
        }
        if cid != 0xFFFF_FFFF && cid != 0 {
            peers.insert(cid, from);
        }
        match out.event {
            None => {}
            Some(Event::Request(message)) => {
                seen.requests.fetch_add(1, Ordering::SeqCst);
                match handler(&message) {
                    Script::Respond(payload) => {
                        for report in device.respond(message.cid, &payload).unwrap() {
                            socket.send_to(&report, from).unwrap();
                        }
                    }
                    Script::TouchThenRespond {
                        keepalives,
                        payload,
                    } => {
                        pending = Some(Pending {
                            cid: message.cid,
                            peer: from,
                            keepalives_left: Some(keepalives),
                            next_keepalive: Instant::now(),
                            payload,
                        });
                    }
                    Script::WaitForCancel => {
                        pending = Some(Pending {
                            cid: message.cid,
                            peer: from,
                            keepalives_left: None,
                            next_keepalive: Instant::now(),
                            payload: Vec::new(),
                        });
                    }
                    Script::Silent => {}
                    Script::Error(code) => {
                        let report = device.respond_error(message.cid, code).unwrap();
                        socket.send_to(&report, from).unwrap();
                    }
                }
            }
            Some(Event::Cancel { cid }) => {
                seen.cancels.fetch_add(1, Ordering::SeqCst);
                if pending.as_ref().is_some_and(|p| p.cid == cid) {
                    let p = pending.take().unwrap();
                    for report in device.respond(cid, &[0x2D]).unwrap() {
                        socket.send_to(&report, p.peer).unwrap();
                    }
                } else if device.awaiting_response() == Some((cid, Command::Cbor)) {
                    // A Silent request: the cancel is answered.
                    for report in device.respond(cid, &[0x2D]).unwrap() {
                        socket.send_to(&report, from).unwrap();
                    }
                }
            }
            Some(Event::Aborted { cid }) => {
                seen.aborted.fetch_add(1, Ordering::SeqCst);
                if pending.as_ref().is_some_and(|p| p.cid == cid) {
                    pending = None;
                }
            }
        }
    }
}

/// A CTAP2 OK response with `body`.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(body);
    out
}

/// Counts calls of a touch callback.
#[derive(Clone, Default)]
pub struct Prompts {
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl Prompts {
    pub fn callback(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let messages = self.messages.clone();
        move |m: &str| messages.lock().unwrap().push(m.to_owned())
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

/// Whether a CBOR request is the given CTAP2 command.
pub fn is_ctap2(message: &Message, command: u8) -> bool {
    message.cmd == Command::Cbor && message.payload.first() == Some(&command)
}
