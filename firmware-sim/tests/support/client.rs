//! A small CTAPHID-over-UDP client for the tests and the benchmark: the host side of
//! `tokengate-ctaphid` over a `UdpSocket` with a read timeout, plus CTAP2/U2F helpers from
//! `tokengate-ctap`. (The bridge crate has the real client; this one stays independent.)

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tokengate_ctap::ctap2::Request;
use tokengate_ctaphid::{
    Command, HID_REPORT_SIZE, HostChannel, HostEvent, InitHandshake, InitReply, Message, Report,
};

/// One allocated channel on a simulator.
pub struct UdpDevice {
    socket: UdpSocket,
    device: SocketAddr,
    channel: HostChannel,
    /// KEEPALIVE reports seen while waiting for the last response.
    pub keepalives: usize,
}

fn nonce() -> [u8; 8] {
    let t = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (t ^ seed).to_be_bytes()
}

impl UdpDevice {
    /// Binds a local socket and allocates a channel with CTAPHID_INIT.
    pub fn connect(device: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(timeout))?;
        let handshake = InitHandshake::allocate(nonce());
        socket.send_to(&handshake.request(), device)?;
        loop {
            let report = Self::recv(&socket)?;
            match handshake.receive(&report).map_err(io::Error::other)? {
                InitReply::Ready(init) => {
                    let channel = HostChannel::new(init.cid).map_err(io::Error::other)?;
                    return Ok(Self {
                        socket,
                        device,
                        channel,
                        keepalives: 0,
                    });
                }
                InitReply::Ignored => continue,
                InitReply::DeviceError(code) => {
                    return Err(io::Error::other(format!("INIT refused: {code:?}")));
                }
            }
        }
    }

    fn recv(socket: &UdpSocket) -> io::Result<Report> {
        let mut buffer = [0u8; 2 * HID_REPORT_SIZE];
        let (len, _) = socket.recv_from(&mut buffer)?;
        Report::try_from(&buffer[..len])
            .map_err(|_| io::Error::other(format!("{len}-byte datagram")))
    }

    /// Sends a request without waiting for the response.
    pub fn send(&mut self, cmd: Command, payload: &[u8]) -> io::Result<()> {
        let reports: Vec<Report> = self
            .channel
            .request(cmd, payload)
            .map_err(io::Error::other)?
            .collect();
        for report in reports {
            self.socket.send_to(&report, self.device)?;
        }
        Ok(())
    }

    /// Sends CTAPHID_CANCEL.
    pub fn cancel(&mut self) -> io::Result<()> {
        self.socket.send_to(&self.channel.cancel(), self.device)?;
        Ok(())
    }

    /// Receives the response to the outstanding request, skipping keepalives. A device
    /// error is an `io::Error` naming the CTAPHID error code.
    pub fn receive(&mut self) -> io::Result<Message> {
        self.keepalives = 0;
        loop {
            let report = match Self::recv(&self.socket) {
                Ok(report) => report,
                Err(e) => {
                    self.channel.abandon();
                    return Err(e);
                }
            };
            match self.channel.receive(&report).map_err(io::Error::other)? {
                HostEvent::Response(message) => return Ok(message),
                HostEvent::Keepalive(_) => self.keepalives += 1,
                HostEvent::Ignored | HostEvent::NeedMore => {}
                HostEvent::DeviceError(code) => {
                    return Err(io::Error::other(format!("CTAPHID error {code:?}")));
                }
            }
        }
    }

    /// Like [`UdpDevice::receive`], but gives up once `timeout` has passed in total
    /// (keepalives do not extend it).
    pub fn receive_within(&mut self, timeout: Duration) -> io::Result<Message> {
        let previous = self.socket.read_timeout()?;
        let deadline = Instant::now() + timeout;
        self.keepalives = 0;
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.channel.abandon();
                break Err(io::ErrorKind::TimedOut.into());
            }
            self.socket.set_read_timeout(Some(left))?;
            let report = match Self::recv(&self.socket) {
                Ok(report) => report,
                Err(e) => {
                    self.channel.abandon();
                    break Err(e);
                }
            };
            match self.channel.receive(&report).map_err(io::Error::other)? {
                HostEvent::Response(message) => break Ok(message),
                HostEvent::Keepalive(_) => self.keepalives += 1,
                HostEvent::Ignored | HostEvent::NeedMore => {}
                HostEvent::DeviceError(code) => {
                    break Err(io::Error::other(format!("CTAPHID error {code:?}")));
                }
            }
        };
        self.socket.set_read_timeout(previous)?;
        result
    }

    /// Discards every datagram already queued on the socket; returns how many.
    pub fn drain(&self) -> io::Result<usize> {
        self.socket.set_nonblocking(true)?;
        let mut buffer = [0u8; 2 * HID_REPORT_SIZE];
        let mut count = 0;
        while self.socket.recv_from(&mut buffer).is_ok() {
            count += 1;
        }
        self.socket.set_nonblocking(false)?;
        Ok(count)
    }

    /// How many datagrams of any kind arrive within `window`.
    pub fn datagrams_within(&self, window: Duration) -> io::Result<usize> {
        let previous = self.socket.read_timeout()?;
        let deadline = Instant::now() + window;
        let mut buffer = [0u8; 2 * HID_REPORT_SIZE];
        let mut count = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.socket.set_read_timeout(Some(left))?;
            if self.socket.recv_from(&mut buffer).is_ok() {
                count += 1;
            }
        }
        self.socket.set_read_timeout(previous)?;
        Ok(count)
    }

    /// A request and its response.
    pub fn call(&mut self, cmd: Command, payload: &[u8]) -> io::Result<Message> {
        self.send(cmd, payload)?;
        self.receive()
    }

    /// A CTAP2 request: (status byte, CBOR payload).
    pub fn cbor(&mut self, request: &Request) -> io::Result<(u8, Vec<u8>)> {
        let response = self.call(Command::Cbor, &request.to_vec())?;
        let (&status, payload) = response
            .payload
            .split_first()
            .ok_or_else(|| io::Error::other("empty CTAP2 response"))?;
        Ok((status, payload.to_vec()))
    }

    /// A U2F APDU: (data, status word).
    pub fn apdu(&mut self, apdu: &[u8]) -> io::Result<(Vec<u8>, u16)> {
        let response = self.call(Command::Msg, apdu)?;
        let (data, sw) = response
            .payload
            .split_last_chunk::<2>()
            .ok_or_else(|| io::Error::other("short APDU response"))?;
        Ok((data.to_vec(), u16::from_be_bytes(*sw)))
    }
}
