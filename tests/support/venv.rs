//! The Python virtualenv of the interop suites, shared by `tests/interop.rs` (tokengate)
//! and `firmware-sim/tests/interop.rs` (python-fido2 against the simulator), which include
//! this file with `#[path]`.
//!
//! The venv lives under Cargo's target dir (`CARGO_TARGET_TMPDIR/interop-venv`) and is
//! created on first use from `tests/interop/requirements.txt`, and re-created when that
//! file changes (the stamp is the requirements' content). A file lock serialises two test
//! binaries that want it at the same time. It needs `python3` with the `venv` module and
//! access to the Python package index; a missing Python is a failure, never a skip.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's python, creating or refreshing the venv when `requirements` changed.
pub fn python(requirements: &Path) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    let python = venv.join("bin/python");
    let wanted = std::fs::read_to_string(requirements).expect("read requirements.txt");
    let stamp = venv.join("requirements.installed");
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("create CARGO_TARGET_TMPDIR");
    let lock: File = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(venv.with_extension("lock"))
        .expect("open the venv lock file");
    lock.lock().expect("lock the venv");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let host_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let status = Command::new(&host_python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {host_python} (install python3 and python3-venv): {e}")
        });
    assert!(
        status.success(),
        "python3 -m venv failed (install python3-venv)"
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements)
        .status()
        .expect("run pip");
    assert!(
        status.success(),
        "pip install -r tests/interop/requirements.txt failed"
    );
    std::fs::write(&stamp, wanted).expect("write venv stamp");
    python
}
