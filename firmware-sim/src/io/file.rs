//! The state file: [`crate::Storage`] on a path.
//!
//! A store writes the whole blob to a temporary file in the same directory (mode 0600),
//! fsyncs it, renames it over the state file and fsyncs the directory. After `store`
//! returns, a crash or SIGKILL leaves either the new file or — if it came before the
//! rename — the previous one, never a torn one; and the authenticator only signs with a
//! counter value after its store returned, so no counter value is ever handed out twice.
//!
//! The signature counter also lives in a small side file, `STATE.counter`, written in place
//! for every signature: two 16-byte slots (`"TGC1"`, counter LE, CRC-32, padding), the
//! counter's parity picks the slot, and `fdatasync` returns before the signature is made. A
//! torn write can only spoil the slot being written — whose value was never sent — so the
//! other slot still holds the last value sent. Loading takes the largest valid slot and the
//! larger of it and the JSON's counter. Rewriting and renaming the whole JSON for every
//! assertion cost two metadata fsyncs (≈ 8 ms a round trip on the development VM); the side
//! file costs one data sync (≈ 0.2 ms). Copying only the JSON makes a clone whose counter
//! lags the original's — what clone-detection tests want.
//!
//! What it will not do: no locking between processes sharing one file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::env::Storage;

/// The state as a file at a path.
#[derive(Clone, Debug)]
pub struct FileStorage {
    path: PathBuf,
}

impl FileStorage {
    /// Storage at `path` (created on the first store, with its directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `$XDG_DATA_HOME/tokengate/firmware-sim.json`, else
    /// `$HOME/.local/share/tokengate/firmware-sim.json`.
    pub fn default_path() -> Option<PathBuf> {
        let data_home = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".local/share"))
            })?;
        Some(data_home.join("tokengate").join("firmware-sim.json"))
    }

    /// The counter side file: the state path with `.counter` appended.
    pub fn counter_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".counter");
        PathBuf::from(name)
    }

    fn io(&self, what: &str, source: std::io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", self.path.display()),
            source,
        }
    }
}

/// Magic of a counter slot.
const COUNTER_MAGIC: &[u8; 4] = b"TGC1";
/// Bytes per counter slot.
const COUNTER_SLOT: usize = 16;

fn counter_slot(counter: u32) -> [u8; COUNTER_SLOT] {
    let mut slot = [0u8; COUNTER_SLOT];
    slot[..4].copy_from_slice(COUNTER_MAGIC);
    slot[4..8].copy_from_slice(&counter.to_le_bytes());
    let crc = crc32(&slot[..8]);
    slot[8..12].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn parse_counter_slot(slot: &[u8]) -> Option<u32> {
    let magic = slot.get(..4)?;
    let counter = u32::from_le_bytes(slot.get(4..8)?.try_into().ok()?);
    let crc = u32::from_le_bytes(slot.get(8..12)?.try_into().ok()?);
    (magic == COUNTER_MAGIC && crc == crc32(slot.get(..8)?)).then_some(counter)
}

/// CRC-32 (IEEE 802.3), bitwise: 8 bytes per signature.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl Storage for FileStorage {
    fn load_counter(&mut self) -> Result<Option<u32>, Error> {
        match fs::read(self.counter_path()) {
            Ok(bytes) => Ok(bytes
                .chunks(COUNTER_SLOT)
                .filter_map(parse_counter_slot)
                .max()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("cannot read the counter of", e)),
        }
    }

    fn store_counter(&mut self, counter: u32) -> Result<bool, Error> {
        let path = self.counter_path();
        let created = !path.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| self.io("cannot open the counter of", e))?;
        let offset = u64::from(counter % 2) * COUNTER_SLOT as u64;
        file.write_all_at(&counter_slot(counter), offset)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.io("cannot write the counter of", e))?;
        if created {
            // The new file's directory entry must be durable too.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io("cannot fsync the directory of", e))?;
        }
        Ok(true)
    }

    fn load(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match fs::read(&self.path) {
            Ok(blob) => Ok(Some(blob)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("cannot read state file", e)),
        }
    }

    fn store(&mut self, blob: &[u8]) -> Result<(), Error> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| self.io("cannot create the directory of", e))?;
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.io("no file name in", ErrorKind::InvalidInput.into()))?;
        let mut temporary = name.to_os_string();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = dir.join(temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| self.io("cannot create a temporary file for", e))?;
        file.write_all(blob)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io("cannot write", e))?;
        drop(file);
        fs::rename(&temporary, &self.path).map_err(|e| self.io("cannot replace", e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("cannot fsync the directory of", e))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_counter_side_file_keeps_the_largest_valid_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::new(dir.path().join("state.json"));
        assert_eq!(storage.load_counter().unwrap(), None);
        for c in 1..=5 {
            assert!(storage.store_counter(c).unwrap());
        }
        assert_eq!(storage.load_counter().unwrap(), Some(5));
        let mode = fs::metadata(storage.counter_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A torn write of 6 spoils slot 0 (counter 6 was never sent): 5 survives.
        let mut bytes = fs::read(storage.counter_path()).unwrap();
        bytes[4] ^= 0xff;
        fs::write(storage.counter_path(), &bytes).unwrap();
        assert_eq!(storage.load_counter().unwrap(), Some(5));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn stores_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut storage = FileStorage::new(&path);
        assert_eq!(storage.load().unwrap(), None);
        storage.store(b"one").unwrap();
        storage.store(b"two").unwrap();
        assert_eq!(storage.load().unwrap().as_deref(), Some(&b"two"[..]));
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["state.json"]);
    }

    #[test]
    fn unreadable_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = FileStorage::new(dir.path());
        assert!(matches!(storage.load(), Err(Error::Io { .. })));
    }
}
