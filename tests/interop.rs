//! Drives the Python interop suite in `tests/interop/` (boto3, the AWS CLI, curl, PyJWT;
//! later python-fido2) against the real `tokengate` binary.
//!
//! The suite runs in a virtualenv under Cargo's target dir, created on first use from
//! `tests/interop/requirements.txt` (and re-created when that file changes). It needs
//! `python3` with the `venv` module and access to the Python package index; `.ci/run`
//! installs both. A missing Python is a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// The venv's python, creating or refreshing the venv when requirements changed.
fn venv_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    let python = venv.join("bin/python");
    let requirements = suite_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("read requirements.txt");
    let stamp = venv.join("requirements.installed");
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
        .arg(&requirements)
        .status()
        .expect("run pip");
    assert!(
        status.success(),
        "pip install -r tests/interop/requirements.txt failed"
    );
    std::fs::write(&stamp, wanted).expect("write venv stamp");
    python
}

#[test]
fn python_clients_interoperate() {
    let python = venv_python();
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
