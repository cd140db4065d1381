//! Drives the Python interop suite in `tests/interop/` (boto3, the AWS CLI, curl, PyJWT;
//! later python-fido2) against the real `tokengate` binary.
//!
//! The suite runs in a virtualenv under Cargo's target dir (`tests/support/venv.rs`),
//! created on first use from `tests/interop/requirements.txt` (and re-created when that
//! file changes). It needs `python3` with the `venv` module and access to the Python package
//! index; `.ci/run` installs both. A missing Python is a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

#[test]
fn python_clients_interoperate() {
    let python = venv::python(&suite_dir().join("requirements.txt"));
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--color=no",
            // The simulator's python-fido2 suite has its own driver (firmware-sim/tests).
            "--ignore=firmware_sim",
        ])
        .current_dir(suite_dir())
        .env("TOKENGATE_BIN", env!("CARGO_BIN_EXE_tokengate"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the interop suite failed (output above)"
    );
    assert!(stdout.contains(" passed"), "pytest ran no test");
    assert!(
        !stdout.contains(" skipped"),
        "no interop test may be skipped"
    );
}
