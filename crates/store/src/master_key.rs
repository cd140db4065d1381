//! The master key file: 32 random bytes, base64, mode 0600, created once.
//!
//! Every secret in the store is sealed under this key ([`crate::seal`]). Lose it and the
//! sealed secrets are gone; replicas that share one PostgreSQL store must share it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use tokengate_token::Secret;

use crate::seal::MASTER_KEY_LEN;

/// Why the master key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterKeyError {
    /// The file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is readable by others than its owner.
    #[error(
        "master key file {path} has mode {mode:04o}; it must not be readable by group or \
         others (chmod 600 {path})"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a 32-byte key in base64.
    #[error("master key file {path} does not hold a 32-byte base64 key")]
    Malformed {
        /// The file.
        path: String,
    },
    /// The system RNG failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Loads the master key at `path`, creating it (0600, exclusively) when absent.
/// Returns the key and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(Secret, bool), MasterKeyError> {
    let shown = path.display().to_string();
    let io = |source| MasterKeyError::Io {
        path: shown.clone(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(MasterKeyError::Permissions { path: shown, mode });
            }
            let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io)?);
            let bytes = data_encoding::BASE64
                .decode(text.trim().as_bytes())
                .map_err(|_| MasterKeyError::Malformed {
                    path: shown.clone(),
                })?;
            if bytes.len() != MASTER_KEY_LEN {
                return Err(MasterKeyError::Malformed { path: shown });
            }
            Ok((Secret::new(bytes), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; MASTER_KEY_LEN];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| MasterKeyError::Random)?;
            let key = Secret::new(key);
            let text = zeroize::Zeroizing::new(data_encoding::BASE64.encode(key.expose()));
            // Written whole under a name of its own, then linked into place: whoever starts
            // at the same moment (another replica sharing the path) sees no file or a whole
            // one, and a second creator loses the link and loads the first one's key.
            let mut nonce = [0u8; 8];
            SystemRandom::new()
                .fill(&mut nonce)
                .map_err(|_| MasterKeyError::Random)?;
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".{}.tmp", data_encoding::HEXLOWER.encode(&nonce)));
            let tmp = std::path::PathBuf::from(tmp);
            let written = (|| {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                file.write_all(text.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()?;
                fs::hard_link(&tmp, path)
            })();
            let _ = fs::remove_file(&tmp);
            match written {
                Ok(()) => Ok((key, true)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create(path).map(|(key, _)| (key, false))
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (k1, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (k2, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.expose(), k2.expose());
    }

    #[test]
    fn two_processes_creating_at_once_get_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        for _ in 0..20 {
            let _ = fs::remove_file(&path);
            let barrier = std::sync::Barrier::new(2);
            let [a, b] = std::thread::scope(|s| {
                let load = || {
                    barrier.wait();
                    load_or_create(&path).unwrap()
                };
                let (ha, hb) = (s.spawn(load), s.spawn(load));
                [ha.join().unwrap(), hb.join().unwrap()]
            });
            assert_eq!(a.0.expose(), b.0.expose());
            assert!(a.1 != b.1 || !a.1, "one creator at most");
        }
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn refuses_loose_permissions_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(MasterKeyError::Permissions { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "not base64!").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(MasterKeyError::Malformed { .. })
        ));
        fs::write(&path, data_encoding::BASE64.encode(&[0u8; 16])).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(MasterKeyError::Malformed { .. })
        ));
    }
}
