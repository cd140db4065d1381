//! Moving 64-byte CTAPHID reports (CTAP 2.1 §11.2.4): the [`Transport`] seam and the UDP
//! transport to firmware-sim. The hidapi transport is in [`crate::hid`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use tokengate_ctaphid::{HID_REPORT_SIZE, Report};

use crate::error::{Error, ProtocolError};

/// One CTAPHID report at a time, both ways. Implement it to reach a key some other way
/// (a test double, another simulator); everything above it is shared.
pub trait Transport: Send {
    /// Sends one report (the transport adds whatever framing its medium needs, such as the
    /// hidraw report-ID byte).
    fn write_report(&mut self, report: &Report) -> Result<(), Error>;

    /// Receives one report, or `Ok(None)` once `deadline` passes without one.
    fn read_report(&mut self, deadline: Instant) -> Result<Option<Report>, Error>;

    /// Called after a silence while a response is awaited, so that a transport which cannot
    /// otherwise notice a vanished peer can find out. It must not disturb the device: the
    /// UDP transport sends a continuation packet on the reserved channel 0, which devices
    /// ignore (CTAP 2.1 §11.2.5.4), so that a closed port shows up as "connection refused".
    fn probe(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// CTAPHID over UDP, as firmware-sim (and the solo1 simulator) speak it: each datagram is
/// exactly one bare 64-byte report, no report-ID byte (fido.md §1.1, §8).
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl UdpTransport {
    /// Resolves `host_port`, binds an ephemeral port (loopback for a loopback peer, as
    /// fido.md §8 asks) and connects, so that only the device's datagrams are received.
    pub fn connect(host_port: &str) -> Result<Self, Error> {
        let unreachable = |reason: String| Error::Unreachable {
            address: format!("udp:{host_port}"),
            reason,
        };
        let peer = host_port
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve {host_port}: {e}")))?
            .next()
            .ok_or_else(|| unreachable(format!("{host_port} resolves to no address")))?;
        let local: IpAddr = match (peer.ip().is_loopback(), peer) {
            (true, SocketAddr::V4(_)) => Ipv4Addr::LOCALHOST.into(),
            (true, SocketAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
            (false, SocketAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
            (false, SocketAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind((local, 0))
            .and_then(|socket| socket.connect(peer).map(|()| socket))
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { socket, peer })
    }

    /// The device's socket address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Transport for UdpTransport {
    fn write_report(&mut self, report: &Report) -> Result<(), Error> {
        match self.socket.send(report) {
            Ok(n) if n == HID_REPORT_SIZE => Ok(()),
            Ok(_) => Err(Error::Io(io::Error::new(
                io::ErrorKind::WriteZero,
                "short UDP send",
            ))),
            Err(e) => Err(udp_error(e, self.peer)),
        }
    }

    fn read_report(&mut self, deadline: Instant) -> Result<Option<Report>, Error> {
        // One byte more than a report, so that an oversized datagram is noticed.
        let mut buf = [0u8; HID_REPORT_SIZE + 1];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            // A zero timeout means "block forever" to std; the floor keeps it finite.
            self.socket
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))?;
            match self.socket.recv(&mut buf) {
                Ok(HID_REPORT_SIZE) => {
                    let mut report = [0u8; HID_REPORT_SIZE];
                    report.copy_from_slice(&buf[..HID_REPORT_SIZE]);
                    return Ok(Some(report));
                }
                Ok(_) => {
                    return Err(ProtocolError::Unexpected(
                        "a UDP datagram that is not one 64-byte report",
                    )
                    .into());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(udp_error(e, self.peer)),
            }
        }
    }

    fn probe(&mut self) -> Result<(), Error> {
        // CID 0, byte 4 with bit 7 clear: a continuation packet on the reserved channel,
        // which a device ignores silently (CTAP 2.1 §11.2.5.4; fido.md §1.5).
        self.write_report(&[0u8; HID_REPORT_SIZE])
    }
}

/// "Connection refused" on a connected UDP socket is the ICMP port-unreachable of a peer
/// that is gone.
fn udp_error(e: io::Error, peer: SocketAddr) -> Error {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Error::Disconnected(format!("nothing listens at udp:{peer} any more"))
    } else {
        Error::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bare_reports_both_ways() {
        let device = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut transport =
            UdpTransport::connect(&device.local_addr().unwrap().to_string()).unwrap();
        let mut report = [0u8; 64];
        report[0] = 0xFF;
        report[63] = 0x42;
        transport.write_report(&report).unwrap();
        let mut buf = [0u8; 100];
        let (n, from) = device.recv_from(&mut buf).unwrap();
        assert_eq!(n, 64, "no report-ID byte over UDP");
        assert_eq!(buf[..64], report);
        assert!(from.ip().is_loopback());

        device.send_to(&report, from).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(transport.read_report(deadline).unwrap(), Some(report));

        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(transport.read_report(soon).unwrap(), None);

        device.send_to(&[0u8; 65], from).unwrap();
        let err = transport.read_report(deadline).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    }

    #[test]
    fn a_closed_port_is_a_disconnect() {
        let device = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = device.local_addr().unwrap().to_string();
        drop(device);
        let mut transport = UdpTransport::connect(&addr).unwrap();
        transport.probe().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let err = transport.read_report(deadline).unwrap_err();
        assert!(matches!(err, Error::Disconnected(_)), "{err:?}");
    }

    #[test]
    fn unresolvable_hosts_are_unreachable() {
        let err = UdpTransport::connect("no-such-host.invalid:8111").unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    }
}
