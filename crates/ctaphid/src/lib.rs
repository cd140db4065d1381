//! CTAPHID, the USB HID transport of CTAP 2.1 (§11.2), as sans-IO state machines for both
//! ends: the device side that `firmware-sim` runs and the host side that the hardware-key
//! bridge runs. Bytes in, bytes out.
//!
//! * [`packet`]: one 64-byte report ⇄ one init or continuation packet.
//! * [`fragment`] / [`defragment`]: one [`Message`] ⇄ its reports (at most 7609 bytes,
//!   129 packets).
//! * [`Reassembler`]: `(now, &[u8; 64])` in, need-more / a message / a refusal out.
//! * [`Device`]: channel allocation, arbitration, INIT/PING/LOCK/CANCEL, and the error rules
//!   of fido.md §1.5; MSG, CBOR, WINK (and vendor) requests go to the caller as [`Event`]s and
//!   the caller's responses and keepalives come back to be framed.
//! * [`InitHandshake`] and [`HostChannel`]: allocate or resync a channel, send requests,
//!   reassemble the response on that channel while skipping other channels, surface
//!   KEEPALIVE and ERROR as [`HostEvent`]s.
//!
//! What it will not do: no I/O (no sockets, files, hidapi or threads), no clock and no
//! sleeping (time comes in as a [`Timestamp`], the caller's monotonic milliseconds), no
//! randomness (channel identifiers come from an injected [`CidSource`], INIT nonces from the
//! caller). It does not parse CTAP2 CBOR or U2F APDUs — payloads are opaque bytes here — and
//! it does not know the hidraw report-ID byte, which is the transport's.
//!
//! ```
//! use tokengate_ctaphid::{
//!     Capabilities, Command, Device, DeviceConfig, DeviceVersion, Event, HostChannel,
//!     HostEvent, InitHandshake, InitReply, SequentialCids, Timestamp,
//! };
//!
//! let version = DeviceVersion { major: 5, minor: 2, build: 1 };
//! let mut device = Device::new(
//!     DeviceConfig::new(version, Capabilities::YUBIKEY_5),
//!     SequentialCids::new(),
//! );
//! let now = Timestamp::from_millis(0);
//!
//! // Host: allocate a channel (the nonce comes from the host's random source).
//! let handshake = InitHandshake::allocate(*b"nonce-01");
//! let out = device.handle_report(now, &handshake.request());
//! let InitReply::Ready(init) = handshake.receive(&out.reports[0])? else { panic!() };
//! let mut host = HostChannel::new(init.cid)?;
//!
//! // Host: authenticatorGetInfo (CTAP2 command 0x04) over CTAPHID_CBOR.
//! let mut request = None;
//! for report in host.request(Command::Cbor, &[0x04])? {
//!     request = device.handle_report(now, &report).event.or(request);
//! }
//! let Some(Event::Request(request)) = request else { panic!() };
//! assert_eq!(request.payload, [0x04]);
//!
//! // Device: the authenticator answers; the crate frames the response.
//! let mut response = None;
//! for report in device.respond(request.cid, &[0x00, 0xA0])? {
//!     if let HostEvent::Response(message) = host.receive(&report)? {
//!         response = Some(message.payload);
//!     }
//! }
//! assert_eq!(response, Some(vec![0x00, 0xA0]));
//! # Ok::<(), tokengate_ctaphid::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

mod command;
mod device;
mod error;
mod host;
mod init;
mod message;
pub mod packet;
mod reassembly;
mod time;

pub use command::{Capabilities, Command, DeviceVersion, ErrorCode, KeepaliveStatus};
pub use device::{
    CidSource, DEFAULT_MAX_CHANNELS, Device, DeviceConfig, Event, MAX_CID_ATTEMPTS,
    MAX_LOCK_SECONDS, MIN_CHANNELS, Output, SequentialCids,
};
pub use error::{Error, Malformed, Refusal, Refused};
pub use host::{HostChannel, HostEvent, InitHandshake, InitReply};
pub use init::{CTAPHID_PROTOCOL_VERSION, INIT_NONCE_SIZE, INIT_RESPONSE_SIZE, InitResponse};
pub use message::{Fragments, Message, defragment, fragment, packet_count};
pub use packet::{
    BROADCAST_CID, CONT_DATA_SIZE, HID_REPORT_SIZE, INIT_DATA_SIZE, MAX_MESSAGE_SIZE, MAX_SEQ,
    RESERVED_CID, Report,
};
pub use reassembly::{Outcome, Pushed, Reassembler};
pub use time::{FRAME_TIMEOUT, Timestamp};
