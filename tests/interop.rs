//! Drives the Python interop suite in `tests/interop/` (boto3, the AWS CLI, curl, PyJWT,
//! python-fido2) against the real `tokengate` binary. The security-key tests reach a
//! firmware-sim started here, in-process: its UDP address is `TOKENGATE_SIM_ADDR`, its
//! attestation CA (PEM) the file `TOKENGATE_SIM_CA`.
//!
//! The suite runs in a virtualenv under Cargo's target dir (`tests/support/venv.rs`),
//! created on first use from `tests/interop/requirements.txt` (and re-created when that
//! file changes). It needs `python3` with the `venv` module and access to the Python package
//! index; `.ci/run` installs both. A missing Python is a failure, never a skip.
//!
//! The sign-in portal's browser tests need Debian's `chromium` and `chromium-driver`: when
//! they are missing, [`ensure_browser`] installs them with apt-get (as root, or through
//! `sudo -n`), so `cargo test --workspace` alone gets the browser on a fresh machine; where
//! it cannot, the test fails saying what to install — never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// Debian's headless browser and its driver, as tests/interop/test_portal.py uses them.
const BROWSER: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// Installs `chromium` and `chromium-driver` with apt-get when either is missing.
fn ensure_browser() {
    if BROWSER.iter().all(|p| Path::new(p).exists()) {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("installing Debian's chromium and chromium-driver for the portal's browser tests");
    let installed =
        apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
    assert!(
        installed && BROWSER.iter().all(|p| Path::new(p).exists()),
        "the portal's browser tests need Debian's chromium and chromium-driver \
         ({BROWSER:?}); apt-get could not install them here — install them \
         (`sudo apt-get install chromium chromium-driver`) and run the tests again"
    );
}

#[test]
fn python_clients_interoperate() {
    ensure_browser();
    let python = venv::python(&suite_dir().join("requirements.txt"));
    let sim = firmware_sim::spawn(firmware_sim::SimConfig {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        state: None,
        touch: firmware_sim::TouchPolicy::Auto,
        verbose: false,
    })
    .expect("start firmware-sim");
    let sim_dir = tempfile::tempdir().expect("a temp dir");
    let sim_ca = sim_dir.path().join("firmware-sim-ca.pem");
    std::fs::write(&sim_ca, sim.ca_pem()).expect("write the simulator CA");
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
        .env("TOKENGATE_SIM_ADDR", sim.addr().to_string())
        .env("TOKENGATE_SIM_CA", &sim_ca)
        .env_remove("TOKENGATE_DEVICE")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run pytest");
    sim.stop();
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
