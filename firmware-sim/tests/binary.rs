//! The `firmware-sim` binary: arguments, `export-ca`, the state file, verbose logging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use support::client::UdpDevice;
use support::process::SimProcess;
use tokengate_ctap::ctap2::Request;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
}

#[test]
fn export_ca_creates_the_state_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested/state.json");
    let first = bin()
        .args(["export-ca", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let pem = String::from_utf8(first.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = bin()
        .arg("--state")
        .arg(&state)
        .arg("export-ca")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(second.stdout).unwrap(),
        pem,
        "same CA on every run"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(json["format"], "tokengate-firmware-sim/1");
    assert_eq!(json["signature_counter"], 0);
}

#[test]
fn a_corrupt_state_file_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for junk in [&b""[..], b"\xff\xfe", b"{}", b"[1,2,3]"] {
        std::fs::write(&state, junk).unwrap();
        for args in [&["export-ca"][..], &["--listen", "127.0.0.1:0"]] {
            let out = bin()
                .args(args)
                .arg("--state")
                .arg(&state)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("invalid state file"), "{stderr}");
            assert!(stderr.contains("state.json"), "names the file: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--touch", "sometimes"][..],
        &["--touch", "delay:soon"],
        &["--listen", "localhost"],
    ] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn verbose_logs_commands_and_statuses_but_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let sim = SimProcess::start(&state, &["--verbose", "--touch", "auto"]);
    let mut device = UdpDevice::connect(sim.addr, Duration::from_secs(5)).unwrap();
    assert_eq!(device.cbor(&Request::GetInfo).unwrap().0, 0);
    assert_eq!(device.cbor(&Request::Reset).unwrap().0, 0);
    assert_eq!(device.apdu(&[0, 3, 0, 0, 0, 0, 0]).unwrap().1, 0x9000);
    std::thread::sleep(Duration::from_millis(200));
    let log = sim.log().join("\n");
    for needle in [
        "CBOR GetInfo -> 0x00 Ok",
        "CBOR Reset -> 0x00 Ok",
        "MSG U2F VERSION -> 0x9000",
    ] {
        assert!(log.contains(needle), "{needle} missing from:\n{log}");
    }
    let secret = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&state).unwrap())
        .unwrap()["device_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!log.contains(&secret));
}

#[test]
fn the_default_state_file_lives_under_xdg_data_home() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("export-ca")
        .env("XDG_DATA_HOME", dir.path())
        .env_remove("HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("tokengate/firmware-sim.json").is_file());
    let home = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("export-ca")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        home.path()
            .join(".local/share/tokengate/firmware-sim.json")
            .is_file()
    );
}

#[test]
fn prompt_asks_on_the_terminal() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;

    /// Kills the child even when an assertion fails.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        bin()
            .args(["--listen", "127.0.0.1:0", "--touch", "prompt", "--state"])
            .arg(dir.path().join("state.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("listening on udp:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let mut stdin = child.0.stdin.take().unwrap();
    let mut device = UdpDevice::connect(addr.parse().unwrap(), Duration::from_secs(10)).unwrap();
    let mut prompt = [0u8; 64];
    for (answer, expected_status) in [("y", 0x00), ("n", 0x27)] {
        device
            .send(tokengate_ctaphid::Command::Cbor, &[0x0B])
            .unwrap();
        // "firmware-sim: select this key. Touch? [y/N] " (no newline: read what is there).
        let mut seen = String::new();
        while !seen.contains("Touch? [y/N]") {
            let n = stderr.read(&mut prompt).unwrap();
            assert!(n > 0, "no prompt: {seen}");
            seen.push_str(&String::from_utf8_lossy(&prompt[..n]));
        }
        // Think it over for a while: the simulator keeps sending keepalives meanwhile.
        std::thread::sleep(Duration::from_millis(250));
        writeln!(stdin, "{answer}").unwrap();
        let response = device.receive().unwrap();
        assert_eq!(response.payload, [expected_status], "answer {answer}");
        assert!(
            device.keepalives >= 2,
            "keepalives while the prompt waits ({answer})"
        );
    }
}
