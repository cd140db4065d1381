//! The `CTAPHID_INIT` payloads (CTAP 2.1 §11.2.9.1.3; fido.md §1.2).
//!
//! ```text
//! request:   nonce[8]
//! response:  nonce[8] | CID[4, big-endian] | protocol version | major | minor | build | caps
//! ```

use crate::command::{Capabilities, Command, DeviceVersion};
use crate::error::Malformed;
use crate::packet::{BROADCAST_CID, RESERVED_CID};

/// Length of the INIT request payload, the host's nonce (§11.2.9.1.3).
pub const INIT_NONCE_SIZE: usize = 8;
/// Length of the INIT response payload (§11.2.9.1.3).
pub const INIT_RESPONSE_SIZE: usize = 17;
/// CTAPHID protocol version a CTAP 2.1 device reports in the INIT response (§11.2.9.1.3).
pub const CTAPHID_PROTOCOL_VERSION: u8 = 2;

/// The INIT response payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InitResponse {
    /// The nonce of the request, echoed.
    pub nonce: [u8; INIT_NONCE_SIZE],
    /// The allocated channel (broadcast INIT) or the resynchronised channel itself.
    pub cid: u32,
    /// CTAPHID protocol version, [`CTAPHID_PROTOCOL_VERSION`] for CTAP 2.x devices.
    pub protocol_version: u8,
    /// Vendor-defined device version.
    pub device_version: DeviceVersion,
    /// Capability flags.
    pub capabilities: Capabilities,
}

impl InitResponse {
    /// The 17-byte payload.
    pub fn encode(&self) -> [u8; INIT_RESPONSE_SIZE] {
        let [n0, n1, n2, n3, n4, n5, n6, n7] = self.nonce;
        let [c0, c1, c2, c3] = self.cid.to_be_bytes();
        let DeviceVersion {
            major,
            minor,
            build,
        } = self.device_version;
        [
            n0,
            n1,
            n2,
            n3,
            n4,
            n5,
            n6,
            n7,
            c0,
            c1,
            c2,
            c3,
            self.protocol_version,
            major,
            minor,
            build,
            self.capabilities.bits(),
        ]
    }

    /// Parses a 17-byte payload; any other length is refused, as is a response that assigns
    /// channel 0 or the broadcast channel.
    pub fn parse(payload: &[u8]) -> Result<Self, Malformed> {
        let Ok(bytes) = <[u8; INIT_RESPONSE_SIZE]>::try_from(payload) else {
            return Err(Malformed::BadLength {
                cmd: Command::Init,
                len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
                expected: INIT_RESPONSE_SIZE as u16,
            });
        };
        let [
            n0,
            n1,
            n2,
            n3,
            n4,
            n5,
            n6,
            n7,
            c0,
            c1,
            c2,
            c3,
            version,
            major,
            minor,
            build,
            caps,
        ] = bytes;
        let cid = u32::from_be_bytes([c0, c1, c2, c3]);
        if cid == RESERVED_CID || cid == BROADCAST_CID {
            return Err(Malformed::UnusableCid(cid));
        }
        Ok(Self {
            nonce: [n0, n1, n2, n3, n4, n5, n6, n7],
            cid,
            protocol_version: version,
            device_version: DeviceVersion {
                major,
                minor,
                build,
            },
            capabilities: Capabilities::from_bits(caps),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// libfido2 `fuzz/wiredata_fido2.h` `WIREDATA_CTAP_INIT` payload (fido.md §1.2).
    const YUBIKEY_INIT: [u8; 17] = [
        0x80, 0x43, 0x56, 0x40, 0xb1, 0x4e, 0xd9, 0x2d, 0x00, 0x22, 0x00, 0x02, 0x02, 0x05, 0x02,
        0x01, 0x05,
    ];

    #[test]
    fn parses_a_real_yubikey_reply() {
        let response = InitResponse::parse(&YUBIKEY_INIT).unwrap();
        assert_eq!(
            response.nonce,
            [0x80, 0x43, 0x56, 0x40, 0xb1, 0x4e, 0xd9, 0x2d]
        );
        assert_eq!(response.cid, 0x0022_0002);
        assert_eq!(response.protocol_version, CTAPHID_PROTOCOL_VERSION);
        assert_eq!(
            response.device_version,
            DeviceVersion {
                major: 5,
                minor: 2,
                build: 1
            }
        );
        assert_eq!(response.capabilities, Capabilities::YUBIKEY_5);
        assert_eq!(response.encode(), YUBIKEY_INIT);
    }

    #[test]
    fn refuses_other_lengths_and_unusable_channels() {
        let short = InitResponse::parse(&YUBIKEY_INIT[..16]).unwrap_err();
        assert_eq!(
            short,
            Malformed::BadLength {
                cmd: Command::Init,
                len: 16,
                expected: 17
            }
        );
        let mut long = YUBIKEY_INIT.to_vec();
        long.push(0);
        assert!(InitResponse::parse(&long).is_err());
        for cid in [RESERVED_CID, BROADCAST_CID] {
            let mut bytes = YUBIKEY_INIT;
            bytes[8..12].copy_from_slice(&cid.to_be_bytes());
            assert_eq!(
                InitResponse::parse(&bytes).unwrap_err(),
                Malformed::UnusableCid(cid)
            );
        }
    }
}
