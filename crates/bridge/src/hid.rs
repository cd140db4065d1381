//! USB HID: enumeration of FIDO devices and the hidapi [`Transport`].
//!
//! A FIDO device is a HID interface with usage page 0xF1D0 and usage 0x01 (CTAP 2.1
//! §11.2.8.1; fido.md §4). On Linux hidapi's pure-Rust `linux-native-basic-udev` backend
//! reads `/sys/class/hidraw` and opens `/dev/hidrawN`; no libudev is needed to build or run.

use std::ffi::CString;
use std::time::Instant;

use hidapi::{HidApi, HidDevice};
use tokengate_ctaphid::{HID_REPORT_SIZE, Report};

use crate::address::DeviceAddress;
use crate::error::{Error, ProtocolError};
use crate::transport::Transport;

/// The FIDO Alliance HID usage page (CTAP 2.1 §11.2.8.1).
pub const FIDO_USAGE_PAGE: u16 = 0xF1D0;
/// The CTAPHID usage on that page (CTAP 2.1 §11.2.8.1).
pub const FIDO_USAGE_CTAPHID: u16 = 0x01;
/// The report ID hidraw/hidapi expect before an output report of a device without report
/// IDs (fido.md §1.1: python-fido2 "Prepend the report ID", libfido2 `tx_len + 1`).
const REPORT_ID: u8 = 0x00;
/// Longest single wait on the device; short, so that cancellation is noticed.
const MAX_READ_SLICE_MS: u128 = 100;

/// A FIDO device found on USB HID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HidKey {
    /// `hid:PATH`.
    pub address: DeviceAddress,
    /// The platform path hidapi opens.
    pub path: String,
    /// USB vendor ID (0x1050 for Yubico).
    pub vendor_id: u16,
    /// USB product ID.
    pub product_id: u16,
    /// USB manufacturer string, if the device has one.
    pub manufacturer: Option<String>,
    /// USB product string, if the device has one.
    pub product: Option<String>,
    /// USB serial number string, if the device has one.
    pub serial_number: Option<String>,
}

/// Every FIDO device on USB HID, one entry per device. No device is not an error: the list
/// is empty.
pub fn list() -> Result<Vec<HidKey>, Error> {
    let api = HidApi::new().map_err(|e| Error::Hid(e.to_string()))?;
    let mut keys: Vec<HidKey> = Vec::new();
    for info in api.device_list() {
        if info.usage_page() != FIDO_USAGE_PAGE || info.usage() != FIDO_USAGE_CTAPHID {
            continue;
        }
        let path = info.path().to_string_lossy().into_owned();
        // hidapi lists one entry per top-level usage; keep each device once.
        if keys.iter().any(|k| k.path == path) {
            continue;
        }
        keys.push(HidKey {
            address: DeviceAddress::Hid(path.clone()),
            path,
            vendor_id: info.vendor_id(),
            product_id: info.product_id(),
            manufacturer: info.manufacturer_string().map(str::to_owned),
            product: info.product_string().map(str::to_owned),
            serial_number: info.serial_number().map(str::to_owned),
        });
    }
    Ok(keys)
}

/// CTAPHID over hidapi: output reports get the 0x00 report-ID byte, input reports are read
/// as the bare 64 bytes.
pub struct HidTransport {
    device: HidDevice,
    path: String,
}

impl std::fmt::Debug for HidTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidTransport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HidTransport {
    /// Opens the device at `path` (e.g. `/dev/hidraw3`).
    pub fn open(path: &str) -> Result<Self, Error> {
        let unreachable = |reason: String| Error::Unreachable {
            address: format!("hid:{path}"),
            reason,
        };
        let c_path =
            CString::new(path).map_err(|_| Error::InvalidAddress(format!("hid:{path}")))?;
        let api = HidApi::new().map_err(|e| Error::Hid(e.to_string()))?;
        let device = api.open_path(&c_path).map_err(|e| {
            let text = e.to_string();
            if text.contains("ermission denied") {
                unreachable(format!(
                    "{text}; allow your user to open FIDO devices (a udev rule such as \
                     libfido2's 70-u2f.rules, or membership of the plugdev group)"
                ))
            } else {
                unreachable(text)
            }
        })?;
        Ok(Self {
            device,
            path: path.to_owned(),
        })
    }

    fn gone(&self, e: impl std::fmt::Display) -> Error {
        Error::Disconnected(format!("hid:{}: {e}", self.path))
    }
}

impl Transport for HidTransport {
    fn write_report(&mut self, report: &Report) -> Result<(), Error> {
        let mut out = [0u8; HID_REPORT_SIZE + 1];
        out[0] = REPORT_ID;
        out[1..].copy_from_slice(report);
        match self.device.write(&out) {
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => Err(self.gone(format!("wrote {n} of {} bytes", out.len()))),
            Err(e) => Err(self.gone(e)),
        }
    }

    fn read_report(&mut self, deadline: Instant) -> Result<Option<Report>, Error> {
        let mut buf = [0u8; HID_REPORT_SIZE];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            let slice_ms = remaining.as_millis().clamp(1, MAX_READ_SLICE_MS);
            // `slice_ms` is at most MAX_READ_SLICE_MS, so it fits an i32.
            let timeout = i32::try_from(slice_ms).unwrap_or(1);
            match self.device.read_timeout(&mut buf, timeout) {
                Ok(0) => {}
                Ok(HID_REPORT_SIZE) => return Ok(Some(buf)),
                Ok(_) => {
                    return Err(
                        ProtocolError::Unexpected("an input report that is not 64 bytes").into(),
                    );
                }
                Err(e) => return Err(self.gone(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumeration_works_without_devices() {
        // This machine has no USB HID devices (and no libudev): the list is empty, not an
        // error. With a key plugged in, every entry must be a FIDO interface.
        let keys = list().expect("hidapi enumeration must not fail");
        for key in &keys {
            assert_eq!(key.address, DeviceAddress::Hid(key.path.clone()));
        }
    }

    #[test]
    fn opening_a_missing_path_is_unreachable() {
        let err = HidTransport::open("/dev/hidraw-does-not-exist").unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        let err = HidTransport::open("bad\0path").unwrap_err();
        assert!(matches!(err, Error::InvalidAddress(_)), "{err:?}");
    }
}
