//! Drives the python-fido2 interop suite in `tests/interop/firmware_sim/` against the real
//! `firmware-sim` binary: Yubico's own client library (2.2.1) talks CTAPHID over UDP to the
//! simulator and must accept it as a YubiKey 5 (issue 4 "Done when").
//!
//! The venv is the shared one of `tests/support/venv.rs`. A missing Python is a failure,
//! never a skip, and the suite must report passes and no skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/support/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

#[test]
fn python_fido2_accepts_the_simulator() {
    let python = venv::python(&interop_dir().join("requirements.txt"));
    let suite = interop_dir().join("firmware_sim");
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--color=no",
        ])
        .arg("--rootdir")
        .arg(&suite)
        .arg(&suite)
        .current_dir(&suite)
        .env("FIRMWARE_SIM_BIN", env!("CARGO_BIN_EXE_firmware-sim"))
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the python-fido2 suite failed (output above)"
    );
    assert!(stdout.contains(" passed"), "pytest ran no test");
    assert!(
        !stdout.contains(" skipped"),
        "no interop test may be skipped"
    );
    assert!(
        !stdout.contains("SKIPPED"),
        "no interop test may be skipped"
    );
}
