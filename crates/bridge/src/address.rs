//! Device addresses (DESIGN.md "Transport to the simulator"): `udp:HOST:PORT` for
//! firmware-sim, `hid:PATH` for one USB HID device, `auto` for "the key that is plugged in".

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The environment variable that sets the default device address.
pub const DEVICE_ENV: &str = "TOKENGATE_DEVICE";
/// Where firmware-sim listens by default.
pub const DEFAULT_SIMULATOR: &str = "udp:127.0.0.1:8111";

/// Where a security key is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceAddress {
    /// The only FIDO key on USB HID; with several, the one the person touches.
    Auto,
    /// One USB HID device by its platform path (`/dev/hidraw3` on Linux).
    Hid(String),
    /// CTAPHID reports carried in UDP datagrams, one 64-byte report each (firmware-sim).
    /// `HOST:PORT`, resolved when the address is opened.
    Udp(String),
}

impl DeviceAddress {
    /// The address in `TOKENGATE_DEVICE`, or `auto` if it is unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(DEVICE_ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            _ => Ok(Self::Auto),
        }
    }
}

impl FromStr for DeviceAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidAddress(s.to_owned());
        let s_trimmed = s.trim();
        if s_trimmed.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        let (scheme, rest) = s_trimmed.split_once(':').ok_or_else(invalid)?;
        match scheme.to_ascii_lowercase().as_str() {
            "hid" if !rest.is_empty() && !rest.contains('\0') => Ok(Self::Hid(rest.to_owned())),
            "udp" => {
                // HOST:PORT, HOST may be a bracketed IPv6 literal.
                let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(invalid());
                }
                Ok(Self::Udp(rest.to_owned()))
            }
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Hid(path) => write!(f, "hid:{path}"),
            Self::Udp(host_port) => write!(f, "udp:{host_port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "auto".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Auto
        );
        assert_eq!(
            " AUTO ".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Auto
        );
        assert_eq!(
            "hid:/dev/hidraw3".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Hid("/dev/hidraw3".into())
        );
        assert_eq!(
            DEFAULT_SIMULATOR.parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Udp("127.0.0.1:8111".into())
        );
        assert_eq!(
            "udp:[::1]:8111".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Udp("[::1]:8111".into())
        );
        assert_eq!(
            "udp:localhost:8111".parse::<DeviceAddress>().unwrap(),
            DeviceAddress::Udp("localhost:8111".into())
        );
        for s in ["auto", "hid:/dev/hidraw0", "udp:127.0.0.1:8111"] {
            assert_eq!(s.parse::<DeviceAddress>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            "hid:",
            "udp:",
            "udp:127.0.0.1",
            "udp::8111",
            "udp:host:port",
            "udp:host:70000",
            "tcp:127.0.0.1:8111",
            "/dev/hidraw0",
            "hid:a\0b",
        ] {
            let err = s.parse::<DeviceAddress>().unwrap_err();
            assert!(matches!(err, Error::InvalidAddress(_)), "{s:?}: {err:?}");
        }
    }
}
